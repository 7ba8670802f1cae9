//! Experiments outside PROTOCOLS.md's splits, reported in docs/results.md.

pub mod new_items_replay;
pub mod online_replay;
pub mod serving_replay;
