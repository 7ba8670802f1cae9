//! `recall/trending`: the items with the most interactions in the stream
//! processor's shortest window (an hour by default), so what is taking off
//! now reaches users before any model is retrained.

use crate::recall::{CandidateSource, RecallContext};

/// Trending items the catalog knows, most interactions first.
#[derive(Debug, Clone)]
pub struct TrendingRecall {
    items: Vec<(u32, f32)>,
}

impl TrendingRecall {
    /// From (item id, interactions) pairs, most first; ids `index_of`
    /// does not know are left out.
    pub fn new(
        trending: &[(String, u64)],
        index_of: impl Fn(&str) -> Option<u32>,
    ) -> TrendingRecall {
        let items = trending
            .iter()
            .filter_map(|(id, count)| Some((index_of(id)?, *count as f32)))
            .collect();
        TrendingRecall { items }
    }
}

impl CandidateSource for TrendingRecall {
    fn name(&self) -> &'static str {
        "recall/trending"
    }

    fn recall(&self, _: &RecallContext<'_>, n: usize) -> Vec<(u32, f32)> {
        self.items.iter().take(n).copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_order_and_drops_unknown_ids() {
        let catalog = cascade_core::IdIndex::new(["a", "b", "c"]);
        let trending = [("c".to_owned(), 9), ("new".to_owned(), 5), ("a".to_owned(), 2)];
        let recall = TrendingRecall::new(&trending, |id| catalog.index(id));
        let context = RecallContext { user_id: "u", user: None, history: &[] };
        let found = recall.recall(&context, 10);
        assert_eq!(
            found,
            vec![(catalog.index("c").unwrap(), 9.0), (catalog.index("a").unwrap(), 2.0)]
        );
        assert_eq!(recall.recall(&context, 1).len(), 1);
    }
}
