//! Row-wise sparse optimizers: each update touches one embedding row and that
//! row's own state, so a step costs O(rows in the batch × D) whatever the
//! table's size.

mod adagrad;
mod adam;
mod ftrl;

pub use adagrad::Adagrad;
pub use adam::LazyAdam;
pub use ftrl::Ftrl;

use serde::{Deserialize, Serialize};

/// An optimizer that updates one row at a time.
pub trait RowOptimizer: Send + Sync + std::fmt::Debug {
    /// Name for manifests and logs.
    fn name(&self) -> &'static str;
    /// State slots per weight coordinate (Adagrad 1, Adam 2, FTRL 2).
    fn state_per_dim(&self) -> usize;
    /// Applies `grad` to `weights` using and updating `state`; `row_step` is
    /// how many updates this row has had before (for bias correction).
    fn update(&self, weights: &mut [f32], state: &mut [f32], grad: &[f32], row_step: u32);
}

/// Optimizer settings, as they appear in configs and manifests.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case", deny_unknown_fields)]
pub enum OptimizerConfig {
    /// Adagrad: per-coordinate learning rates from accumulated squared gradients.
    Adagrad {
        /// Learning rate.
        lr: f32,
        /// Initial accumulator value.
        #[serde(default = "default_adagrad_init")]
        initial_accumulator: f32,
    },
    /// Adam with per-row state and per-row step counts (TensorFlow's LazyAdam).
    Adam {
        /// Learning rate.
        lr: f32,
        /// First-moment decay.
        #[serde(default = "default_beta1")]
        beta1: f32,
        /// Second-moment decay.
        #[serde(default = "default_beta2")]
        beta2: f32,
    },
    /// FTRL-Proximal (McMahan et al. 2013), for online learning with sparse solutions.
    Ftrl {
        /// α.
        alpha: f32,
        /// β.
        #[serde(default = "default_ftrl_beta")]
        beta: f32,
        /// L1 strength λ1.
        #[serde(default)]
        l1: f32,
        /// L2 strength λ2.
        #[serde(default)]
        l2: f32,
    },
}

impl OptimizerConfig {
    /// The same optimizer with its step size (Adagrad's and Adam's
    /// learning rate, FTRL's α) multiplied by `factor`: its state keeps its
    /// meaning, so a trained table can switch to it (e.g. smaller steps for
    /// online updates).
    pub fn with_step_scaled(self, factor: f32) -> OptimizerConfig {
        match self {
            OptimizerConfig::Adagrad { lr, initial_accumulator } => {
                OptimizerConfig::Adagrad { lr: lr * factor, initial_accumulator }
            }
            OptimizerConfig::Adam { lr, beta1, beta2 } => {
                OptimizerConfig::Adam { lr: lr * factor, beta1, beta2 }
            }
            OptimizerConfig::Ftrl { alpha, beta, l1, l2 } => {
                OptimizerConfig::Ftrl { alpha: alpha * factor, beta, l1, l2 }
            }
        }
    }
}

fn default_adagrad_init() -> f32 {
    0.1
}
fn default_beta1() -> f32 {
    0.9
}
fn default_beta2() -> f32 {
    0.999
}
fn default_ftrl_beta() -> f32 {
    1.0
}

impl OptimizerConfig {
    /// The step size (FTRL's α).
    pub fn learning_rate(&self) -> f32 {
        match *self {
            OptimizerConfig::Adagrad { lr, .. } | OptimizerConfig::Adam { lr, .. } => lr,
            OptimizerConfig::Ftrl { alpha, .. } => alpha,
        }
    }

    /// The same optimizer with step size `rate`.
    pub fn with_learning_rate(mut self, rate: f32) -> OptimizerConfig {
        match &mut self {
            OptimizerConfig::Adagrad { lr, .. } | OptimizerConfig::Adam { lr, .. } => *lr = rate,
            OptimizerConfig::Ftrl { alpha, .. } => *alpha = rate,
        }
        self
    }

    /// Builds the optimizer.
    pub fn build(&self) -> Box<dyn RowOptimizer> {
        match *self {
            OptimizerConfig::Adagrad { lr, initial_accumulator } => {
                Box::new(Adagrad { lr, initial_accumulator })
            }
            OptimizerConfig::Adam { lr, beta1, beta2 } => {
                Box::new(LazyAdam { lr, beta1, beta2, epsilon: 1e-8 })
            }
            OptimizerConfig::Ftrl { alpha, beta, l1, l2 } => Box::new(Ftrl { alpha, beta, l1, l2 }),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Minimises ½‖w − target‖² with each optimizer; all must get close.
    fn converges(config: OptimizerConfig) -> f32 {
        let optimizer = config.build();
        let target = [0.5f32, -1.0, 2.0];
        let mut weights = [0.0f32; 3];
        let mut state = vec![0.0f32; 3 * optimizer.state_per_dim()];
        for step in 0..3000 {
            let grad: Vec<f32> = weights.iter().zip(&target).map(|(w, t)| w - t).collect();
            optimizer.update(&mut weights, &mut state, &grad, step);
        }
        weights.iter().zip(&target).map(|(w, t)| (w - t).abs()).fold(0.0, f32::max)
    }

    #[test]
    fn every_optimizer_minimises_a_quadratic() {
        assert!(converges(OptimizerConfig::Adagrad { lr: 0.5, initial_accumulator: 0.1 }) < 1e-2);
        assert!(converges(OptimizerConfig::Adam { lr: 0.05, beta1: 0.9, beta2: 0.999 }) < 1e-2);
        assert!(
            converges(OptimizerConfig::Ftrl { alpha: 0.5, beta: 1.0, l1: 0.0, l2: 0.0 }) < 1e-2
        );
    }

    #[test]
    fn configs_round_trip_through_json() {
        let config = OptimizerConfig::Ftrl { alpha: 0.1, beta: 1.0, l1: 0.01, l2: 0.0 };
        let text = serde_json::to_string(&config).unwrap();
        assert_eq!(serde_json::from_str::<OptimizerConfig>(&text).unwrap(), config);
        let err = serde_json::from_str::<OptimizerConfig>(r#"{"name":"sgdx","lr":1}"#).unwrap_err();
        assert!(err.to_string().contains("sgdx"), "{err}");
    }

    proptest! {
        #[test]
        fn a_zero_gradient_never_moves_adagrad_or_adam(w in prop::collection::vec(-3.0f32..3.0, 4), step in 0u32..100) {
            for config in [OptimizerConfig::Adagrad { lr: 0.1, initial_accumulator: 0.1 }, OptimizerConfig::Adam { lr: 0.1, beta1: 0.9, beta2: 0.999 }] {
                let optimizer = config.build();
                let mut weights = w.clone();
                let mut state = vec![0.0f32; 4 * optimizer.state_per_dim()];
                optimizer.update(&mut weights, &mut state, &[0.0; 4], step);
                prop_assert_eq!(&weights, &w);
            }
        }
    }
}
