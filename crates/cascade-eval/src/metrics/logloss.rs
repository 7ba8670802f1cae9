//! LogLoss: mean negative log-likelihood of the labels, with probabilities
//! clipped to [1e-15, 1 − 1e-15] as scikit-learn does.

use super::{Metric, Prediction, PredictionMetric};

/// Binary cross-entropy.
#[derive(Debug, Clone, Copy)]
pub struct LogLoss;

const EPSILON: f64 = 1e-15;

impl Metric for LogLoss {
    fn name(&self) -> String {
        "logloss".into()
    }
}

impl PredictionMetric for LogLoss {
    fn score(&self, predictions: &[Prediction]) -> Option<f64> {
        if predictions.is_empty() {
            return None;
        }
        let total: f64 = predictions
            .iter()
            .map(|p| {
                let q = p.probability.clamp(EPSILON, 1.0 - EPSILON);
                if p.label { -q.ln() } else { -(1.0 - q).ln() }
            })
            .sum();
        Some(total / predictions.len() as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed() {
        let predictions = [
            Prediction { group: 0, probability: 0.8, label: true },
            Prediction { group: 0, probability: 0.4, label: false },
        ];
        let expected = (-(0.8f64).ln() - (0.6f64).ln()) / 2.0;
        assert!((LogLoss.score(&predictions).unwrap() - expected).abs() < 1e-12);
        // Certainty that is wrong is clipped, not infinite.
        let wrong = [Prediction { group: 0, probability: 0.0, label: true }];
        assert!(LogLoss.score(&wrong).unwrap().is_finite());
    }
}
