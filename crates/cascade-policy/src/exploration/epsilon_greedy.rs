//! ε-greedy slots. The greedy list is the top `k` by score; each slot
//! independently keeps its greedy item with probability 1 − ε, or with
//! probability ε shows an item drawn uniformly, without replacement, from
//! the pool of candidates outside the greedy list. A slot cannot explore
//! once the pool is used up.
//!
//! Every propensity has a closed form. Slot `s` explores with probability
//! ε·1{j < P} after `j` earlier explorations from a pool of `P`, so the
//! distribution of `j` follows a short recursion over slots; an explored
//! slot's item is marginally uniform over the pool (the draws are a
//! uniform random permutation), so its item-position probability is
//! P(slot explores) / P. The slate probability multiplies each slot's
//! decision and, for each exploration, 1 / (pool items left).

use cascade_experiments::calibration::SplitMix;

use super::{Explored, Explorer, Propensities, greedy_order};

/// How many of the slots so far explored, as a distribution: slot s
/// explores with probability ε while the pool lasts.
struct ExplorationCount {
    /// `before[j]`: P(j earlier slots explored).
    before: Vec<f64>,
    epsilon: f64,
    pool: usize,
}

impl ExplorationCount {
    fn new(epsilon: f64, pool: usize) -> ExplorationCount {
        let epsilon = if pool == 0 { 0.0 } else { epsilon };
        ExplorationCount { before: vec![1.0], epsilon, pool }
    }

    /// ε while fewer than the pool's items were drawn, else 0.
    fn chance(&self, explored: usize) -> f64 {
        if explored < self.pool { self.epsilon } else { 0.0 }
    }

    /// P(the current slot explores).
    fn explores_here(&self) -> f64 {
        self.before.iter().enumerate().map(|(j, p)| p * self.chance(j)).sum()
    }

    /// On to the next slot.
    fn advance(&mut self) {
        let mut next = vec![0.0; self.before.len() + 1];
        for (j, p) in self.before.iter().enumerate() {
            next[j] += p * (1.0 - self.chance(j));
            next[j + 1] += p * self.chance(j);
        }
        self.before = next;
    }
}

/// ε-greedy slots over the top `k`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpsilonGreedy {
    /// Each slot's chance of showing a pool item instead.
    pub epsilon: f64,
}

impl EpsilonGreedy {
    /// Draws a list of `k` from `scores`.
    pub fn explore(&self, scores: &[f64], k: usize, rng: &mut SplitMix) -> Explored {
        let greedy = greedy_order(scores, k);
        let mut pool: Vec<usize> = greedy_order(scores, scores.len()).split_off(greedy.len());
        let mut order = Vec::with_capacity(greedy.len());
        for &item in &greedy {
            if !pool.is_empty() && rng.unit() < self.epsilon {
                let drawn = rng.below(pool.len());
                order.push(pool.swap_remove(drawn));
            } else {
                order.push(item);
            }
        }
        let propensities = self.propensities(scores, &order);
        let item_position_error = vec![0.0; order.len()];
        Explored { order, propensities, item_position_error }
    }

    /// Each slot's propensities of the list `served` (indices into
    /// `scores`) under this policy; zeros where it could not have served it.
    pub fn propensities(&self, scores: &[f64], served: &[usize]) -> Vec<Propensities> {
        let greedy = greedy_order(scores, served.len());
        let pool = scores.len() - greedy.len();
        let in_greedy: std::collections::HashSet<usize> = greedy.iter().copied().collect();
        let mut count = ExplorationCount::new(self.epsilon, pool);
        let (mut prefix, mut explorations) = (1.0f64, 0usize);
        let mut slots = Vec::with_capacity(served.len());
        for (slot, &item) in served.iter().enumerate() {
            let explores_here = count.explores_here();
            let (item_position, decision) = if greedy.get(slot) == Some(&item) {
                (1.0 - explores_here, 1.0 - count.chance(explorations))
            } else if !in_greedy.contains(&item) && explorations < pool {
                let decision = count.chance(explorations) / (pool - explorations) as f64;
                explorations += 1;
                (explores_here / pool as f64, decision)
            } else {
                (0.0, 0.0)
            };
            prefix *= decision;
            slots.push((item_position, prefix));
            count.advance();
        }
        slots
            .into_iter()
            .map(|(item_position, cascade)| Propensities { slate: prefix, item_position, cascade })
            .collect()
    }
}

impl Explorer for EpsilonGreedy {
    fn label(&self) -> String {
        match self.epsilon {
            0.0 => "greedy".to_owned(),
            e => format!("epsilon_greedy(epsilon={e})"),
        }
    }

    fn explore(&self, scores: &[f64], k: usize, rng: &mut SplitMix) -> Explored {
        EpsilonGreedy::explore(self, scores, k, rng)
    }

    fn propensities(
        &self,
        scores: &[f64],
        served: &[usize],
        _: &mut SplitMix,
    ) -> Vec<Propensities> {
        EpsilonGreedy::propensities(self, scores, served)
    }

    /// Slot s holds its greedy item unless it explores, and a pool item
    /// with the slot's exploring chance over the pool's size.
    fn slot_marginals(&self, scores: &[f64], k: usize, _: &mut SplitMix) -> Vec<Vec<f64>> {
        let greedy = greedy_order(scores, k);
        let pool_items: Vec<usize> = greedy_order(scores, scores.len()).split_off(greedy.len());
        let pool = pool_items.len();
        let mut count = ExplorationCount::new(self.epsilon, pool);
        let mut marginals = Vec::with_capacity(greedy.len());
        for &item in &greedy {
            let explores_here = count.explores_here();
            let mut row = vec![0.0; scores.len()];
            row[item] = 1.0 - explores_here;
            for &other in &pool_items {
                row[other] = explores_here / pool as f64;
            }
            marginals.push(row);
            count.advance();
        }
        marginals
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Off (ε = 0), the list is the greedy top k and every propensity is 1.
    #[test]
    fn without_exploration_every_slot_is_certain() {
        let scores = [0.1, 0.9, 0.5, 0.7];
        let explored = EpsilonGreedy { epsilon: 0.0 }.explore(&scores, 3, &mut SplitMix::new(1));
        assert_eq!(explored.order, vec![1, 3, 2]);
        assert!(explored.propensities.iter().all(|p| *p == Propensities::CERTAIN));
    }

    /// The closed forms against counts of 200,000 draws, including a pool
    /// smaller than the list (slots that cannot explore any more).
    #[test]
    fn closed_forms_match_simulated_frequencies() {
        for (n, k) in [(6, 3), (4, 3)] {
            let scores: Vec<f64> = (0..n).map(|i| (i * 7 % n) as f64).collect();
            let policy = EpsilonGreedy { epsilon: 0.3 };
            let mut rng = SplitMix::new(17);
            let draws = 200_000;
            let mut slates: HashMap<Vec<usize>, usize> = HashMap::new();
            let mut cells: HashMap<(usize, usize), usize> = HashMap::new();
            for _ in 0..draws {
                let e = policy.explore(&scores, k, &mut rng);
                for (slot, &item) in e.order.iter().enumerate() {
                    *cells.entry((slot, item)).or_default() += 1;
                }
                *slates.entry(e.order).or_default() += 1;
            }
            let total: f64 = slates.keys().map(|s| policy.propensities(&scores, s)[0].slate).sum();
            assert!((total - 1.0).abs() < 1e-12, "slate probabilities sum to {total}");
            for (slate, count) in &slates {
                let p = policy.propensities(&scores, slate);
                let freq = *count as f64 / draws as f64;
                assert!((p[0].slate - freq).abs() < 4.0 * (freq / draws as f64).sqrt() + 1e-4);
                for (slot, &item) in slate.iter().enumerate() {
                    let cell = cells[&(slot, item)] as f64 / draws as f64;
                    let se = (cell * (1.0 - cell) / draws as f64).sqrt();
                    assert!(
                        (p[slot].item_position - cell).abs() < 5.0 * se + 1e-4,
                        "n={n} slot {slot} item {item}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_list_the_policy_cannot_serve_has_probability_zero() {
        let scores = [0.9, 0.8, 0.1, 0.0];
        // The greedy list is [0, 1]; 1 at slot 0 is neither greedy there nor from the pool.
        let p = EpsilonGreedy { epsilon: 0.2 }.propensities(&scores, &[1, 0]);
        assert_eq!(p[0].item_position, 0.0);
        assert_eq!(p[1].slate, 0.0);
    }
}
