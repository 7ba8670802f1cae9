//! `cascade bench pipeline`: how long the data path takes, from source files
//! to splits, samples, features and statistics, on a fresh workspace each run.

use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use serde_json::json;

use cascade_batch::stats;

use crate::Common;
use crate::progress::Progress;
use crate::workspace::Workspace;

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
