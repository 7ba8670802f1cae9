//! `cascade eval`: one model under one protocol, tuned on validation only,
//! scored on test once. The protocol runs themselves live in
//! `cascade_app::evaluation`; this file reads the options and prints.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Result, bail};
use serde_json::json;

use cascade_app::evaluation::{fit_ctr, fit_loo, fit_ranking, prepare, tower_features};
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
    let overrides = workspace.training_overrides(model, overrides)?;
    let prepared = prepare(&workspace, data, progress)?;
    let (setting, metrics): (String, BTreeMap<String, f64>) = match protocol {
        Protocol::LooFull => {
            let features = match model {
                ModelKind::TwoTower => Some(tower_features(&workspace, &prepared)?),
                _ => None,
            };
            let outcome = fit_loo(model, &prepared.split, features, tune, overrides, progress)?;
            (outcome.setting, outcome.test)
        }
        Protocol::Ipinyou => bail!("IPINYOU-SAMPLE is evaluated before the MovieLens data is read"),
        Protocol::Ctr => {
            let split = prepared.pipeline.ctr_split(&prepared.users, &prepared.items)?;
            let (setting, report) = match model.ctr_arch() {
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
        let output =
            json!({ "protocol": protocol.name(), "model": model.name(), "metrics": metrics });
        println!("{output}");
    } else {
        println!("{model} on {protocol} ({setting}), test:");
        for (name, value) in &metrics {
            println!("  {name:<14} {value:.4}");
        }
    }
    Ok(())
}
