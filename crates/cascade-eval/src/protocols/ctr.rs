//! ML100K-CTR (and any click-through protocol): probabilities against binary
//! labels, scored by AUC over all rows, LogLoss, and GAUC over users with both
//! labels.

use crate::metrics::{Auc, Gauc, LogLoss, Prediction, PredictionMetric};

/// One labelled row with the model's input features `F`.
#[derive(Debug, Clone)]
pub struct CtrExample<F> {
    /// The user (dense index), for GAUC.
    pub user: u32,
    /// 1 if the user liked / clicked.
    pub label: bool,
    /// Whatever the model reads.
    pub features: F,
}

/// A model that predicts the probability of a positive label.
pub trait CtrScorer<F>: Sync {
    /// One probability per example, in order.
    fn predict(&self, examples: &[CtrExample<F>]) -> Vec<f64>;
}

/// Results of a CTR evaluation.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CtrReport {
    /// AUC over all rows.
    pub auc: f64,
    /// Mean log-loss.
    pub logloss: f64,
    /// Row-weighted mean of per-user AUC over users with both labels.
    pub gauc: f64,
    /// Number of users GAUC averaged over.
    pub gauc_users: usize,
    /// Rows evaluated.
    pub rows: usize,
    /// Share of positive labels.
    pub label_rate: f64,
}

/// Scores `model` on `examples`.
pub fn evaluate_ctr<F>(model: &dyn CtrScorer<F>, examples: &[CtrExample<F>]) -> CtrReport {
    let probabilities = model.predict(examples);
    assert_eq!(
        probabilities.len(),
        examples.len(),
        "a CtrScorer must return one probability per example"
    );
    let predictions: Vec<Prediction> = examples
        .iter()
        .zip(&probabilities)
        .map(|(e, &probability)| Prediction { group: e.user, probability, label: e.label })
        .collect();
    CtrReport {
        auc: Auc.score(&predictions).unwrap_or(f64::NAN),
        logloss: LogLoss.score(&predictions).unwrap_or(f64::NAN),
        gauc: Gauc.score(&predictions).unwrap_or(f64::NAN),
        gauc_users: Gauc::groups_counted(&predictions),
        rows: examples.len(),
        label_rate: examples.iter().filter(|e| e.label).count() as f64
            / examples.len().max(1) as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct FeatureIsProbability;

    impl CtrScorer<f64> for FeatureIsProbability {
        fn predict(&self, examples: &[CtrExample<f64>]) -> Vec<f64> {
            examples.iter().map(|e| e.features).collect()
        }
    }

    #[test]
    fn reports_all_metrics() {
        let examples = vec![
            CtrExample { user: 0, label: true, features: 0.9 },
            CtrExample { user: 0, label: false, features: 0.2 },
            CtrExample { user: 1, label: true, features: 0.1 },
            CtrExample { user: 1, label: false, features: 0.3 },
        ];
        let report = evaluate_ctr(&FeatureIsProbability, &examples);
        // Pairs: (0.9>0.2) (0.9>0.3) (0.1<0.2) (0.1<0.3) → 0.5
        assert_eq!(report.auc, 0.5);
        assert_eq!(report.gauc, 0.5);
        assert_eq!(report.gauc_users, 2);
        assert_eq!(report.label_rate, 0.5);
        assert!(report.logloss > 0.0);
    }
}
