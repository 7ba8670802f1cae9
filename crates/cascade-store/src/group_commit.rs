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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cascade_core::Event;

use crate::store::{AppendStatus, CommitDurability, KeyedEvent, LogEntry, Store, StoreError};

/// What the writer answers a keyed submission: each event's status, or the
/// round's error.
pub type Reply = Result<Vec<AppendStatus>, Arc<StoreError>>;

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
    /// Keyed events submitted and not yet committed (or failed).
    pending: Arc<AtomicUsize>,
}

/// [`GroupCommitter::try_submit`] refused a batch: the writer is this far behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the event log is {pending} events behind (bound {bound}); retry shortly")]
pub struct Overloaded {
    /// Events waiting for a commit when the batch arrived.
    pub pending: usize,
    /// The bound it would have crossed.
    pub bound: usize,
}

impl std::fmt::Debug for GroupCommitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommitter").finish_non_exhaustive()
    }
}

impl GroupCommitter {
    /// Starts the writer thread over `store`. `max_events_per_commit` bounds one
    /// transaction so that a flood of requests still gets regular commits.
    /// Without a writer thread (the system refused one), every submission
    /// is answered [`StoreError::WriterStopped`], as after a writer's death.
    pub fn start(store: Store, max_events_per_commit: usize) -> GroupCommitter {
        let (requests, inbox) = mpsc::channel::<Request>();
        let pending = Arc::new(AtomicUsize::new(0));
        let writer_pending = pending.clone();
        let writer = std::thread::Builder::new()
            .name("cascade-group-commit".into())
            .spawn(move || run_writer(store, inbox, max_events_per_commit.max(1), &writer_pending))
            .inspect_err(|e| eprintln!("cascade: no group-commit writer thread: {e}"))
            .ok();
        GroupCommitter { requests: Some(requests), writer, pending }
    }

    /// Client events submitted and not yet committed.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }

    /// As [`GroupCommitter::submit`], unless more than `bound` events would
    /// then be waiting for a commit: the caller should ask its client to
    /// retry later, rather than queue without limit.
    pub fn try_submit(
        &self,
        events: Vec<KeyedEvent>,
        bound: usize,
    ) -> Result<Receiver<Reply>, Overloaded> {
        let count = events.len();
        let before = self.pending.fetch_add(count, Ordering::Relaxed);
        if before > 0 && before + count > bound {
            self.pending.fetch_sub(count, Ordering::Relaxed);
            return Err(Overloaded { pending: before, bound });
        }
        Ok(self.send_keyed(events))
    }

    /// Sends `request` to the writer; gives it back if the writer is gone.
    fn send(&self, request: Request) -> Result<(), mpsc::SendError<Request>> {
        match &self.requests {
            Some(sender) => sender.send(request),
            // Only `drop` takes the sender, and nothing sends after it.
            None => Err(mpsc::SendError(request)),
        }
    }

    /// Queues `events`; the returned receiver yields their statuses once they are
    /// durable (or the commit's error).
    pub fn submit(&self, events: Vec<KeyedEvent>) -> Receiver<Reply> {
        self.pending.fetch_add(events.len(), Ordering::Relaxed);
        self.send_keyed(events)
    }

    /// Sends a keyed request whose events `pending` already counts.
    fn send_keyed(&self, events: Vec<KeyedEvent>) -> Receiver<Reply> {
        let (reply, answer) = mpsc::channel();
        if let Err(mpsc::SendError(Request::Keyed { reply, .. })) =
            self.send(Request::Keyed { events, reply })
        {
            // The writer is gone only if it panicked; say so rather than hang.
            let _ = reply.send(Err(Arc::new(StoreError::WriterStopped)));
        }
        answer
    }

    /// Appends and waits until durable.
    pub fn append(&self, events: Vec<KeyedEvent>) -> Reply {
        reply_of(&self.submit(events))
    }

    /// Queues server telemetry without waiting: it is appended in the next
    /// round and durable within [`TELEMETRY_SYNC_INTERVAL`]. A failure is
    /// reported on standard error, since no caller waits for it.
    pub fn record_telemetry(&self, events: Vec<Event>) {
        if !events.is_empty() && self.send(Request::Telemetry(events)).is_err() {
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

fn run_writer(store: Store, inbox: Receiver<Request>, max_events: usize, pending: &AtomicUsize) {
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
        pending.fetch_sub(round.entries.len() - round.telemetry, Ordering::Relaxed);
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

/// Waits for the writer's answer to a submission. A writer that stopped
/// (it panicked mid-round, dropping the reply) answers
/// [`StoreError::WriterStopped`]: callers report it (the server as a 503),
/// they neither hang nor panic.
pub fn reply_of(answer: &Receiver<Reply>) -> Reply {
    answer.recv().unwrap_or_else(|_| Err(Arc::new(StoreError::WriterStopped)))
}

#[cfg(test)]
mod tests {
    use cascade_core::Event;

    use super::*;

    #[test]
    fn a_writer_that_died_mid_round_is_an_error_not_a_panic() {
        let (reply, answer) = mpsc::channel::<Reply>();
        drop(reply);
        let error = reply_of(&answer).unwrap_err();
        assert!(matches!(*error, StoreError::WriterStopped), "{error}");
    }
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
                            served: None,
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
    fn try_submit_refuses_beyond_the_bound_and_accepts_again_once_committed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let committer = GroupCommitter::start(store.clone(), 10);
        let batch = |from: usize, count: usize| -> Vec<KeyedEvent> {
            (from..from + count)
                .map(|n| KeyedEvent {
                    key: EventKey::from_client_id(&n.to_string()),
                    event: Event {
                        user: "u".into(),
                        item: n.to_string(),
                        event_type: "click".into(),
                        value: None,
                        ts_ms: 0,
                        served: None,
                    },
                })
                .collect()
        };
        // The writer stalls, as behind a slow disk.
        let stall = store.pause_appends();
        // An oversized batch on an idle log is taken: it could never fit otherwise.
        let big = committer.try_submit(batch(0, 50), 20).expect("an idle log takes any batch");
        let refused = committer.try_submit(batch(50, 10), 20).expect_err("50 are waiting");
        assert_eq!(refused, Overloaded { pending: 50, bound: 20 });
        drop(stall);
        assert_eq!(big.recv().unwrap().unwrap().len(), 50);
        let mut waited = 0;
        while committer.pending() > 0 && waited < 500 {
            std::thread::sleep(std::time::Duration::from_millis(10));
            waited += 1;
        }
        assert_eq!(committer.pending(), 0, "every committed event leaves the count");
        let later = committer.try_submit(batch(100, 10), 20).expect("a drained log accepts");
        assert_eq!(later.recv().unwrap().unwrap().len(), 10);
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
            served: None,
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
