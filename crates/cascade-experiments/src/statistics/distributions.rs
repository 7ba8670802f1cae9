//! The few distribution functions the tests need, to scipy's precision.
//!
//! statrs' inverse CDFs are approximations; a quantile here is polished by
//! Newton steps on the CDF, which statrs computes to near machine precision,
//! so intervals agree with `scipy.stats.t.ppf` to ~1e-12.

use statrs::distribution::{Continuous, ContinuousCDF, Normal, StudentsT};

const NEWTON_STEPS: usize = 4;

/// P(T > t) for Student's t with `dof` degrees of freedom.
pub fn student_t_survival(t: f64, dof: f64) -> f64 {
    match StudentsT::new(0.0, 1.0, dof) {
        Ok(distribution) => distribution.sf(t),
        Err(_) => f64::NAN,
    }
}

/// The `p` quantile of Student's t with `dof` degrees of freedom.
pub fn student_t_quantile(p: f64, dof: f64) -> f64 {
    match StudentsT::new(0.0, 1.0, dof) {
        Ok(distribution) => polish(&distribution, p, distribution.inverse_cdf(p)),
        Err(_) => f64::NAN,
    }
}

/// The `p` quantile of the standard normal.
pub fn normal_quantile(p: f64) -> f64 {
    match Normal::new(0.0, 1.0) {
        Ok(distribution) => polish(&distribution, p, distribution.inverse_cdf(p)),
        Err(_) => f64::NAN,
    }
}

fn polish<D: ContinuousCDF<f64, f64> + Continuous<f64, f64>>(
    distribution: &D,
    p: f64,
    start: f64,
) -> f64 {
    let mut x = start;
    for _ in 0..NEWTON_STEPS {
        let density = distribution.pdf(x);
        if !x.is_finite() || density <= 0.0 {
            break;
        }
        x -= (distribution.cdf(x) - p) / density;
    }
    x
}
