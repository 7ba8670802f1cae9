//! Estimators for logged lists (slates), one row per shown slot. They
//! differ only in which propensity weighs a slot's reward:
//!
//! - standard IPS (SIPS): the whole slate's, unbiased under any reward but
//!   with weights that grow with every slot;
//! - independent IPS (IIPS): the item's at its position, unbiased when each
//!   slot's reward depends on its own item only;
//! - reward-interaction IPS (RIPS): the prefix's up to the slot, unbiased
//!   under the cascade assumption that a user's reward at a slot depends on
//!   what was above it.
//!
//! The estimate is the weighted rewards' sum over rows divided by the
//! number of slates (Open Bandit Pipeline's `estimators_slate`).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::OpeError;
use crate::exploration::Propensities;

/// One shown slot of a logged slate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SlateRow {
    /// Which slate the slot belongs to.
    pub slate: u64,
    /// The slot's reward.
    pub reward: f64,
    /// The behaviour policy's propensities for the slot.
    pub behavior: Propensities,
    /// The target policy's propensities for the same slate and slot.
    pub target: Propensities,
}

/// Which propensity weighs each slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SlateEstimator {
    /// The whole slate's propensity.
    Standard,
    /// The item's at its position.
    Independent,
    /// The prefix's up to and including the slot.
    RewardInteraction,
}

impl SlateEstimator {
    /// All three.
    pub const ALL: [SlateEstimator; 3] =
        [SlateEstimator::Standard, SlateEstimator::Independent, SlateEstimator::RewardInteraction];

    /// A short name.
    pub fn label(&self) -> &'static str {
        match self {
            SlateEstimator::Standard => "SIPS",
            SlateEstimator::Independent => "IIPS",
            SlateEstimator::RewardInteraction => "RIPS",
        }
    }

    /// The slot's importance weight under this estimator.
    pub fn weight(&self, row: &SlateRow) -> f64 {
        let pick = |p: &Propensities| match self {
            SlateEstimator::Standard => p.slate,
            SlateEstimator::Independent => p.item_position,
            SlateEstimator::RewardInteraction => p.cascade,
        };
        pick(&row.target) / pick(&row.behavior)
    }
}

/// The target policy's estimated reward per slate (the sum over its slots).
pub fn estimate_slate(estimator: SlateEstimator, rows: &[SlateRow]) -> Result<f64, OpeError> {
    if rows.is_empty() {
        return Err(OpeError::Empty);
    }
    for (index, row) in rows.iter().enumerate() {
        let b = &row.behavior;
        if let Some(&value) =
            [b.slate, b.item_position, b.cascade].iter().find(|v| !(**v > 0.0 && **v <= 1.0))
        {
            return Err(OpeError::Propensity { round: index, value });
        }
    }
    let slates: HashSet<u64> = rows.iter().map(|r| r.slate).collect();
    let total: f64 = rows.iter().map(|r| r.reward * estimator.weight(r)).sum();
    Ok(total / slates.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_estimator_weighs_by_its_own_propensity() {
        let p = |slate, item_position, cascade| Propensities { slate, item_position, cascade };
        let rows = [
            SlateRow {
                slate: 0,
                reward: 1.0,
                behavior: p(0.1, 0.5, 0.5),
                target: p(0.2, 0.5, 1.0),
            },
            SlateRow {
                slate: 0,
                reward: 1.0,
                behavior: p(0.1, 0.4, 0.1),
                target: p(0.2, 0.2, 0.2),
            },
        ];
        let sips = estimate_slate(SlateEstimator::Standard, &rows).unwrap();
        assert!((sips - 4.0).abs() < 1e-12);
        let iips = estimate_slate(SlateEstimator::Independent, &rows).unwrap();
        assert!((iips - 1.5).abs() < 1e-12);
        let rips = estimate_slate(SlateEstimator::RewardInteraction, &rows).unwrap();
        assert!((rips - 4.0).abs() < 1e-12);
    }
}
