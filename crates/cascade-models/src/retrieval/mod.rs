//! Retrieval models: user and item embeddings whose dot product scores every
//! item, trained on sparse embedding tables (`cascade-nn`).

pub mod bpr_mf;

pub use bpr_mf::{BprMf, BprMfConfig, EpochReport};
