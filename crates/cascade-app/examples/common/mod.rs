//! What every example starts from: the serving models of MovieLens-100k
//! (the directory given as the first argument, or `CASCADE_DATA_DIR`),
//! built by the built-in config in a scratch workspace, as `cascade serve`
//! builds them.

use std::path::PathBuf;

use anyhow::{Context, Result};

use cascade_app::serving::build::load_models;
use cascade_app::{ModelKind, Progress, Workspace};
use cascade_serve::recommender::Models;

/// The workspace (its config is the built-in one), its scratch directory
/// (deleted on drop) and the models, ranked by `ranker`.
pub fn movielens_models(ranker: ModelKind) -> Result<(Workspace, tempfile::TempDir, Models)> {
    let data: PathBuf = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("CASCADE_DATA_DIR").ok())
        .context("give the MovieLens-100k directory (or set CASCADE_DATA_DIR)")?
        .into();
    let scratch = tempfile::tempdir()?;
    let workspace = Workspace::open(None, Some(scratch.path()))?;
    let models = load_models(&workspace, Some(&data), None, ranker, Progress { quiet: false })?;
    Ok((workspace, scratch, models))
}
