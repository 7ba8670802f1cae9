//! `cascade dataset fetch`.

use std::path::Path;

use anyhow::Result;

use crate::Common;
use cascade_app::Progress;

/// Locates or downloads MovieLens-100k, verifies it, and prints its directory.
pub fn fetch_movielens(common: &Common, from: Option<&Path>) -> Result<()> {
    let workspace = common.open_workspace()?;
    let dir = workspace.movielens_dir(from, Progress { quiet: false })?;
    eprintln!("MovieLens-100k verified (sha256 of every file)");
    println!("{}", dir.display());
    Ok(())
}
