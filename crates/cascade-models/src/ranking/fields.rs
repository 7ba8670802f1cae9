//! The input of ranking models: for each example, each field's ids (one for a
//! single-valued field, several for a multi-valued one such as genres).
//! Field values become ids by a fixed hash of `field=value`, so any schema
//! maps onto the same tables with no vocabulary pass, and new values seen
//! online simply get new rows.

/// One example's ids, field by field (the same field order for every example).
pub type FieldIds = Vec<Vec<u64>>;

pub use cascade_core::ids::feature_id;
