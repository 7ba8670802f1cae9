//! Sufficient statistics: what a variant keeps per metric, updated one user
//! at a time and merged across shards or days.

use serde::{Deserialize, Serialize};

/// The count, sum and sum of squares of one per-user value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Moments {
    pub n: u64,
    pub sum: f64,
    pub sum_squares: f64,
}

impl Moments {
    /// The moments of `values`.
    pub fn of(values: &[f64]) -> Moments {
        let mut moments = Moments::default();
        for &value in values {
            moments.add(value);
        }
        moments
    }

    /// One more user's value.
    pub fn add(&mut self, value: f64) {
        self.n += 1;
        self.sum += value;
        self.sum_squares += value * value;
    }

    /// The moments of both groups together.
    pub fn merge(&self, other: &Moments) -> Moments {
        Moments {
            n: self.n + other.n,
            sum: self.sum + other.sum,
            sum_squares: self.sum_squares + other.sum_squares,
        }
    }

    pub fn mean(&self) -> f64 {
        if self.n == 0 { 0.0 } else { self.sum / self.n as f64 }
    }

    /// The sample variance (n − 1 in the denominator); 0 below two users.
    pub fn variance(&self) -> f64 {
        if self.n <= 1 {
            return 0.0;
        }
        let n = self.n as f64;
        (self.sum_squares - self.sum * self.sum / n) / (n - 1.0)
    }
}

/// Two per-user values kept together: a ratio's numerator (`x`) and
/// denominator (`y`), or a metric (`x`) and its pre-period value (`y`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PairedMoments {
    pub x: Moments,
    pub y: Moments,
    pub sum_of_products: f64,
}

impl PairedMoments {
    /// The moments of the pairs `(x[i], y[i])`.
    pub fn of(x: &[f64], y: &[f64]) -> PairedMoments {
        let mut moments = PairedMoments::default();
        for (&x, &y) in x.iter().zip(y) {
            moments.add(x, y);
        }
        moments
    }

    /// One more user's pair.
    pub fn add(&mut self, x: f64, y: f64) {
        self.x.add(x);
        self.y.add(y);
        self.sum_of_products += x * y;
    }

    /// The moments of both groups together.
    pub fn merge(&self, other: &PairedMoments) -> PairedMoments {
        PairedMoments {
            x: self.x.merge(&other.x),
            y: self.y.merge(&other.y),
            sum_of_products: self.sum_of_products + other.sum_of_products,
        }
    }

    /// Users counted (the pairs are per user, so `x.n == y.n`).
    pub fn n(&self) -> u64 {
        self.x.n
    }

    /// The sample covariance of x and y; 0 below two users.
    pub fn covariance(&self) -> f64 {
        if self.n() <= 1 {
            return 0.0;
        }
        let n = self.n() as f64;
        (self.sum_of_products - self.x.sum * self.y.sum / n) / (n - 1.0)
    }
}
