//! `cascade pipeline`.

use anyhow::Result;

use cascade_batch::stats;

use crate::Common;
use cascade_app::Progress;

/// Exports the store, writes splits, samples, features and statistics.
pub fn run(common: &Common) -> Result<()> {
    let workspace = common.open_workspace()?;
    let store = workspace.store()?;
    let progress = Progress { quiet: false };
    let started = std::time::Instant::now();
    let pipeline = workspace.pipeline(&store, progress)?;
    let bar = progress.spinner("splits, point-in-time samples, serving features");
    let mut files = pipeline.write_outputs()?;
    bar.set_message("statistics");
    let summary = stats::compute(&pipeline)?;
    bar.finish_and_clear();
    files.extend(summary.files.iter().cloned());
    println!("{summary}");
    println!(
        "wrote {} files under {} in {:.2} s:",
        files.len(),
        workspace.pipeline_dir().display(),
        started.elapsed().as_secs_f64()
    );
    for file in files {
        println!("  {}", file.display());
    }
    Ok(())
}
