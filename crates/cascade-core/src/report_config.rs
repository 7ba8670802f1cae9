//! `[report]`: what `cascade report` runs and draws.

use serde::Deserialize;

/// `[report]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportConfig {
    /// Item-ranking models run under ML100K-LOO-FULL, in table order.
    pub models: Vec<String>,
    /// Click models run under ML100K-CTR.
    pub ctr_models: Vec<String>,
    /// Trained models run once per seed (seed, seed + 1, …); closed-form
    /// and count models once.
    pub seeds: usize,
    /// The first seed.
    pub seed: u64,
    /// NDCG@K and Recall@K curves run from K = 1 to this.
    pub curve_max_k: usize,
    /// Test users of the click protocol split by training activity into
    /// this many buckets of about equal size, for AUC per bucket.
    pub activity_buckets: usize,
    /// Bins of the calibration plot.
    pub calibration_bins: usize,
    /// Policies estimated off-policy on the store's explored lists, as
    /// `cascade ope --target` takes them; none when the store has none.
    pub ope_targets: Vec<String>,
    /// Bootstrap resamples per off-policy interval.
    pub ope_bootstrap: usize,
}

impl Default for ReportConfig {
    fn default() -> Self {
        ReportConfig {
            models: ["pop", "itemknn", "ease", "bpr-mf"].map(String::from).to_vec(),
            ctr_models: ["bias-ctr", "lr"].map(String::from).to_vec(),
            seeds: 3,
            seed: 2026,
            curve_max_k: 50,
            activity_buckets: 4,
            calibration_bins: 10,
            ope_targets: ["greedy", "epsilon_greedy:0.1"].map(String::from).to_vec(),
            ope_bootstrap: 200,
        }
    }
}

impl ReportConfig {
    /// The first key out of range, with why.
    pub(crate) fn check(&self) -> Result<(), (String, String)> {
        let at_least_one = [
            ("report.seeds", self.seeds),
            ("report.curve_max_k", self.curve_max_k),
            ("report.activity_buckets", self.activity_buckets),
            ("report.calibration_bins", self.calibration_bins),
        ];
        if let Some((key, _)) = at_least_one.iter().find(|(_, value)| *value == 0) {
            return Err(((*key).into(), "expected at least 1".into()));
        }
        if self.models.is_empty() && self.ctr_models.is_empty() {
            return Err(("report.models".into(), "expected at least one model to report".into()));
        }
        Ok(())
    }
}
