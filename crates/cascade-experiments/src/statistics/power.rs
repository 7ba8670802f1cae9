//! How many users an experiment needs.

use super::distributions::normal_quantile;

/// Users per variant for a two-sided test at level `alpha` to detect an
/// absolute difference `effect` with probability `power`, when one user's
/// value has variance `variance` in each variant (normal approximation).
pub fn users_per_variant(variance: f64, effect: f64, alpha: f64, power: f64) -> f64 {
    let z = normal_quantile(1.0 - alpha / 2.0) + normal_quantile(power);
    2.0 * variance * z * z / (effect * effect)
}
