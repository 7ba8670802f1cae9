//! Plackett-Luce sampling: the list is drawn without replacement from
//! softmax(score / T), one slot after another, as YouTube serves. It is
//! drawn with the Gumbel-top-k trick (the k largest of score / T plus
//! independent Gumbel noise), which has exactly that distribution.
//!
//! The slate's and each prefix's probabilities are products of the
//! per-slot softmaxes over what was left, exact. An item's probability of
//! being at a position sums over every prefix before it; that is exact by
//! enumeration while the prefixes are few (`exact_prefix_limit`), and
//! otherwise estimated by Monte Carlo: prefixes drawn from the policy, each
//! contributing the exact chance of the item coming next (a
//! Rao-Blackwellised estimate, never zero for an item that can follow), with
//! its standard error reported.

use cascade_experiments::calibration::SplitMix;

use super::{Explored, Explorer, Propensities};

/// Plackett-Luce sampling at temperature `temperature`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlackettLuce {
    /// T: the lower, the closer to the greedy list.
    pub temperature: f64,
    /// Prefixes drawn per Monte-Carlo estimate.
    pub monte_carlo_samples: usize,
    /// Largest number of prefixes summed exactly.
    pub exact_prefix_limit: usize,
}

impl PlackettLuce {
    /// exp((score − max) / T) per candidate: softmax numerators.
    fn weights(&self, scores: &[f64]) -> Vec<f64> {
        let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        scores.iter().map(|s| ((s - max) / self.temperature).exp()).collect()
    }

    /// Draws a list of `k` from `scores`, with its propensities.
    pub fn explore(&self, scores: &[f64], k: usize, rng: &mut SplitMix) -> Explored {
        let weights = self.weights(scores);
        let order = sample(&weights, k, rng);
        let (propensities, item_position_error) = self.propensities_with_error(scores, &order, rng);
        Explored { order, propensities, item_position_error }
    }

    /// Each slot's propensities of the list `served` under this policy, and
    /// each item-position probability's standard error (0 where exact).
    pub fn propensities_with_error(
        &self,
        scores: &[f64],
        served: &[usize],
        rng: &mut SplitMix,
    ) -> (Vec<Propensities>, Vec<f64>) {
        let weights = self.weights(scores);
        let total: f64 = weights.iter().sum();
        let mut removed = 0.0;
        let mut prefix = 1.0;
        let mut cascade = Vec::with_capacity(served.len());
        for &item in served {
            prefix *= weights[item] / (total - removed).max(weights[item]);
            removed += weights[item];
            cascade.push(prefix);
        }
        let mut marginals = Vec::with_capacity(served.len());
        for (slot, &item) in served.iter().enumerate() {
            marginals.push(if prefixes(weights.len(), slot) <= self.exact_prefix_limit as f64 {
                (exact_marginal(&weights, total, item, slot), 0.0)
            } else {
                estimated_marginal(&weights, total, item, slot, self.monte_carlo_samples, rng)
            });
        }
        let propensities = cascade
            .iter()
            .zip(&marginals)
            .map(|(&c, &(m, _))| Propensities { slate: prefix, item_position: m, cascade: c })
            .collect();
        (propensities, marginals.iter().map(|&(_, e)| e).collect())
    }
}

impl Explorer for PlackettLuce {
    fn label(&self) -> String {
        format!("plackett_luce(temperature={})", self.temperature)
    }

    fn explore(&self, scores: &[f64], k: usize, rng: &mut SplitMix) -> Explored {
        PlackettLuce::explore(self, scores, k, rng)
    }

    fn propensities(
        &self,
        scores: &[f64],
        served: &[usize],
        rng: &mut SplitMix,
    ) -> Vec<Propensities> {
        self.propensities_with_error(scores, served, rng).0
    }

    /// The first slot is the softmax; later ones are averaged over
    /// `monte_carlo_samples` drawn lists, each adding every candidate's
    /// exact chance of coming next after the drawn prefix.
    fn slot_marginals(&self, scores: &[f64], k: usize, rng: &mut SplitMix) -> Vec<Vec<f64>> {
        let weights = self.weights(scores);
        let total: f64 = weights.iter().sum();
        let k = k.min(scores.len());
        let mut marginals = vec![vec![0.0; scores.len()]; k];
        if k == 0 {
            return marginals;
        }
        for (item, w) in weights.iter().enumerate() {
            marginals[0][item] = w / total;
        }
        let samples = self.monte_carlo_samples.max(1);
        let mut taken = vec![false; scores.len()];
        for _ in 0..samples {
            let drawn = sample(&weights, k - 1, rng);
            taken.iter_mut().for_each(|t| *t = false);
            let mut removed = 0.0;
            for (slot, &item) in drawn.iter().enumerate() {
                taken[item] = true;
                removed += weights[item];
                let left = (total - removed).max(f64::MIN_POSITIVE);
                let row = &mut marginals[slot + 1];
                for (candidate, w) in weights.iter().enumerate() {
                    if !taken[candidate] {
                        row[candidate] += w / left / samples as f64;
                    }
                }
            }
        }
        marginals
    }
}

/// Gumbel-top-k: the `k` largest log-weights plus Gumbel noise, in order.
fn sample(weights: &[f64], k: usize, rng: &mut SplitMix) -> Vec<usize> {
    let mut keyed: Vec<(f64, usize)> = weights
        .iter()
        .enumerate()
        .map(|(i, w)| (w.ln() - (-(rng.unit().max(f64::MIN_POSITIVE)).ln()).ln(), i))
        .collect();
    keyed.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    keyed.into_iter().take(k).map(|(_, i)| i).collect()
}

/// How many ordered prefixes of length `slot` `n` candidates have.
fn prefixes(n: usize, slot: usize) -> f64 {
    (0..slot).map(|j| n.saturating_sub(j) as f64).product()
}

/// P(item at position `slot`) by summing over every prefix before it.
fn exact_marginal(weights: &[f64], total: f64, item: usize, slot: usize) -> f64 {
    fn walk(
        weights: &[f64],
        total: f64,
        item: usize,
        depth: usize,
        taken: &mut Vec<usize>,
        removed: f64,
        probability: f64,
    ) -> f64 {
        if depth == 0 {
            return probability * weights[item] / (total - removed).max(weights[item]);
        }
        let mut sum = 0.0;
        for next in 0..weights.len() {
            if next == item || taken.contains(&next) {
                continue;
            }
            let step = weights[next] / (total - removed).max(weights[next]);
            taken.push(next);
            sum += walk(
                weights,
                total,
                item,
                depth - 1,
                taken,
                removed + weights[next],
                probability * step,
            );
            taken.pop();
        }
        sum
    }
    walk(weights, total, item, slot, &mut Vec::with_capacity(slot), 0.0, 1.0)
}

/// P(item at position `slot`) estimated from `samples` prefixes drawn from
/// the policy, with its standard error.
fn estimated_marginal(
    weights: &[f64],
    total: f64,
    item: usize,
    slot: usize,
    samples: usize,
    rng: &mut SplitMix,
) -> (f64, f64) {
    let samples = samples.max(2);
    let (mut sum, mut sum_sq) = (0.0, 0.0);
    for _ in 0..samples {
        let prefix = sample(weights, slot, rng);
        let value = if prefix.contains(&item) {
            0.0
        } else {
            let removed: f64 = prefix.iter().map(|&i| weights[i]).sum();
            weights[item] / (total - removed).max(weights[item])
        };
        sum += value;
        sum_sq += value * value;
    }
    let n = samples as f64;
    let mean = sum / n;
    let variance = ((sum_sq - n * mean * mean) / (n - 1.0)).max(0.0);
    (mean, (variance / n).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn policy(exact_prefix_limit: usize) -> PlackettLuce {
        PlackettLuce { temperature: 0.5, monte_carlo_samples: 4000, exact_prefix_limit }
    }

    /// Sampled frequencies of whole slates and of item-positions agree
    /// with the closed forms, and the exact marginals sum to 1 per slot.
    #[test]
    fn closed_forms_match_simulated_frequencies() {
        let scores = [0.3, 1.2, -0.4, 0.8, 0.0];
        let p = policy(1_000_000);
        let mut rng = SplitMix::new(3);
        let draws = 200_000;
        let mut slates: HashMap<Vec<usize>, usize> = HashMap::new();
        let mut cells: HashMap<(usize, usize), usize> = HashMap::new();
        for _ in 0..draws {
            let order = sample(&p.weights(&scores), 3, &mut rng);
            for (slot, &item) in order.iter().enumerate() {
                *cells.entry((slot, item)).or_default() += 1;
            }
            *slates.entry(order).or_default() += 1;
        }
        for (slate, count) in &slates {
            let (props, errors) = p.propensities_with_error(&scores, slate, &mut rng);
            assert!(errors.iter().all(|&e| e == 0.0), "enumerated exactly");
            let freq = *count as f64 / draws as f64;
            assert!((props[0].slate - freq).abs() < 5.0 * (freq / draws as f64).sqrt() + 1e-4);
            for (slot, &item) in slate.iter().enumerate() {
                let cell = cells[&(slot, item)] as f64 / draws as f64;
                let se = (cell * (1.0 - cell) / draws as f64).sqrt();
                assert!((props[slot].item_position - cell).abs() < 5.0 * se + 1e-4);
            }
        }
        let weights = p.weights(&scores);
        let total: f64 = weights.iter().sum();
        for slot in 0..3 {
            let sum: f64 = (0..5).map(|i| exact_marginal(&weights, total, i, slot)).sum();
            assert!((sum - 1.0).abs() < 1e-12, "slot {slot} sums to {sum}");
        }
    }

    /// Past the enumeration limit the estimate lands within a few of its
    /// own standard errors of the exact value.
    #[test]
    fn monte_carlo_marginals_state_their_error() {
        let scores: Vec<f64> = (0..12).map(|i| (i as f64 * 0.37).sin()).collect();
        let served = [3, 7, 1, 0];
        let (exact, _) =
            policy(usize::MAX).propensities_with_error(&scores, &served, &mut SplitMix::new(1));
        let (estimated, errors) =
            policy(10).propensities_with_error(&scores, &served, &mut SplitMix::new(2));
        assert_eq!(errors[0], 0.0, "the first slot is a softmax, exact");
        for slot in 1..4 {
            assert!(errors[slot] > 0.0);
            let gap = (exact[slot].item_position - estimated[slot].item_position).abs();
            assert!(gap < 4.0 * errors[slot], "slot {slot}: gap {gap}, error {}", errors[slot]);
            assert_eq!(
                exact[slot].cascade, estimated[slot].cascade,
                "prefixes are exact either way"
            );
        }
    }
}
