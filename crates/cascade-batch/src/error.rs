//! Errors of the batch side.

use std::path::PathBuf;

use cascade_store::StoreError;

/// A batch job failed.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// A SQL statement failed; `step` names the pipeline step.
    #[error("pipeline step `{step}`: {source}")]
    Query {
        /// The step.
        step: String,
        /// DataFusion's error.
        source: datafusion::error::DataFusionError,
    },
    /// Writing or reading a Parquet or other file failed.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The embedded store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The data cannot support the protocol (e.g. no events).
    #[error("{0}")]
    Data(String),
}

impl BatchError {
    pub(crate) fn file(path: &std::path::Path, message: impl std::fmt::Display) -> BatchError {
        BatchError::File { path: path.to_owned(), message: message.to_string() }
    }
}
