//! The batch side of the data part: getting data in (dataset fetch and the
//! generic importer), the Parquet offline store, and the DataFusion pipeline
//! that turns the log into protocol splits, point-in-time training samples,
//! serving features and BI statistics.
//!
//! DataFusion lives in this crate only, so every other crate builds without it.
#![warn(missing_docs)]

pub mod datasets;
mod error;
pub mod import;
pub mod ipinyou;
pub mod offline;
pub mod pipeline;
pub mod sources;
pub mod stats;
mod table_columns;

pub use error::BatchError;
