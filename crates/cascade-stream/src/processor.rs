//! Tails the event log from a checkpointed offset.
//!
//! The checkpoint holds the features and the offset they reflect, written
//! together in one atomic file replace (temp file, fsync, rename). After a
//! crash the processor reloads both and re-reads the log from that offset,
//! so no event is counted twice and none is skipped. Labelled samples
//! emitted after the last checkpoint are emitted again on replay; they carry
//! their impression's sequence number for the consumer to deduplicate.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use cascade_core::timestamp::now_ms;
use cascade_core::{IngestConfig, StoredEvent};
use cascade_store::{Store, StoreError};

use crate::features::{FeatureState, StreamSettings};
use crate::in_process::InProcessFeatures;
use crate::join::LabelledSample;
use crate::samples::SampleLog;

/// Checkpoint files written by other versions are refused, not misread.
const CHECKPOINT_VERSION: u32 = 1;

/// A stream-processing failure, naming what failed.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// Reading the event log failed.
    #[error("reading the event log: {0}")]
    Source(String),
    /// The checkpoint could not be read or written.
    #[error("checkpoint {path}: {message}")]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// A log the processor can tail: the embedded store, or Redis Streams.
pub trait EventSource {
    /// Up to `limit` events from sequence number `from` on, in order.
    fn page(&self, from: u64, limit: usize) -> Result<Vec<StoredEvent>, StreamError>;
}

impl EventSource for Store {
    fn page(&self, from: u64, limit: usize) -> Result<Vec<StoredEvent>, StreamError> {
        self.events_page(from, limit).map_err(|e: StoreError| StreamError::Source(e.to_string()))
    }
}

#[derive(Deserialize)]
struct Checkpoint {
    version: u32,
    /// The next sequence number to read.
    offset: u64,
    /// The sample log's durable length when the checkpoint was written.
    #[serde(default)]
    samples_bytes: u64,
    state: FeatureState,
}

/// What one [`StreamProcessor::step`] did.
#[derive(Debug, Default)]
pub struct Step {
    /// Events read (applied or skipped).
    pub events: usize,
    /// Events skipped because their time is outside the accepted bounds
    /// (logged before ingest checked event times, or imported).
    pub out_of_bounds: usize,
    /// Samples the events completed, in the order they were completed.
    pub samples: Vec<LabelledSample>,
}

/// The stream processor: features from the log, checkpointed.
pub struct StreamProcessor<S> {
    source: S,
    features: Arc<InProcessFeatures>,
    offset: u64,
    checkpoint: PathBuf,
    item_categories: HashMap<String, Vec<String>>,
    samples: Option<SampleLog>,
    /// The sample log length the resumed checkpoint recorded.
    restored_samples_bytes: u64,
    /// Which event times count, and how far the watermark may run ahead
    /// of this machine's clock.
    time_bounds: IngestConfig,
}

impl<S> std::fmt::Debug for StreamProcessor<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamProcessor")
            .field("offset", &self.offset)
            .field("checkpoint", &self.checkpoint)
            .finish_non_exhaustive()
    }
}

impl<S: EventSource> StreamProcessor<S> {
    /// Resumes from the checkpoint at `checkpoint` if there is one (which
    /// must have been written with the same settings), else starts at the
    /// log's beginning. `item_categories` feeds the affinities.
    pub fn open(
        source: S,
        checkpoint: &Path,
        settings: StreamSettings,
        item_categories: HashMap<String, Vec<String>>,
    ) -> Result<StreamProcessor<S>, StreamError> {
        let fail =
            |message: String| StreamError::Checkpoint { path: checkpoint.to_owned(), message };
        let (state, offset, samples_bytes) = match std::fs::read(checkpoint) {
            Ok(bytes) => {
                let saved: Checkpoint = serde_json::from_slice(&bytes).map_err(|e| {
                    fail(format!("unreadable ({e}); delete it to rebuild from the log"))
                })?;
                if saved.version != CHECKPOINT_VERSION {
                    return Err(fail(format!(
                        "written by checkpoint version {}, this build reads {CHECKPOINT_VERSION}",
                        saved.version
                    )));
                }
                if saved.state.settings() != &settings {
                    return Err(fail(
                        "written with different stream settings ([stream] in the config); \
                         delete it to rebuild the features from the log"
                            .into(),
                    ));
                }
                (saved.state, saved.offset, saved.samples_bytes)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                (FeatureState::new(settings), 0, 0)
            }
            Err(e) => return Err(fail(e.to_string())),
        };
        Ok(StreamProcessor {
            source,
            features: Arc::new(InProcessFeatures::new(state)),
            offset,
            checkpoint: checkpoint.to_owned(),
            item_categories,
            samples: None,
            restored_samples_bytes: samples_bytes,
            time_bounds: IngestConfig::default(),
        })
    }

    /// Skips events outside `bounds` (`[ingest]`'s event-time bounds, the
    /// ones ingest applies) and keeps the watermark within the clock plus
    /// its skew; the default is `IngestConfig::default()`'s.
    pub fn with_event_time_bounds(mut self, bounds: IngestConfig) -> StreamProcessor<S> {
        self.time_bounds = bounds;
        self
    }

    /// Also writes the labelled samples to a log at `path`, exactly once
    /// across restarts (see `samples`).
    pub fn with_sample_log(mut self, path: &Path) -> Result<StreamProcessor<S>, StreamError> {
        self.samples = Some(SampleLog::open(path, self.restored_samples_bytes)?);
        Ok(self)
    }

    /// The next sequence number to read.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The features as of [`StreamProcessor::offset`], shared with their
    /// readers.
    pub fn features(&self) -> &Arc<InProcessFeatures> {
        &self.features
    }

    /// Sets an item's categories for the affinities of events applied from
    /// now on (an item created since the processor opened).
    pub fn set_item_categories(&mut self, item: &str, categories: Vec<String>) {
        self.item_categories.insert(item.to_owned(), categories);
    }

    /// Applies up to `max_events` events past the offset.
    pub fn step(&mut self, max_events: usize) -> Result<Step, StreamError> {
        let page = self.source.page(self.offset, max_events)?;
        let mut step = Step { events: page.len(), ..Step::default() };
        let now = now_ms();
        let mut first_skipped = None;
        self.features.write(|state| {
            // State saved before event times were bounded may hold a
            // watermark from the far future, which would keep every window
            // empty.
            if let Some(replaced) = state.repair(self.time_bounds.event_time_ceiling(now)) {
                eprintln!(
                    "stream: the watermark {replaced} was beyond the clock plus the allowed \
                     skew; repaired"
                );
            }
            for stored in &page {
                self.offset = stored.seq + 1;
                if let Err(why) = self.time_bounds.check_event_time(stored.event.ts_ms, now) {
                    step.out_of_bounds += 1;
                    first_skipped.get_or_insert((stored.seq, why));
                    continue;
                }
                let categories =
                    self.item_categories.get(&stored.event.item).map(Vec::as_slice).unwrap_or(&[]);
                step.samples.extend(state.apply(stored, categories));
            }
        });
        if let Some((seq, why)) = first_skipped {
            eprintln!(
                "stream: skipped {} event(s) out of bounds; event {seq}: {why}",
                step.out_of_bounds
            );
        }
        if let Some(log) = &mut self.samples {
            log.append(&step.samples)?;
        }
        Ok(step)
    }

    /// Makes the sample log durable; returns its length (0 without one).
    pub fn sync_samples(&mut self) -> Result<u64, StreamError> {
        self.samples.as_mut().map_or(Ok(0), SampleLog::sync)
    }

    /// Drops item counters that have emptied (before a checkpoint).
    pub fn compact(&mut self) {
        self.features.write(FeatureState::compact);
    }

    /// Writes the features and the offset together, atomically and durably.
    pub fn checkpoint(&mut self) -> Result<(), StreamError> {
        self.compact();
        let samples_bytes = self.sync_samples()?;
        let (path, offset) = (&self.checkpoint, self.offset);
        self.features.read(|state| write_checkpoint(path, offset, samples_bytes, state))
    }
}

/// Writes `state`, the `offset` it reflects and the sample log's durable
/// length to `path` in one atomic, durable file replace.
pub fn write_checkpoint(
    path: &Path,
    offset: u64,
    samples_bytes: u64,
    state: &FeatureState,
) -> Result<(), StreamError> {
    let fail = |e: std::io::Error| StreamError::Checkpoint {
        path: path.to_owned(),
        message: e.to_string(),
    };
    #[derive(Serialize)]
    struct Borrowed<'a> {
        version: u32,
        offset: u64,
        samples_bytes: u64,
        state: &'a FeatureState,
    }
    let saved = Borrowed { version: CHECKPOINT_VERSION, offset, samples_bytes, state };
    let bytes = serde_json::to_vec(&saved).map_err(|e| StreamError::Checkpoint {
        path: path.to_owned(),
        message: format!("cannot encode the features: {e}"),
    })?;
    let directory = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(directory) = directory {
        std::fs::create_dir_all(directory).map_err(fail)?;
    }
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::File::create(&temporary).map_err(fail)?;
    file.write_all(&bytes).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    std::fs::rename(&temporary, path).map_err(fail)?;
    if let Some(directory) = directory {
        // The rename is durable only once the directory is.
        std::fs::File::open(directory).and_then(|d| d.sync_all()).map_err(fail)?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use cascade_core::Event;
    use cascade_store::online::FeatureRead;
    use cascade_store::{EventKey, KeyedEvent};

    use super::*;
    use crate::samples::read_samples;

    /// A processor with default settings and no item categories.
    pub(crate) fn open_with_defaults(store: &Store, checkpoint: &Path) -> StreamProcessor<Store> {
        StreamProcessor::open(store.clone(), checkpoint, StreamSettings::default(), HashMap::new())
            .unwrap()
    }

    fn append(store: &Store, from: usize, count: usize) {
        let events: Vec<KeyedEvent> = (from..from + count)
            .map(|n| KeyedEvent {
                key: EventKey::from_client_id(&n.to_string()),
                event: Event {
                    user: format!("u{}", n % 3),
                    item: format!("i{}", n % 5),
                    event_type: if n % 2 == 0 { "impression".into() } else { "click".into() },
                    value: None,
                    ts_ms: 1_000 * n as i64,
                    served: None,
                },
            })
            .collect();
        store.append(&events).unwrap();
    }

    fn click(key: &str, item: &str, ts_ms: i64) -> KeyedEvent {
        KeyedEvent {
            key: EventKey::from_client_id(key),
            event: Event {
                user: "u".into(),
                item: item.into(),
                event_type: "click".into(),
                value: None,
                ts_ms,
                served: None,
            },
        }
    }

    #[test]
    fn far_future_events_are_skipped_and_a_poisoned_checkpoint_is_repaired() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store.redb")).unwrap();
        let checkpoint = dir.path().join("stream/checkpoint.json");
        let now = now_ms();
        let far = 99_999_999_999_999_999;
        // A log from before ingest bounded event times: a far-future click
        // among clicks on item 50 now.
        store
            .append(&[click("a", "50", now), click("bad", "x", far), click("b", "50", now)])
            .unwrap();
        let open = || open_with_defaults(&store, &checkpoint);
        let mut processor = open();
        let step = processor.step(10).unwrap();
        assert_eq!((step.events, step.out_of_bounds), (3, 1));
        let features = processor.features().clone();
        assert_eq!(features.watermark_ms().unwrap(), Some(now));
        assert_eq!(features.item_tallies("50", now).unwrap()[0].interactions, 2);
        assert_eq!(processor.offset(), 3, "a skipped event is read past, not retried");

        // A checkpoint an older build wrote after applying the bad event.
        let mut poisoned = FeatureState::new(StreamSettings::default());
        for stored in store.events(0).unwrap() {
            poisoned.apply(&stored, &[]);
        }
        assert_eq!(poisoned.watermark_ms().unwrap(), Some(far));
        write_checkpoint(&checkpoint, 3, 0, &poisoned).unwrap();
        store.append(&[click("c", "60", now)]).unwrap();
        let mut resumed = open();
        resumed.step(10).unwrap();
        let features = resumed.features();
        let at = features.now_ms().unwrap();
        assert!(at <= now_ms() + 300_000, "repaired at the first step");
        assert_eq!(
            features.item_tallies("60", at).unwrap()[0].interactions,
            1,
            "later clicks count"
        );
        assert_eq!(features.item_tallies("50", at).unwrap()[0].interactions, 2);
        assert_eq!(features.trending(at, 1).unwrap(), [("50".to_owned(), 2)]);
    }

    #[test]
    fn a_restart_from_the_checkpoint_counts_every_event_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store.redb")).unwrap();
        let checkpoint = dir.path().join("stream/checkpoint.json");
        let samples = dir.path().join("stream/samples.jsonl");
        append(&store, 0, 40);

        // The uninterrupted run: everything in one go.
        let reference_samples = dir.path().join("reference-samples.jsonl");
        let mut reference = StreamProcessor::open(
            store.clone(),
            &dir.path().join("reference.json"),
            StreamSettings::default(),
            HashMap::new(),
        )
        .unwrap()
        .with_sample_log(&reference_samples)
        .unwrap();
        append(&store, 40, 20);
        while reference.step(7).unwrap().events > 0 {}
        reference.checkpoint().unwrap();

        // The interrupted one: 25 events, a checkpoint, 10 more events whose
        // effects (features and samples) are lost in a crash, then a restart
        // from the checkpoint.
        let open = || open_with_defaults(&store, &checkpoint).with_sample_log(&samples).unwrap();
        let mut first = open();
        first.step(25).unwrap();
        first.checkpoint().unwrap();
        first.step(10).unwrap();
        first.sync_samples().unwrap(); // the crash comes after these samples hit the disk
        drop(first);
        let mut resumed = open();
        assert_eq!(resumed.offset(), 25);
        while resumed.step(7).unwrap().events > 0 {}
        resumed.checkpoint().unwrap();
        assert_eq!(resumed.offset(), 60);
        assert_eq!(
            resumed.features().read(Clone::clone),
            reference.features().read(Clone::clone),
            "same features as the uninterrupted run"
        );
        let written = read_samples(&samples).unwrap();
        assert!(!written.is_empty(), "clicks 15 s after their impressions are positives");
        assert_eq!(written, read_samples(&reference_samples).unwrap(), "each sample once");
    }

    #[test]
    fn a_checkpoint_with_other_settings_or_garbage_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store.redb")).unwrap();
        let path = dir.path().join("checkpoint.json");
        let mut processor =
            StreamProcessor::open(store.clone(), &path, StreamSettings::default(), HashMap::new())
                .unwrap();
        processor.checkpoint().unwrap();
        let mut other = StreamSettings::default();
        other.features.history_length = 3;
        let error = StreamProcessor::open(store.clone(), &path, other, HashMap::new()).unwrap_err();
        assert!(error.to_string().contains("different stream settings"), "{error}");
        std::fs::write(&path, b"{").unwrap();
        let error = StreamProcessor::open(store, &path, StreamSettings::default(), HashMap::new())
            .unwrap_err();
        assert!(error.to_string().contains("checkpoint.json"), "{error}");
    }
}
