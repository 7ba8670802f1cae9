//! `POST /v1/events`: a batch of user events, each validated on its own,
//! appended durably (group commit into the store's event log) and then
//! applied to the live histories, so a just-consumed item is excluded and
//! history-based recall reflects it on the next request.
//!
//! Answered only after the commit is durable: an event the client saw as
//! `appended` or `duplicate` survives a crash. Client-supplied `event_id`s
//! make retries idempotent; without one, the event's content (and its
//! occurrence within the batch) is the key.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use cascade_core::event::Served;
use cascade_core::{Event, IngestConfig};
use cascade_store::{AppendStatus, EventKey, GroupCommitter, KeyedEvent};
use cascade_stream::LiveStream;

use crate::recommender::{RecommendResponse, ServeError};

/// What a shed request is told to wait, in seconds.
pub const RETRY_AFTER_S: u64 = 1;
pub use cascade_core::event::IMPRESSION;

pub use cascade_core::EventInput;

/// `POST /v1/events`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventBatch {
    /// Each validated on its own, so one bad event does not sink the batch.
    #[schemars(with = "Vec<EventInput>")]
    pub events: Vec<Value>,
}

/// The answer to `POST /v1/events`: counts and one status per event.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EventsAnswer {
    /// Events new to the log.
    pub appended: usize,
    /// Events the log already had (retries).
    pub duplicate: usize,
    /// Invalid events, not logged.
    pub rejected: usize,
    /// In request order.
    pub events: Vec<EventStatus>,
}

impl EventsAnswer {
    /// Counts `statuses` by kind.
    pub fn new(events: Vec<EventStatus>) -> EventsAnswer {
        let count = |kind: &str| events.iter().filter(|s| s.status == kind).count();
        EventsAnswer {
            appended: count("appended"),
            duplicate: count("duplicate"),
            rejected: count("rejected"),
            events,
        }
    }
}

/// What happened to one event.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct EventStatus {
    /// Its position in the request's `events`.
    pub index: usize,
    /// `appended`, `duplicate` or `rejected`.
    pub status: String,
    /// Its position in the event log (appended or duplicate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// Why it was rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Durable appends for the server.
pub struct EventLog {
    committer: GroupCommitter,
    limits: IngestConfig,
    log_end: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLog").finish_non_exhaustive()
    }
}

impl EventLog {
    /// Appends through `committer` what `limits` accept, shedding load
    /// beyond `limits.max_pending_events`.
    pub fn new(committer: GroupCommitter, limits: IngestConfig) -> EventLog {
        EventLog { committer, limits, log_end: Default::default() }
    }

    /// The bounds this log applies (`[ingest]`).
    pub fn limits(&self) -> &IngestConfig {
        &self.limits
    }

    /// One past the highest sequence number this server has appended or
    /// seen acknowledged: where the log ends, as far as ingest knows.
    pub fn appended_up_to(&self) -> u64 {
        self.log_end.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Client events waiting for a commit.
    pub fn pending(&self) -> usize {
        self.committer.pending()
    }

    /// Validates each of `events` (JSON values) and appends the valid ones
    /// in one durable commit. Returns one status per event, and the events
    /// that are new to the log (to apply to live state).
    pub fn append(
        &self,
        events: &[Value],
        now_ms: i64,
    ) -> Result<(Vec<EventStatus>, Vec<Event>), ServeError> {
        let most = self.limits.max_events_per_request;
        if events.len() > most {
            return Err(ServeError::Invalid(format!(
                "{} events in one request; at most {most} ([ingest] max_events_per_request)",
                events.len()
            )));
        }
        let mut statuses: Vec<EventStatus> = Vec::with_capacity(events.len());
        let mut valid: Vec<(usize, KeyedEvent)> = Vec::new();
        let mut occurrences: HashMap<EventKey, u32> = HashMap::new();
        for (index, value) in events.iter().enumerate() {
            match parse(value, now_ms, &self.limits) {
                Ok((event_id, event)) => {
                    let key = EventKey::for_event(event_id.as_deref(), &event, &mut occurrences);
                    valid.push((index, KeyedEvent { key, event }));
                }
                Err(error) => statuses.push(EventStatus {
                    index,
                    status: "rejected".into(),
                    seq: None,
                    error: Some(error),
                }),
            }
        }
        let mut fresh = Vec::new();
        if !valid.is_empty() {
            let keyed: Vec<KeyedEvent> = valid.iter().map(|(_, k)| k.clone()).collect();
            let appended = self
                .committer
                .try_submit(keyed, self.limits.max_pending_events)
                .map_err(|overloaded| ServeError::Overloaded {
                    message: format!("event log: {overloaded}"),
                    retry_after_s: RETRY_AFTER_S,
                })?;
            let appended = cascade_store::reply_of(&appended)
                .map_err(|e| ServeError::Unavailable(format!("event log: {e}")))?;
            if let Some(last) = appended.iter().map(|a| a.seq()).max() {
                self.log_end.fetch_max(last + 1, std::sync::atomic::Ordering::Relaxed);
            }
            for ((index, keyed), outcome) in valid.into_iter().zip(appended) {
                let status = match outcome {
                    AppendStatus::Appended(_) => {
                        fresh.push(keyed.event);
                        "appended"
                    }
                    AppendStatus::Duplicate(_) => "duplicate",
                };
                statuses.push(EventStatus {
                    index,
                    status: status.into(),
                    seq: Some(outcome.seq()),
                    error: None,
                });
            }
        }
        statuses.sort_by_key(|s| s.index);
        Ok((statuses, fresh))
    }
}

impl EventLog {
    /// A client's batch, end to end: refused while `live` (this server's
    /// stream processor, if it has one) is too far behind the log, else
    /// validated and appended durably, then given up to `[ingest]
    /// read_your_writes_wait_ms` for `live` to apply it, so the client can
    /// read its own writes. Durable first, then visible: a crash in between
    /// loses nothing, and past the wait the events are durable all the same.
    pub fn ingest(
        &self,
        events: &[Value],
        live: Option<&LiveStream>,
        now_ms: i64,
    ) -> Result<Vec<EventStatus>, ServeError> {
        if let Some(live) = live {
            check_stream_lag(live, self.appended_up_to(), self.limits.max_stream_lag)?;
        }
        let (statuses, _) = self.append(events, now_ms)?;
        if let Some(live) = live
            && let Some(last) = statuses.iter().filter_map(|s| s.seq).max()
        {
            live.notify();
            let wait = Duration::from_millis(self.limits.read_your_writes_wait_ms);
            live.wait_applied(last + 1, wait);
        }
        Ok(statuses)
    }
}

/// [`ServeError::StreamBehind`] when the stream processor is more than
/// `max_lag` events behind the log end, so the backlog cannot grow without
/// limit; [`ServeError::Unavailable`] when it has stopped.
pub fn check_stream_lag(live: &LiveStream, log_end: u64, max_lag: u64) -> Result<(), ServeError> {
    if let Some(failure) = live.failure() {
        return Err(ServeError::Unavailable(format!("the stream processor stopped: {failure}")));
    }
    let lag = log_end.saturating_sub(live.applied());
    if lag > max_lag {
        return Err(ServeError::StreamBehind {
            message: format!(
                "the stream processor is {lag} events behind the log (bound {max_lag}, [ingest] max_stream_lag)"
            ),
            retry_after_s: 1,
        });
    }
    Ok(())
}

impl EventLog {
    /// Logs what a response showed, one `impression` event per item (value:
    /// its 1-based rank; `served`: the request, the models' version, the
    /// experiments' variants, the user's prior consumption, and under
    /// exploration the policy and the item's propensities), for A/B
    /// analysis and online learning. The request
    /// does not wait for the commit: impressions are telemetry, and a crash
    /// may lose the last second of them (`TELEMETRY_SYNC_INTERVAL`), never an
    /// acknowledged client event.
    pub fn log_impressions(&self, response: &RecommendResponse, user_id: &str, now_ms: i64) {
        let variants: Vec<(String, String)> = response
            .experiments
            .iter()
            .map(|e| (e.experiment.clone(), e.variant.clone()))
            .collect();
        let served = Served {
            request_id: response.request_id.clone(),
            model_version: response.model_version.clone(),
            variants,
            prior_consumption: u32::try_from(response.prior_consumption).unwrap_or(u32::MAX),
            team: None,
            policy: response.policy.clone(),
            propensity: None,
            candidates: Vec::new(),
        };
        let events = response
            .items
            .iter()
            .enumerate()
            .map(|(k, item)| Event {
                user: user_id.to_owned(),
                item: item.item_id.clone(),
                event_type: IMPRESSION.into(),
                value: Some(item.rank as f64),
                ts_ms: now_ms,
                served: Some(Box::new(Served {
                    team: item.team.clone(),
                    propensity: item.propensity,
                    candidates: match k {
                        0 => response.explored_candidates.clone(),
                        _ => Vec::new(),
                    },
                    ..served.clone()
                })),
            })
            .collect();
        self.committer.record_telemetry(events);
    }
}

fn parse(
    value: &Value,
    now_ms: i64,
    limits: &IngestConfig,
) -> Result<(Option<String>, Event), String> {
    let input = EventInput::deserialize(value).map_err(|e| e.to_string())?;
    input.into_event(now_ms, limits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cascade_store::Store;
    use serde_json::json;

    #[test]
    fn each_event_gets_a_status_and_retries_are_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store.redb")).unwrap();
        let log = EventLog::new(GroupCommitter::start(store.clone(), 100), IngestConfig::default());
        let batch = vec![
            json!({"event_id": "e1", "user_id": "u1", "item_id": "i1", "event_type": "click"}),
            json!({"user_id": "u1", "item_id": "i2"}),
            json!({"user_id": "u1", "item_id": "i3", "event_type": "click", "value": "high"}),
            json!({"user_id": " ", "item_id": "i3", "event_type": "click"}),
            json!({"user_id": "u2", "item_id": "i3", "event_type": "rating", "value": 4.0, "ts_ms": 5}),
            json!({"user_id": "u2", "item_id": "i4", "event_type": "click", "ts_ms": 99_999_999_999_999_999i64}),
            json!({"user_id": "u".repeat(257), "item_id": "i4", "event_type": "click"}),
        ];
        let (statuses, fresh) = log.append(&batch, 1_000).unwrap();
        let kinds: Vec<&str> = statuses.iter().map(|s| s.status.as_str()).collect();
        assert_eq!(
            kinds,
            ["appended", "rejected", "rejected", "rejected", "appended", "rejected", "rejected"]
        );
        assert!(statuses[1].error.as_ref().unwrap().contains("event_type"), "{statuses:?}");
        assert!(statuses[2].error.as_ref().unwrap().contains("invalid type"), "{statuses:?}");
        assert!(statuses[3].error.as_ref().unwrap().contains("user_id is empty"));
        assert!(statuses[5].error.as_ref().unwrap().contains("ts_ms"), "{statuses:?}");
        assert!(statuses[6].error.as_ref().unwrap().contains("user_id is 257 bytes"));
        assert_eq!(fresh.len(), 2);
        assert_eq!(fresh[0].ts_ms, 1_000, "the server's clock fills a missing time");
        assert_eq!(store.event_count().unwrap(), 2, "durable before the answer");

        // The same batch again: nothing new.
        let (again, fresh) = log.append(&batch, 2_000).unwrap();
        assert_eq!(again[0].status, "duplicate");
        assert_eq!(again[0].seq, statuses[0].seq);
        assert_eq!(again[4].status, "duplicate", "same content, same key");
        assert!(fresh.is_empty());
        assert_eq!(store.event_count().unwrap(), 2);
        let most = IngestConfig::default().max_events_per_request;
        assert!(log.append(&vec![json!({}); most + 1], 0).is_err());
    }

    /// An explored response's impressions reach the redb log with the
    /// policy and each item's own propensities.
    #[test]
    fn impressions_log_the_policy_and_each_items_propensities() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store.redb")).unwrap();
        let log = EventLog::new(GroupCommitter::start(store.clone(), 100), IngestConfig::default());
        let propensity = |p: f64| cascade_core::event::Propensities {
            slate: 0.02,
            item_position: p,
            cascade: p,
        };
        let item = |id: &str, p: f64| crate::request::ScoredItem {
            item_id: id.into(),
            score: Some(1.0),
            rank: 1,
            sources: vec!["recall/popular".into()],
            team: None,
            propensity: Some(propensity(p)),
        };
        let response = RecommendResponse {
            request_id: "r-1".into(),
            variant: "default".into(),
            experiments: Vec::new(),
            prior_consumption: 0,
            policy: Some("plackett_luce(temperature=0.1)".into()),
            explored_candidates: vec![("i1".into(), 1.0), ("i2".into(), 0.5), ("i3".into(), 0.2)],
            model_version: "v".into(),
            ranker: None,
            items: vec![item("i1", 0.5), item("i2", 0.25)],
        };
        log.log_impressions(&response, "u1", 1_000);
        let started = std::time::Instant::now();
        let events = loop {
            let events = store.events(0).unwrap();
            if events.len() == 2 || started.elapsed().as_secs() > 10 {
                break events;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        assert_eq!(events.len(), 2, "telemetry is durable within a second or so");
        let first = events[0].event.served.as_ref().unwrap();
        assert_eq!(first.candidates.len(), 3, "the first impression carries the candidates");
        assert!(events[1].event.served.as_ref().unwrap().candidates.is_empty(), "only the first");
        for (event, expected) in events.iter().zip([0.5, 0.25]) {
            let served = event.event.served.as_ref().unwrap();
            assert_eq!(served.policy.as_deref(), Some("plackett_luce(temperature=0.1)"));
            assert_eq!(served.propensities(), propensity(expected), "{}", event.event.item);
        }
    }

    #[test]
    fn a_log_behind_its_bound_sheds_batches_with_retry_after_and_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store.redb")).unwrap();
        let limits = IngestConfig { max_pending_events: 8, ..IngestConfig::default() };
        let log =
            std::sync::Arc::new(EventLog::new(GroupCommitter::start(store.clone(), 100), limits));
        let batch = |from: usize| -> Vec<Value> {
            (from..from + 5)
                .map(|n| json!({"event_id": n.to_string(), "user_id": "u", "item_id": n.to_string(), "event_type": "click"}))
                .collect()
        };
        let paused = store.pause_appends();
        let first = {
            let log = log.clone();
            let events = batch(0);
            std::thread::spawn(move || log.append(&events, 0))
        };
        while log.pending() < 5 {
            std::thread::yield_now();
        }
        match log.append(&batch(5), 0) {
            Err(ServeError::Overloaded { retry_after_s, message }) => {
                assert_eq!(retry_after_s, RETRY_AFTER_S);
                assert!(message.contains("5 events behind"), "{message}");
            }
            other => panic!("expected Overloaded, got {other:?}"),
        }
        drop(paused);
        let (statuses, _) = first.join().unwrap().unwrap();
        assert!(statuses.iter().all(|s| s.status == "appended"));
        let (retried, _) = log.append(&batch(5), 0).unwrap();
        assert!(retried.iter().all(|s| s.status == "appended"), "the shed batch was not logged");
        assert_eq!(store.event_count().unwrap(), 10);
    }

    #[test]
    fn ingest_is_refused_as_stream_behind_only_beyond_the_lag_bound() {
        let dir = tempfile::tempdir().unwrap();
        let store = cascade_store::Store::open(&dir.path().join("store.redb")).unwrap();
        let checkpoint = dir.path().join("stream.json");
        let processor = cascade_stream::StreamProcessor::open(
            store,
            &checkpoint,
            cascade_stream::StreamSettings::default(),
            Default::default(),
        )
        .unwrap();
        let pace = cascade_stream::LivePace::default();
        let live = cascade_stream::LiveStream::start(processor, checkpoint, pace).unwrap();
        let applied = live.applied();
        let bound = cascade_core::IngestConfig::default().max_stream_lag;
        assert!(check_stream_lag(&live, applied + bound, bound).is_ok());
        match check_stream_lag(&live, applied + bound + 1, bound) {
            Err(ServeError::StreamBehind { retry_after_s: 1, message }) => {
                assert!(message.contains("20001 events behind"), "{message}");
            }
            other => panic!("expected StreamBehind, got {other:?}"),
        }
    }
}
