//! Lazy Adam: Adam whose moments and step count live with each row and move
//! only when the row is in a batch, so untouched rows cost nothing.

use super::RowOptimizer;

/// Row-wise Adam. State: first and second moments (2 slots per coordinate,
/// laid out `[m_0..m_D, v_0..v_D]`); the step count is the table's per-row count.
#[derive(Debug, Clone, Copy)]
pub struct LazyAdam {
    /// Learning rate.
    pub lr: f32,
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Denominator guard.
    pub epsilon: f32,
}

impl RowOptimizer for LazyAdam {
    fn name(&self) -> &'static str {
        "adam"
    }

    fn state_per_dim(&self) -> usize {
        2
    }

    fn update(&self, weights: &mut [f32], state: &mut [f32], grad: &[f32], row_step: u32) {
        let (m, v) = state.split_at_mut(weights.len());
        let t = row_step as i32 + 1;
        let correction1 = 1.0 - self.beta1.powi(t);
        let correction2 = 1.0 - self.beta2.powi(t);
        // Zipped rather than indexed so that the loop has no bounds checks
        // and vectorises.
        for (((w, m), v), &g) in weights.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(grad) {
            *m = self.beta1 * *m + (1.0 - self.beta1) * g;
            *v = self.beta2 * *v + (1.0 - self.beta2) * g * g;
            let m_hat = *m / correction1;
            let v_hat = *v / correction2;
            *w -= self.lr * m_hat / (v_hat.sqrt() + self.epsilon);
        }
    }
}
