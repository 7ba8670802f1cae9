//! The group-sequential test: a planned number of users, looked at as often
//! as wanted, each look spending part of α by the Lan–DeMets
//! O'Brien–Fleming-type spending function. Unlike the always-valid mixture
//! test it spends all of α by the planned horizon, so its error rate is α,
//! not below it; the price is a horizon fixed in advance.

use statrs::distribution::{Continuous, ContinuousCDF, Normal};

use super::distributions::normal_quantile;

/// Grid points per boundary-to-boundary span of the continuation region.
const GRID: usize = 400;

/// Two-sided α spent by information fraction `t` (users so far / planned
/// users): each side spends `2 − 2Φ(z_{1−α/4} / √t)` of its α/2, the
/// convention of gsDesign's `sfLDOF` and R's ldbounds; all of α at t = 1.
pub fn obrien_fleming_spent(alpha: f64, t: f64) -> f64 {
    if t <= 0.0 {
        return 0.0;
    }
    let z = normal_quantile(1.0 - alpha / 4.0);
    2.0 * 2.0 * (1.0 - standard_normal().cdf(z / t.min(1.0).sqrt()))
}

fn standard_normal() -> Normal {
    Normal::standard()
}

/// Two-sided |Z| boundaries for looks at increasing information fractions
/// (the last at most 1): under the null, the chance of first crossing at
/// look k is what the spending function adds between looks k − 1 and k.
/// Computed by the recursive integration of Armitage, McPherson and Rowe
/// (1969) on the Brownian motion `S = Z √t`.
pub fn group_sequential_boundaries(fractions: &[f64], alpha: f64) -> Vec<f64> {
    let normal = standard_normal();
    let mut boundaries = Vec::with_capacity(fractions.len());
    // The sub-density of S at the last look, on a grid, for paths not yet stopped.
    let mut grid: Vec<f64> = Vec::new();
    let mut density: Vec<f64> = Vec::new();
    let mut previous_t = 0.0;
    let mut previous_spent = 0.0;
    for &t in fractions {
        let spent = obrien_fleming_spent(alpha, t);
        let target = (spent - previous_spent).max(0.0);
        let step = t - previous_t;
        let crossing = |b: f64| -> f64 {
            if grid.is_empty() {
                return 2.0 * (1.0 - normal.cdf(b / t.sqrt()));
            }
            let sd = step.sqrt();
            integrate(&grid, &density, |u| {
                normal.cdf((-b - u) / sd) + 1.0 - normal.cdf((b - u) / sd)
            })
        };
        // Bisection on the S-scale boundary b: crossing(b) falls as b grows.
        let (mut low, mut high) = (0.0, 20.0 * t.sqrt());
        for _ in 0..100 {
            let mid = (low + high) / 2.0;
            if crossing(mid) > target { low = mid } else { high = mid }
        }
        let b = (low + high) / 2.0;
        boundaries.push(b / t.sqrt());
        // The continuation sub-density at this look.
        let next_grid: Vec<f64> =
            (0..=GRID).map(|i| -b + 2.0 * b * i as f64 / GRID as f64).collect();
        let next_density: Vec<f64> = next_grid
            .iter()
            .map(|&s| match grid.is_empty() {
                true => normal.pdf(s / t.sqrt()) / t.sqrt(),
                false => {
                    let sd = step.sqrt();
                    integrate(&grid, &density, |u| normal.pdf((s - u) / sd) / sd)
                }
            })
            .collect();
        grid = next_grid;
        density = next_density;
        previous_t = t;
        previous_spent = spent;
    }
    boundaries
}

/// ∫ density(u) f(u) du by the trapezoid rule on `grid`.
fn integrate(grid: &[f64], density: &[f64], f: impl Fn(f64) -> f64) -> f64 {
    let values: Vec<f64> = grid.iter().zip(density).map(|(&u, &d)| d * f(u)).collect();
    grid.windows(2).zip(values.windows(2)).map(|(x, y)| (x[1] - x[0]) * (y[0] + y[1]) / 2.0).sum()
}
