//! Learning a ranking policy from logged feedback: REINFORCE with
//! off-policy correction and the top-K correction of Chen et al. (2019,
//! "Top-K Off-Policy Correction for a REINFORCE Recommender System").
//!
//! The policy is a softmax over one request's candidates,
//! π(i | s) ∝ exp(w·relevance_i + b_item(i)): the supervised ranker's
//! relevance, sharpened by w, plus a bias per catalogue item that the log
//! teaches. It starts as the supervised ranker (w = 1/T, every b = 0), so
//! its greedy list is the ranker's until the log says otherwise.
//!
//! Each logged slot with reward r that showed item a contributes
//! r · ω · λ_K · ∇ log π(a | s), where
//! - ω = min(π(a | s) / β(a | s), cap) is the importance weight against
//!   the behaviour policy's logged item-at-position propensity β (1 for
//!   the uncorrected objective, which learns as if the log were its own),
//! - λ_K = K (1 − π(a | s))^(K−1) is the top-K correction: the policy
//!   serves K items, so an item already likely to be among them gains
//!   little from a larger π (K = 1 is plain REINFORCE).
//!
//! ω and λ_K are held fixed inside each gradient, as in the paper. Slots
//! without a click have r = 0 and contribute nothing; the softmax's
//! normalisation is what pushes the other candidates down. The gradient
//! is the mean over every logged slot, with an L2 pull of each bias
//! towards 0 (towards the supervised ranker), and Adam ascends it with
//! the full log per step: a log of 100k slots holds ~1k clicks, so a
//! step is cheap and the result does not depend on an order.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ope::LoggedSlate;

/// How to learn.
#[derive(Debug, Clone, PartialEq)]
pub struct ReinforceSettings {
    /// K of the top-K correction (1: none).
    pub top_k: usize,
    /// The largest importance weight (`f64::INFINITY`: uncapped).
    pub weight_cap: f64,
    /// false: the uncorrected objective (every ω = 1).
    pub off_policy_correction: bool,
    /// Adam's step size.
    pub learning_rate: f64,
    /// Full-log gradient steps.
    pub steps: usize,
    /// L2 pull of each item bias towards 0.
    pub l2: f64,
    /// The supervised policy's softmax temperature: w starts at 1/T.
    pub initial_temperature: f64,
}

/// A logged list as the learner reads it: the slate, and the catalogue
/// index of each of its candidates.
#[derive(Debug, Clone, Copy)]
pub struct TrainingList<'a> {
    pub slate: &'a LoggedSlate,
    pub items: &'a [u32],
}

/// π(i | s) ∝ exp(w·relevance_i + b_item(i)).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SoftmaxPolicy {
    /// w.
    pub relevance_weight: f64,
    /// b, per catalogue item.
    pub item_bias: Vec<f64>,
}

impl SoftmaxPolicy {
    /// The supervised ranker as a softmax at `temperature`, over a
    /// catalogue of `items`.
    pub fn supervised(items: usize, temperature: f64) -> SoftmaxPolicy {
        SoftmaxPolicy { relevance_weight: 1.0 / temperature, item_bias: vec![0.0; items] }
    }

    /// Each candidate's logit: what a greedy list sorts by.
    pub fn logits(&self, relevance: &[f64], items: &[u32]) -> Vec<f64> {
        relevance
            .iter()
            .zip(items)
            .map(|(&r, &i)| {
                self.relevance_weight * r + self.item_bias.get(i as usize).copied().unwrap_or(0.0)
            })
            .collect()
    }

    /// The softmax over a list's candidates.
    pub fn probabilities(&self, relevance: &[f64], items: &[u32]) -> Vec<f64> {
        let logits = self.logits(relevance, items);
        let top = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let exp: Vec<f64> = logits.iter().map(|z| (z - top).exp()).collect();
        let total: f64 = exp.iter().sum();
        exp.into_iter().map(|e| e / total).collect()
    }
}

/// A learned policy as `cascade learn-policy` saves it and the
/// `learned_policy` serving step reads it: the relevance weight and each
/// item's bias by external id (items it never learned about have none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedPolicy {
    /// How it was learned, logged with every list it serves.
    pub label: String,
    pub relevance_weight: f64,
    pub item_bias: BTreeMap<String, f64>,
}

impl SavedPolicy {
    /// `policy`'s parameters, its biases keyed by `ids` (catalogue index →
    /// external id); zero biases are left out.
    pub fn of(label: String, policy: &SoftmaxPolicy, ids: &[&str]) -> SavedPolicy {
        let item_bias = ids
            .iter()
            .zip(&policy.item_bias)
            .filter(|(_, b)| **b != 0.0)
            .map(|(id, &b)| ((*id).to_owned(), b))
            .collect();
        SavedPolicy { label, relevance_weight: policy.relevance_weight, item_bias }
    }

    /// The logit of a candidate of `relevance` with external id `id`.
    pub fn logit(&self, relevance: f64, id: &str) -> f64 {
        self.relevance_weight * relevance + self.item_bias.get(id).copied().unwrap_or(0.0)
    }
}

/// What training did, for the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainingTrace {
    /// The paper's objective at each step before it is taken: the capped
    /// importance-weighted reward of the top-K policy, (1/N) Σ r ·
    /// min(α(a | s) / β(a | s), cap) with α = 1 − (1 − π)^K; the
    /// uncorrected objective has α / β replaced by α.
    pub objective: Vec<f64>,
    /// Logged slots (N) and those with a reward.
    pub slots: usize,
    pub rewarded_slots: usize,
    /// Over the rewarded slots at the end: the mean ω and the share of
    /// them the cap cut.
    pub mean_weight: f64,
    pub capped_share: f64,
}

/// Learns a [`SoftmaxPolicy`] over a catalogue of `items` from `lists`,
/// starting from the supervised one.
pub fn reinforce(
    lists: &[TrainingList<'_>],
    items: usize,
    settings: &ReinforceSettings,
) -> (SoftmaxPolicy, TrainingTrace) {
    let mut policy = SoftmaxPolicy::supervised(items, settings.initial_temperature);
    let slots: usize = lists.iter().map(|l| l.slate.served.len()).sum();
    let rewarded: Vec<&TrainingList<'_>> =
        lists.iter().filter(|l| l.slate.rewards.iter().any(|&r| r != 0.0)).collect();
    let mut adam = Adam::new(1 + items);
    let mut objective = Vec::with_capacity(settings.steps);
    let scale = 1.0 / slots.max(1) as f64;
    let mut weights = (0.0, 0usize, 0usize); // Σ ω, rewarded slots, capped
    for step in 0..=settings.steps {
        let mut gradient = vec![0.0; 1 + items];
        let mut value = 0.0;
        weights = (0.0, 0, 0);
        for list in &rewarded {
            let (slate, candidates) = (list.slate, list.items);
            let pi = policy.probabilities(&slate.relevance, candidates);
            let expected_relevance: f64 = pi.iter().zip(&slate.relevance).map(|(p, r)| p * r).sum();
            for (slot, (&a, &reward)) in slate.served.iter().zip(&slate.rewards).enumerate() {
                if reward == 0.0 {
                    continue;
                }
                let p = pi[a];
                let beta = slate.behavior[slot].item_position;
                let k = settings.top_k.max(1) as i32;
                let in_top_k = 1.0 - (1.0 - p).powi(k);
                let (omega, capped) = match settings.off_policy_correction {
                    true => {
                        let raw = p / beta;
                        (raw.min(settings.weight_cap), raw > settings.weight_cap)
                    }
                    false => (1.0, false),
                };
                weights.0 += omega;
                weights.1 += 1;
                weights.2 += usize::from(capped);
                value += reward
                    * match settings.off_policy_correction {
                        true => (in_top_k / beta).min(settings.weight_cap),
                        false => in_top_k,
                    };
                let lambda = f64::from(k) * (1.0 - p).powi(k - 1);
                let c = reward * omega * lambda * scale;
                gradient[0] += c * (slate.relevance[a] - expected_relevance);
                for (j, (&item, &pj)) in candidates.iter().zip(&pi).enumerate() {
                    let indicator = if j == a { 1.0 } else { 0.0 };
                    gradient[1 + item as usize] += c * (indicator - pj);
                }
            }
        }
        objective.push(value * scale);
        if step == settings.steps {
            break;
        }
        for (g, b) in gradient[1..].iter_mut().zip(&policy.item_bias) {
            *g -= settings.l2 * b;
        }
        let mut parameters = Vec::with_capacity(1 + items);
        parameters.push(policy.relevance_weight);
        parameters.extend_from_slice(&policy.item_bias);
        adam.ascend(&mut parameters, &gradient, settings.learning_rate);
        policy.relevance_weight = parameters[0];
        policy.item_bias.copy_from_slice(&parameters[1..]);
    }
    let (sum, count, capped) = weights;
    let trace = TrainingTrace {
        objective,
        slots,
        rewarded_slots: count,
        mean_weight: sum / count.max(1) as f64,
        capped_share: capped as f64 / count.max(1) as f64,
    };
    (policy, trace)
}

/// Adam (Kingma & Ba) with its usual β₁ = 0.9, β₂ = 0.999, ε = 1e-8.
struct Adam {
    first: Vec<f64>,
    second: Vec<f64>,
    steps: i32,
}

impl Adam {
    fn new(parameters: usize) -> Adam {
        Adam { first: vec![0.0; parameters], second: vec![0.0; parameters], steps: 0 }
    }

    fn ascend(&mut self, parameters: &mut [f64], gradient: &[f64], learning_rate: f64) {
        const BETA1: f64 = 0.9;
        const BETA2: f64 = 0.999;
        self.steps += 1;
        let correction1 = 1.0 - BETA1.powi(self.steps);
        let correction2 = 1.0 - BETA2.powi(self.steps);
        for (((x, &g), m), v) in
            parameters.iter_mut().zip(gradient).zip(&mut self.first).zip(&mut self.second)
        {
            *m = BETA1 * *m + (1.0 - BETA1) * g;
            *v = BETA2 * *v + (1.0 - BETA2) * g * g;
            *x += learning_rate * (*m / correction1) / ((*v / correction2).sqrt() + 1e-8);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exploration::{PlackettLuce, greedy_order};
    use crate::ope::logged::simulated_log;

    /// A world the ranker has wrong: 10 candidates, the ranker's relevance
    /// falls with the index, but the true click chance rises with it
    /// except for candidate 0, and clicks fall with the slot. A hot
    /// Plackett-Luce logs 20,000 lists of 3 from the ranker's relevance.
    fn misranked_log() -> (Vec<LoggedSlate>, Vec<u32>, impl Fn(usize) -> f64) {
        let relevance: Vec<f64> = (0..10).map(|i| 1.0 - i as f64 / 10.0).collect();
        let click = |i: usize| if i == 0 { 0.02 } else { 0.02 + 0.03 * i as f64 / 9.0 };
        let behaviour =
            PlackettLuce { temperature: 0.3, monte_carlo_samples: 200, exact_prefix_limit: 1000 };
        let slates = simulated_log(&behaviour, &relevance, (20_000, 3), 7, |i, slot| {
            click(i) / ((slot + 2) as f64).log2()
        });
        (slates, (0..10).collect(), click)
    }

    fn settings(off_policy_correction: bool) -> ReinforceSettings {
        ReinforceSettings {
            top_k: 3,
            weight_cap: f64::INFINITY,
            off_policy_correction,
            learning_rate: 0.05,
            steps: 300,
            l2: 0.0,
            initial_temperature: 0.3,
        }
    }

    /// The corrected policy's greedy list of 3 holds more true clicks than
    /// the ranker's, and more than the uncorrected objective's, which
    /// learns the behaviour's own preference for what it already showed.
    #[test]
    fn the_corrected_policy_finds_what_the_ranker_missed_and_the_uncorrected_one_does_not() {
        let (slates, items, click) = misranked_log();
        let lists: Vec<TrainingList<'_>> =
            slates.iter().map(|slate| TrainingList { slate, items: &items }).collect();
        let value = |policy: &SoftmaxPolicy| -> f64 {
            let logits = policy.logits(&slates[0].relevance, &items);
            greedy_order(&logits, 3).into_iter().map(&click).sum()
        };
        let supervised = value(&SoftmaxPolicy::supervised(10, 0.3));
        let (corrected, trace) = reinforce(&lists, 10, &settings(true));
        let (uncorrected, _) = reinforce(&lists, 10, &settings(false));
        assert!(
            value(&corrected) > supervised + 0.03,
            "corrected {} against supervised {supervised}",
            value(&corrected)
        );
        assert!(
            value(&corrected) > value(&uncorrected),
            "corrected {} against uncorrected {}",
            value(&corrected),
            value(&uncorrected)
        );
        assert!(trace.objective.last() > trace.objective.first(), "{:?}", trace.objective);
        assert_eq!(trace.slots, 60_000);
        assert_eq!(trace.capped_share, 0.0);
    }

    /// A cap of 1 cuts every weight above it, and the trace says how many.
    #[test]
    fn the_cap_bounds_every_importance_weight() {
        let (slates, items, _) = misranked_log();
        let lists: Vec<TrainingList<'_>> =
            slates.iter().map(|slate| TrainingList { slate, items: &items }).collect();
        let capped = ReinforceSettings { weight_cap: 1.0, steps: 20, ..settings(true) };
        let (_, trace) = reinforce(&lists, 10, &capped);
        assert!(trace.mean_weight <= 1.0, "{trace:?}");
        assert!(trace.capped_share > 0.0, "{trace:?}");
    }

    /// With no steps the policy is the supervised ranker: the same order.
    #[test]
    fn no_steps_leave_the_supervised_ranker() {
        let (slates, items, _) = misranked_log();
        let lists = [TrainingList { slate: &slates[0], items: &items }];
        let (policy, trace) =
            reinforce(&lists, 10, &ReinforceSettings { steps: 0, ..settings(true) });
        assert_eq!(policy, SoftmaxPolicy::supervised(10, 0.3));
        assert_eq!(trace.objective.len(), 1);
        let logits = policy.logits(&slates[0].relevance, &items);
        assert_eq!(greedy_order(&logits, 3), vec![0, 1, 2]);
    }
}
