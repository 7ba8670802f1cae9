//! Estimators for rounds that each logged one action (or one slot of a
//! list, position by position): Open Bandit Pipeline's definitions, with
//! `w = target / behaviour` the importance weight, `r` the reward, `q̂` the
//! reward model's prediction for the logged action and `v̂` its prediction
//! averaged over the target policy.
//!
//! | estimator | per-round value |
//! |---|---|
//! | DM | v̂ |
//! | IPS (clip λ) | min(w, λ) r |
//! | SNIPS | w r / mean(w) |
//! | DR (clip λ) | v̂ + min(w, λ)(r − q̂) |
//! | SNDR | v̂ + w (r − q̂) / mean(w) |
//! | Switch-DR (τ) | v̂ + 1{w ≤ τ} w (r − q̂) |
//! | DR-OS (λ) | v̂ + λw / (w² + λ) (r − q̂) |
//!
//! The estimate is the mean of the per-round values.

use serde::{Deserialize, Serialize};

use super::OpeError;

/// One logged round, seen from one target policy and one reward model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Round {
    /// The observed reward (a click is 1).
    pub reward: f64,
    /// The behaviour policy's probability of the logged action.
    pub behavior_pscore: f64,
    /// The target policy's probability of the same action.
    pub target_pscore: f64,
    /// The reward model's prediction for the logged action, q̂(x, a).
    pub predicted_reward: f64,
    /// The reward model's prediction averaged over the target policy,
    /// Σₐ π(a | x) q̂(x, a).
    pub direct_value: f64,
}

impl Round {
    /// The importance weight, target over behaviour.
    pub fn weight(&self) -> f64 {
        self.target_pscore / self.behavior_pscore
    }
}

/// An off-policy estimator of a target policy's mean reward per round.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case")]
pub enum Estimator {
    /// The direct method: the reward model's view of the target policy.
    Dm,
    /// Inverse propensity scoring, weights clipped at `clip` (unclipped if
    /// `None`).
    Ips {
        /// Largest weight used.
        clip: Option<f64>,
    },
    /// Self-normalised IPS: weights divided by their mean.
    Snips,
    /// Doubly robust, weights clipped at `clip`.
    Dr {
        /// Largest weight used.
        clip: Option<f64>,
    },
    /// Self-normalised doubly robust.
    Sndr,
    /// Switch-DR: the correction term only where the weight is at most
    /// `threshold`; the reward model alone elsewhere.
    SwitchDr {
        /// Largest weight corrected.
        threshold: f64,
    },
    /// DR with optimistic shrinkage of the weights, λw / (w² + λ).
    DrOs {
        /// Shrinkage: larger keeps more of the weight.
        lambda: f64,
    },
}

impl Estimator {
    /// Every estimator at the settings `cascade ope` reports by default.
    pub fn defaults() -> Vec<Estimator> {
        vec![
            Estimator::Dm,
            Estimator::Ips { clip: None },
            Estimator::Snips,
            Estimator::Dr { clip: None },
            Estimator::Sndr,
            Estimator::SwitchDr { threshold: 100.0 },
            Estimator::DrOs { lambda: 100.0 },
        ]
    }

    /// A short name, with the setting where there is one.
    pub fn label(&self) -> String {
        match self {
            Estimator::Dm => "DM".to_owned(),
            Estimator::Ips { clip: None } => "IPS".to_owned(),
            Estimator::Ips { clip: Some(c) } => format!("IPS (clip {c})"),
            Estimator::Snips => "SNIPS".to_owned(),
            Estimator::Dr { clip: None } => "DR".to_owned(),
            Estimator::Dr { clip: Some(c) } => format!("DR (clip {c})"),
            Estimator::Sndr => "SNDR".to_owned(),
            Estimator::SwitchDr { threshold } => format!("Switch-DR (τ {threshold})"),
            Estimator::DrOs { lambda } => format!("DR-OS (λ {lambda})"),
        }
    }

    /// Each round's contribution; the estimate is their mean.
    pub fn round_values(&self, rounds: &[Round]) -> Vec<f64> {
        let clip = |w: f64, clip: Option<f64>| clip.map_or(w, |c| w.min(c));
        let mean_weight = || rounds.iter().map(Round::weight).sum::<f64>() / rounds.len() as f64;
        let correction = |r: &Round| r.reward - r.predicted_reward;
        match *self {
            Estimator::Dm => rounds.iter().map(|r| r.direct_value).collect(),
            Estimator::Ips { clip: c } => {
                rounds.iter().map(|r| r.reward * clip(r.weight(), c)).collect()
            }
            Estimator::Snips => {
                let mean = mean_weight();
                rounds.iter().map(|r| r.reward * r.weight() / mean).collect()
            }
            Estimator::Dr { clip: c } => rounds
                .iter()
                .map(|r| r.direct_value + clip(r.weight(), c) * correction(r))
                .collect(),
            Estimator::Sndr => {
                let mean = mean_weight();
                rounds.iter().map(|r| r.direct_value + r.weight() * correction(r) / mean).collect()
            }
            Estimator::SwitchDr { threshold } => rounds
                .iter()
                .map(|r| {
                    let w = r.weight();
                    let on = if w <= threshold { 1.0 } else { 0.0 };
                    r.direct_value + on * w * correction(r)
                })
                .collect(),
            Estimator::DrOs { lambda } => rounds
                .iter()
                .map(|r| {
                    let w = r.weight();
                    let shrunk = if lambda.is_finite() { lambda * w / (w * w + lambda) } else { w };
                    r.direct_value + shrunk * correction(r)
                })
                .collect(),
        }
    }

    /// The estimated mean reward per round of the target policy.
    pub fn estimate(&self, rounds: &[Round]) -> Result<f64, OpeError> {
        check(rounds)?;
        let values = self.round_values(rounds);
        Ok(values.iter().sum::<f64>() / values.len() as f64)
    }
}

/// Refuses an empty log, a propensity outside (0, 1] and non-finite
/// numbers, naming the round.
pub fn check(rounds: &[Round]) -> Result<(), OpeError> {
    if rounds.is_empty() {
        return Err(OpeError::Empty);
    }
    for (index, r) in rounds.iter().enumerate() {
        let fields = [
            ("reward", r.reward),
            ("target_pscore", r.target_pscore),
            ("predicted_reward", r.predicted_reward),
            ("direct_value", r.direct_value),
        ];
        if let Some(&(field, value)) = fields.iter().find(|(_, v)| !v.is_finite()) {
            return Err(OpeError::NotFinite { round: index, field, value });
        }
        if !(r.behavior_pscore > 0.0 && r.behavior_pscore <= 1.0) {
            return Err(OpeError::Propensity { round: index, value: r.behavior_pscore });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(reward: f64, behavior: f64, target: f64) -> Round {
        Round {
            reward,
            behavior_pscore: behavior,
            target_pscore: target,
            predicted_reward: 0.5,
            direct_value: 0.4,
        }
    }

    /// With the target policy equal to the behaviour policy every weight is
    /// 1: IPS and SNIPS are the logged mean, and DR adds the model's mean
    /// error to DM, which is again the logged mean when DM is unbiased.
    #[test]
    fn on_policy_weights_are_one() {
        let rounds = [round(1.0, 0.2, 0.2), round(0.0, 0.5, 0.5), round(1.0, 0.1, 0.1)];
        let logged = 2.0 / 3.0;
        for e in [Estimator::Ips { clip: None }, Estimator::Snips] {
            assert!((e.estimate(&rounds).unwrap() - logged).abs() < 1e-15, "{e:?}");
        }
        let dr = Estimator::Dr { clip: None }.estimate(&rounds).unwrap();
        assert!((dr - (0.4 + logged - 0.5)).abs() < 1e-15);
    }

    #[test]
    fn clipping_and_switching_cap_large_weights() {
        let rounds = [round(1.0, 0.01, 0.5), round(1.0, 0.5, 0.5)];
        let ips = Estimator::Ips { clip: Some(10.0) }.estimate(&rounds).unwrap();
        assert!((ips - (10.0 + 1.0) / 2.0).abs() < 1e-12);
        // The 50× round falls back to the model alone under Switch-DR.
        let switch = Estimator::SwitchDr { threshold: 10.0 }.estimate(&rounds).unwrap();
        assert!((switch - (0.4 + (0.4 + 0.5)) / 2.0).abs() < 1e-12);
        // Shrinkage with λ → 0 removes the correction, leaving DM.
        let os = Estimator::DrOs { lambda: 1e-12 }.estimate(&rounds).unwrap();
        assert!((os - 0.4).abs() < 1e-9);
    }

    #[test]
    fn bad_rounds_are_named() {
        assert_eq!(Estimator::Dm.estimate(&[]), Err(OpeError::Empty));
        let rounds = [round(1.0, 0.5, 0.5), round(1.0, 0.0, 0.5)];
        assert_eq!(
            Estimator::Snips.estimate(&rounds),
            Err(OpeError::Propensity { round: 1, value: 0.0 })
        );
        let rounds = [round(f64::NAN, 0.5, 0.5)];
        assert!(matches!(
            Estimator::Dm.estimate(&rounds),
            Err(OpeError::NotFinite { round: 0, field: "reward", .. })
        ));
    }
}
