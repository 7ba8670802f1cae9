//! `[policy_learning]`: how `cascade learn-policy` trains a ranking policy
//! from logged explored feedback (REINFORCE with off-policy correction).

use serde::Deserialize;

/// `[policy_learning]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyLearningConfig {
    /// K of the top-K correction: the list length the policy is trained
    /// to fill (1: no top-K correction).
    pub top_k: usize,
    /// The largest importance weight π/β (Chen et al. capped at e³).
    pub weight_cap: f64,
    /// Adam's step size.
    pub learning_rate: f64,
    /// Full-log gradient steps.
    pub steps: usize,
    /// L2 pull of each learned item bias towards the supervised ranker.
    pub l2: f64,
    /// The supervised ranker's softmax temperature the policy starts from.
    pub initial_temperature: f64,
    /// The share of explored lists (oldest first) learned from; the rest
    /// judge the learned policy.
    pub train_share: f64,
}

impl Default for PolicyLearningConfig {
    fn default() -> Self {
        PolicyLearningConfig {
            top_k: 16,
            weight_cap: 20.085_536_923_187_668, // e³
            learning_rate: 0.05,
            steps: 300,
            l2: 1e-3,
            initial_temperature: 0.1,
            train_share: 0.5,
        }
    }
}

impl PolicyLearningConfig {
    /// The first key out of range, with why.
    pub(crate) fn check(&self) -> Result<(), (String, String)> {
        if self.top_k == 0 {
            return Err(("policy_learning.top_k".into(), "expected at least 1".into()));
        }
        if self.weight_cap.is_nan() || self.weight_cap < 1.0 {
            return Err((
                "policy_learning.weight_cap".into(),
                format!("expected 1 or more (inf: uncapped), got {}", self.weight_cap),
            ));
        }
        let non_negative = [
            ("policy_learning.learning_rate", self.learning_rate),
            ("policy_learning.l2", self.l2),
        ];
        if let Some((key, value)) = non_negative.iter().find(|(_, v)| !(v.is_finite() && *v >= 0.0))
        {
            return Err((
                (*key).into(),
                format!("expected a finite number of 0 or more, got {value}"),
            ));
        }
        if !(self.initial_temperature.is_finite() && self.initial_temperature > 0.0) {
            return Err((
                "policy_learning.initial_temperature".into(),
                format!("expected a positive number, got {}", self.initial_temperature),
            ));
        }
        if !(self.train_share > 0.0 && self.train_share < 1.0) {
            return Err((
                "policy_learning.train_share".into(),
                format!("expected a share strictly between 0 and 1, got {}", self.train_share),
            ));
        }
        Ok(())
    }
}
