//! `cascade eval`: one model (or `auto`, the best on validation) under one
//! protocol, tuned on validation only, scored on test once. The protocol
//! runs themselves live in `cascade_app::evaluation` and
//! `cascade_app::model_selection`; this file reads the options and prints.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Result, bail};
use serde_json::json;

use cascade_app::evaluation::{
    EpochSummary, LooRun, fit_ctr, fit_loo, fit_ranking, prepare, tower_features,
};
use cascade_app::model_selection::{AUTO_CANDIDATES, choose_model, tuned_model_settings};
use cascade_app::ranking::ContextFeatures;
use cascade_app::{ModelKind, Progress, Protocol};
use cascade_models::training::Overrides;

use crate::Common;

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

/// What one evaluation chose and measured.
struct Evaluated {
    setting: String,
    valid_ndcg10: Option<f64>,
    epochs: Option<EpochSummary>,
    metrics: BTreeMap<String, f64>,
}

pub fn run(
    common: &Common,
    protocol: Protocol,
    model: ModelKind,
    data: Option<&Path>,
    options: EvalOptions,
) -> Result<()> {
    let EvalOptions { tune, overrides, json, context } = options;
    // Ranking architectures reach IPINYOU-SAMPLE before this point, so
    // whatever gets here under it does not apply.
    if !protocol.fits(model) || protocol == Protocol::Ipinyou {
        bail!(
            "model `{model}` does not apply to protocol `{protocol}`; models for it: {}",
            protocol.model_names()
        );
    }
    let progress = Progress { quiet: json };
    let workspace = common.open_workspace()?;
    let settings = tuned_model_settings(&workspace, model, overrides)?;
    let prepared = prepare(&workspace, data, progress)?;
    let evaluated = match protocol {
        Protocol::LooFull => {
            let features = match model {
                ModelKind::TwoTower => Some(tower_features(&workspace, &prepared)?),
                _ => None,
            };
            let outcome = fit_loo(LooRun {
                model,
                split: &prepared.split,
                tower_features: features,
                tune,
                settings: &settings,
                progress,
            })?;
            Evaluated {
                setting: outcome.fitted.setting,
                valid_ndcg10: Some(outcome.fitted.valid_ndcg10),
                epochs: outcome.fitted.epochs,
                metrics: outcome.test,
            }
        }
        Protocol::Ipinyou => bail!("IPINYOU-SAMPLE is evaluated before the MovieLens data is read"),
        Protocol::Ctr => {
            let split = prepared.pipeline.ctr_split(&prepared.users, &prepared.items)?;
            let fit = match model.ctr_arch() {
                Some(arch) => {
                    fit_ranking(&workspace, &prepared, &split, arch, &settings, context, progress)?
                }
                None => fit_ctr(&split, prepared.users.len(), prepared.items.len()),
            };
            let (setting, report) = (fit.setting, fit.report);
            let metrics = [("auc", report.auc), ("logloss", report.logloss), ("gauc", report.gauc)]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
            Evaluated { setting, valid_ndcg10: None, epochs: None, metrics }
        }
    };
    print(protocol, model, &evaluated, json);
    Ok(())
}

/// `--model auto`: every candidate fitted at its tuned setting, the best on
/// validation NDCG@10 scored on test once.
pub fn run_auto(
    common: &Common,
    protocol: Protocol,
    data: Option<&Path>,
    options: EvalOptions,
) -> Result<()> {
    if protocol != Protocol::LooFull {
        bail!("--model auto chooses among leave-one-out models: use --protocol loo-full");
    }
    let progress = Progress { quiet: options.json };
    let workspace = common.open_workspace()?;
    let prepared = prepare(&workspace, data, progress)?;
    let choice = choose_model(
        &prepared.split,
        &AUTO_CANDIDATES,
        |model| tuned_model_settings(&workspace, model, options.overrides),
        progress,
    )?;
    let evaluated = Evaluated {
        setting: choice.fitted.setting,
        valid_ndcg10: Some(choice.fitted.valid_ndcg10),
        epochs: choice.fitted.epochs,
        metrics: choice.test,
    };
    if options.json {
        let output = json!({
            "protocol": protocol.name(),
            "model": "auto",
            "chosen": choice.model.name(),
            "setting": evaluated.setting,
            "valid_ndcg10": evaluated.valid_ndcg10,
            "epochs": evaluated.epochs,
            "metrics": evaluated.metrics,
            "candidates": choice.candidates,
        });
        println!("{output}");
        return Ok(());
    }
    println!("auto: validation NDCG@10 of each candidate (train part only):");
    for candidate in &choice.candidates {
        println!(
            "  {:<10} {:.4}  ({:.0} s) {}",
            candidate.model, candidate.valid_ndcg10, candidate.seconds, candidate.setting
        );
    }
    println!("chosen: {}", choice.model);
    print(protocol, choice.model, &evaluated, false);
    Ok(())
}

fn print(protocol: Protocol, model: ModelKind, evaluated: &Evaluated, json: bool) {
    if json {
        let output = json!({
            "protocol": protocol.name(),
            "model": model.name(),
            "setting": evaluated.setting,
            "valid_ndcg10": evaluated.valid_ndcg10,
            "epochs": evaluated.epochs,
            "metrics": evaluated.metrics,
        });
        println!("{output}");
        return;
    }
    println!("{model} on {protocol} ({}), test:", evaluated.setting);
    for (name, value) in &evaluated.metrics {
        println!("  {name:<14} {value:.4}");
    }
}
