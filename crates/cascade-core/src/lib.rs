//! Shared vocabulary of Cascade: the configuration that declares the data
//! model, the feature values it produces, and the events that flow through the
//! log. Every other crate speaks in these types; this crate owns no I/O beyond
//! reading the configuration file.
#![warn(missing_docs)]

pub mod config;
pub mod context;
pub mod event;
pub mod experiment_config;
pub mod ids;
pub mod ingest;
pub mod policy_config;
pub mod realtime_config;
pub mod report_config;
pub mod serve_config;
pub mod timestamp;
pub mod value;

pub use config::{Config, ConfigError};
pub use event::{Event, StoredEvent};
pub use ids::IdIndex;
pub use ingest::{EventInput, IngestConfig};
pub use value::{FeatureValue, Record};
