//! Thompson sampling: each candidate's click rate drawn from its Beta
//! posterior, the list ordered by the draws. Items with few impressions
//! have wide posteriors, so they reach the top now and then and gather the
//! feedback that settles them; well-measured items keep their place.
//!
//! No propensity has a closed form here, so all three are Monte-Carlo
//! estimates from `monte_carlo_samples` further draws of the whole
//! ranking. Each counts the served list's own draw as one of the samples
//! ((matches + 1) / (draws + 1)), so a served slot never logs 0; the
//! item-position estimate's standard error is reported. With lists of ten
//! from fifty candidates, the slate's and long prefixes' probabilities are
//! far below 1 / draws and their estimates are not usable: evaluate logs
//! of this policy with the per-slot estimators (IPS, DR, IIPS), not SIPS
//! or RIPS.

use cascade_experiments::calibration::SplitMix;

use super::{Explored, Propensities, greedy_order};

/// Thompson sampling over Beta(α, β) posteriors of each candidate's CTR.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThompsonSampling {
    /// Rankings drawn to estimate the propensities.
    pub monte_carlo_samples: usize,
}

impl ThompsonSampling {
    /// Draws a list of `k` from the candidates' `posteriors` (α, β).
    pub fn explore(&self, posteriors: &[(f64, f64)], k: usize, rng: &mut SplitMix) -> Explored {
        let order = draw(posteriors, k, rng);
        let draws = self.monte_carlo_samples.max(1);
        let (mut slate, mut prefix, mut at) =
            (0usize, vec![0usize; order.len()], vec![0usize; order.len()]);
        for _ in 0..draws {
            let other = draw(posteriors, k, rng);
            let mut same_prefix = true;
            for (slot, (&a, &b)) in order.iter().zip(&other).enumerate() {
                same_prefix &= a == b;
                prefix[slot] += usize::from(same_prefix);
                at[slot] += usize::from(a == b);
            }
            slate += usize::from(same_prefix);
        }
        let estimate = |matches: usize| (matches + 1) as f64 / (draws + 1) as f64;
        let propensities = (0..order.len())
            .map(|slot| Propensities {
                slate: estimate(slate),
                item_position: estimate(at[slot]),
                cascade: estimate(prefix[slot]),
            })
            .collect::<Vec<_>>();
        let item_position_error = propensities
            .iter()
            .map(|p| (p.item_position * (1.0 - p.item_position) / (draws + 1) as f64).sqrt())
            .collect();
        Explored { order, propensities, item_position_error }
    }
}

/// The `k` candidates with the largest draws from their posteriors.
fn draw(posteriors: &[(f64, f64)], k: usize, rng: &mut SplitMix) -> Vec<usize> {
    let samples: Vec<f64> = posteriors.iter().map(|&(a, b)| beta(a, b, rng)).collect();
    greedy_order(&samples, k)
}

/// A Beta(a, b) draw as X / (X + Y), X ~ Gamma(a), Y ~ Gamma(b).
fn beta(a: f64, b: f64, rng: &mut SplitMix) -> f64 {
    let x = gamma(a, rng);
    let y = gamma(b, rng);
    if x + y > 0.0 { x / (x + y) } else { 0.5 }
}

/// A Gamma(shape, 1) draw: Marsaglia and Tsang (2000); shapes below 1
/// through Gamma(shape + 1) · U^(1 / shape).
fn gamma(shape: f64, rng: &mut SplitMix) -> f64 {
    if shape < 1.0 {
        let u = rng.unit().max(f64::MIN_POSITIVE);
        return gamma(shape + 1.0, rng) * u.powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let z = normal(rng);
        let v = (1.0 + c * z).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u = rng.unit();
        if u.max(f64::MIN_POSITIVE).ln() < 0.5 * z * z + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

/// A standard normal draw (Box–Muller).
pub(super) fn normal(rng: &mut SplitMix) -> f64 {
    let u = rng.unit().max(f64::MIN_POSITIVE);
    let v = rng.unit();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beta_draws_have_the_beta_mean_and_variance() {
        let mut rng = SplitMix::new(4);
        for (a, b) in [(2.0, 5.0), (0.5, 0.5), (30.0, 970.0)] {
            let n = 100_000;
            let draws: Vec<f64> = (0..n).map(|_| beta(a, b, &mut rng)).collect();
            let mean = draws.iter().sum::<f64>() / n as f64;
            let var = draws.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
            let (m, v) = (a / (a + b), a * b / ((a + b).powi(2) * (a + b + 1.0)));
            assert!(
                (mean - m).abs() < 4.0 * (v / n as f64).sqrt(),
                "Beta({a}, {b}) mean {mean} against {m}"
            );
            assert!((var / v - 1.0).abs() < 0.03, "Beta({a}, {b}) variance {var} against {v}");
        }
    }

    /// A well-measured good item almost always leads; an unmeasured one
    /// sometimes does. The logged item-position propensities match how
    /// often each item is drawn at its slot.
    #[test]
    fn uncertain_items_get_their_turn_and_propensities_match_frequencies() {
        // 50/1000 clicks, 10/1000, and an unseen item at the prior Beta(1, 20).
        let posteriors = [(50.0, 950.0), (10.0, 990.0), (1.0, 20.0)];
        let policy = ThompsonSampling { monte_carlo_samples: 400 };
        let mut rng = SplitMix::new(9);
        let draws = 5_000;
        let mut first = [0usize; 3];
        let mut logged = [0.0f64; 3];
        for _ in 0..draws {
            let e = policy.explore(&posteriors, 2, &mut rng);
            first[e.order[0]] += 1;
            logged[e.order[0]] += e.propensities[0].item_position;
            assert!(e.propensities.iter().all(|p| p.item_position > 0.0 && p.slate > 0.0));
        }
        assert!(first[0] > first[2] && first[2] > first[1], "{first:?}");
        for item in 0..3 {
            let freq = first[item] as f64 / draws as f64;
            let mean_logged = logged[item] / first[item].max(1) as f64;
            assert!(
                (mean_logged - freq).abs() < 0.02,
                "item {item}: {freq} drawn, {mean_logged} logged"
            );
        }
    }
}
