//! Experiments outside PROTOCOLS.md's splits, reported in docs/results.md.

pub mod serving_replay;
