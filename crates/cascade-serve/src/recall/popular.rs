//! `recall/popular`: the most consumed items of the training data.

use crate::recall::{CandidateSource, RecallContext};

/// Items ranked by how many users consumed them (ties: lower index first).
#[derive(Debug, Clone)]
pub struct PopularRecall {
    ranked: Vec<(u32, f32)>,
    counts: Vec<f32>,
}

impl PopularRecall {
    /// From each item's count, indexed by dense item index.
    pub fn new(counts: &[f32]) -> PopularRecall {
        let mut ranked: Vec<(u32, f32)> =
            counts.iter().enumerate().map(|(i, &c)| (i as u32, c)).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        PopularRecall { ranked, counts: counts.to_vec() }
    }

    /// How often the item was consumed (0 for an unknown item).
    pub fn count(&self, item: u32) -> f32 {
        self.counts.get(item as usize).copied().unwrap_or(0.0)
    }

    /// The largest count.
    pub fn max_count(&self) -> f32 {
        self.ranked.first().map_or(0.0, |top| top.1)
    }
}

impl CandidateSource for PopularRecall {
    fn name(&self) -> &'static str {
        "recall/popular"
    }

    fn recall(&self, _: &RecallContext<'_>, n: usize) -> Vec<(u32, f32)> {
        self.ranked.iter().take(n).copied().collect()
    }
}
