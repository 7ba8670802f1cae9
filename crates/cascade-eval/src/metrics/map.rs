//! MAP@K: the mean over relevant hits in the top K of the precision at each
//! hit, divided by min(|relevant|, K).

use super::{Metric, RankingMetric};

/// Mean average precision at `k` (per user; callers average).
#[derive(Debug, Clone, Copy)]
pub struct MeanAveragePrecision {
    /// Cut-off.
    pub k: usize,
}

impl Metric for MeanAveragePrecision {
    fn name(&self) -> String {
        format!("map@{}", self.k)
    }
}

impl RankingMetric for MeanAveragePrecision {
    fn score(&self, ranked: &[u32], relevant: &[u32]) -> f64 {
        let mut hits = 0usize;
        let mut sum = 0.0;
        for (i, item) in ranked.iter().take(self.k).enumerate() {
            if relevant.contains(item) {
                hits += 1;
                sum += hits as f64 / (i + 1) as f64;
            }
        }
        let denominator = relevant.len().min(self.k);
        if denominator == 0 { 0.0 } else { sum / denominator as f64 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed() {
        // Hits at ranks 1 and 3 of 2 relevant: (1/1 + 2/3) / 2.
        let v = MeanAveragePrecision { k: 5 }.score(&[1, 9, 2, 8], &[1, 2]);
        assert!((v - (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
    }
}
