//! Ranking (CTR) models: the probability that a user likes an item, from
//! categorical fields looked up in sparse embedding tables.

pub mod fields;
pub mod fm;

pub use fields::{FieldIds, feature_id};
pub use fm::{Fm, FmConfig};
