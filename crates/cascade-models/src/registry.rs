//! The model registry: every model Cascade trains or counts, by the one
//! name (`ModelKind::name`) that `cascade train --model`, `[training.<name>]`,
//! checkpoint folders (`<models>/<name>/`) and their manifests all use.
//! Adding a model is one entry here (and its training arm in the app).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use cascade_nn::EmbeddingTable;
use cascade_nn::checkpoint::{self, Checkpoint, CheckpointError, FORMAT_VERSION, Manifest};

use crate::ranking::inputs::SparseInputs;
use crate::ranking::{CtrArch, CtrModel, CtrModelConfig};

/// What a model answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelTask {
    /// Ranks every item for a user (evaluated by full ranking).
    ItemRanking,
    /// Predicts a click or a like for a (user, item) pair (AUC, LogLoss).
    ClickPrediction,
}

/// The external ids a checkpoint's table rows stand for: row `k` of a user
/// table is `users[k]`, of an item table `items[k]`. Kept beside the
/// tensors (`ids.json`), so serving maps rows to its own catalog by id,
/// whatever has been added since, without re-deriving the training split.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CheckpointIds {
    /// User ids, by row.
    pub users: Vec<String>,
    /// Item ids, by row.
    pub items: Vec<String>,
}

const IDS_FILE: &str = "ids.json";

/// What a trained model leaves behind for its checkpoint.
#[derive(Debug)]
pub struct Artifacts<'a> {
    /// Its embedding tables.
    pub tables: Vec<&'a EmbeddingTable>,
    /// Its dense tensors by name.
    pub dense: Vec<(String, Tensor)>,
    /// Its settings, typed per model (for a ranker, [`RankerManifest`]).
    pub settings: serde_json::Value,
    /// Its metrics, by name.
    pub metrics: BTreeMap<String, f64>,
    /// The ids its rows stand for, where rows are dense user and item
    /// indices (retrieval models; a ranker's rows are hashed values).
    pub ids: Option<CheckpointIds>,
}

/// A ranking model's settings as its manifest keeps them: what serving
/// needs to rebuild it and check it against the running schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankerManifest {
    /// The architecture and its hyperparameters.
    pub model: CtrModelConfig,
    /// The input fields, in the order the model reads them.
    pub fields: Vec<String>,
}

/// Why a model could not be saved or restored.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The checkpoint's files or manifest.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The manifest's settings are not this model's.
    #[error("the manifest's settings: {0}")]
    Settings(#[from] serde_json::Error),
    /// Rebuilding the model's tensors.
    #[error("the model's tensors: {0}")]
    Tensor(#[from] candle_core::Error),
}

impl RankerManifest {
    /// Reads it from a checkpoint's manifest.
    pub fn of(checkpoint: &Checkpoint) -> Result<RankerManifest, ModelError> {
        Ok(serde_json::from_value(checkpoint.manifest.features.clone())?)
    }

    /// Rebuilds the ranking model `checkpoint` holds (its tables restored
    /// by name), whose item id field is `item_field`; with its settings.
    pub fn restore(
        mut checkpoint: Checkpoint,
        item_field: usize,
    ) -> Result<(CtrModel, RankerManifest), ModelError> {
        let settings = RankerManifest::of(&checkpoint)?;
        let linear = checkpoint.take_table(SparseInputs::LINEAR_TABLE)?;
        let embedding = checkpoint.take_table(SparseInputs::EMBEDDING_TABLE)?;
        let fields = settings.fields.len();
        let model = CtrModel::from_parts(
            &settings.model,
            fields,
            item_field,
            linear,
            embedding,
            &checkpoint.dense,
        )?;
        Ok((model, settings))
    }

    /// As a manifest keeps it.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::json!({ "model": self.model, "fields": self.fields })
    }
}

/// Every model, as `cascade train`, `eval`, `serve --ranker` and the
/// benchmarks name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelKind {
    /// Most popular items.
    Pop,
    /// Item-item cosine neighbours.
    Itemknn,
    /// EASE, the closed-form linear autoencoder.
    Ease,
    /// BPR matrix factorisation.
    BprMf,
    /// Neural matrix factorisation (GMF + MLP).
    Neumf,
    /// Two towers with in-batch softmax.
    TwoTower,
    /// Self-attentive sequential recommendation.
    Sasrec,
    /// Smoothed user and item positive rates.
    BiasCtr,
    /// Logistic regression.
    Lr,
    /// Factorization machine.
    Fm,
    /// Wide & Deep.
    WideDeep,
    /// DeepFM.
    Deepfm,
    /// DCNv2.
    Dcnv2,
    /// Deep Interest Network.
    Din,
    /// Deep Interest Evolution Network.
    Dien,
}

impl ModelKind {
    /// Every model, in the order help texts list them.
    pub const ALL: [ModelKind; 15] = [
        ModelKind::Pop,
        ModelKind::Itemknn,
        ModelKind::Ease,
        ModelKind::BprMf,
        ModelKind::Neumf,
        ModelKind::TwoTower,
        ModelKind::Sasrec,
        ModelKind::BiasCtr,
        ModelKind::Lr,
        ModelKind::Fm,
        ModelKind::WideDeep,
        ModelKind::Deepfm,
        ModelKind::Dcnv2,
        ModelKind::Din,
        ModelKind::Dien,
    ];

    /// The name users type, checkpoints are stored under and
    /// `[training.<name>]` configures.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Pop => "pop",
            ModelKind::Itemknn => "itemknn",
            ModelKind::Ease => "ease",
            ModelKind::BprMf => "bpr-mf",
            ModelKind::Neumf => "neumf",
            ModelKind::TwoTower => "two-tower",
            ModelKind::Sasrec => "sasrec",
            ModelKind::BiasCtr => "bias-ctr",
            ModelKind::Lr => "lr",
            ModelKind::Fm => "fm",
            ModelKind::WideDeep => "wide-deep",
            ModelKind::Deepfm => "deepfm",
            ModelKind::Dcnv2 => "dcnv2",
            ModelKind::Din => "din",
            ModelKind::Dien => "dien",
        }
    }

    /// The hyperparameter keys of `[training.<name>]` (beyond learning
    /// rate, batch size, seed, epochs, patience and time budget) that this
    /// model reads.
    pub fn hyperparameters(self) -> &'static [&'static str] {
        match self {
            ModelKind::Ease => &["lambda", "lambda_grid"],
            ModelKind::Itemknn => &["k", "shrink"],
            ModelKind::BprMf => &["dim", "init_scale", "learning_rate"],
            ModelKind::TwoTower => &["dim", "learning_rate"],
            ModelKind::Neumf => &["dim", "negatives", "learning_rate"],
            ModelKind::Sasrec => &[
                "dim",
                "dropout",
                "dropout_grid",
                "max_length",
                "negatives",
                "full_softmax_max_items",
                "learning_rate",
            ],
            ModelKind::Pop | ModelKind::BiasCtr => &[],
            ModelKind::Lr
            | ModelKind::Fm
            | ModelKind::WideDeep
            | ModelKind::Deepfm
            | ModelKind::Dcnv2
            | ModelKind::Din
            | ModelKind::Dien => &["dim", "learning_rate"],
        }
    }

    /// One line for help texts: what the model is and the protocol it fits.
    pub fn about(self) -> &'static str {
        match self {
            ModelKind::Pop => "Most popular items by train count (loo-full)",
            ModelKind::Itemknn => "Item-item cosine neighbours (loo-full)",
            ModelKind::Ease => "EASE closed-form linear model, λ tuned on validation (loo-full)",
            ModelKind::BprMf => {
                "BPR matrix factorisation on sparse embedding tables, early-stopped on validation (loo-full)"
            }
            ModelKind::Neumf => {
                "NeuMF: GMF and an MLP over user and item embeddings, early-stopped on validation (loo-full)"
            }
            ModelKind::TwoTower => {
                "Two-tower: user features + recent items vs item features, in-batch softmax with logQ correction (loo-full)"
            }
            ModelKind::Sasrec => {
                "SASRec: causal self-attention over the user's sequence, early-stopped on validation (loo-full)"
            }
            ModelKind::BiasCtr => "Smoothed user and item positive rates (ctr)",
            ModelKind::Lr => "Logistic regression on every user and item feature (ctr)",
            ModelKind::Fm => {
                "Factorization machine over every user and item feature, on sparse tables (ctr)"
            }
            ModelKind::WideDeep => {
                "Wide & Deep: first-order weights plus an MLP over field embeddings (ctr)"
            }
            ModelKind::Deepfm => "DeepFM: FM plus an MLP over the same field embeddings (ctr)",
            ModelKind::Dcnv2 => "DCNv2: full-rank cross layers, then an MLP (ctr)",
            ModelKind::Din => {
                "DIN: attention over the user's last items, keyed by the target item (ctr)"
            }
            ModelKind::Dien => {
                "DIEN: GRU interest extractor with auxiliary loss, AUGRU evolution (ctr)"
            }
        }
    }

    /// The ranking architecture this model is, if it is one.
    pub fn ctr_arch(self) -> Option<CtrArch> {
        Some(match self {
            ModelKind::Lr => CtrArch::Lr,
            ModelKind::Fm => CtrArch::Fm,
            ModelKind::WideDeep => CtrArch::WideDeep,
            ModelKind::Deepfm => CtrArch::DeepFm,
            ModelKind::Dcnv2 => CtrArch::DcnV2,
            ModelKind::Din => CtrArch::Din,
            ModelKind::Dien => CtrArch::Dien,
            _ => return None,
        })
    }

    /// What the model answers, and so which protocols evaluate it.
    pub fn task(self) -> ModelTask {
        match (self, self.ctr_arch()) {
            (ModelKind::BiasCtr, _) | (_, Some(_)) => ModelTask::ClickPrediction,
            _ => ModelTask::ItemRanking,
        }
    }

    /// Whether it reads each user's recent items (a click log without
    /// histories cannot evaluate it).
    pub fn reads_history(self) -> bool {
        matches!(self.ctr_arch(), Some(CtrArch::Din | CtrArch::Dien))
            || matches!(self, ModelKind::Sasrec | ModelKind::TwoTower)
    }

    /// Whether `cascade train` trains it epoch by epoch and writes a
    /// checkpoint (the others are closed-form or counts).
    pub fn is_trained(self) -> bool {
        self.ctr_arch().is_some()
            || matches!(
                self,
                ModelKind::BprMf | ModelKind::Neumf | ModelKind::TwoTower | ModelKind::Sasrec
            )
    }

    /// Writes a checkpoint of this model into `dir`: its tables and dense
    /// tensors, with a manifest naming it by [`ModelKind::name`].
    pub fn save_checkpoint(
        self,
        dir: &Path,
        schema_fingerprint: &str,
        artifacts: &Artifacts<'_>,
    ) -> Result<(), CheckpointError> {
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            model: self.name().to_owned(),
            schema_fingerprint: schema_fingerprint.to_owned(),
            features: artifacts.settings.clone(),
            tables: artifacts.tables.iter().map(|t| t.config().clone()).collect(),
            dense: artifacts.dense.iter().map(|(n, _)| n.clone()).collect(),
            metrics: artifacts.metrics.clone(),
            data_range: None,
            version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        checkpoint::save(dir, &manifest, &artifacts.tables, &artifacts.dense)?;
        let ids_path = dir.join(IDS_FILE);
        let written = match &artifacts.ids {
            Some(ids) => serde_json::to_vec(ids)
                .map_err(std::io::Error::other)
                .and_then(|bytes| std::fs::write(&ids_path, bytes)),
            // No stale ids of an earlier save may describe these rows.
            None => std::fs::remove_file(&ids_path).or_else(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Ok(()),
                _ => Err(e),
            }),
        };
        written.map_err(|e| CheckpointError {
            path: dir.to_owned(),
            message: format!("{IDS_FILE}: {e}"),
        })
    }

    /// The ids the checkpoint in `dir` was saved with, if it was saved
    /// with any (checkpoints written before ids were kept have none).
    pub fn load_ids(self, dir: &Path) -> Result<Option<CheckpointIds>, ModelError> {
        match std::fs::read(dir.join(IDS_FILE)) {
            Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ModelError::Checkpoint(CheckpointError {
                path: dir.to_owned(),
                message: format!("{IDS_FILE}: {e}"),
            })),
        }
    }

    /// Loads this model's checkpoint from `dir`, refused unless its manifest
    /// names this model and `schema_fingerprint`.
    pub fn load_checkpoint(
        self,
        dir: &Path,
        schema_fingerprint: &str,
    ) -> Result<Checkpoint, CheckpointError> {
        checkpoint::load(dir, self.name(), schema_fingerprint)
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ModelKind {
    type Err = String;

    fn from_str(name: &str) -> Result<ModelKind, String> {
        ModelKind::ALL.into_iter().find(|m| m.name() == name).ok_or_else(|| {
            let names: Vec<&str> = ModelKind::ALL.iter().map(|m| m.name()).collect();
            format!("no model named `{name}`; models: {}", names.join(", "))
        })
    }
}
