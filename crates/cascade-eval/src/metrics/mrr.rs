//! MRR@K: 1/rank of the first relevant item, 0 beyond K.

use super::{Metric, RankingMetric};

/// Mean reciprocal rank at `k` (per user; callers average).
#[derive(Debug, Clone, Copy)]
pub struct Mrr {
    /// Cut-off.
    pub k: usize,
}

impl Metric for Mrr {
    fn name(&self) -> String {
        format!("mrr@{}", self.k)
    }
}

impl RankingMetric for Mrr {
    fn score(&self, ranked: &[u32], relevant: &[u32]) -> f64 {
        ranked
            .iter()
            .take(self.k)
            .position(|item| relevant.contains(item))
            .map_or(0.0, |i| 1.0 / (i + 1) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed() {
        assert_eq!(Mrr { k: 10 }.score(&[4, 5, 6, 7], &[6, 7]), 1.0 / 3.0);
        assert_eq!(Mrr { k: 2 }.score(&[4, 5, 6, 7], &[6, 7]), 0.0);
    }
}
