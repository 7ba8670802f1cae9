//! Treatment against control: the fixed-horizon Welch test and the
//! always-valid sequential interval.

use serde::Serialize;

use super::Estimate;
use super::distributions::{student_t_quantile, student_t_survival};

/// Whether a lift is a difference of means or a share of control's mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scale {
    Absolute,
    Relative,
}

/// A lift of treatment over control, its two-sided `1 − α` interval and
/// p-value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Lift {
    pub estimate: f64,
    pub lower: f64,
    pub upper: f64,
    pub p_value: f64,
    pub standard_error: f64,
}

/// The lift's point estimate and its variance. Relative lifts divide by
/// control's unadjusted mean and take the delta method's variance of the
/// quotient (as gbstats does); `None` when control's mean is 0 or either
/// variant has no variance, where no test is defined.
fn point_and_variance(
    control: &Estimate,
    treatment: &Estimate,
    scale: Scale,
) -> Option<(f64, f64)> {
    if control.n < 2 || treatment.n < 2 || control.variance <= 0.0 || treatment.variance <= 0.0 {
        return None;
    }
    let (n_a, n_b) = (control.n as f64, treatment.n as f64);
    match scale {
        Scale::Absolute => {
            Some((treatment.mean - control.mean, treatment.variance / n_b + control.variance / n_a))
        }
        Scale::Relative => {
            let base = control.unadjusted_mean;
            if base == 0.0 || control.mean == 0.0 {
                return None;
            }
            let variance = treatment.variance / (base.powi(2) * n_b)
                + control.variance * treatment.unadjusted_mean.powi(2) / (base.powi(4) * n_a);
            Some(((treatment.mean - control.mean) / base, variance))
        }
    }
}

/// Welch–Satterthwaite degrees of freedom.
pub fn welch_dof(control: &Estimate, treatment: &Estimate) -> f64 {
    let (n_a, n_b) = (control.n as f64, treatment.n as f64);
    let (v_a, v_b) = (control.variance / n_a, treatment.variance / n_b);
    (v_a + v_b).powi(2)
        / (treatment.variance.powi(2) / (n_b.powi(2) * (n_b - 1.0))
            + control.variance.powi(2) / (n_a.powi(2) * (n_a - 1.0)))
}

/// The fixed-horizon two-sided Welch t-test: valid when read once, at the
/// sample size planned in advance.
pub fn welch(control: &Estimate, treatment: &Estimate, scale: Scale, alpha: f64) -> Option<Lift> {
    let (estimate, variance) = point_and_variance(control, treatment, scale)?;
    let dof = welch_dof(control, treatment);
    let standard_error = variance.sqrt();
    let t = estimate / standard_error;
    let half_width = student_t_quantile(1.0 - alpha / 2.0, dof) * standard_error;
    Some(Lift {
        estimate,
        lower: estimate - half_width,
        upper: estimate + half_width,
        p_value: (2.0 * student_t_survival(t.abs(), dof)).min(1.0),
        standard_error,
    })
}

/// A paired comparison: is the mean of per-user differences (`estimate`,
/// e.g. clicks credited to B minus to A in interleaved lists) zero? The
/// one-sample t-test with n − 1 degrees of freedom.
pub fn one_sample(estimate: &Estimate, alpha: f64) -> Option<Lift> {
    if estimate.n < 2 || estimate.variance <= 0.0 {
        return None;
    }
    let n = estimate.n as f64;
    let standard_error = (estimate.variance / n).sqrt();
    let dof = n - 1.0;
    let half_width = student_t_quantile(1.0 - alpha / 2.0, dof) * standard_error;
    let t = estimate.mean / standard_error;
    Some(Lift {
        estimate: estimate.mean,
        lower: estimate.mean - half_width,
        upper: estimate.mean + half_width,
        p_value: (2.0 * student_t_survival(t.abs(), dof)).min(1.0),
        standard_error,
    })
}

/// The always-valid two-sided test: the normal-mixture confidence sequence
/// of Waudby-Smith et al. (2023, eq. 9; the mixture SPRT Optimizely and
/// Eppo use) and its e-value's p-value (eq. 155), as gbstats computes them.
/// Its error rate holds however often it is looked at; `tuning` is the
/// total sample size at which the interval is tightest.
pub fn sequential(
    control: &Estimate,
    treatment: &Estimate,
    scale: Scale,
    alpha: f64,
    tuning: f64,
) -> Option<Lift> {
    let (estimate, variance) = point_and_variance(control, treatment, scale)?;
    let n = (control.n + treatment.n) as f64;
    let rho_squared = (-2.0 * alpha.ln() + (-2.0 * alpha.ln() + 1.0).ln()) / tuning;
    let spread = n * rho_squared + 1.0;
    let half_width = (variance * n).sqrt()
        * (2.0 * spread * (spread.sqrt() / alpha).ln() / (n * n * rho_squared)).sqrt();
    let scaled_square = estimate.powi(2) * n / variance;
    let e_value = (rho_squared * scaled_square / (2.0 * spread)).exp() / spread.sqrt();
    Some(Lift {
        estimate,
        lower: estimate - half_width,
        upper: estimate + half_width,
        p_value: (1.0 / e_value).min(1.0),
        standard_error: variance.sqrt(),
    })
}
