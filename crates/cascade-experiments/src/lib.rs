//! Online experiments (A/B tests) over the serving pipeline.
//!
//! - [`assignment`]: which experiments and variants a user is in:
//!   deterministic hashing of (salt, user id), layers whose experiments
//!   share no traffic, orthogonal layers, a global holdout.
//! - [`statistics`]: from per-variant sufficient statistics (counts, sums,
//!   sums of squares and of products) to lifts with confidence intervals,
//!   p-values, CUPED, an always-valid sequential test, sample-ratio-mismatch
//!   checks and Holm's correction. Nothing here reads a log: results cost
//!   O(variants × metrics).
//! - [`results`]: an experiment's verdict from its variants' totals, and
//!   [`planned`]: the group-sequential verdict of one with a planned
//!   sample size, at looks the server takes as users arrive.
//!
//! The formulas follow GrowthBook's `gbstats` and are held to it, scipy and
//! statsmodels by committed fixtures (`tests/fixtures/`).

pub mod assignment;
pub mod calibration;
pub mod planned;
pub mod results;
pub mod statistics;
