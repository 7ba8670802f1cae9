//! `cascade bench redis-workers`: how fast stream workers in one consumer
//! group turn the Redis event stream into Redis online-store features, with
//! 1, 2, … workers, and how many bytes each kind of feature takes in Redis
//! (the sizing numbers of docs/scaling.md).
//!
//! The synthetic session log of `cascade bench stream` is published to a
//! fresh stream first (not timed); then N worker threads, each with its own
//! connections, drain it, and the wall time from their start to the group
//! being drained is measured. Redis runs on the same machine unless
//! `CASCADE_REDIS_URL` names another.

use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::json;

use cascade_store::RedisEventBus;
use cascade_store::online::RedisOnlineStore;
use cascade_store::online::test_server::RedisForTests;
use cascade_stream::{BusWorker, StreamSettings};

use crate::bench::stream::{SessionLog, SessionLogArgs};
use crate::progress::Progress;

/// What `cascade bench redis-workers` measures.
#[derive(Debug, Clone)]
pub struct RedisWorkersBench {
    pub log: SessionLogArgs,
    /// Worker counts to measure, each on a fresh stream.
    pub workers: Vec<usize>,
}

/// Entries a worker reads, applies and acks at once.
const WORKER_BATCH: usize = 1_000;

pub fn redis_workers_bench(bench: &RedisWorkersBench) -> Result<serde_json::Value> {
    if bench.workers.contains(&0) {
        bail!("--workers must be positive");
    }
    let server = RedisForTests::start()
        .ok_or_else(|| anyhow!("no Redis: set CASCADE_REDIS_URL or install redis-server"))?;
    let progress = Progress { quiet: false };
    let SessionLog { spec, events, categories } = bench.log.generate()?;
    let lookup = |item: &str| categories.get(item).cloned().unwrap_or_default();
    let settings = StreamSettings::default().online();

    let mut runs = Vec::new();
    for &workers in &bench.workers {
        let prefix = server.fresh_prefix(&format!("bench-{workers}"));
        let bus = RedisEventBus::open(&server.url, &prefix)?;
        let bar = progress.bar(events.len() as u64, "publishing", "events");
        for chunk in events.chunks(10_000) {
            bus.publish(chunk, &lookup)?;
            bar.inc(chunk.len() as u64);
        }
        bar.finish_and_clear();
        let spinner = progress.spinner(&format!("{workers} worker(s) applying"));
        let started = Instant::now();
        let stats = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|w| {
                    let (url, prefix, settings) = (&server.url, &prefix, settings.clone());
                    scope.spawn(move || -> Result<_> {
                        let bus = RedisEventBus::open(url, prefix)?;
                        let store = RedisOnlineStore::open(url, prefix, settings)?;
                        let mut worker = BusWorker::new(&bus, &store, &format!("w{w}"), 60_000);
                        while worker.step(WORKER_BATCH, 0)? > 0 || !worker.drained()? {}
                        Ok(worker.stats().clone())
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(anyhow!("a worker thread panicked"))))
                .collect::<Result<Vec<_>>>()
        })?;
        let seconds = started.elapsed().as_secs_f64();
        spinner.finish_and_clear();
        let applied: u64 = stats.iter().map(|s| s.applied).sum();
        if applied != events.len() as u64 {
            bail!("{workers} workers applied {applied} of {} events", events.len());
        }
        // What the workers' periodic trims left of the drained stream.
        let stream_entries_left = bus.length()?;
        let memory = if runs.is_empty() { Some(key_sizes(&server.url, &prefix)?) } else { None };
        runs.push(json!({
            "workers": workers,
            "seconds": seconds,
            "events_per_s": events.len() as f64 / seconds,
            "events_per_s_per_worker": events.len() as f64 / seconds / workers as f64,
            "per_worker": stats,
            "stream_entries_left": stream_entries_left,
            "memory": memory,
        }));
        delete_prefix(&server.url, &prefix)?;
    }
    let report = json!({
        "bench": "redis-workers",
        "events": events.len(),
        "users": spec.users,
        "items": spec.items,
        "impressions_per_click": bench.log.impressions_per_click,
        "redis": server.url,
        "runs": runs,
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
    });
    Ok(report)
}

/// Keys and bytes (`MEMORY USAGE`, so Redis' own overhead included) per
/// kind of key under `prefix`.
fn key_sizes(url: &str, prefix: &str) -> Result<serde_json::Value> {
    let mut connection = redis::Client::open(url)?.get_connection()?;
    let kinds = ["hist", "aff", "ib", "trend", "applied", "events"];
    let mut report = serde_json::Map::new();
    for kind in kinds {
        let pattern = match kind {
            "events" => format!("{prefix}:events"),
            _ => format!("{prefix}:{kind}:*"),
        };
        let keys = scan_keys(&mut connection, &pattern)?;
        let mut bytes = 0u64;
        for key in &keys {
            let usage: Option<u64> =
                redis::cmd("MEMORY").arg("USAGE").arg(key).query(&mut connection)?;
            bytes += usage.unwrap_or(0);
        }
        report.insert(
            kind.to_owned(),
            json!({ "keys": keys.len(), "bytes": bytes,
                "bytes_per_key": bytes as f64 / keys.len().max(1) as f64 }),
        );
    }
    Ok(serde_json::Value::Object(report))
}

/// Removes a run's keys so the next run (and the server) start clean.
fn delete_prefix(url: &str, prefix: &str) -> Result<()> {
    let mut connection = redis::Client::open(url)?.get_connection()?;
    let keys = scan_keys(&mut connection, &format!("{prefix}:*"))?;
    for chunk in keys.chunks(10_000) {
        redis::cmd("UNLINK").arg(chunk).exec(&mut connection)?;
    }
    Ok(())
}

/// Every key matching `pattern`, by `SCAN` (never `KEYS`, which blocks).
fn scan_keys(connection: &mut redis::Connection, pattern: &str) -> Result<Vec<String>> {
    let mut scan = redis::cmd("SCAN");
    scan.cursor_arg(0).arg("MATCH").arg(pattern).arg("COUNT").arg(10_000);
    let keys = scan.iter(connection).with_context(|| format!("SCAN {pattern}"))?;
    Ok(keys.collect::<redis::RedisResult<Vec<String>>>()?)
}
