//! The Redis deployment of a server: its log forwarded into the shared
//! event stream, and the features read from the shared online store.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use cascade_store::online::{FeatureRead, OnlineSettings, RedisOnlineStore};
use cascade_store::{Forwarded, RedisEventBus, Store};
use cascade_stream::{BusWorker, StreamSettings};

use crate::workspace::Workspace;

/// With `[online_store] backend = "redis"`: a thread forwards the
/// workspace's log into the Redis event stream, exactly once, for
/// `cascade stream-worker`s to turn into features, and the features this
/// server reads come from the Redis online store they keep, shared by
/// every server of the deployment.
pub fn start_redis(
    workspace: &Workspace,
    item_categories: HashMap<String, Vec<String>>,
) -> Result<Arc<dyn FeatureRead>> {
    let online = &workspace.config.online_store;
    let settings = StreamSettings::from(&workspace.config.stream).online();
    let store = RedisOnlineStore::open(&online.redis_url, &online.key_prefix, settings)?;
    let bus = RedisEventBus::open(&online.redis_url, &online.key_prefix)?;
    eprintln!("cascade serve: forwarding events to Redis stream {}", bus.stream());
    spawn_forwarder(bus, workspace.store()?, workspace.node_id()?, item_categories);
    Ok(Arc::new(store))
}

/// Events per forwarding transaction of a server's forwarder thread.
const FORWARD_BATCH: usize = 1_000;
/// How often an idle forwarder thread looks for new events in the log.
const FORWARD_IDLE_POLL: Duration = Duration::from_millis(20);
/// How long a forwarder thread waits after Redis failed, or while the
/// workers are too far behind, before trying again.
pub const FORWARD_RETRY: Duration = Duration::from_secs(1);
/// Entries the workers may leave unread before forwarders wait: ~93 MB of
/// Redis memory (docs/scaling.md); the rest waits in the servers' logs.
pub const MAX_UNREAD: u64 = 1_000_000;
/// How long a stream worker waits for new events before asking again.
pub const WORKER_IDLE_WAIT: Duration = Duration::from_millis(50);

/// A thread that forwards `log` (the server's, named `node`) into the
/// Redis stream for as long as the process runs. The forwarded offset lives
/// in Redis with the entries, so a failure or a restart resumes where the
/// stream ends; failures are reported once and retried.
pub fn spawn_forwarder(
    bus: RedisEventBus,
    log: Store,
    node: String,
    item_categories: HashMap<String, Vec<String>>,
) {
    std::thread::spawn(move || {
        let lookup = |item: &str| item_categories.get(item).cloned().unwrap_or_default();
        // Say so once when forwarding starts failing or waiting, not every second.
        let mut stalled = false;
        loop {
            match bus.forward_from_log(&log, &node, FORWARD_BATCH, MAX_UNREAD, &lookup) {
                Ok(Forwarded::CaughtUp) => std::thread::sleep(FORWARD_IDLE_POLL),
                Ok(Forwarded::Sent(_)) => stalled = false,
                Ok(Forwarded::Throttled { unread }) => {
                    if !stalled {
                        eprintln!(
                            "forwarding events to Redis: the workers are {unread} behind; waiting"
                        );
                    }
                    stalled = true;
                    std::thread::sleep(FORWARD_RETRY);
                }
                Err(e) => {
                    if !stalled {
                        eprintln!("forwarding events to Redis: {e}; retrying");
                    }
                    stalled = true;
                    std::thread::sleep(FORWARD_RETRY);
                }
            }
        }
    });
}

/// A stream worker on a thread of its own, for as long as the process runs
/// (benchmarks that need the whole Redis path in one process).
pub fn spawn_worker_thread(
    url: String,
    prefix: String,
    consumer: String,
    settings: OnlineSettings,
) -> Result<()> {
    let bus = RedisEventBus::open(&url, &prefix)?;
    let store = RedisOnlineStore::open(&url, &prefix, settings)?;
    std::thread::spawn(move || {
        let mut worker = BusWorker::new(&bus, &store, &consumer, 5_000);
        loop {
            if let Err(e) = worker.step(1_000, WORKER_IDLE_WAIT.as_millis() as u64) {
                eprintln!("stream worker {consumer}: {e}; retrying");
                std::thread::sleep(FORWARD_RETRY);
            }
        }
    });
    Ok(())
}
