//! A variant's estimate of a metric: its mean and the variance of one
//! user's contribution, for plain means, ratios (delta method) and CUPED.

use serde::Serialize;

use super::Moments;
use super::moments::PairedMoments;

/// A variant's estimate of one metric. The variance is per user, so the
/// mean's variance is `variance / n`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    pub n: u64,
    /// The estimate (CUPED-adjusted where it applies).
    pub mean: f64,
    /// The plain mean, before any adjustment: relative lifts divide by it.
    pub unadjusted_mean: f64,
    pub variance: f64,
}

impl Estimate {
    /// A per-user mean (clicks per user, events per user).
    pub fn mean_of(moments: &Moments) -> Estimate {
        Estimate {
            n: moments.n,
            mean: moments.mean(),
            unadjusted_mean: moments.mean(),
            variance: moments.variance(),
        }
    }

    /// A ratio of per-user sums, Σx / Σy (clicks per impression), with the
    /// delta method's variance: users, not impressions, are independent, so
    /// a binomial variance over impressions would be too small.
    pub fn ratio_of(moments: &PairedMoments) -> Estimate {
        let (numerator, denominator) = (&moments.x, &moments.y);
        let mean = if denominator.sum == 0.0 { 0.0 } else { numerator.sum / denominator.sum };
        let d_mean = denominator.mean();
        let variance = if d_mean == 0.0 || moments.n() <= 1 {
            0.0
        } else {
            let m_mean = numerator.mean();
            numerator.variance() / d_mean.powi(2)
                - 2.0 * moments.covariance() * m_mean / d_mean.powi(3)
                + m_mean.powi(2) * denominator.variance() / d_mean.powi(4)
        };
        Estimate { n: moments.n(), mean, unadjusted_mean: mean, variance }
    }

    /// CUPED: the mean of `x − θ·y` where `y` is the user's pre-experiment
    /// value of the same metric and θ is pooled over the variants compared
    /// ([`cuped_theta`]). Randomisation makes `y` independent of the
    /// variant, so the lift is unbiased and its variance shrinks by the
    /// share of `x`'s variance that `y` explains.
    pub fn cuped(moments: &PairedMoments, theta: f64) -> Estimate {
        let (post, pre) = (&moments.x, &moments.y);
        let variance = if moments.n() <= 1 {
            0.0
        } else {
            post.variance() + theta * theta * pre.variance() - 2.0 * theta * moments.covariance()
        };
        Estimate {
            n: moments.n(),
            mean: post.mean() - theta * pre.mean(),
            unadjusted_mean: post.mean(),
            variance,
        }
    }
}

/// CUPED's θ = cov(x, y) / var(y) over both variants together; 0 when
/// either has no variance (nothing to adjust by).
pub fn cuped_theta(control: &PairedMoments, treatment: &PairedMoments) -> f64 {
    let joint = control.merge(treatment);
    if joint.y.variance() == 0.0 || joint.x.variance() == 0.0 {
        return 0.0;
    }
    joint.covariance() / joint.y.variance()
}

/// The share of the lift's variance CUPED removed: 1 − var(adjusted
/// difference) / var(plain difference).
pub fn variance_reduction(plain: (&Estimate, &Estimate), adjusted: (&Estimate, &Estimate)) -> f64 {
    let difference_variance =
        |a: &Estimate, b: &Estimate| a.variance / a.n as f64 + b.variance / b.n as f64;
    let before = difference_variance(plain.0, plain.1);
    if before == 0.0 {
        return 0.0;
    }
    1.0 - difference_variance(adjusted.0, adjusted.1) / before
}
