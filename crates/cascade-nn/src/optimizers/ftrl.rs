//! FTRL-Proximal (McMahan et al., "Ad Click Prediction: a View from the
//! Trenches", KDD 2013), per coordinate:
//! `σ = (sqrt(n + g²) − sqrt(n)) / α; z += g − σ·w; n += g²;`
//! `w = 0 if |z| ≤ λ1, else −(z − sign(z)·λ1) / ((β + sqrt(n)) / α + λ2)`.

use super::RowOptimizer;

/// Row-wise FTRL-Proximal. State: z and n (2 slots per coordinate, laid out
/// `[z_0..z_D, n_0..n_D]`). Weights are a function of the state; a fresh row's
/// initial weights are kept until its first update.
#[derive(Debug, Clone, Copy)]
pub struct Ftrl {
    /// α (learning-rate scale).
    pub alpha: f32,
    /// β (learning-rate smoothing).
    pub beta: f32,
    /// L1 strength; larger values give more exact zeros.
    pub l1: f32,
    /// L2 strength.
    pub l2: f32,
}

impl RowOptimizer for Ftrl {
    fn name(&self) -> &'static str {
        "ftrl"
    }

    fn state_per_dim(&self) -> usize {
        2
    }

    fn update(&self, weights: &mut [f32], state: &mut [f32], grad: &[f32], _row_step: u32) {
        let (z, n) = state.split_at_mut(weights.len());
        for i in 0..weights.len() {
            let g = grad[i];
            let sigma = ((n[i] + g * g).sqrt() - n[i].sqrt()) / self.alpha;
            z[i] += g - sigma * weights[i];
            n[i] += g * g;
            weights[i] = if z[i].abs() <= self.l1 {
                0.0
            } else {
                -(z[i] - z[i].signum() * self.l1)
                    / ((self.beta + n[i].sqrt()) / self.alpha + self.l2)
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strong_l1_gives_exact_zeros() {
        let ftrl = Ftrl { alpha: 0.1, beta: 1.0, l1: 10.0, l2: 0.0 };
        let mut weights = [0.3f32, -0.2];
        let mut state = [0.0f32; 4];
        ftrl.update(&mut weights, &mut state, &[0.5, -0.5], 0);
        assert_eq!(weights, [0.0, 0.0]);
    }
}
