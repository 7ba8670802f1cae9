//! Online serving: "what should this user see now?"
//!
//! A request flows through [`recommender::Recommender`]: the user is assigned
//! an experiment variant, recall channels ([`recall`]) propose candidates
//! under per-channel quotas, a ranking model ([`rank`]) scores them in one
//! batch, re-rankers ([`rerank`]) apply diversity and business rules, and the
//! response names each item's score, rank and recall channels. [`http`]
//! serves it as JSON over HTTP with Prometheus metrics ([`metrics`]); the
//! models sit behind one `Arc` that a reload swaps atomically, so in-flight
//! requests finish on the models they started with. [`realtime`] shows the
//! stream processor's features (histories, item windows, trending).
#![warn(missing_docs)]

pub mod access;
pub mod catalog;
pub mod entities;
pub mod events;
pub mod experiments;
pub mod exposure;
pub mod field_encoder;
pub mod http;
pub mod metrics;
pub mod models;
pub mod online_learning;
pub mod openapi;
pub mod pipeline_settings;
pub mod rank;
pub mod realtime;
pub mod recall;
pub mod recommender;
pub mod request;
pub mod rerank;
pub mod retrieval_learning;
pub mod synthetic;
#[cfg(test)]
mod test_fixture;
