//! `recall/fresh`: the newest items, so new content gets shown before any
//! model has learned about it.

use crate::recall::{CandidateSource, RecallContext};

/// Items by publication time, newest first (items without one are left out).
#[derive(Debug, Clone)]
pub struct FreshRecall {
    newest: Vec<(u32, f32)>,
}

impl FreshRecall {
    /// From each item's publication time (unix seconds), by dense index.
    pub fn new(published: &[Option<i64>]) -> FreshRecall {
        let mut dated: Vec<(u32, i64)> = published
            .iter()
            .enumerate()
            .filter_map(|(item, t)| Some((item as u32, (*t)?)))
            .collect();
        dated.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        // The channel's score: publication time in days, larger is newer.
        let newest =
            dated.into_iter().map(|(item, t)| (item, (t as f64 / 86_400.0) as f32)).collect();
        FreshRecall { newest }
    }
}

impl CandidateSource for FreshRecall {
    fn name(&self) -> &'static str {
        "recall/fresh"
    }

    fn recall(&self, _: &RecallContext<'_>, n: usize) -> Vec<(u32, f32)> {
        self.newest.iter().take(n).copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_first_and_undated_items_left_out() {
        let fresh = FreshRecall::new(&[Some(100), None, Some(300), Some(200)]);
        let context = RecallContext { user: None, history: &[] };
        let items: Vec<u32> = fresh.recall(&context, 10).iter().map(|c| c.0).collect();
        assert_eq!(items, vec![2, 3, 0]);
    }
}
