//! Group commit: many concurrent appenders, one fsync per round.
//!
//! A single writer thread takes every request that is waiting, writes them in
//! one transaction, commits durably, and only then answers each request. Under
//! load the cost of an fsync is shared by all events that arrived meanwhile;
//! when idle a lone request is committed at once.
//!
//! Server telemetry (impressions) rides the same rounds without a reply. A
//! round of telemetry alone commits without fsync, and the writer fsyncs at
//! least every [`TELEMETRY_SYNC_INTERVAL`] while any such commit is pending,
//! so impressions cost no disk flush of their own.

use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cascade_core::Event;

use crate::store::{AppendStatus, CommitDurability, KeyedEvent, LogEntry, Store, StoreError};

type Reply = Result<Vec<AppendStatus>, Arc<StoreError>>;

/// How long telemetry may sit in deferred (not yet fsynced) commits: the most a
/// crash can lose of it.
pub const TELEMETRY_SYNC_INTERVAL: Duration = Duration::from_secs(1);

enum Request {
    /// Client events: deduplicated, fsynced before the reply.
    Keyed { events: Vec<KeyedEvent>, reply: Sender<Reply> },
    /// Server telemetry: no reply, durable within [`TELEMETRY_SYNC_INTERVAL`].
    Telemetry(Vec<Event>),
}

/// Handle to the writer thread. Dropping it drains pending requests, makes
/// them durable and stops the thread.
pub struct GroupCommitter {
    requests: Option<Sender<Request>>,
    writer: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for GroupCommitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommitter").finish_non_exhaustive()
    }
}

impl GroupCommitter {
    /// Starts the writer thread over `store`. `max_events_per_commit` bounds one
    /// transaction so that a flood of requests still gets regular commits.
    pub fn start(store: Store, max_events_per_commit: usize) -> GroupCommitter {
        let (requests, inbox) = mpsc::channel::<Request>();
        let writer = std::thread::Builder::new()
            .name("cascade-group-commit".into())
            .spawn(move || run_writer(store, inbox, max_events_per_commit.max(1)))
            .expect("spawning the group-commit thread");
        GroupCommitter { requests: Some(requests), writer: Some(writer) }
    }

    fn sender(&self) -> &Sender<Request> {
        self.requests.as_ref().expect("sender lives until drop")
    }

    /// Queues `events`; the returned receiver yields their statuses once they are
    /// durable (or the commit's error).
    pub fn submit(&self, events: Vec<KeyedEvent>) -> Receiver<Reply> {
        let (reply, answer) = mpsc::channel();
        if let Err(mpsc::SendError(Request::Keyed { reply, .. })) =
            self.sender().send(Request::Keyed { events, reply })
        {
            // The writer is gone only if it panicked; say so rather than hang.
            let _ = reply.send(Err(Arc::new(StoreError::Decode {
                path: Default::default(),
                what: "group commit".into(),
                message: "the writer thread has stopped".into(),
            })));
        }
        answer
    }

    /// Appends and waits until durable.
    pub fn append(&self, events: Vec<KeyedEvent>) -> Reply {
        self.submit(events).recv().expect("the writer always replies")
    }

    /// Queues server telemetry without waiting: it is appended in the next
    /// round and durable within [`TELEMETRY_SYNC_INTERVAL`]. A failure is
    /// reported on standard error, since no caller waits for it.
    pub fn record_telemetry(&self, events: Vec<Event>) {
        if !events.is_empty() && self.sender().send(Request::Telemetry(events)).is_err() {
            eprintln!("cascade: telemetry dropped: the group-commit writer has stopped");
        }
    }
}

impl Drop for GroupCommitter {
    fn drop(&mut self) {
        drop(self.requests.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// One transaction's worth of waiting requests, in arrival order.
struct Round {
    entries: Vec<LogEntry>,
    /// Each waiting client and how many keyed events of the round are its.
    replies: Vec<(Sender<Reply>, usize)>,
    telemetry: usize,
}

impl Round {
    fn gather(first: Request, inbox: &Receiver<Request>, max_events: usize) -> Round {
        let mut round = Round { entries: Vec::new(), replies: Vec::new(), telemetry: 0 };
        let mut next = Some(first);
        while let Some(request) = next.take() {
            match request {
                Request::Keyed { events, reply } => {
                    round.replies.push((reply, events.len()));
                    round.entries.extend(events.into_iter().map(LogEntry::Keyed));
                }
                Request::Telemetry(events) => {
                    round.telemetry += events.len();
                    round.entries.extend(events.into_iter().map(LogEntry::Telemetry));
                }
            }
            if round.entries.len() < max_events {
                next = inbox.try_recv().ok();
            }
        }
        round
    }

    fn answer(self, outcome: Result<Vec<AppendStatus>, StoreError>) {
        match outcome {
            Ok(statuses) => {
                let mut rest = statuses.as_slice();
                for (reply, count) in self.replies {
                    let (mine, tail) = rest.split_at(count);
                    rest = tail;
                    let _ = reply.send(Ok(mine.to_vec()));
                }
            }
            Err(error) => {
                if self.telemetry > 0 {
                    eprintln!("cascade: {} telemetry events lost: {error}", self.telemetry);
                }
                let error = Arc::new(error);
                for (reply, _) in self.replies {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
    }
}

fn run_writer(store: Store, inbox: Receiver<Request>, max_events: usize) {
    let mut last_fsync = Instant::now();
    // Set while deferred commits wait for an fsync.
    let mut unsynced = false;
    loop {
        let first = if unsynced {
            match inbox.recv_timeout(TELEMETRY_SYNC_INTERVAL.saturating_sub(last_fsync.elapsed())) {
                Ok(request) => request,
                Err(RecvTimeoutError::Timeout) => {
                    sync(&store, &mut unsynced, &mut last_fsync);
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match inbox.recv() {
                Ok(request) => request,
                Err(_) => break,
            }
        };
        let round = Round::gather(first, &inbox, max_events);
        let durability =
            if round.replies.is_empty() && last_fsync.elapsed() < TELEMETRY_SYNC_INTERVAL {
                CommitDurability::Deferred
            } else {
                CommitDurability::Fsync
            };
        let outcome = store.append_round(&round.entries, durability);
        if outcome.is_ok() {
            match durability {
                CommitDurability::Deferred => unsynced = true,
                CommitDurability::Fsync => (unsynced, last_fsync) = (false, Instant::now()),
            }
        }
        round.answer(outcome);
    }
    if unsynced {
        sync(&store, &mut unsynced, &mut last_fsync);
    }
}

fn sync(store: &Store, unsynced: &mut bool, last_fsync: &mut Instant) {
    match store.sync() {
        Ok(()) => (*unsynced, *last_fsync) = (false, Instant::now()),
        Err(error) => eprintln!("cascade: making telemetry durable failed: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use cascade_core::Event;

    use super::*;
    use crate::EventKey;

    #[test]
    fn concurrent_appenders_all_get_durable_distinct_seqs() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let committer = Arc::new(GroupCommitter::start(store.clone(), 1000));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let committer = committer.clone();
                std::thread::spawn(move || {
                    let mut seqs = Vec::new();
                    for i in 0..25 {
                        let id = format!("{t}-{i}");
                        let event = Event {
                            user: t.to_string(),
                            item: id.clone(),
                            event_type: "view".into(),
                            value: None,
                            ts_ms: i,
                        };
                        let statuses = committer
                            .append(vec![KeyedEvent { key: EventKey::from_client_id(&id), event }])
                            .unwrap();
                        seqs.push(statuses[0].seq());
                    }
                    seqs
                })
            })
            .collect();
        let mut seqs: Vec<u64> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (0..100).collect::<Vec<u64>>());
        assert_eq!(store.event_count().unwrap(), 100);
    }

    #[test]
    fn telemetry_interleaves_with_client_events_and_is_durable_after_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let event = |item: &str| Event {
            user: "u".into(),
            item: item.into(),
            event_type: "impression".into(),
            value: None,
            ts_ms: 0,
        };
        {
            let committer = GroupCommitter::start(Store::open(&path).unwrap(), 1000);
            committer.record_telemetry(vec![event("shown-1"), event("shown-2")]);
            let keyed = KeyedEvent { key: EventKey::from_client_id("c"), event: event("click") };
            let statuses = committer.append(vec![keyed]).unwrap();
            assert_eq!(statuses.len(), 1, "only the keyed event gets a status");
            committer.record_telemetry(vec![event("shown-3")]);
        }
        let items: Vec<String> = Store::open(&path)
            .unwrap()
            .events(0)
            .unwrap()
            .into_iter()
            .map(|stored| stored.event.item)
            .collect();
        assert_eq!(items, ["shown-1", "shown-2", "click", "shown-3"]);
    }
}
