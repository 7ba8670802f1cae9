//! Exploration: turning a ranked candidate list into a served list with
//! some randomness, and saying how likely each served slot was.
//!
//! An explorer reads the candidates' scores (best first is not required)
//! and draws `k` of them in order; [`Explored`] carries the served order
//! and each slot's [`Propensities`]. The same explorer also answers for a
//! list someone else served (`propensities`), which is what off-policy
//! evaluation asks of a target policy.

pub mod epsilon_greedy;
pub mod plackett_luce;

pub use cascade_core::event::Propensities;
pub use epsilon_greedy::EpsilonGreedy;
pub use plackett_luce::PlackettLuce;

/// A list an explorer drew.
#[derive(Debug, Clone, PartialEq)]
pub struct Explored {
    /// Indices into the candidates, in served order.
    pub order: Vec<usize>,
    /// Each served slot's propensities.
    pub propensities: Vec<Propensities>,
    /// Each slot's standard error of `item_position`: 0 where it is exact,
    /// the Monte-Carlo error where it was estimated.
    pub item_position_error: Vec<f64>,
}

/// Indices of the `k` best scores, best first; ties go to the lower index.
pub fn greedy_order(scores: &[f64], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    order.truncate(k);
    order
}
