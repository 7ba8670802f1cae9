//! The stream processor running beside the server (embedded deployment).
//!
//! A thread tails the store's log: it wakes when the ingest path says the
//! log has grown, and at least every `idle_poll` (for appends it is not
//! told about, such as impressions), applies what is new in pages of `page`
//! events, and checkpoints every `checkpoint_every` ([`LivePace`], from
//! `[stream]`). Readers see the features between pages; a page of 1,000
//! events holds the lock for about a millisecond. The ingest path can wait until its events are applied, so a
//! client reads its own writes.

use parking_lot::{Condvar, Mutex, RwLock};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cascade_core::config::StreamConfig;
use cascade_store::Store;

use crate::in_process::InProcessFeatures;
use crate::processor::{StreamError, StreamProcessor, write_checkpoint};

/// How the thread paces itself (`[stream]`'s `page_events`,
/// `idle_poll_ms`, `checkpoint_every_s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LivePace {
    /// Events applied per lock hold.
    pub page: usize,
    /// The longest the thread sleeps when nobody wakes it.
    pub idle_poll: Duration,
    /// How often the features and offset are checkpointed while events flow.
    pub checkpoint_every: Duration,
}

impl From<&StreamConfig> for LivePace {
    fn from(config: &StreamConfig) -> Self {
        LivePace {
            page: config.page_events.max(1),
            idle_poll: Duration::from_millis(config.idle_poll_ms),
            checkpoint_every: Duration::from_secs(config.checkpoint_every_s),
        }
    }
}

/// What `[stream]` documents.
impl Default for LivePace {
    fn default() -> Self {
        LivePace::from(&StreamConfig::default())
    }
}

/// Progress shared between the thread, the ingest path and readers.
#[derive(Debug, Default)]
struct Progress {
    /// The next sequence number the processor will read.
    applied: u64,
    /// Set by [`LiveStream::notify`], cleared by the thread.
    woken: bool,
    /// The thread stopped on this error.
    failed: Option<String>,
}

/// The running processor.
pub struct LiveStream {
    processor: RwLock<StreamProcessor<Store>>,
    /// The processor's features, which readers share without its lock.
    features: Arc<InProcessFeatures>,
    progress: Mutex<Progress>,
    /// Signalled when `applied` advances or `woken` is set.
    changed: Condvar,
    checkpoint: PathBuf,
    pace: LivePace,
}

impl std::fmt::Debug for LiveStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveStream").field("checkpoint", &self.checkpoint).finish_non_exhaustive()
    }
}

impl LiveStream {
    /// Catches `processor` up with the log, then keeps it caught up on a
    /// thread of its own.
    pub fn start(
        mut processor: StreamProcessor<Store>,
        checkpoint: PathBuf,
        pace: LivePace,
    ) -> Result<Arc<LiveStream>, StreamError> {
        // Nobody reads yet: catch up in larger pages.
        while processor.step(pace.page.saturating_mul(10))?.events > 0 {}
        let applied = processor.offset();
        let live = Arc::new(LiveStream {
            features: processor.features().clone(),
            processor: RwLock::new(processor),
            progress: Mutex::new(Progress { applied, ..Progress::default() }),
            changed: Condvar::new(),
            checkpoint,
            pace,
        });
        let worker = live.clone();
        std::thread::Builder::new()
            .name("cascade-stream".into())
            .spawn(move || worker.run())
            .map_err(|e| StreamError::Source(format!("cannot start the stream thread: {e}")))?;
        Ok(live)
    }

    fn run(&self) {
        let mut last_checkpoint = Instant::now();
        let mut unsaved = false;
        loop {
            let step = self.processor.write().step(self.pace.page);
            let events = match step {
                Ok(step) => step.events,
                Err(error) => return self.fail(error),
            };
            unsaved |= events > 0;
            let offset = self.processor.read().offset();
            let mut progress = self.progress.lock();
            progress.applied = offset;
            self.changed.notify_all();
            if unsaved && last_checkpoint.elapsed() >= self.pace.checkpoint_every {
                drop(progress);
                if let Err(error) = self.save() {
                    return self.fail(error);
                }
                (unsaved, last_checkpoint) = (false, Instant::now());
                continue;
            }
            if events == 0 {
                // Nothing new: sleep until woken or the poll interval passes.
                let mut progress = progress;
                self.changed.wait_while_for(&mut progress, |p| !p.woken, self.pace.idle_poll);
                progress.woken = false;
            }
        }
    }

    fn fail(&self, error: StreamError) {
        eprintln!("cascade: the stream processor stopped: {error}");
        self.progress.lock().failed = Some(error.to_string());
        self.changed.notify_all();
    }

    /// Writes a checkpoint now; the lock is held only to make the sample log
    /// durable and copy the state.
    pub fn save(&self) -> Result<(), StreamError> {
        let (offset, samples_bytes, state) = {
            let mut processor = self.processor.write();
            processor.compact();
            let samples_bytes = processor.sync_samples()?;
            (processor.offset(), samples_bytes, self.features.read(Clone::clone))
        };
        write_checkpoint(&self.checkpoint, offset, samples_bytes, &state)
    }

    /// Tells the thread the log has grown.
    pub fn notify(&self) {
        self.progress.lock().woken = true;
        self.changed.notify_all();
    }

    /// The next sequence number to be applied.
    pub fn applied(&self) -> u64 {
        self.progress.lock().applied
    }

    /// Sets an item's categories for the affinities of events applied
    /// from now on.
    pub fn set_item_categories(&self, item: &str, categories: Vec<String>) {
        self.processor.write().set_item_categories(item, categories);
    }

    /// Why the processor stopped, if it did.
    pub fn failure(&self) -> Option<String> {
        self.progress.lock().failed.clone()
    }

    /// Waits until every event before `offset` is applied, at most `timeout`;
    /// returns whether they are.
    pub fn wait_applied(&self, offset: u64, timeout: Duration) -> bool {
        let mut progress = self.progress.lock();
        let pending = |p: &mut Progress| p.applied < offset && p.failed.is_none();
        self.changed.wait_while_for(&mut progress, pending, timeout);
        progress.applied >= offset
    }

    /// The features, as the server reads them.
    pub fn features(&self) -> Arc<InProcessFeatures> {
        self.features.clone()
    }
}

#[cfg(test)]
mod tests {

    use cascade_core::Event;
    use cascade_store::online::FeatureRead;
    use cascade_store::{EventKey, KeyedEvent};

    use super::*;
    use crate::processor::tests::open_with_defaults;

    #[test]
    fn appended_events_become_visible_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store.redb")).unwrap();
        let checkpoint = dir.path().join("stream.json");
        let click = |n: usize| KeyedEvent {
            key: EventKey::from_client_id(&n.to_string()),
            event: Event {
                user: "u".into(),
                item: format!("i{n}"),
                event_type: "click".into(),
                value: None,
                ts_ms: n as i64,
                served: None,
            },
        };
        store.append(&[click(0)]).unwrap();
        let open = || open_with_defaults(&store, &checkpoint);
        let live = LiveStream::start(open(), checkpoint.clone(), LivePace::default()).unwrap();
        let features = live.features();
        assert_eq!(features.history("u").unwrap(), ["i0"], "caught up before serving");
        store.append(&[click(1)]).unwrap();
        live.notify();
        assert!(live.wait_applied(2, Duration::from_secs(5)));
        assert_eq!(features.history("u").unwrap(), ["i0", "i1"]);
        live.save().unwrap();
        assert_eq!(open().offset(), 2, "the checkpoint holds the offset");
        assert_eq!(open().features().history("u").unwrap(), ["i0", "i1"]);
    }
}
