//! Precision@K: the share of the first K items that are relevant.

use super::{Metric, RankingMetric, hits_at};

/// Precision at `k`.
#[derive(Debug, Clone, Copy)]
pub struct Precision {
    /// Cut-off.
    pub k: usize,
}

impl Metric for Precision {
    fn name(&self) -> String {
        format!("precision@{}", self.k)
    }
}

impl RankingMetric for Precision {
    fn score(&self, ranked: &[u32], relevant: &[u32]) -> f64 {
        // Divide by K even when the list is shorter: an empty slot is a miss.
        hits_at(self.k, ranked, relevant) as f64 / self.k as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed() {
        assert_eq!(Precision { k: 4 }.score(&[1, 2, 3, 4], &[2, 4, 9]), 0.5);
    }
}
