//! End-to-end scenarios through the real `cascade` binary.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod cli;
mod durability;
mod ope;
mod report;
mod serve;
mod serve_checkpoints;
mod serve_durability;
mod serve_experiments;
mod serve_new_items;
mod stream_workers;
mod train;

use std::path::PathBuf;
use std::process::{Command, Output};

/// The `cascade` binary built for this test run.
pub fn cascade() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cascade"));
    command.env_remove("CASCADE_DATA_DIR");
    command
}

/// MovieLens-100k for tests (see `movielens_100k_for_tests`).
pub fn movielens_dir() -> Option<PathBuf> {
    cascade_batch::datasets::movielens_100k_for_tests(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."),
    )
}

/// Runs `cascade ARGS --data DATA --workspace WORK` to completion.
pub fn cascade_on(data: &std::path::Path, work: &std::path::Path, args: &[&str]) -> Output {
    cascade().args(args).arg("--data").arg(data).arg("--workspace").arg(work).output().unwrap()
}

/// Standard output and error as text, for assertions and failure messages.
pub fn texts(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
