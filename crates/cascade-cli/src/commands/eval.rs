//! `cascade eval`: one model under one protocol, tuned on validation only,
//! scored on test once.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Result, bail};
use clap::ValueEnum;
use serde_json::json;

use cascade_batch::pipeline::{CtrSplit, Pipeline};
use cascade_batch::ranking_features::FieldEncoder;
use cascade_core::IdIndex;
use cascade_eval::protocols::{CtrReport, FullRanker, LooSplit, Stage, evaluate_ctr, evaluate_loo};
use cascade_models::ranking::{CtrArch, CtrModelConfig};
use cascade_models::retrieval::{
    BprMf, BprMfConfig, EpochReport, NeuMf, NeuMfConfig, SasRec, SasRecConfig, TowerFeatures,
    TwoTower, TwoTowerConfig,
};
use cascade_models::training::{Overrides, TrainingSettings};
use cascade_models::tuning::{
    ITEM_KNN_DEFAULT, Trial, ease_grid, item_knn_grid, select_on_validation,
};
use cascade_models::{BiasCtr, Ease, Interactions, ItemKnn, MostPopular, ease::gram_matrix};

use crate::commands::ranking::{self, ContextFeatures};
use crate::progress::Progress;
use crate::workspace::Workspace;
use crate::{Common, ModelName, Protocol};

/// The data every protocol run needs.
pub struct Prepared {
    pub pipeline: Pipeline,
    pub split: LooSplit,
    pub users: IdIndex,
    pub items: IdIndex,
}

/// Imports if needed, exports, and reads the leave-one-out split.
pub fn prepare(workspace: &Workspace, data: Option<&Path>, progress: Progress) -> Result<Prepared> {
    let store = workspace.store()?;
    workspace.ensure_data(&store, data, progress)?;
    let pipeline = workspace.pipeline(&store, progress)?;
    let bar = progress.spinner("computing the leave-one-out split");
    let (split, users, items) = pipeline.loo_split()?;
    bar.finish_and_clear();
    Ok(Prepared { pipeline, split, users, items })
}

/// A model fitted for ML100K-LOO-FULL and its test metrics.
pub struct LooOutcome {
    pub setting: String,
    pub ranker: Box<dyn FullRanker + Send>,
    pub test: BTreeMap<String, f64>,
}

fn model_label(model: ModelName) -> String {
    model.to_possible_value().expect("every model has a name").get_name().to_owned()
}

/// Fits `model`, then evaluates on test once. EASE's λ is always chosen on
/// the validation item; ItemKNN uses RecBole's defaults unless `tune` asks
/// for the validation grid; trained models use `seed` and stop early on validation.
pub fn fit_loo(
    model: ModelName,
    split: &LooSplit,
    tower_features: Option<TowerFeatures>,
    tune: bool,
    overrides: Overrides,
    progress: Progress,
) -> Result<LooOutcome> {
    let name = model_label(model);
    let (ranker, setting): (Box<dyn FullRanker + Send>, String) = match model {
        ModelName::Pop => (Box::new(MostPopular::fit(split)), "train counts".into()),
        ModelName::Itemknn if !tune => {
            let data = Interactions::from_split(split);
            let setting = format!(
                "k={} shrink={} (RecBole defaults)",
                ITEM_KNN_DEFAULT.k, ITEM_KNN_DEFAULT.shrink
            );
            (Box::new(ItemKnn::fit(&data, ITEM_KNN_DEFAULT)), setting)
        }
        ModelName::Itemknn => {
            let grid = item_knn_grid();
            let bar = progress.bar(grid.len() as u64, &format!("tuning {name}"), "settings");
            let data = Interactions::from_split(split);
            let tuned = select_on_validation(
                split,
                &grid,
                |c| format!("k={} shrink={} (chosen on validation)", c.k, c.shrink),
                |c| ItemKnn::fit(&data, *c),
                |_: &Trial| bar.inc(1),
            );
            bar.finish_and_clear();
            (Box::new(tuned.model), tuned.setting)
        }
        ModelName::Ease => {
            let grid = ease_grid();
            let bar = progress.bar(grid.len() as u64, &format!("tuning {name}"), "settings");
            let data = Interactions::from_split(split);
            let gram = gram_matrix(&data);
            let tuned = select_on_validation(
                split,
                &grid,
                |c| format!("lambda={} (chosen on validation)", c.lambda),
                |c| Ease::fit_from_gram(&gram, data.n_items, *c),
                |_: &Trial| bar.inc(1),
            );
            bar.finish_and_clear();
            (Box::new(tuned.model), tuned.setting)
        }
        ModelName::BprMf => {
            let mut config = BprMfConfig::default();
            config.training.apply(&overrides);
            let bar = epoch_bar(progress, &name, config.training.max_epochs);
            let (model, reports) = BprMf::train(split, &config, |epoch| show_epoch(&bar, epoch))?;
            bar.finish_and_clear();
            (
                Box::new(model),
                describe_epochs(&format!("dim={}", config.dim), &reports, &config.training),
            )
        }
        ModelName::Neumf => {
            let mut config = NeuMfConfig::default();
            config.training.apply(&overrides);
            let bar = epoch_bar(progress, &name, config.training.max_epochs);
            let (model, reports) = NeuMf::train(split, &config, |epoch| show_epoch(&bar, epoch))?;
            bar.finish_and_clear();
            let setting = format!(
                "dim={} hidden={:?}, {} negatives per positive",
                config.dim, config.hidden, config.negatives_per_positive
            );
            (Box::new(model), describe_epochs(&setting, &reports, &config.training))
        }
        ModelName::TwoTower => {
            let Some(features) = tower_features else {
                bail!("model `{name}` needs user and item features; none were loaded")
            };
            let mut config = TwoTowerConfig::default();
            config.training.apply(&overrides);
            let bar = epoch_bar(progress, &name, config.training.max_epochs);
            let (model, reports) =
                TwoTower::train(split, features, &config, |epoch| show_epoch(&bar, epoch))?;
            bar.finish_and_clear();
            let setting = format!(
                "dim={} out={} hidden={:?} last {} items, tau={}",
                config.dim,
                config.output_dim,
                config.hidden,
                config.history_length,
                config.temperature
            );
            (Box::new(model), describe_epochs(&setting, &reports, &config.training))
        }
        ModelName::Sasrec => {
            let mut config = SasRecConfig::default();
            config.training.apply(&overrides);
            let bar = epoch_bar(progress, &name, config.training.max_epochs);
            let (model, reports) = SasRec::train(split, &config, |epoch| show_epoch(&bar, epoch))?;
            bar.finish_and_clear();
            let setting = format!(
                "dim={} blocks={} heads={} L={} dropout={}",
                config.dim, config.blocks, config.heads, config.max_length, config.dropout
            );
            (Box::new(model), describe_epochs(&setting, &reports, &config.training))
        }
        _ => bail!("model `{name}` is a click model: use --protocol ctr"),
    };
    let test = evaluate_loo(ranker.as_ref(), split, Stage::Test).metrics;
    Ok(LooOutcome { setting, ranker, test })
}

fn epoch_bar(progress: Progress, name: &str, max_epochs: usize) -> indicatif::ProgressBar {
    progress.bar(max_epochs as u64, &format!("training {name}"), "epochs")
}

fn show_epoch(bar: &indicatif::ProgressBar, epoch: &EpochReport) {
    bar.set_message(format!(
        "loss {:.4}, valid NDCG@10 {:.4}, {:.0} samples/s",
        epoch.loss, epoch.valid_ndcg10, epoch.samples_per_s
    ));
    bar.inc(1);
}

/// "settings, epoch e of n (early stopping on validation), seed s".
fn describe_epochs(settings: &str, reports: &[EpochReport], training: &TrainingSettings) -> String {
    let best = reports
        .iter()
        .max_by(|a, b| a.valid_ndcg10.total_cmp(&b.valid_ndcg10))
        .map_or(0, |r| r.epoch);
    format!(
        "{settings}, lr {}, epoch {} of {} (early stopping on validation), seed {}",
        training.optimizer.learning_rate(),
        best + 1,
        reports.len(),
        training.seed
    )
}

/// Fits the smoothed-rate click model, choosing the prior strength on validation AUC.
pub fn fit_ctr(split: &CtrSplit, n_users: usize, n_items: usize) -> (String, CtrReport) {
    let mut best: Option<(f64, f64)> = None;
    for strength in [1.0, 5.0, 20.0, 50.0, 200.0] {
        let model = BiasCtr::fit(&split.train, n_users, n_items, strength);
        let auc = evaluate_ctr(&model, &split.valid).auc;
        if best.is_none_or(|(_, b)| auc > b) {
            best = Some((strength, auc));
        }
    }
    let (strength, _) = best.expect("a non-empty grid");
    let model = BiasCtr::fit(&split.train, n_users, n_items, strength);
    (format!("prior_strength={strength} (chosen on validation)"), evaluate_ctr(&model, &split.test))
}

/// How `cascade eval` runs a model.
#[derive(Debug, Clone, Copy)]
pub struct EvalOptions {
    /// Tune ItemKNN on validation instead of using RecBole's defaults.
    pub tune: bool,
    /// Seed and learning rate of trained models.
    pub overrides: Overrides,
    /// One JSON object on stdout, nothing else.
    pub json: bool,
    /// Ranking models also read the `[context]` features (off-protocol).
    pub context: ContextFeatures,
}

/// Trains a ranking architecture on every declared user and item feature
/// (and the history, for DIN / DIEN), early-stopped on validation AUC, and
/// scores test once.
fn fit_ranking(
    workspace: &Workspace,
    prepared: &Prepared,
    split: &CtrSplit,
    arch: CtrArch,
    overrides: Overrides,
    context: ContextFeatures,
    progress: Progress,
) -> Result<(String, CtrReport)> {
    let mut config = CtrModelConfig::default_for(arch);
    config.training.apply(&overrides);
    let inputs = ranking::encode(workspace, prepared, split, config.history_length, context)?;
    let (model, epochs) = ranking::train(&inputs, &config, progress)?;
    Ok((ranking::describe(&inputs, &config, &epochs), evaluate_ctr(&model, &inputs.test)))
}

pub fn run(
    common: &Common,
    protocol: Protocol,
    model: ModelName,
    data: Option<&Path>,
    options: EvalOptions,
) -> Result<()> {
    let EvalOptions { tune, overrides, json, context } = options;
    let is_click_model = model == ModelName::BiasCtr || ranking::ctr_arch(model).is_some();
    let applies = match protocol {
        Protocol::LooFull => !is_click_model,
        Protocol::Ctr => is_click_model,
        // Ranking architectures reach IPINYOU-SAMPLE before this point.
        Protocol::Ipinyou => false,
    };
    if !applies {
        let fits = models_for(protocol);
        bail!(
            "model `{}` does not apply to protocol `{}`; models for it: {fits}",
            model_label(model),
            protocol_label(protocol)
        );
    }
    let progress = Progress { quiet: json };
    let workspace = Workspace::open(common)?;
    let overrides = workspace.training_overrides(model, overrides)?;
    let prepared = prepare(&workspace, data, progress)?;
    let (setting, metrics): (String, BTreeMap<String, f64>) = match protocol {
        Protocol::LooFull => {
            let features = match model {
                ModelName::TwoTower => Some(tower_features(&workspace, &prepared)?),
                _ => None,
            };
            let outcome = fit_loo(model, &prepared.split, features, tune, overrides, progress)?;
            (outcome.setting, outcome.test)
        }
        Protocol::Ipinyou => bail!("IPINYOU-SAMPLE is evaluated before the MovieLens data is read"),
        Protocol::Ctr => {
            let split = prepared.pipeline.ctr_split(&prepared.users, &prepared.items)?;
            let (setting, report) = match ranking::ctr_arch(model) {
                Some(arch) => {
                    fit_ranking(&workspace, &prepared, &split, arch, overrides, context, progress)?
                }
                None => fit_ctr(&split, prepared.users.len(), prepared.items.len()),
            };
            let metrics = [("auc", report.auc), ("logloss", report.logloss), ("gauc", report.gauc)]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
            (setting, metrics)
        }
    };
    if json {
        let output = json!({ "protocol": protocol_label(protocol), "model": model_label(model), "metrics": metrics });
        println!("{output}");
    } else {
        println!("{} on {} ({setting}), test:", model_label(model), protocol_label(protocol));
        for (name, value) in &metrics {
            println!("  {name:<14} {value:.4}");
        }
    }
    Ok(())
}

fn protocol_label(protocol: Protocol) -> String {
    protocol.to_possible_value().expect("every protocol has a name").get_name().to_owned()
}

impl Prepared {
    /// Hashed field ids of every indexed user and item, as the config declares them.
    pub fn field_encoder(&self, workspace: &Workspace) -> Result<FieldEncoder> {
        Ok(FieldEncoder::new(&workspace.store()?, &workspace.config, &self.users, &self.items)?)
    }
}

/// Every user's and item's declared features, for the two-tower model.
pub fn tower_features(workspace: &Workspace, prepared: &Prepared) -> Result<TowerFeatures> {
    let encoder = prepared.field_encoder(workspace)?;
    Ok(TowerFeatures {
        users: encoder.user_fields().to_vec(),
        items: encoder.item_fields().to_vec(),
        item_keys: (0..prepared.items.len() as u32).map(|i| encoder.item_key(i)).collect(),
    })
}

/// The models that apply to `protocol`, for error messages.
pub fn models_for(protocol: Protocol) -> String {
    ModelName::value_variants()
        .iter()
        .filter(|m| {
            let arch = ranking::ctr_arch(**m);
            match protocol {
                Protocol::LooFull => arch.is_none() && **m != ModelName::BiasCtr,
                Protocol::Ctr => arch.is_some() || **m == ModelName::BiasCtr,
                Protocol::Ipinyou => {
                    arch.is_some_and(|a| !matches!(a, CtrArch::Din | CtrArch::Dien))
                }
            }
        })
        .map(|m| model_label(*m))
        .collect::<Vec<_>>()
        .join(", ")
}
