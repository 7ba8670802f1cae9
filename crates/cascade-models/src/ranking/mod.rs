//! Ranking (CTR) models: the probability that a user likes an item, from
//! categorical fields (and, for DIN / DIEN, the user's recent items) looked up
//! in sparse embedding tables, then a dense head per architecture.

pub mod ctr_model;
pub mod fields;
pub mod fused;
pub mod heads;
pub mod inputs;

pub use ctr_model::{
    CtrArch, CtrEpoch, CtrModel, CtrModelConfig, ModelDelta, OnlineUpdate, SparseOnline,
};
pub use fields::{FieldIds, feature_id};
pub use inputs::CtrFeatures;
