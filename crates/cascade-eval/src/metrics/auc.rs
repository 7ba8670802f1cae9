//! AUC: the probability that a random positive is scored above a random
//! negative, ties counting one half (Mann–Whitney U with mid-ranks).

use super::{Metric, Prediction, PredictionMetric};

/// Area under the ROC curve over all predictions.
#[derive(Debug, Clone, Copy)]
pub struct Auc;

impl Metric for Auc {
    fn name(&self) -> String {
        "auc".into()
    }
}

impl PredictionMetric for Auc {
    fn score(&self, predictions: &[Prediction]) -> Option<f64> {
        let mut sorted: Vec<(f64, bool)> =
            predictions.iter().map(|p| (p.probability, p.label)).collect();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        let positives = sorted.iter().filter(|(_, label)| *label).count() as f64;
        let negatives = sorted.len() as f64 - positives;
        if positives == 0.0 || negatives == 0.0 {
            return None;
        }
        // Sum of the (1-based, tie-averaged) ranks of the positives.
        let mut positive_rank_sum = 0.0;
        let mut start = 0;
        while start < sorted.len() {
            let mut end = start;
            while end < sorted.len() && sorted[end].0 == sorted[start].0 {
                end += 1;
            }
            let mid_rank = (start + 1 + end) as f64 / 2.0;
            let tied_positives = sorted[start..end].iter().filter(|(_, label)| *label).count();
            positive_rank_sum += mid_rank * tied_positives as f64;
            start = end;
        }
        Some((positive_rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(probability: f64, label: bool) -> Prediction {
        Prediction { group: 0, probability, label }
    }

    #[test]
    fn hand_computed() {
        // Pairs (pos, neg): (0.8,0.3) win, (0.8,0.9) loss, (0.4,0.3) win, (0.4,0.9) loss → 0.5.
        assert_eq!(
            Auc.score(&[p(0.8, true), p(0.4, true), p(0.3, false), p(0.9, false)]),
            Some(0.5)
        );
        // A tie counts one half: (0.5,0.5) → 0.5, (0.5, 0.1) → 1 ⇒ 0.75.
        assert_eq!(Auc.score(&[p(0.5, true), p(0.5, false), p(0.1, false)]), Some(0.75));
        assert_eq!(Auc.score(&[p(0.5, true)]), None);
    }
}
