//! `recall/fresh`: the newest items, so new content gets shown before any
//! model has learned about it. Items added through the API since the
//! build join the list as they come.

use std::sync::Arc;

use crate::catalog::AddedItems;
use crate::recall::{CandidateSource, RecallContext};

/// Items by publication time, newest first (items without one are left out).
#[derive(Debug, Clone)]
pub struct FreshRecall {
    newest: Vec<(u32, f32)>,
    added: Arc<AddedItems>,
}

/// The channel's score: publication time in days, larger is newer.
fn days(unix_seconds: i64) -> f32 {
    (unix_seconds as f64 / 86_400.0) as f32
}

impl FreshRecall {
    /// From each item's publication time (unix seconds), by dense index,
    /// and the items added since.
    pub fn new(published: &[Option<i64>], added: Arc<AddedItems>) -> FreshRecall {
        let mut dated: Vec<(u32, i64)> = published
            .iter()
            .enumerate()
            .filter_map(|(item, t)| Some((item as u32, (*t)?)))
            .collect();
        dated.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let newest = dated.into_iter().map(|(item, t)| (item, days(t))).collect();
        FreshRecall { newest, added }
    }
}

impl CandidateSource for FreshRecall {
    fn name(&self) -> &'static str {
        "recall/fresh"
    }

    fn recall(&self, _: &RecallContext<'_>, n: usize) -> Vec<(u32, f32)> {
        let added = self.added.newest(n).into_iter().map(|(item, t)| (item, days(t)));
        let mut found: Vec<(u32, f32)> = self.newest.iter().take(n).copied().chain(added).collect();
        found.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        found.truncate(n);
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_first_undated_items_left_out_and_added_items_join() {
        use crate::catalog::{Catalog, ItemFacts};
        use cascade_core::IdIndex;
        let published = [Some(100), None, Some(300), Some(200)];
        let facts = ItemFacts { published: published.to_vec(), ..ItemFacts::unknown(4) };
        let catalog =
            Catalog::new(IdIndex::new(["u"]), IdIndex::new(["a", "b", "c", "d"]), vec![], facts);
        let fresh = FreshRecall::new(&published, catalog.added.clone());
        let context = RecallContext { user_id: "u", user: None, history: &[] };
        let items = |n| -> Vec<u32> { fresh.recall(&context, n).iter().map(|c| c.0).collect() };
        assert_eq!(items(10), vec![2, 3, 0]);
        let ready = |_: u32, _: bool| Ok(());
        assert_eq!(catalog.add_item("e", vec![], 250, ready), Ok(Some((4, true))));
        assert_eq!(catalog.add_item("e", vec![], 250, ready), Ok(Some((4, false))), "added once");
        assert_eq!(catalog.add_item("a", vec![], 250, ready), Ok(None), "the build has it");
        let failing = |_: u32, _: bool| Err("the index is full".to_owned());
        assert!(catalog.add_item("f", vec![], 260, failing).is_err());
        assert_eq!(catalog.item_index("f"), None, "a failed preparation adds nothing");
        assert_eq!(items(10), vec![2, 4, 3, 0], "the added item in time order");
        assert_eq!(items(2), vec![2, 4]);
    }
}
