//! `cascade bench pipeline`: how long the data path takes, from source files
//! to splits, samples, features and statistics, on a fresh workspace each run.

use std::path::Path;
use std::time::Instant;

use anyhow::{Result, bail};
use serde_json::json;

use cascade_batch::stats;

use cascade_models::retrieval::{BprMf, BprMfConfig};

use crate::commands::eval::prepare;
use crate::progress::Progress;
use crate::workspace::Workspace;
use crate::{Common, ModelName};

/// Seconds of each stage in one run.
struct Timings {
    import: f64,
    export_and_plan: f64,
    outputs: f64,
    stats: f64,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 }
}

/// Runs the data path `runs` times and prints medians as one JSON object.
pub fn pipeline(common: &Common, data: Option<&Path>, runs: usize) -> Result<()> {
    let template = Workspace::open(common)?;
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
        let workspace = Workspace {
            dir: scratch.path().to_owned(),
            config: template.config.clone(),
            builtin_config: template.builtin_config,
        };
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
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// Peak resident memory of this process so far, in bytes (Linux).
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
}

/// Trains `model` for `epochs` epochs and prints throughput as one JSON object.
pub fn train(common: &Common, model: ModelName, data: Option<&Path>, epochs: usize) -> Result<()> {
    if model != ModelName::BprMf {
        bail!(
            "`bench train` measures trained models; `{model:?}` has no training loop (try bpr-mf)"
        );
    }
    let workspace = Workspace::open(common)?;
    let prepared = prepare(&workspace, data, Progress { quiet: true })?;
    let mut config = BprMfConfig::default();
    config.training.max_epochs = epochs;
    config.training.patience = usize::MAX;
    let bar = Progress { quiet: false }.bar(epochs as u64, "training", "epochs");
    let (_, reports) = BprMf::train(&prepared.split, &config, |_| bar.inc(1))?;
    bar.finish_and_clear();
    let report = json!({
        "bench": "train",
        "model": "bpr-mf",
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
        "epochs": reports.len(),
        "batch_size": config.training.batch_size,
        "dim": config.dim,
        "median_epoch_train_s": median(reports.iter().map(|r| r.train_seconds).collect()),
        "median_samples_per_s": median(reports.iter().map(|r| r.samples_per_s).collect()),
        "peak_rss_bytes": peak_rss_bytes(),
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
