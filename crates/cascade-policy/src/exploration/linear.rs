//! A contextual bandit for reserved slots: linear Thompson sampling over
//! item vectors (the retrieval model's embeddings). The click rate of an
//! item is modelled as θ·x over its vector x, fitted by ridge regression
//! on every item's impressions and clicks; a list keeps the ranker's order
//! for all but its last `slots` slots, and those go to the candidates with
//! the highest θ̃·x for one draw θ̃ ~ N(θ̂, scale² A⁻¹). An item whose
//! vector points where the model has seen little (a new item, a rarely
//! shown kind) has a wide spread of θ̃·x and so gets those slots now and
//! then; one the model knows is placed by its mean.
//!
//! Propensities: the ranker's slots are certain (1); the reserved slots'
//! are Monte-Carlo estimates over further draws of θ̃, counting the served
//! draw (so never 0), as for [`super::ThompsonSampling`].

use cascade_experiments::calibration::SplitMix;

use super::{Explored, Propensities, greedy_order};
use crate::cholesky::{backward, cholesky, forward};

/// θ̂ and the Cholesky factor of A = ridge·I + Σ impressions · x xᵀ.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearPosterior {
    dim: usize,
    mean: Vec<f64>,
    /// Lower-triangular L with A = L Lᵀ, row-major.
    factor: Vec<f64>,
}

impl LinearPosterior {
    /// Ridge regression of clicks on item vectors: A = ridge·I + Σ n x xᵀ,
    /// b = Σ c x over `(vector, impressions n, clicks c)`.
    pub fn fit<'a>(
        dim: usize,
        ridge: f64,
        items: impl IntoIterator<Item = (&'a [f32], f64, f64)>,
    ) -> LinearPosterior {
        let mut a = vec![0.0; dim * dim];
        let mut b = vec![0.0; dim];
        for i in 0..dim {
            a[i * dim + i] = ridge.max(1e-9);
        }
        for (x, impressions, clicks) in items {
            if impressions <= 0.0 {
                continue;
            }
            for i in 0..dim {
                let xi = f64::from(x[i]);
                b[i] += clicks * xi;
                for j in 0..=i {
                    a[i * dim + j] += impressions * xi * f64::from(x[j]);
                }
            }
        }
        let factor = cholesky(&a, dim);
        // θ̂ = A⁻¹ b: L y = b, then Lᵀ θ = y.
        let y = forward(&factor, dim, &b);
        let mean = backward(&factor, dim, &y);
        LinearPosterior { dim, mean, factor }
    }

    /// θ̂·x, the model's click rate of an item with vector `x`.
    pub fn mean_score(&self, x: &[f64]) -> f64 {
        self.mean.iter().zip(x).map(|(m, v)| m * v).sum()
    }

    /// One draw θ̃ = θ̂ + scale · L⁻ᵀ z, z standard normal: covariance
    /// scale² A⁻¹.
    pub fn draw(&self, scale: f64, rng: &mut SplitMix) -> Vec<f64> {
        let z: Vec<f64> = (0..self.dim).map(|_| super::thompson::normal(rng)).collect();
        let w = backward(&self.factor, self.dim, &z);
        self.mean.iter().zip(&w).map(|(m, w)| m + scale * w).collect()
    }
}

/// Linear Thompson sampling in the last `slots` slots of a list.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearThompson {
    /// Slots at the end of the list the bandit fills.
    pub slots: usize,
    /// How wide θ̃ is drawn around θ̂ (1: the posterior itself).
    pub scale: f64,
    /// Draws of θ̃ to estimate the reserved slots' propensities.
    pub monte_carlo_samples: usize,
}

impl LinearThompson {
    /// A list of `k`: the ranker's best `k − slots` by `relevance`, then the
    /// reserved slots from the rest by θ̃·x (`vectors[i]` is candidate i's).
    pub fn explore(
        &self,
        relevance: &[f64],
        vectors: &[Vec<f64>],
        posterior: &LinearPosterior,
        k: usize,
        rng: &mut SplitMix,
    ) -> Explored {
        let k = k.min(relevance.len());
        let kept = greedy_order(relevance, k.saturating_sub(self.slots));
        let pool: Vec<usize> = greedy_order(relevance, relevance.len()).split_off(kept.len());
        let reserved = k - kept.len();
        let pick = |rng: &mut SplitMix| -> Vec<usize> {
            let theta = posterior.draw(self.scale, rng);
            let scores: Vec<f64> = pool
                .iter()
                .map(|&i| vectors[i].iter().zip(&theta).map(|(x, t)| x * t).sum())
                .collect();
            greedy_order(&scores, reserved).into_iter().map(|p| pool[p]).collect()
        };
        let chosen = pick(rng);
        let draws = self.monte_carlo_samples.max(1);
        let (mut at, mut prefix) = (vec![0usize; reserved], vec![0usize; reserved]);
        for _ in 0..draws {
            let other = pick(rng);
            let mut same = true;
            for (slot, (a, b)) in chosen.iter().zip(&other).enumerate() {
                same &= a == b;
                at[slot] += usize::from(a == b);
                prefix[slot] += usize::from(same);
            }
        }
        let estimate = |matches: usize| (matches + 1) as f64 / (draws + 1) as f64;
        let slate = prefix.last().map_or(1.0, |&m| estimate(m));
        let mut propensities =
            vec![Propensities { slate, item_position: 1.0, cascade: 1.0 }; kept.len()];
        let mut errors = vec![0.0; kept.len()];
        for slot in 0..chosen.len() {
            let p = estimate(at[slot]);
            propensities.push(Propensities {
                slate,
                item_position: p,
                cascade: estimate(prefix[slot]),
            });
            errors.push((p * (1.0 - p) / (draws + 1) as f64).sqrt());
        }
        let mut order = kept;
        order.extend(chosen);
        Explored { order, propensities, item_position_error: errors }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Item vectors on the axes of a 3-d space with CTRs 0.02·(axis + 1):
    /// the fit recovers θ ≈ (0.02, 0.04, 0.06).
    #[test]
    fn the_ridge_fit_recovers_click_rates_along_each_direction() {
        let vectors: Vec<[f32; 3]> = vec![[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
        let items =
            vectors.iter().enumerate().map(|(i, x)| (&x[..], 10_000.0, 200.0 * (i + 1) as f64));
        let posterior = LinearPosterior::fit(3, 1.0, items);
        for (axis, expected) in [0.02, 0.04, 0.06].iter().enumerate() {
            let mut x = vec![0.0; 3];
            x[axis] = 1.0;
            assert!((posterior.mean_score(&x) - expected).abs() < 1e-4, "axis {axis}");
        }
    }

    /// Two candidates outside the ranker's list compete for one reserved
    /// slot: a well-measured one with CTR 0.05 and one on a direction never
    /// shown. The unseen one wins some draws, and the logged propensities
    /// match how often each is drawn; the ranker's slots are certain.
    #[test]
    fn an_unexplored_direction_gets_the_reserved_slot_sometimes() {
        let vectors = vec![vec![1.0, 0.0], vec![1.0, 0.0], vec![0.9, 0.1], vec![0.0, 1.0]];
        let v32: Vec<Vec<f32>> =
            vectors.iter().map(|v| v.iter().map(|&x| x as f32).collect()).collect();
        let posterior = LinearPosterior::fit(2, 1.0, [(&v32[0][..], 50_000.0, 2_500.0)]);
        let policy = LinearThompson { slots: 1, scale: 0.05, monte_carlo_samples: 300 };
        let relevance = [0.9, 0.8, 0.1, 0.0];
        let mut rng = SplitMix::new(3);
        let draws = 3_000;
        let (mut shown, mut logged) = ([0usize; 4], [0.0f64; 4]);
        for _ in 0..draws {
            let e = policy.explore(&relevance, &vectors, &posterior, 2, &mut rng);
            assert_eq!(e.order[0], 0, "the ranker's slot");
            assert_eq!(e.propensities[0].item_position, 1.0);
            shown[e.order[1]] += 1;
            logged[e.order[1]] += e.propensities[1].item_position;
        }
        assert!(shown[3] > 100 && shown[1] > shown[3], "{shown:?}");
        for item in [1, 2, 3] {
            let freq = shown[item] as f64 / draws as f64;
            let mean = logged[item] / shown[item].max(1) as f64;
            assert!(
                shown[item] == 0 || (mean - freq).abs() < 0.03,
                "item {item}: {freq} drawn, {mean} logged"
            );
        }
    }
}
