//! Online experiments in the server: which pipeline each user gets
//! ([`registry`]), the per-variant totals kept from the event log
//! ([`ledger`], [`analysis`]) and the results read from them. The
//! statistics themselves are `cascade-experiments`'.

pub mod analysis;
pub mod ledger;
pub mod registry;
pub mod variant_models;

pub use analysis::{ExperimentAnalysis, ResultsResponse};
pub use registry::{
    ExperimentRecord, ExperimentStatus, Experiments, INTERLEAVED, Interleaved, Route,
};
pub use variant_models::{VariantModelLoader, VariantModels};
