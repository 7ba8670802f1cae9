//! Settings every trained model shares: batching, the epoch budget, early
//! stopping, regularisation, the row-wise optimizer of its tables, and the seed.

use serde::{Deserialize, Serialize};

use cascade_nn::OptimizerConfig;

/// How a model is trained (its architecture settings live in its own config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingSettings {
    /// Examples (or triples) per step.
    pub batch_size: usize,
    /// Upper bound on epochs.
    pub max_epochs: usize,
    /// Epochs without a better validation metric before stopping.
    pub patience: usize,
    /// L2 strength on the gathered embedding rows.
    pub reg: f32,
    /// Row-wise optimizer of the model's tables.
    pub optimizer: OptimizerConfig,
    /// Seed of initialisation, shuffling and sampling.
    pub seed: u64,
}

/// What a user may override from the command line for any trained model.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Overrides {
    /// Seed of initialisation, shuffling and sampling.
    pub seed: Option<u64>,
    /// Learning rate of the sparse tables (SASRec: of its dense parameters).
    pub learning_rate: Option<f32>,
    /// Examples per step.
    pub batch_size: Option<usize>,
}

impl TrainingSettings {
    /// These settings with `overrides` applied.
    pub fn apply(&mut self, overrides: &Overrides) {
        if let Some(seed) = overrides.seed {
            self.seed = seed;
        }
        if let Some(batch_size) = overrides.batch_size {
            self.batch_size = batch_size.max(1);
        }
        if let Some(rate) = overrides.learning_rate {
            self.optimizer = self.optimizer.with_learning_rate(rate);
        }
    }
}
