//! HR@K: 1 if any relevant item is among the first K, else 0.

use super::{Metric, RankingMetric, hits_at};

/// Hit rate at `k`.
#[derive(Debug, Clone, Copy)]
pub struct HitRate {
    /// Cut-off.
    pub k: usize,
}

impl Metric for HitRate {
    fn name(&self) -> String {
        format!("hr@{}", self.k)
    }
}

impl RankingMetric for HitRate {
    fn score(&self, ranked: &[u32], relevant: &[u32]) -> f64 {
        if hits_at(self.k, ranked, relevant) > 0 { 1.0 } else { 0.0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed() {
        assert_eq!(HitRate { k: 2 }.score(&[5, 3, 9], &[3]), 1.0);
        assert_eq!(HitRate { k: 1 }.score(&[5, 3, 9], &[3]), 0.0);
    }
}
