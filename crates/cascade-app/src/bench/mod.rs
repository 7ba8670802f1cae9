//! The `cascade bench …` benchmarks: each builds what it measures with the
//! same wiring as `cascade serve` (`crate::serving::server`), runs it, and
//! returns its report as JSON for the binary to print. docs/benchmarks.md
//! records their results.

pub mod evaluation;
pub mod experiments;
pub mod freshness;
pub mod ingest;
pub mod load;
pub mod redis_workers;
pub mod serving;
pub mod stream;
pub mod training;

/// A memory field of this process's `/proc/self/status` (`VmHWM`, the peak
/// resident set; `VmRSS`, the current one), in bytes (Linux).
pub(crate) fn process_memory_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.split(':').next() == Some(field))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
}
