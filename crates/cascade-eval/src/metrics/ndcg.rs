//! NDCG@K with binary relevance: DCG = Σ 1/log2(position + 1) over relevant
//! items in the top K, divided by the DCG of a perfect list.

use super::{Metric, RankingMetric};

/// Normalised discounted cumulative gain at `k`.
#[derive(Debug, Clone, Copy)]
pub struct Ndcg {
    /// Cut-off.
    pub k: usize,
}

impl Metric for Ndcg {
    fn name(&self) -> String {
        format!("ndcg@{}", self.k)
    }
}

fn discount(position: usize) -> f64 {
    1.0 / ((position + 1) as f64).log2()
}

impl RankingMetric for Ndcg {
    fn score(&self, ranked: &[u32], relevant: &[u32]) -> f64 {
        let dcg: f64 = ranked
            .iter()
            .take(self.k)
            .enumerate()
            .filter(|(_, item)| relevant.contains(item))
            .map(|(i, _)| discount(i + 1))
            .sum();
        let ideal: f64 = (1..=relevant.len().min(self.k)).map(discount).sum();
        if ideal == 0.0 { 0.0 } else { dcg / ideal }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed() {
        // One relevant item at rank 3: 1/log2(4) = 0.5.
        assert!((Ndcg { k: 10 }.score(&[7, 8, 9], &[9]) - 0.5).abs() < 1e-12);
        // Relevant at ranks 1 and 3 of 2 relevant: (1 + 0.5) / (1 + 1/log2 3).
        let expected = 1.5 / (1.0 + 1.0 / 3f64.log2());
        assert!((Ndcg { k: 3 }.score(&[1, 5, 2], &[1, 2]) - expected).abs() < 1e-12);
    }
}
