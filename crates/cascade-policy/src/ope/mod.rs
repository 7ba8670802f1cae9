//! Off-policy evaluation: what a target policy's reward would have been,
//! estimated from rounds a different (behaviour) policy logged.
//!
//! Every estimator for single-action rounds needs only five numbers per
//! logged round ([`Round`]): the reward, the behaviour policy's propensity
//! of the logged action, the target policy's probability of the same
//! action, the reward model's prediction for it, and the reward model's
//! prediction averaged over the target policy's actions. That keeps the
//! estimators independent of how candidates, contexts and models are
//! represented, and lets one log be evaluated against any policy that can
//! say how likely it was to show what was shown.

pub mod interval;
pub mod logged;
pub mod slate;
pub mod standard;

pub use interval::{Interval, bootstrap_interval, bootstrap_lift_interval, effective_sample_size};
pub use logged::{
    LoggedSlate, PositionRewardModel, slot_marginals, target_view, target_view_scored,
};
pub use slate::{SlateEstimator, SlateRow, estimate_slate};
pub use standard::{Estimator, Round};

/// A log the estimators cannot use, with the round at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OpeError {
    /// No rounds were given.
    #[error("the log holds no rounds")]
    Empty,
    /// A behaviour propensity that is not in (0, 1].
    #[error("round {round}: behaviour propensity {value} is not in (0, 1]")]
    Propensity {
        /// Index of the round.
        round: usize,
        /// The value found.
        value: f64,
    },
    /// Two targets' views of a log that are not of the same rounds.
    #[error("a lift pairs the same rounds: the treatment has {treatment}, the control {control}")]
    Unpaired {
        /// Rounds of the treatment target.
        treatment: usize,
        /// Rounds of the control target.
        control: usize,
    },
    /// A number that is not finite.
    #[error("round {round}: {field} is {value}, not a finite number")]
    NotFinite {
        /// Index of the round.
        round: usize,
        /// Which field.
        field: &'static str,
        /// The value found.
        value: f64,
    },
}
