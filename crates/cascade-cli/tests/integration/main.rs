//! End-to-end scenarios through the real `cascade` binary.

mod cli;
mod durability;

use std::path::PathBuf;
use std::process::{Command, Output};

/// The `cascade` binary built for this test run.
pub fn cascade() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cascade"));
    command.env_remove("CASCADE_DATA_DIR");
    command
}

/// MovieLens-100k: `CASCADE_DATA_DIR`, else `../shared/data/ml-100k` beside the repository.
pub fn movielens_dir() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("CASCADE_DATA_DIR") {
        let dir = PathBuf::from(dir);
        assert!(dir.join("u.data").exists(), "CASCADE_DATA_DIR={} has no u.data", dir.display());
        return Some(dir);
    }
    let default = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/ml-100k");
    if default.join("u.data").exists() {
        Some(default)
    } else {
        eprintln!("SKIPPED: MovieLens-100k not found; set CASCADE_DATA_DIR");
        None
    }
}

/// Standard output and error as text, for assertions and failure messages.
pub fn texts(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
