//! `cascade tune`: a model's hyperparameters searched on the validation
//! item (`cascade_app::model_selection::tune`); prints the trials and the
//! setting kept.

use std::path::Path;

use anyhow::{Result, bail};

use cascade_app::evaluation::{model_settings, prepare};
use cascade_app::model_selection::tune;
use cascade_app::{ModelKind, Progress, Protocol};
use cascade_models::training::Overrides;

use crate::Common;

pub fn run(
    common: &Common,
    model: ModelKind,
    budget: usize,
    data: Option<&Path>,
    overrides: Overrides,
    json: bool,
) -> Result<()> {
    if !Protocol::LooFull.fits(model) || model == ModelKind::TwoTower {
        bail!(
            "`cascade tune` searches leave-one-out models that read no features: pop, itemknn, ease, bpr-mf, neumf, sasrec (not `{model}`)"
        );
    }
    let progress = Progress { quiet: json };
    let workspace = common.open_workspace()?;
    let settings = model_settings(&workspace, model, overrides)?;
    let prepared = prepare(&workspace, data, progress)?;
    let started = std::time::Instant::now();
    let report = tune(&workspace, &prepared.split, model, &settings, budget, progress)?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    println!(
        "{model}: {} settings on the validation item ({:.0} s)",
        report.trials.len(),
        started.elapsed().as_secs_f64()
    );
    for trial in &report.trials {
        println!(
            "  {:>2}  valid NDCG@10 {:.4}  {:>6.1} s  {}",
            trial.trial, trial.valid_ndcg10, trial.seconds, trial.setting
        );
    }
    println!("kept: {} (valid NDCG@10 {:.4})", report.best.setting, report.best.valid_ndcg10);
    println!("log: {}\nbest: {}", report.log.display(), report.best_file.display());
    Ok(())
}
