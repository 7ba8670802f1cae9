//! Exploration: turning a ranked candidate list into a served list with
//! some randomness, and saying how likely each served slot was.
//!
//! An explorer reads the candidates' scores (best first is not required)
//! and draws `k` of them in order; [`Explored`] carries the served order
//! and each slot's [`Propensities`]. The same explorer also answers for a
//! list someone else served (`propensities`), which is what off-policy
//! evaluation asks of a target policy.

pub mod epsilon_greedy;
pub mod linear;
pub mod plackett_luce;
pub mod thompson;

pub use cascade_core::event::Propensities;
use cascade_experiments::calibration::SplitMix;
pub use epsilon_greedy::EpsilonGreedy;
pub use linear::{LinearPosterior, LinearThompson};
pub use plackett_luce::PlackettLuce;
pub use thompson::ThompsonSampling;

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

/// A policy over one request's candidates: draws a list, says how likely
/// a given list was, and how likely each candidate is at each slot.
pub trait Explorer {
    /// The policy and its setting, as logged.
    fn label(&self) -> String;

    /// Draws a list of `k` from `scores`.
    fn explore(&self, scores: &[f64], k: usize, rng: &mut SplitMix) -> Explored;

    /// Each slot's propensities of the list `served` (indices into
    /// `scores`); `rng` serves estimates that are not exact.
    fn propensities(
        &self,
        scores: &[f64],
        served: &[usize],
        rng: &mut SplitMix,
    ) -> Vec<Propensities>;

    /// P(candidate i at slot s) for every slot of a list of `k` and every
    /// candidate: `[slot][candidate]`.
    fn slot_marginals(&self, scores: &[f64], k: usize, rng: &mut SplitMix) -> Vec<Vec<f64>>;
}

/// A policy named the way `cascade ope --target` takes it:
/// `greedy`, `epsilon_greedy:ε` or `plackett_luce:T`.
pub fn parse_policy(text: &str, monte_carlo_samples: usize) -> Result<Box<dyn Explorer>, String> {
    let (name, value) = text.split_once(':').unwrap_or((text, ""));
    let number = || -> Result<f64, String> {
        value.parse::<f64>().map_err(|_| format!("policy {text:?}: {value:?} is not a number"))
    };
    match name {
        "greedy" if value.is_empty() => Ok(Box::new(EpsilonGreedy { epsilon: 0.0 })),
        "epsilon_greedy" => match number()? {
            e if (0.0..=1.0).contains(&e) => Ok(Box::new(EpsilonGreedy { epsilon: e })),
            e => Err(format!("policy {text:?}: ε = {e} is not in [0, 1]")),
        },
        "plackett_luce" => match number()? {
            t if t > 0.0 && t.is_finite() => Ok(Box::new(PlackettLuce {
                temperature: t,
                monte_carlo_samples,
                exact_prefix_limit: 10_000,
            })),
            t => Err(format!("policy {text:?}: T = {t} is not a positive number")),
        },
        _ => Err(format!(
            "policy {text:?}: expected greedy, epsilon_greedy:EPSILON or plackett_luce:TEMPERATURE"
        )),
    }
}

/// Indices of the `k` best scores, best first; ties go to the lower index.
pub fn greedy_order(scores: &[f64], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    order.truncate(k);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_by_name_and_bad_ones_say_what_is_wrong() {
        assert_eq!(parse_policy("greedy", 10).unwrap().label(), "greedy");
        assert_eq!(
            parse_policy("epsilon_greedy:0.2", 10).unwrap().label(),
            "epsilon_greedy(epsilon=0.2)"
        );
        assert_eq!(
            parse_policy("plackett_luce:0.05", 10).unwrap().label(),
            "plackett_luce(temperature=0.05)"
        );
        let error = |text: &str| parse_policy(text, 10).err().unwrap();
        assert!(error("epsilon_greedy:1.5").contains("not in [0, 1]"));
        assert!(error("plackett_luce:0").contains("not a positive number"));
        assert!(error("plackett_luce:hot").contains("\"hot\" is not a number"));
        assert!(error("softmax:1").starts_with("policy \"softmax:1\": expected greedy"));
    }
}
