//! Training one model to a checkpoint (`cascade train`): early stopping on
//! validation, the best epoch saved through the registry (safetensors,
//! manifest, and the ids its rows stand for) with its training curves as
//! SVG under `<workspace>/models/<model>/`, and test metrics measured once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use candle_core::Tensor;

use cascade_eval::plots::training_curves;
use cascade_eval::protocols::{Stage, evaluate_ctr, evaluate_loo};
use cascade_models::registry::{Artifacts, CheckpointIds, RankerManifest};
use cascade_models::retrieval::{BprMf, EpochReport, NeuMf, SasRec, TwoTower};
use cascade_models::training::Overrides;
use cascade_nn::EmbeddingTable;

use crate::evaluation::{prepare, tower_features};
use crate::model_selection::tuned_model_settings;
use crate::progress::Progress;
use crate::ranking::{self, ContextFeatures};
use crate::registry::ModelKind;
use crate::workspace::Workspace;

/// What `train` did, for the caller to report.
#[derive(Debug, Clone)]
pub struct TrainReport {
    /// The checkpoint directory.
    pub dir: PathBuf,
    /// The training curves (SVG).
    pub plot: PathBuf,
    /// Epochs trained.
    pub epochs: usize,
    /// What validation measured (`valid NDCG@10`, `valid AUC`).
    pub valid_name: &'static str,
    /// The best validation value.
    pub best_valid: f64,
    /// Test metrics, measured once.
    pub test: BTreeMap<String, f64>,
}

/// What a trained model leaves behind.
struct Trained<'a> {
    tables: Vec<&'a EmbeddingTable>,
    dense: Vec<(String, Tensor)>,
    losses: Vec<f64>,
    valid: Vec<f64>,
    valid_name: &'static str,
    test: BTreeMap<String, f64>,
    settings: serde_json::Value,
}

fn curves(reports: &[EpochReport]) -> (Vec<f64>, Vec<f64>) {
    (reports.iter().map(|r| r.loss).collect(), reports.iter().map(|r| r.valid_ndcg10).collect())
}

/// Trains `model` on `workspace` (importing `data` first if given), with
/// `overrides` over its `[training.<model>]` settings, and writes its
/// checkpoint and curves.
pub fn train(
    workspace: &Workspace,
    model: ModelKind,
    data: Option<&Path>,
    overrides: Overrides,
    progress: Progress,
) -> Result<TrainReport> {
    let name = model.name();
    if !model.is_trained() {
        bail!(
            "model `{name}` has no training loop (closed-form or counting); use `cascade eval --model {name}`"
        )
    }
    let settings = tuned_model_settings(workspace, model, overrides)?;
    let prepared = prepare(workspace, data, progress)?;
    let split = &prepared.split;
    let bar = progress.bar(0, &format!("training {name}"), "epochs");
    let tick = |epoch: &EpochReport| {
        bar.set_message(format!("valid NDCG@10 {:.4}", epoch.valid_ndcg10));
        bar.inc(1);
    };
    // Each arm keeps its model alive in one of these so `Trained` can borrow its tables.
    let (bpr, neumf, two_tower, ctr);
    let trained = match model {
        ModelKind::BprMf => {
            let config = settings.bpr_mf();
            let (model, reports) = BprMf::train(split, &config, tick)?;
            bpr = model;
            let (losses, valid) = curves(&reports);
            let (users, items) = bpr.tables();
            Trained {
                tables: vec![users, items],
                dense: Vec::new(),
                losses,
                valid,
                valid_name: "valid NDCG@10",
                test: evaluate_loo(&bpr, split, Stage::Test).metrics,
                settings: serde_json::to_value(&config)?,
            }
        }
        ModelKind::Neumf => {
            let config = settings.neumf();
            let (model, reports) = NeuMf::train(split, &config, tick)?;
            neumf = model;
            let (losses, valid) = curves(&reports);
            let (tables, dense) = neumf.parts()?;
            Trained {
                tables,
                dense: dense.tensors().to_vec(),
                losses,
                valid,
                valid_name: "valid NDCG@10",
                test: evaluate_loo(&neumf, split, Stage::Test).metrics,
                settings: serde_json::to_value(&config)?,
            }
        }
        ModelKind::TwoTower => {
            let config = settings.two_tower();
            let features = tower_features(workspace, &prepared)?;
            let (model, reports) = TwoTower::train(split, features, &config, tick)?;
            two_tower = model;
            let (losses, valid) = curves(&reports);
            let (table, dense) = two_tower.parts()?;
            Trained {
                tables: vec![table],
                dense: dense.tensors().to_vec(),
                losses,
                valid,
                valid_name: "valid NDCG@10",
                test: evaluate_loo(&two_tower, split, Stage::Test).metrics,
                settings: serde_json::to_value(&config)?,
            }
        }
        ModelKind::Sasrec => {
            let config = settings.sasrec();
            let (model, reports) = SasRec::train(split, &config, tick)?;
            let (losses, valid) = curves(&reports);
            Trained {
                tables: Vec::new(),
                dense: model.parts()?.tensors().to_vec(),
                losses,
                valid,
                valid_name: "valid NDCG@10",
                test: evaluate_loo(&model, split, Stage::Test).metrics,
                settings: serde_json::to_value(&config)?,
            }
        }
        other => {
            let arch = other.ctr_arch().context("a trained model, checked above")?;
            let config = settings.ctr(arch);
            let ctr_split = prepared.pipeline.ctr_split(&prepared.users, &prepared.items)?;
            let inputs = ranking::encode(
                workspace,
                &prepared,
                &ctr_split,
                config.history_length,
                ContextFeatures::Declared,
                ranking::RankingLabels::Protocol,
            )?;
            let (model, epochs) = ranking::train(&inputs, &config, Progress { quiet: true })?;
            ctr = model;
            let report = evaluate_ctr(&ctr, &inputs.test);
            let (tables, dense) = ctr.parts()?;
            Trained {
                tables: tables.to_vec(),
                dense: dense.tensors().to_vec(),
                losses: epochs.iter().map(|e| e.train_loss).collect(),
                valid: epochs.iter().map(|e| e.valid_auc).collect(),
                valid_name: "valid AUC",
                test: [("auc", report.auc), ("logloss", report.logloss), ("gauc", report.gauc)]
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect(),
                settings: RankerManifest { model: config, fields: inputs.field_names.clone() }
                    .to_value(),
            }
        }
    };
    bar.finish_and_clear();
    let dir = workspace.dir.join("models").join(name);
    let artifacts = Artifacts {
        tables: trained.tables.clone(),
        dense: trained.dense.clone(),
        settings: trained.settings.clone(),
        metrics: trained.test.iter().map(|(k, v)| (format!("test {k}"), *v)).collect(),
        // Retrieval tables' rows are the split's dense indices; a ranker's
        // are hashed feature values and need no ids.
        ids: model.ctr_arch().is_none().then(|| CheckpointIds {
            users: prepared.users.ids().to_vec(),
            items: prepared.items.ids().to_vec(),
        }),
    };
    model
        .save_checkpoint(&dir, &workspace.schema_fingerprint(), &artifacts)
        .with_context(|| format!("writing the checkpoint of `{name}`"))?;
    let plot = dir.join("curves.svg");
    training_curves(
        &plot,
        &format!("{name}: training curves"),
        &[("train loss", &trained.losses), (trained.valid_name, &trained.valid)],
    )
    .map_err(anyhow::Error::msg)?;
    let best_valid = trained.valid.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Ok(TrainReport {
        dir,
        plot,
        epochs: trained.losses.len(),
        valid_name: trained.valid_name,
        best_valid,
        test: trained.test,
    })
}
