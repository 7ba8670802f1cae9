//! Group commit: many concurrent appenders, one fsync per round.
//!
//! A single writer thread takes every request that is waiting, writes them in
//! one transaction, commits durably, and only then answers each request. Under
//! load the cost of an fsync is shared by all events that arrived meanwhile;
//! when idle a lone request is committed at once.

use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;

use crate::store::{AppendStatus, KeyedEvent, Store, StoreError};

type Reply = Result<Vec<AppendStatus>, Arc<StoreError>>;

struct Request {
    events: Vec<KeyedEvent>,
    reply: Sender<Reply>,
}

/// Handle to the writer thread. Dropping it drains pending requests and stops the thread.
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

    /// Queues `events`; the returned receiver yields their statuses once they are
    /// durable (or the commit's error).
    pub fn submit(&self, events: Vec<KeyedEvent>) -> Receiver<Reply> {
        let (reply, answer) = mpsc::channel();
        let request = Request { events, reply };
        if let Err(mpsc::SendError(request)) =
            self.requests.as_ref().expect("sender lives until drop").send(request)
        {
            // The writer is gone only if it panicked; say so rather than hang.
            let _ = request.reply.send(Err(Arc::new(StoreError::Decode {
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
}

impl Drop for GroupCommitter {
    fn drop(&mut self) {
        drop(self.requests.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

fn run_writer(store: Store, inbox: Receiver<Request>, max_events: usize) {
    while let Ok(first) = inbox.recv() {
        let mut round = vec![first];
        let mut queued = round[0].events.len();
        while queued < max_events {
            match inbox.try_recv() {
                Ok(next) => {
                    queued += next.events.len();
                    round.push(next);
                }
                Err(_) => break,
            }
        }
        let all: Vec<KeyedEvent> = round.iter().flat_map(|r| r.events.iter().cloned()).collect();
        match store.append(&all) {
            Ok(statuses) => {
                let mut rest = statuses.as_slice();
                for request in round {
                    let (mine, tail) = rest.split_at(request.events.len());
                    rest = tail;
                    let _ = request.reply.send(Ok(mine.to_vec()));
                }
            }
            Err(error) => {
                let error = Arc::new(error);
                for request in round {
                    let _ = request.reply.send(Err(error.clone()));
                }
            }
        }
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
}
