//! The replay experiments (`cascade_app::experiments`), each printed as JSON:
//! `cascade replay` (online learning), `replay-new-items` (items joining
//! after the build) and `replay-serving` (the serving build on the log's
//! last weeks).

use std::path::Path;

use anyhow::Result;

use cascade_app::Progress;
use cascade_app::experiments::new_items_replay::{self, NewItemsReplay};
use cascade_app::experiments::online_replay::{self, Replay};
use cascade_app::experiments::serving_replay::{self, ServingReplay};

use crate::{Common, print_json};

pub fn online(common: &Common, data: Option<&Path>, replay: &Replay) -> Result<()> {
    let workspace = common.open_workspace()?;
    print_json(&online_replay::run(&workspace, data, replay, Progress { quiet: false })?)
}

pub fn new_items(common: &Common, data: Option<&Path>, replay: NewItemsReplay) -> Result<()> {
    let workspace = common.open_workspace()?;
    print_json(&new_items_replay::run(&workspace, data, replay, Progress { quiet: false })?)
}

pub fn serving(common: &Common, data: Option<&Path>, replay: &ServingReplay) -> Result<()> {
    let workspace = common.open_workspace()?;
    let report = serving_replay::run(&workspace, data, replay, Progress { quiet: false })?;
    print_json(&report)
}
