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
use cascade_eval::protocols::{
    CtrExample, CtrReport, FullRanker, LooSplit, Stage, evaluate_ctr, evaluate_loo,
};
use cascade_models::ranking::{FieldIds, Fm, FmConfig};
use cascade_models::retrieval::{BprMf, BprMfConfig};
use cascade_models::tuning::{
    ITEM_KNN_DEFAULT, Trial, ease_grid, item_knn_grid, select_on_validation,
};
use cascade_models::{BiasCtr, Ease, Interactions, ItemKnn, MostPopular, ease::gram_matrix};

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
    tune: bool,
    seed: u64,
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
            config.training.seed = seed;
            let bar = progress.bar(
                config.training.max_epochs as u64,
                &format!("training {name}"),
                "epochs",
            );
            let (model, reports) = BprMf::train(split, &config, |epoch| {
                bar.set_message(format!(
                    "valid NDCG@10 {:.4}, {:.0} triples/s",
                    epoch.valid_ndcg10, epoch.samples_per_s
                ));
                bar.inc(1);
            })?;
            bar.finish_and_clear();
            let best = reports
                .iter()
                .max_by(|a, b| a.valid_ndcg10.total_cmp(&b.valid_ndcg10))
                .expect("an epoch ran");
            let setting = format!(
                "dim={} epoch {} of {} (early stopping on validation), seed {}",
                config.dim,
                best.epoch + 1,
                reports.len(),
                config.training.seed
            );
            (Box::new(model), setting)
        }
        ModelName::BiasCtr | ModelName::Fm => {
            bail!("model `{name}` is a click model: use --protocol ctr")
        }
    };
    let test = evaluate_loo(ranker.as_ref(), split, Stage::Test).metrics;
    Ok(LooOutcome { setting, ranker, test })
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
    /// Seed of trained models.
    pub seed: u64,
    /// One JSON object on stdout, nothing else.
    pub json: bool,
}

/// Trains the factorization machine on every declared user and item feature,
/// early-stopped on validation AUC, and scores test once.
fn fit_fm(
    workspace: &Workspace,
    prepared: &Prepared,
    split: &CtrSplit,
    seed: u64,
    progress: Progress,
) -> Result<(String, CtrReport)> {
    let encoder = FieldEncoder::new(
        &workspace.store()?,
        &workspace.config,
        &prepared.users,
        &prepared.items,
    )?;
    let encode = |rows: &[CtrExample<(u32, u32)>]| -> Vec<CtrExample<FieldIds>> {
        rows.iter()
            .map(|e| CtrExample {
                user: e.user,
                label: e.label,
                features: encoder.encode(e.features.0, e.features.1),
            })
            .collect()
    };
    let (train, valid, test) = (encode(&split.train), encode(&split.valid), encode(&split.test));
    let mut config = FmConfig::default();
    config.training.seed = seed;
    let bar = progress.bar(config.training.max_epochs as u64, "training fm", "epochs");
    let (model, history) = Fm::train(&train, &valid, &config, |_, loss, auc| {
        bar.set_message(format!("loss {loss:.4}, valid AUC {auc:.4}"));
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    let best =
        history.iter().enumerate().max_by(|a, b| a.1.1.total_cmp(&b.1.1)).map_or(0, |(i, _)| i);
    let setting = format!(
        "fields {}, dim {}, epoch {} of {} (early stopping on validation AUC), seed {seed}",
        encoder.field_names.join("+"),
        config.dim,
        best + 1,
        history.len()
    );
    Ok((setting, evaluate_ctr(&model, &test)))
}

pub fn run(
    common: &Common,
    protocol: Protocol,
    model: ModelName,
    data: Option<&Path>,
    options: EvalOptions,
) -> Result<()> {
    let EvalOptions { tune, seed, json } = options;
    let applies = match protocol {
        Protocol::LooFull => !matches!(model, ModelName::BiasCtr | ModelName::Fm),
        Protocol::Ctr => matches!(model, ModelName::BiasCtr | ModelName::Fm),
    };
    if !applies {
        let fits = match protocol {
            Protocol::LooFull => "pop, itemknn, ease, bpr-mf",
            Protocol::Ctr => "bias-ctr, fm",
        };
        bail!(
            "model `{}` does not apply to protocol `{}`; models for it: {fits}",
            model_label(model),
            protocol_label(protocol)
        );
    }
    let progress = Progress { quiet: json };
    let workspace = Workspace::open(common)?;
    let prepared = prepare(&workspace, data, progress)?;
    let (setting, metrics): (String, BTreeMap<String, f64>) = match protocol {
        Protocol::LooFull => {
            let outcome = fit_loo(model, &prepared.split, tune, seed, progress)?;
            (outcome.setting, outcome.test)
        }
        Protocol::Ctr => {
            let split = prepared.pipeline.ctr_split(&prepared.users, &prepared.items)?;
            let (setting, report) = match model {
                ModelName::Fm => fit_fm(&workspace, &prepared, &split, seed, progress)?,
                _ => fit_ctr(&split, prepared.users.len(), prepared.items.len()),
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
