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
    /// Seconds of training after which the run stops at the end of the
    /// epoch, keeping its best epoch so far.
    #[serde(default)]
    pub time_budget_s: Option<f64>,
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
    /// Upper bound on epochs.
    pub max_epochs: Option<usize>,
    /// Epochs without a better validation metric before stopping.
    pub patience: Option<usize>,
    /// Seconds of training before the run stops, keeping its best epoch.
    pub time_budget_s: Option<f64>,
}

/// A model's own hyperparameters from `[training.<model>]` or a tuning
/// trial; `None` keeps the model's default. Which apply to which model is
/// `cascade_models::registry::ModelKind::hyperparameters`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hyperparameters {
    /// EASE: the L2 strength λ (no validation search).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lambda: Option<f64>,
    /// EASE: the λ values searched on validation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lambda_grid: Option<Vec<f64>>,
    /// ItemKNN: neighbours kept per item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k: Option<usize>,
    /// ItemKNN: the cosine's shrinkage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shrink: Option<f64>,
    /// Embedding size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dim: Option<usize>,
    /// Embeddings start uniform in ±init_scale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_scale: Option<f32>,
    /// Dropout while training.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropout: Option<f32>,
    /// SASRec: the dropout rates searched on validation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropout_grid: Option<Vec<f32>>,
    /// Longest sequence read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<usize>,
    /// Sampled negatives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub negatives: Option<usize>,
    /// SASRec: catalogues up to this many items train with the full softmax.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_softmax_max_items: Option<usize>,
    /// Learning rate (trials set it here; `Overrides` carries the flag's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learning_rate: Option<f32>,
}

impl Hyperparameters {
    /// The keys set, for checking that each applies to the model.
    pub fn keys_set(&self) -> Vec<&'static str> {
        let set = [
            ("lambda", self.lambda.is_some()),
            ("lambda_grid", self.lambda_grid.is_some()),
            ("k", self.k.is_some()),
            ("shrink", self.shrink.is_some()),
            ("dim", self.dim.is_some()),
            ("init_scale", self.init_scale.is_some()),
            ("dropout", self.dropout.is_some()),
            ("dropout_grid", self.dropout_grid.is_some()),
            ("max_length", self.max_length.is_some()),
            ("negatives", self.negatives.is_some()),
            ("full_softmax_max_items", self.full_softmax_max_items.is_some()),
            ("learning_rate", self.learning_rate.is_some()),
        ];
        set.into_iter().filter(|(_, on)| *on).map(|(key, _)| key).collect()
    }

    /// "key=value ..." of the keys set, for reports.
    pub fn describe(&self) -> String {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(map)) => {
                map.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
            }
            _ => String::new(),
        }
    }
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
        if let Some(max_epochs) = overrides.max_epochs {
            self.max_epochs = max_epochs.max(1);
        }
        if let Some(patience) = overrides.patience {
            self.patience = patience;
        }
        if overrides.time_budget_s.is_some() {
            self.time_budget_s = overrides.time_budget_s;
        }
    }
}
