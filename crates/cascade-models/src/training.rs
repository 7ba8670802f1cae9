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
