//! `cascade stream-worker` and `cascade forward-events`: the scale-out data
//! path on Redis.
//!
//! Servers keep appending to their embedded log (the durable
//! acknowledgement stays local); `forward-events` copies that log into the
//! Redis stream exactly once; any number of `stream-worker`s in the
//! stream's consumer group keep the Redis online store up to date.

use std::time::Instant;

use anyhow::{Result, bail};

use cascade_core::config::OnlineBackend;
use cascade_store::online::RedisOnlineStore;
use cascade_store::{Forwarded, RedisEventBus};
use cascade_stream::{BusWorker, StreamSettings};

use cascade_app::serving::redis::{FORWARD_RETRY, MAX_UNREAD, WORKER_IDLE_WAIT};
use cascade_app::{Progress, Workspace};

use crate::Common;

/// Events per forwarded transaction.
const BATCH: usize = 1_000;

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    pub consumer: String,
    pub claim_idle_ms: u64,
    /// Most entries read, applied and acked at once.
    pub batch: usize,
    /// Exit once the group has had nothing to do for this long (batch
    /// catch-up, tests); run until killed when `None`.
    pub exit_when_drained_ms: Option<u64>,
}

fn redis_settings(workspace: &Workspace, command: &str) -> Result<(String, String)> {
    let online = &workspace.config.online_store;
    if online.backend != OnlineBackend::Redis {
        bail!(
            "`cascade {command}` works on the Redis event bus: set `[online_store] backend = \"redis\"` in the config"
        );
    }
    Ok((online.redis_url.clone(), online.key_prefix.clone()))
}

/// Runs one consumer of the group until killed, or until drained.
pub fn run_worker(common: &Common, options: &WorkerOptions) -> Result<()> {
    let workspace = common.open_workspace()?;
    let (url, prefix) = redis_settings(&workspace, "stream-worker")?;
    let bus = RedisEventBus::open(&url, &prefix)?;
    let settings = StreamSettings::from(&workspace.config.stream).online();
    let store = RedisOnlineStore::open(&url, &prefix, settings)?;
    let mut worker = BusWorker::new(&bus, &store, &options.consumer, options.claim_idle_ms)
        .with_event_time_bounds(workspace.config.ingest.clone());
    let spinner = Progress { quiet: false }.spinner(&format!("stream worker {}", options.consumer));
    let mut idle_since: Option<Instant> = None;
    loop {
        let handled = worker.step(options.batch.max(1), WORKER_IDLE_WAIT.as_millis() as u64)?;
        let stats = worker.stats();
        spinner.set_message(format!(
            "stream worker {}: {} read, {} claimed, {} applied, {} duplicates",
            stats.consumer, stats.read, stats.claimed, stats.applied, stats.duplicates
        ));
        let Some(limit) = options.exit_when_drained_ms else { continue };
        if handled > 0 || !worker.drained()? {
            idle_since = None;
        } else if idle_since.get_or_insert_with(Instant::now).elapsed().as_millis() as u64 >= limit
        {
            break;
        }
    }
    spinner.finish_and_clear();
    println!("{}", serde_json::to_string(worker.stats())?);
    Ok(())
}

/// Copies the workspace's log into the Redis stream, exactly once; with
/// `follow`, keeps tailing it.
pub fn run_forwarder(common: &Common, follow: bool) -> Result<()> {
    let workspace = common.open_workspace()?;
    let (url, prefix) = redis_settings(&workspace, "forward-events")?;
    let bus = RedisEventBus::open(&url, &prefix)?;
    let log = workspace.store()?;
    let node = workspace.node_id()?;
    let categories = workspace.item_categories()?;
    let lookup = |item: &str| categories.get(item).cloned().unwrap_or_default();
    let spinner = Progress { quiet: false }.spinner("forwarding events");
    let mut forwarded = 0u64;
    loop {
        match bus.forward_from_log(&log, &node, BATCH, MAX_UNREAD, &lookup)? {
            Forwarded::Sent(sent) => forwarded += sent as u64,
            Forwarded::CaughtUp if !follow => break,
            Forwarded::CaughtUp => std::thread::sleep(WORKER_IDLE_WAIT),
            Forwarded::Throttled { unread } => {
                spinner.set_message(format!("waiting: the workers are {unread} behind"));
                std::thread::sleep(FORWARD_RETRY);
                continue;
            }
        }
        spinner.set_message(format!("forwarded {forwarded} events to {}", bus.stream()));
    }
    spinner.finish_and_clear();
    println!("{}", serde_json::json!({ "forwarded": forwarded, "stream": bus.stream() }));
    Ok(())
}
