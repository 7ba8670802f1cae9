//! The model zoo: the baselines that make the whole loop real — most-popular,
//! ItemKNN and EASE, each a [`FullRanker`](cascade_eval::protocols::FullRanker),
//! plus a smoothed-rate click model for the CTR protocol — the retrieval
//! models trained on sparse embedding tables (`retrieval/`), and
//! validation-only hyperparameter selection.
#![warn(missing_docs)]

pub mod baselines;
pub mod early_stopping;
pub mod interactions;
pub mod linalg;
pub mod random;
pub mod ranking;
pub mod registry;
pub mod retrieval;
pub mod training;
pub mod tuning;

pub use baselines::{BiasCtr, Ease, EaseConfig, ItemKnn, ItemKnnConfig, MostPopular, ease};
pub use interactions::Interactions;
