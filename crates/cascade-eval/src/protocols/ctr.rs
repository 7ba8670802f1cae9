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
    report_of(&predictions(model, examples))
}

/// `model`'s probability of each example, with its user and label: what
/// calibration and per-group AUC read.
pub fn predictions<F>(model: &dyn CtrScorer<F>, examples: &[CtrExample<F>]) -> Vec<Prediction> {
    let probabilities = model.predict(examples);
    assert_eq!(
        probabilities.len(),
        examples.len(),
        "a CtrScorer must return one probability per example"
    );
    examples
        .iter()
        .zip(&probabilities)
        .map(|(e, &probability)| Prediction { group: e.user, probability, label: e.label })
        .collect()
}

/// AUC, LogLoss and GAUC of scored rows.
pub fn report_of(predictions: &[Prediction]) -> CtrReport {
    CtrReport {
        auc: Auc.score(predictions).unwrap_or(f64::NAN),
        logloss: LogLoss.score(predictions).unwrap_or(f64::NAN),
        gauc: Gauc.score(predictions).unwrap_or(f64::NAN),
        gauc_users: Gauc::groups_counted(predictions),
        rows: predictions.len(),
        label_rate: predictions.iter().filter(|p| p.label).count() as f64
            / predictions.len().max(1) as f64,
    }
}

/// A 95% percentile-bootstrap interval of the AUC of `model` on `examples`
/// (`resamples` resamples of the rows with replacement, fixed by `seed`).
/// With few positives (IPINYOU-SAMPLE's test has 50) the AUC alone says
/// little; the interval says how little.
pub fn auc_bootstrap_interval<F>(
    model: &dyn CtrScorer<F>,
    examples: &[CtrExample<F>],
    resamples: usize,
    seed: u64,
) -> (f64, f64) {
    let probabilities = model.predict(examples);
    let mut state = seed;
    let mut next = move || {
        // splitmix64: a fixed generator, so the interval repeats exactly.
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let n = examples.len();
    let mut aucs: Vec<f64> = (0..resamples)
        .filter_map(|_| {
            let sample: Vec<Prediction> = (0..n)
                .map(|_| {
                    let i = (next() % n as u64) as usize;
                    Prediction { group: 0, probability: probabilities[i], label: examples[i].label }
                })
                .collect();
            Auc.score(&sample)
        })
        .collect();
    aucs.sort_by(f64::total_cmp);
    if aucs.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let at = |q: f64| aucs[((aucs.len() - 1) as f64 * q).round() as usize];
    (at(0.025), at(0.975))
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

    #[test]
    fn bootstrap_interval_brackets_the_auc_and_narrows_with_more_rows() {
        let make = |n: usize| -> Vec<CtrExample<f64>> {
            (0..n)
                .map(|i| {
                    let label = i % 3 == 0;
                    // Informative but noisy: positives score higher on average.
                    let noise = ((i * 7919) % 100) as f64 / 100.0;
                    CtrExample {
                        user: 0,
                        label,
                        features: noise * 0.7 + if label { 0.3 } else { 0.0 },
                    }
                })
                .collect()
        };
        let small = make(60);
        let large = make(3000);
        let auc = evaluate_ctr(&FeatureIsProbability, &small).auc;
        let (low, high) = auc_bootstrap_interval(&FeatureIsProbability, &small, 500, 1);
        assert!(low < auc && auc < high, "{low} < {auc} < {high}");
        let (low_l, high_l) = auc_bootstrap_interval(&FeatureIsProbability, &large, 200, 1);
        assert!(high_l - low_l < high - low, "more rows, narrower interval");
        assert_eq!(auc_bootstrap_interval(&FeatureIsProbability, &small, 500, 1), (low, high));
    }
}
