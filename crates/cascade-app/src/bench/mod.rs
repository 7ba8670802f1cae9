//! The `cascade bench …` benchmarks: each builds what it measures with the
//! same wiring as `cascade serve` (`crate::serving::server`), runs it, and
//! returns its report as JSON for the binary to print. docs/benchmarks.md
//! records their results.

pub mod evaluation;
pub mod freshness;
pub mod ingest;
pub mod load;
pub mod redis_workers;
pub mod serving;
pub mod stream;
pub mod training;
