//! `cascade train`: trains one model to a checkpoint and reports where it
//! is and its test metrics (`cascade_app::training`).

use std::path::Path;

use anyhow::Result;

use cascade_app::Progress;
use cascade_app::training::train;
use cascade_models::training::Overrides;

use crate::{Common, ModelKind};

/// Trains `model` and prints where its checkpoint and curves went.
pub fn run(
    common: &Common,
    model: ModelKind,
    data: Option<&Path>,
    overrides: Overrides,
) -> Result<()> {
    let workspace = common.open_workspace()?;
    let report = train(&workspace, model, data, overrides, Progress { quiet: false })?;
    println!(
        "{model}: {} epochs, best {} {:.4}; checkpoint {}, curves {}",
        report.epochs,
        report.valid_name,
        report.best_valid,
        report.dir.display(),
        report.plot.display()
    );
    for (metric, value) in &report.test {
        println!("  test {metric:<14} {value:.4}");
    }
    Ok(())
}
