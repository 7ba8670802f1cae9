//! Recall@K: the share of relevant items found among the first K.

use super::{Metric, RankingMetric, hits_at};

/// Recall at `k`.
#[derive(Debug, Clone, Copy)]
pub struct Recall {
    /// Cut-off.
    pub k: usize,
}

impl Metric for Recall {
    fn name(&self) -> String {
        format!("recall@{}", self.k)
    }
}

impl RankingMetric for Recall {
    fn score(&self, ranked: &[u32], relevant: &[u32]) -> f64 {
        if relevant.is_empty() {
            return 0.0;
        }
        hits_at(self.k, ranked, relevant) as f64 / relevant.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed() {
        // 2 of 4 relevant items in the top 3.
        assert_eq!(Recall { k: 3 }.score(&[1, 2, 3, 4], &[1, 3, 7, 8]), 0.5);
    }
}
