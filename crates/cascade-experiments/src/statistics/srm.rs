//! Sample-ratio mismatch: are users split as the weights say? A mismatch
//! means assignment or logging is broken, and no lift can be trusted.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ChiSquared, ContinuousCDF};
use statrs::function::gamma::ln_gamma;

/// The fixed-horizon χ² goodness-of-fit check.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SrmCheck {
    pub statistic: f64,
    pub p_value: f64,
    /// Whether `p_value` fell below the threshold.
    pub mismatch: bool,
}

/// Pearson's χ² of the users per variant against `weights` (which sum to
/// 1), as gbstats' `check_srm`. Valid read once: looked at every minute it
/// raises false alarms, which [`SequentialSrm`] does not.
pub fn chi_square_srm(users: &[u64], weights: &[f64], threshold: f64) -> SrmCheck {
    let total: u64 = users.iter().sum();
    if total == 0 || users.len() < 2 {
        return SrmCheck { statistic: 0.0, p_value: 1.0, mismatch: false };
    }
    let statistic: f64 = users
        .iter()
        .zip(weights)
        .filter(|(_, weight)| **weight > 0.0)
        .map(|(&observed, &weight)| {
            let expected = weight * total as f64;
            (observed as f64 - expected).powi(2) / expected
        })
        .sum();
    let p_value = ChiSquared::new((users.len() - 1) as f64)
        .map(|distribution| distribution.sf(statistic))
        .unwrap_or(f64::NAN);
    SrmCheck { statistic, p_value, mismatch: p_value < threshold }
}

/// log of the Dirichlet-multinomial Bayes factor of "users split by some
/// other ratio" over "split by `weights`" (Lindon & Malek, 2022), with a
/// Dirichlet(`concentration` × weights) prior on the other ratio. Under the
/// null it is a nonnegative martingale in the number of users, so by
/// Ville's inequality it exceeds 1/α with probability at most α *ever*.
pub fn srm_log_bayes_factor(users: &[u64], weights: &[f64], concentration: f64) -> f64 {
    let total: u64 = users.iter().sum();
    let mut log_factor = ln_gamma(concentration) - ln_gamma(concentration + total as f64);
    for (&count, &weight) in users.iter().zip(weights) {
        let prior = concentration * weight;
        log_factor += ln_gamma(prior + count as f64) - ln_gamma(prior) - count as f64 * weight.ln();
    }
    log_factor
}

/// The always-valid SRM test, checked as often as one likes: it remembers
/// the largest Bayes factor seen, so its p-value only falls.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SequentialSrm {
    pub concentration: f64,
    pub max_log_bayes_factor: f64,
}

impl SequentialSrm {
    pub fn new(concentration: f64) -> SequentialSrm {
        SequentialSrm { concentration, max_log_bayes_factor: 0.0 }
    }

    /// Looks at the counts now; returns the always-valid p-value.
    pub fn observe(&mut self, users: &[u64], weights: &[f64]) -> f64 {
        let log_factor = srm_log_bayes_factor(users, weights, self.concentration);
        self.max_log_bayes_factor = self.max_log_bayes_factor.max(log_factor);
        self.p_value()
    }

    /// min(1, 1 / the largest Bayes factor seen).
    pub fn p_value(&self) -> f64 {
        (-self.max_log_bayes_factor).exp().min(1.0)
    }
}
