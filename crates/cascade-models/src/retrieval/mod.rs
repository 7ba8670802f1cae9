//! Retrieval models: user and item embeddings whose dot product scores every
//! item, trained on sparse embedding tables (`cascade-nn`).

pub mod bpr_mf;
pub mod negatives;
pub mod neumf;
pub mod sasrec;
pub mod two_tower;

pub use bpr_mf::{BprMf, BprMfConfig, EpochReport};
pub use negatives::{NegativeSampler, NegativeSampling};
pub use neumf::{NeuMf, NeuMfConfig};
pub use sasrec::{SasRec, SasRecConfig};
pub use two_tower::{TowerFeatures, TwoTower, TwoTowerConfig};
