//! Adagrad: `acc += g²; w −= lr · g / sqrt(acc)`.

use super::RowOptimizer;

/// Row-wise Adagrad. State: the accumulator (1 slot per coordinate), which
/// starts at `initial_accumulator` (stored as an offset so zeroed state works).
#[derive(Debug, Clone, Copy)]
pub struct Adagrad {
    /// Learning rate.
    pub lr: f32,
    /// Initial accumulator value.
    pub initial_accumulator: f32,
}

impl RowOptimizer for Adagrad {
    fn name(&self) -> &'static str {
        "adagrad"
    }

    fn state_per_dim(&self) -> usize {
        1
    }

    fn update(&self, weights: &mut [f32], state: &mut [f32], grad: &[f32], _row_step: u32) {
        for ((w, acc), &g) in weights.iter_mut().zip(state.iter_mut()).zip(grad) {
            *acc += g * g;
            *w -= self.lr * g / (*acc + self.initial_accumulator).sqrt();
        }
    }
}
