//! `cascade report`: one self-contained evaluation report per run, as an
//! HTML page (plots inline as SVG, no script, nothing fetched), the same
//! numbers as JSON, and a Markdown page beside its SVG files.
//!
//! What it runs is `[report]`: every item-ranking model under
//! ML100K-LOO-FULL (trained ones once per seed) with NDCG@K and Recall@K
//! curves and the lists' coverage, diversity, novelty and popularity bias;
//! every click model under ML100K-CTR with its calibration and its AUC per
//! user-activity bucket; each trained model's training curve and cost; and
//! the off-policy estimates of the configured policies on the explored
//! lists in the store, when it holds any. The page ends with what is
//! needed to reproduce it: the data's range, the config, the version.

mod quality;
mod render;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use cascade_eval::protocols::{Stage, evaluate_loo_to_depth};
use cascade_models::training::Overrides;
use cascade_policy::exploration::parse_policy;

use crate::evaluation::{
    CtrFit, LooRun, Prepared, fit_ctr, fit_on_validation, fit_ranking, prepare, tower_features,
};
use crate::model_selection::tuned_model_settings;
use crate::policy_evaluation::{self, OpeSettings};
use crate::progress::Progress;
use crate::ranking::ContextFeatures;
use crate::registry::{ModelKind, Protocol};
use crate::workspace::Workspace;

pub use quality::{ListQuality, accuracy_curves, auc_by_activity, calibration, list_quality};

/// What the report is of and where it goes.
pub struct ReportRun<'a> {
    pub workspace: &'a Workspace,
    /// Event data to import first, as `cascade eval --data`.
    pub data: Option<&'a Path>,
    /// The folder the report is written into.
    pub out: &'a Path,
    /// The config file's text as given (`None`: the built-in defaults).
    pub config_text: Option<String>,
    /// The command line, for the reproduction section.
    pub command: String,
    pub progress: Progress,
}

/// The files written.
#[derive(Debug, Clone)]
pub struct ReportFiles {
    pub html: PathBuf,
    pub json: PathBuf,
    pub markdown: PathBuf,
}

fn models(names: &[String], key: &str, protocol: Protocol) -> Result<Vec<ModelKind>> {
    names
        .iter()
        .map(|name| {
            let model: ModelKind =
                name.parse().map_err(|e: String| anyhow::anyhow!("{key}: {e}"))?;
            if !protocol.fits(model) {
                bail!(
                    "{key}: `{name}` is not a {} model; models for it: {}",
                    protocol.name(),
                    protocol.model_names()
                );
            }
            Ok(model)
        })
        .collect()
}

/// The seeds a model runs with: one for models without randomness.
fn seeds_of(model: ModelKind, workspace: &Workspace) -> Vec<u64> {
    let config = &workspace.config.report;
    match model.is_trained() {
        true => (0..config.seeds as u64).map(|s| config.seed + s).collect(),
        false => vec![config.seed],
    }
}

fn overrides(seed: u64) -> Overrides {
    Overrides { seed: Some(seed), ..Overrides::default() }
}

/// Every configured item-ranking model, per seed.
fn item_ranking(run: &ReportRun<'_>, prepared: &Prepared) -> Result<Vec<Value>> {
    let workspace = run.workspace;
    let config = &workspace.config.report;
    let split = &prepared.split;
    let popularity = split.train_popularity();
    let by_id = workspace.item_categories()?;
    let categories: Vec<Vec<String>> =
        prepared.items.ids().iter().map(|id| by_id.get(id).cloned().unwrap_or_default()).collect();
    let mut reports = Vec::new();
    for model in models(&config.models, "report.models", Protocol::LooFull)? {
        let mut runs = Vec::new();
        for seed in seeds_of(model, workspace) {
            let settings = tuned_model_settings(workspace, model, overrides(seed))?;
            let features = match model {
                ModelKind::TwoTower => Some(tower_features(workspace, prepared)?),
                _ => None,
            };
            let started = Instant::now();
            let fitted = fit_on_validation(LooRun {
                model,
                split,
                tower_features: features,
                tune: false,
                settings: &settings,
                progress: run.progress,
            })?;
            let fit_seconds = started.elapsed().as_secs_f64();
            let test = evaluate_loo_to_depth(
                fitted.ranker.as_ref(),
                split,
                Stage::Test,
                config.curve_max_k,
            );
            let (ndcg, recall) = accuracy_curves(&test.target_ranks, config.curve_max_k);
            let lists =
                list_quality(&test.top_lists, &popularity, split.n_users() as u64, &categories);
            runs.push(json!({
                "seed": model.is_trained().then_some(seed),
                "setting": fitted.setting,
                "fit_seconds": fit_seconds,
                "epochs": fitted.epochs,
                "valid_ndcg@10": fitted.valid_ndcg10,
                "metrics": test.metrics,
                "ndcg_at_k": ndcg,
                "recall_at_k": recall,
                "lists": lists,
                "training": fitted.curve,
            }));
        }
        reports.push(json!({ "model": model.name(), "runs": runs, "summary": summarise(&runs) }));
    }
    Ok(reports)
}

/// Every configured click model, per seed.
fn click_prediction(run: &ReportRun<'_>, prepared: &Prepared) -> Result<Vec<Value>> {
    let workspace = run.workspace;
    let config = &workspace.config.report;
    let names = models(&config.ctr_models, "report.ctr_models", Protocol::Ctr)?;
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let split = prepared.pipeline.ctr_split(&prepared.users, &prepared.items)?;
    let activity: Vec<usize> = prepared.split.train.iter().map(Vec::len).collect();
    let mut reports = Vec::new();
    for model in names {
        let mut runs = Vec::new();
        for seed in seeds_of(model, workspace) {
            let settings = tuned_model_settings(workspace, model, overrides(seed))?;
            let started = Instant::now();
            let fit: CtrFit = match model.ctr_arch() {
                Some(arch) => fit_ranking(
                    workspace,
                    prepared,
                    &split,
                    arch,
                    &settings,
                    ContextFeatures::Excluded,
                    run.progress,
                )?,
                None => fit_ctr(&split, prepared.users.len(), prepared.items.len()),
            };
            let fit_seconds = started.elapsed().as_secs_f64();
            runs.push(json!({
                "seed": model.is_trained().then_some(seed),
                "setting": fit.setting,
                "fit_seconds": fit_seconds,
                "metrics": {
                    "auc": fit.report.auc,
                    "gauc": fit.report.gauc,
                    "logloss": fit.report.logloss,
                },
                "test_rows": fit.report.rows,
                "calibration": calibration(&fit.predictions, config.calibration_bins),
                "auc_by_activity": auc_by_activity(&fit.predictions, &activity, config.activity_buckets),
                "training": fit.curve,
            }));
        }
        reports.push(json!({ "model": model.name(), "runs": runs, "summary": summarise(&runs) }));
    }
    Ok(reports)
}

/// Mean ± sd over runs of every metric and list quality.
fn summarise(runs: &[Value]) -> Value {
    let numbers = |run: &Value, field: &str| -> BTreeMap<String, f64> {
        run[field]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(name, v)| v.as_f64().map(|v| (name.clone(), v)))
            .collect()
    };
    let per_run: Vec<BTreeMap<String, f64>> = runs
        .iter()
        .map(|run| {
            let mut all = numbers(run, "metrics");
            all.extend(numbers(run, "lists"));
            if let Some(seconds) = run["fit_seconds"].as_f64() {
                all.insert("fit_seconds".into(), seconds);
            }
            all
        })
        .collect();
    let summary: serde_json::Map<String, Value> = quality::mean_and_sd(&per_run)
        .into_iter()
        .map(|(name, (mean, sd))| (name, json!({ "mean": mean, "sd": sd, "runs": runs.len() })))
        .collect();
    Value::Object(summary)
}

/// The configured policies on the store's explored lists, or why not.
fn off_policy(run: &ReportRun<'_>) -> Result<Value> {
    let config = &run.workspace.config.report;
    for target in &config.ope_targets {
        parse_policy(target, 200).map_err(|e| anyhow::anyhow!("report.ope_targets: {e}"))?;
    }
    if config.ope_targets.is_empty() {
        return Ok(json!({ "skipped": "report.ope_targets is empty" }));
    }
    let store = run.workspace.store()?;
    if !policy_evaluation::has_explored_lists(&store)? {
        return Ok(json!({
            "skipped": "the store holds no explored lists: serve with an exploring re-ranker \
                        (epsilon_greedy, plackett_luce) listed last to log propensities"
        }));
    }
    drop(store);
    let settings = OpeSettings {
        targets: config.ope_targets.clone(),
        lists: Default::default(),
        lift_over: None,
        bootstrap: config.ope_bootstrap,
        alpha: 0.05,
        monte_carlo_samples: 200,
        parts: 1,
        seed: config.seed,
    };
    policy_evaluation::evaluate(run.workspace, &settings, None, run.progress)
}

/// The data's range: events, users, items and the first and last event.
fn data_range(workspace: &Workspace, prepared: &Prepared) -> Result<Value> {
    let store = workspace.store()?;
    let (mut first, mut last, mut events) = (i64::MAX, i64::MIN, 0u64);
    let mut from = 0;
    loop {
        let page = store.events_page(from, 10_000)?;
        let Some(tail) = page.last() else { break };
        from = tail.seq + 1;
        for stored in page.iter().filter(|s| s.event.served.is_none()) {
            first = first.min(stored.event.ts_ms);
            last = last.max(stored.event.ts_ms);
            events += 1;
        }
    }
    let time = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms).map(|t| t.to_rfc3339()).unwrap_or_default()
    };
    Ok(json!({
        "events": events,
        "users": prepared.users.len(),
        "items": prepared.items.len(),
        "first_event": (events > 0).then(|| time(first)),
        "last_event": (events > 0).then(|| time(last)),
    }))
}

/// Runs everything `[report]` names and writes the report's three files.
pub fn write_report(run: &ReportRun<'_>) -> Result<ReportFiles> {
    let prepared = prepare(run.workspace, run.data, run.progress)?;
    let started = chrono::Utc::now();
    let report = json!({
        "title": "Cascade evaluation report",
        "generated_at": started.to_rfc3339(),
        "version": env!("CARGO_PKG_VERSION"),
        "command": run.command,
        "data": data_range(run.workspace, &prepared)?,
        "item_ranking": item_ranking(run, &prepared)?,
        "click_prediction": click_prediction(run, &prepared)?,
        "off_policy": off_policy(run)?,
        "config": {
            "file": run.config_text.is_some(),
            "text": run.config_text.clone().unwrap_or_else(|| cascade_core::Config::default_toml().to_owned()),
            "environment": std::env::vars()
                .filter(|(k, _)| k.starts_with("CASCADE__"))
                .collect::<BTreeMap<_, _>>(),
        },
    });
    std::fs::create_dir_all(run.out)
        .with_context(|| format!("creating the report folder {}", run.out.display()))?;
    let files = ReportFiles {
        html: run.out.join("report.html"),
        json: run.out.join("report.json"),
        markdown: run.out.join("report.md"),
    };
    let plots = render::plots(&report, &run.out.join("plots"))?;
    let write = |path: &Path, text: String| {
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    };
    write(&files.json, serde_json::to_string_pretty(&report)?)?;
    write(&files.html, render::html(&report, &plots))?;
    write(&files.markdown, render::markdown(&report, &plots))?;
    Ok(files)
}
