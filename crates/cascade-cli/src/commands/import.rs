//! `cascade import`.

use std::path::Path;

use anyhow::Result;

use crate::Common;
use cascade_app::Progress;
use cascade_app::workspace::describe_import;

/// Imports every table the config has a source for.
pub fn run(common: &Common, from: &Path, skip_bad_rows: bool) -> Result<()> {
    let workspace = common.open_workspace()?;
    let store = workspace.store()?;
    let progress = Progress { quiet: false };
    let started = std::time::Instant::now();
    for report in workspace.import_all(&store, from, skip_bad_rows, progress)? {
        println!("{}", describe_import(&report));
    }
    println!(
        "store {} holds {} events ({:.2} s)",
        store.path().display(),
        store.event_count()?,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
