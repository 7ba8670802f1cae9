//! `cascade bench pipeline`: how long the data path takes, from source files
//! to splits, samples, features and statistics, on a fresh workspace each run.

use std::path::Path;
use std::time::Instant;

use anyhow::{Result, bail};
use serde_json::json;

use cascade_batch::stats;

use cascade_models::ranking::CtrModel;
use cascade_models::retrieval::{BprMf, EpochReport, NeuMf, SasRec, TwoTower};
use cascade_models::training::{Overrides, TrainingSettings};

use crate::evaluation::model_settings;
use crate::evaluation::{prepare, tower_features};
use crate::progress::Progress;
use crate::ranking;
use crate::registry::ModelKind;
use crate::workspace::Workspace;

/// Seconds of each stage in one run.
struct Timings {
    import: f64,
    export_and_plan: f64,
    outputs: f64,
    stats: f64,
}

/// The median of `values` (NaN for none).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// Runs the data path `runs` times and prints medians as one JSON object.
pub fn pipeline(
    workspace: &Workspace,
    data: Option<&Path>,
    runs: usize,
) -> Result<serde_json::Value> {
    let template = workspace;
    let quiet = Progress { quiet: true };
    let data = match data {
        Some(dir) if !template.builtin_config => dir.to_owned(),
        other => template.movielens_dir(other, quiet)?,
    };
    let bar = Progress { quiet: false }.bar(runs as u64, "bench runs", "runs");
    let mut timings = Vec::new();
    let mut events = 0;
    for _ in 0..runs {
        let scratch = tempfile::tempdir()?;
        let workspace = Workspace::at(
            scratch.path().to_owned(),
            template.config.clone(),
            template.builtin_config,
        );
        let store = workspace.store()?;
        let started = Instant::now();
        workspace.import_all(&store, &data, false, quiet)?;
        let imported = Instant::now();
        let pipeline = workspace.pipeline(&store, quiet)?;
        let planned = Instant::now();
        pipeline.write_outputs()?;
        let written = Instant::now();
        stats::compute(&pipeline)?;
        let finished = Instant::now();
        events = store.event_count()?;
        timings.push(Timings {
            import: (imported - started).as_secs_f64(),
            export_and_plan: (planned - imported).as_secs_f64(),
            outputs: (written - planned).as_secs_f64(),
            stats: (finished - written).as_secs_f64(),
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    let stage = |f: fn(&Timings) -> f64| median(timings.iter().map(f).collect());
    let import = stage(|t| t.import);
    let total = stage(|t| t.import + t.export_and_plan + t.outputs + t.stats);
    let report = json!({
        "bench": "pipeline",
        "runs": runs,
        "events": events,
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
        "median_s": {
            "import": import,
            "export_and_plan": stage(|t| t.export_and_plan),
            "splits_samples_features": stage(|t| t.outputs),
            "statistics": stage(|t| t.stats),
            "total": total,
        },
        "import_events_per_s": events as f64 / import,
    });
    Ok(report)
}

/// Per-epoch timings of one training run.
struct EpochTimes {
    train_seconds: Vec<f64>,
    samples_per_s: Vec<f64>,
    settings: serde_json::Value,
}

fn retrieval_times(reports: &[EpochReport], settings: serde_json::Value) -> EpochTimes {
    EpochTimes {
        train_seconds: reports.iter().map(|r| r.train_seconds).collect(),
        samples_per_s: reports.iter().map(|r| r.samples_per_s).collect(),
        settings,
    }
}

/// Trains `model` for `epochs` epochs (no early stopping) and prints
/// throughput and peak memory as one JSON object.
pub fn train(
    workspace: &Workspace,
    model: ModelKind,
    data: Option<&Path>,
    epochs: usize,
) -> Result<serde_json::Value> {
    // The model as configured: `[training.<model>]` of the config applies.
    let settings = model_settings(workspace, model, Overrides::default())?;
    let prepared = prepare(workspace, data, Progress { quiet: true })?;
    let bar = Progress { quiet: false }.bar(epochs as u64, "training", "epochs");
    let fixed = |training: &mut TrainingSettings| {
        training.max_epochs = epochs;
        training.patience = usize::MAX;
    };
    let times = match model {
        ModelKind::BprMf => {
            let mut config = settings.bpr_mf();
            fixed(&mut config.training);
            let (_, reports) = BprMf::train(&prepared.split, &config, |_| bar.inc(1))?;
            retrieval_times(&reports, json!(config))
        }
        ModelKind::Neumf => {
            let mut config = settings.neumf();
            fixed(&mut config.training);
            let (_, reports) = NeuMf::train(&prepared.split, &config, |_| bar.inc(1))?;
            retrieval_times(&reports, json!(config))
        }
        ModelKind::TwoTower => {
            let mut config = settings.two_tower();
            fixed(&mut config.training);
            let features = tower_features(workspace, &prepared)?;
            let (_, reports) = TwoTower::train(&prepared.split, features, &config, |_| bar.inc(1))?;
            retrieval_times(&reports, json!(config))
        }
        ModelKind::Sasrec => {
            let mut config = settings.sasrec();
            fixed(&mut config.training);
            let (_, reports) = SasRec::train(&prepared.split, &config, |_| bar.inc(1))?;
            retrieval_times(&reports, json!(config))
        }
        other => match other.ctr_arch() {
            Some(arch) => {
                let mut config = settings.ctr(arch);
                fixed(&mut config.training);
                let (_, inputs) =
                    ranking::protocol_inputs(workspace, &prepared, config.history_length)?;
                let (_, reports) = CtrModel::train(
                    &inputs.train,
                    &inputs.valid,
                    &config,
                    inputs.item_field,
                    |_| bar.inc(1),
                )?;
                EpochTimes {
                    train_seconds: reports.iter().map(|r| r.train_seconds).collect(),
                    samples_per_s: reports.iter().map(|r| r.samples_per_s).collect(),
                    settings: json!(config),
                }
            }
            None => bail!(
                "`bench train` measures trained models; `{model}` has no training loop (try bpr-mf, neumf, sasrec or a ranking model)"
            ),
        },
    };
    bar.finish_and_clear();
    let report = json!({
        "bench": "train",
        "model": model.name(),
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
        "threads": rayon::current_num_threads(),
        "epochs": times.train_seconds.len(),
        "median_epoch_train_s": median(times.train_seconds.clone()),
        "median_samples_per_s": median(times.samples_per_s.clone()),
        "peak_rss_bytes": super::process_memory_bytes("VmHWM"),
        "settings": times.settings,
    });
    Ok(report)
}
