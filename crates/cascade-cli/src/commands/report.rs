//! `cascade report`: the evaluation report of every model `[report]`
//! names, as HTML, JSON and Markdown (`cascade_app::report`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use cascade_app::Progress;
use cascade_app::report::{ReportRun, write_report};

use crate::Common;

/// `cascade report`'s options; what it runs is `[report]`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Event data directory to import first (idempotent) [default: $CASCADE_DATA_DIR].
    #[arg(long, env = "CASCADE_DATA_DIR")]
    data: Option<PathBuf>,
    /// The folder to write report.html, report.json, report.md and plots/
    /// into [default: <workspace>/report].
    #[arg(long)]
    out: Option<PathBuf>,
    /// No progress bars; print only the written files' paths.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    common: Common,
}

pub fn run(args: ReportArgs) -> Result<()> {
    let workspace = args.common.open_workspace()?;
    let config_text = match &args.common.config {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the config {}", path.display()))?,
        ),
        None => None,
    };
    let out = args.out.unwrap_or_else(|| workspace.dir.join("report"));
    let command: Vec<String> = std::env::args().collect();
    let files = write_report(&ReportRun {
        workspace: &workspace,
        data: args.data.as_deref(),
        out: &out,
        config_text,
        command: command.join(" "),
        progress: Progress { quiet: args.quiet },
    })?;
    for path in [&files.html, &files.json, &files.markdown] {
        println!("{}", path.display());
    }
    Ok(())
}
