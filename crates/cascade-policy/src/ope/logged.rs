//! From logged explored lists to what the estimators read, for any target
//! policy: the per-slot [`Round`]s of the standard estimators and the
//! [`SlateRow`]s of the slate ones.
//!
//! Each logged list keeps the candidates the behaviour policy drew from
//! and their relevance, so a target policy over the same candidates
//! (greedy, ε-greedy, Plackett-Luce at another temperature) is asked for
//! its own propensities of the very list that was served. Each slot is a
//! round: its reward (a click), the behaviour's and the target's
//! probability of that item at that slot, and a reward model's view.

use cascade_experiments::calibration::SplitMix;
use serde::Serialize;

use super::{Round, SlateRow};
use crate::exploration::{Explorer, Propensities};

/// One explored list as logged.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedSlate {
    /// The relevance of each candidate the behaviour policy drew from.
    pub relevance: Vec<f64>,
    /// Indices into `relevance` of the items served, in order.
    pub served: Vec<usize>,
    /// The behaviour policy's propensities, per served slot.
    pub behavior: Vec<Propensities>,
    /// The reward of each served slot (1 for a click).
    pub rewards: Vec<f64>,
}

/// The direct method's reward model: the click chance of an item of
/// relevance r at slot s, σ(a + b·r + c_s) (c_0 = 0), fitted to the log's
/// clicks by Newton's method. Relevance is the ranker's score as the
/// explorer drew by; the slot terms are the position bias.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PositionRewardModel {
    /// a.
    pub intercept: f64,
    /// b.
    pub relevance_weight: f64,
    /// c_s for every slot s (c_0 = 0).
    pub slot_effects: Vec<f64>,
}

impl PositionRewardModel {
    /// The click chance of an item of `relevance` at `slot`.
    pub fn predict(&self, relevance: f64, slot: usize) -> f64 {
        let slot_effect = self.slot_effects.get(slot).copied().unwrap_or(0.0);
        sigmoid(self.intercept + self.relevance_weight * relevance + slot_effect)
    }

    /// Fitted to every served slot of `slates` (a small ridge keeps a slot
    /// that was never clicked finite).
    pub fn fit(slates: &[LoggedSlate]) -> PositionRewardModel {
        let slots = slates.iter().map(|s| s.served.len()).max().unwrap_or(1).max(1);
        let p = slots + 1; // intercept, relevance, slots 1..
        let rows: Vec<(Vec<(usize, f64)>, f64)> = slates
            .iter()
            .flat_map(|slate| {
                slate.served.iter().zip(&slate.rewards).enumerate().map(|(slot, (&i, &y))| {
                    let mut x = vec![(0, 1.0), (1, slate.relevance[i])];
                    if slot > 0 {
                        x.push((slot + 1, 1.0));
                    }
                    (x, y)
                })
            })
            .collect();
        let mut beta = vec![0.0; p];
        for _ in 0..50 {
            let mut hessian = vec![0.0; p * p];
            let mut gradient = vec![0.0; p];
            for (x, y) in &rows {
                let eta: f64 = x.iter().map(|&(j, v)| beta[j] * v).sum();
                let mu = sigmoid(eta);
                let w = (mu * (1.0 - mu)).max(1e-12);
                for &(j, vj) in x {
                    gradient[j] += (y - mu) * vj;
                    for &(k, vk) in x {
                        hessian[j * p + k] += w * vj * vk;
                    }
                }
            }
            for j in 0..p {
                hessian[j * p + j] += 1e-6;
                gradient[j] -= 1e-6 * beta[j];
            }
            let step = crate::cholesky::solve(&hessian, p, &gradient);
            let size: f64 = step.iter().map(|s| s.abs()).fold(0.0, f64::max);
            beta.iter_mut().zip(&step).for_each(|(b, s)| *b += s);
            if size < 1e-10 {
                break;
            }
        }
        let mut slot_effects = vec![0.0];
        slot_effects.extend_from_slice(&beta[2..]);
        PositionRewardModel { intercept: beta[0], relevance_weight: beta[1], slot_effects }
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// `target`'s probability of each candidate at each slot, per logged list
/// (`[list][slot][candidate]`): what the direct method and a simulated
/// truth both read, computed once (Monte Carlo for Plackett-Luce, seeded).
pub fn slot_marginals(
    target: &dyn Explorer,
    slates: &[LoggedSlate],
    seed: u64,
) -> Vec<Vec<Vec<f64>>> {
    let mut rng = SplitMix::new(seed);
    slates.iter().map(|s| target.slot_marginals(&s.relevance, s.served.len(), &mut rng)).collect()
}

/// The log seen from `target`: one [`Round`] per served slot for the
/// standard estimators (item-at-slot propensities, so each slot is a
/// bandit round) and one [`SlateRow`] per slot for the slate estimators.
/// `marginals` are [`slot_marginals`] of the same lists; `seed` serves the
/// Monte-Carlo parts of the target's propensities.
pub fn target_view(
    target: &dyn Explorer,
    slates: &[LoggedSlate],
    marginals: &[Vec<Vec<f64>>],
    model: &PositionRewardModel,
    seed: u64,
) -> (Vec<Round>, Vec<SlateRow>) {
    view(target, slates, |i| &slates[i].relevance, marginals, model, seed)
}

/// [`target_view`] for a target that ranks by its own `scores` of each
/// list's candidates (a learned policy's logits) where the reward model
/// still reads the logged relevance.
pub fn target_view_scored(
    target: &dyn Explorer,
    slates: &[LoggedSlate],
    scores: &[Vec<f64>],
    marginals: &[Vec<Vec<f64>>],
    model: &PositionRewardModel,
    seed: u64,
) -> (Vec<Round>, Vec<SlateRow>) {
    view(target, slates, |i| &scores[i], marginals, model, seed)
}

fn view<'a>(
    target: &dyn Explorer,
    slates: &[LoggedSlate],
    scores: impl Fn(usize) -> &'a [f64],
    marginals: &[Vec<Vec<f64>>],
    model: &PositionRewardModel,
    seed: u64,
) -> (Vec<Round>, Vec<SlateRow>) {
    let mut rng = SplitMix::new(seed);
    let mut rounds = Vec::new();
    let mut rows = Vec::new();
    for (id, (slate, marginals)) in slates.iter().zip(marginals).enumerate() {
        let k = slate.served.len();
        let target_p = target.propensities(scores(id), &slate.served, &mut rng);
        for slot in 0..k {
            let item = slate.served[slot];
            let row = &marginals[slot];
            let mass: f64 = row.iter().sum();
            let direct: f64 = row
                .iter()
                .zip(&slate.relevance)
                .map(|(p, &r)| p * model.predict(r, slot))
                .sum::<f64>()
                / mass.max(f64::MIN_POSITIVE);
            rounds.push(Round {
                reward: slate.rewards[slot],
                behavior_pscore: slate.behavior[slot].item_position,
                target_pscore: target_p[slot].item_position,
                predicted_reward: model.predict(slate.relevance[item], slot),
                direct_value: direct,
            });
            rows.push(SlateRow {
                slate: id as u64,
                reward: slate.rewards[slot],
                behavior: slate.behavior[slot],
                target: target_p[slot],
            });
        }
    }
    (rounds, rows)
}

/// `lists` lists of `k` that `behaviour` draws from fixed `relevance`,
/// each slot clicked with chance `click(candidate, slot)`: a log whose
/// truth is known, for tests.
#[cfg(test)]
pub(crate) fn simulated_log(
    behaviour: &dyn Explorer,
    relevance: &[f64],
    (lists, k): (usize, usize),
    seed: u64,
    click: impl Fn(usize, usize) -> f64,
) -> Vec<LoggedSlate> {
    let mut rng = SplitMix::new(seed);
    (0..lists)
        .map(|_| {
            let drawn = behaviour.explore(relevance, k, &mut rng);
            let rewards = drawn
                .order
                .iter()
                .enumerate()
                .map(|(slot, &i)| if rng.unit() < click(i, slot) { 1.0 } else { 0.0 })
                .collect();
            LoggedSlate {
                relevance: relevance.to_vec(),
                served: drawn.order,
                behavior: drawn.propensities,
                rewards,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exploration::{EpsilonGreedy, PlackettLuce};
    use crate::ope::{Estimator, SlateEstimator, estimate_slate};

    /// A world where the truth is known: 8 candidates with fixed
    /// relevance, click chance σ(−2 + 2r) × 1/log2(slot + 2). A
    /// Plackett-Luce policy logs 20,000 lists of 3; a greedy and a
    /// hotter Plackett-Luce target are estimated from the log and compared
    /// with their exact values, and the reward model recovers the slope.
    #[test]
    fn estimates_from_an_explored_log_find_the_targets_true_click_rates() {
        let relevance: Vec<f64> = (0..8).map(|i| 1.0 - i as f64 / 8.0).collect();
        let click = |r: f64, slot: usize| sigmoid(-2.0 + 2.0 * r) / ((slot + 2) as f64).log2();
        let behaviour =
            PlackettLuce { temperature: 0.3, monte_carlo_samples: 200, exact_prefix_limit: 1000 };
        let slates = simulated_log(&behaviour, &relevance, (20_000, 3), 11, |i, slot| {
            click(relevance[i], slot)
        });
        let model = PositionRewardModel::fit(&slates);
        assert!((model.relevance_weight - 2.0).abs() < 0.5, "{model:?}");
        let targets: [Box<dyn Explorer>; 2] = [
            Box::new(EpsilonGreedy { epsilon: 0.0 }),
            Box::new(PlackettLuce {
                temperature: 0.6,
                monte_carlo_samples: 200,
                exact_prefix_limit: 1000,
            }),
        ];
        for target in &targets {
            // The truth: expected clicks per slot under the target, exactly.
            let marginals = target.slot_marginals(&relevance, 3, &mut SplitMix::new(1));
            let truth: f64 = (0..3)
                .map(|s| {
                    marginals[s].iter().zip(&relevance).map(|(p, &r)| p * click(r, s)).sum::<f64>()
                })
                .sum::<f64>()
                / 3.0;
            let marginals = slot_marginals(target.as_ref(), &slates, 4);
            let (rounds, rows) = target_view(target.as_ref(), &slates, &marginals, &model, 5);
            for estimator in
                [Estimator::Ips { clip: None }, Estimator::Snips, Estimator::Dr { clip: None }]
            {
                let estimate = estimator.estimate(&rounds).unwrap();
                assert!(
                    (estimate / truth - 1.0).abs() < 0.05,
                    "{} {}: {estimate} against {truth}",
                    target.label(),
                    estimator.label()
                );
            }
            let iips = estimate_slate(SlateEstimator::Independent, &rows).unwrap() / 3.0;
            assert!(
                (iips / truth - 1.0).abs() < 0.05,
                "{} IIPS {iips} against {truth}",
                target.label()
            );
        }
    }
}
