//! Honest offline evaluation: metrics, each in its own file under a small
//! trait, and runners for the protocols of `PROTOCOLS.md` that accept any model
//! implementing a scoring trait.
#![warn(missing_docs)]

pub mod metrics;
pub mod plots;
pub mod protocols;
