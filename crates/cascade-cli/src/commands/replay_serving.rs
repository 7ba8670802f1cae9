//! `cascade replay-serving`: the serving build replayed on the log's last
//! weeks (`cascade_app::experiments::serving_replay`), as JSON.

use std::path::Path;

use anyhow::Result;

use cascade_app::Progress;
use cascade_app::experiments::serving_replay::{self, ServingReplay};

use crate::Common;

pub fn run(common: &Common, data: Option<&Path>, replay: &ServingReplay) -> Result<()> {
    let workspace = common.open_workspace()?;
    let report = serving_replay::run(&workspace, data, replay, Progress { quiet: false })?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
