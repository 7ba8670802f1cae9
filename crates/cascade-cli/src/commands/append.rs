//! `cascade append`: durable, group-committed appends from standard input.
//!
//! A reader thread parses lines; the main loop takes every event that is
//! waiting (up to `max_batch`), hands them to the group committer as one
//! transaction, and prints one acknowledgement per event only after the
//! commit is durable. A client that sees an ack may rely on the event
//! surviving a crash; a client that sees none retries with the same
//! `event_id`, and the retry is recognised as a duplicate.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::sync::mpsc;

use anyhow::Result;
use serde::Deserialize;

use cascade_core::Event;
use cascade_store::{AppendStatus, EventKey, GroupCommitter, KeyedEvent};

use crate::Common;
use crate::workspace::Workspace;

/// One input line.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventLine {
    #[serde(default)]
    event_id: Option<String>,
    user: String,
    item: String,
    event_type: String,
    #[serde(default)]
    value: Option<f64>,
    ts_ms: i64,
}

enum Parsed {
    Event { line: usize, event_id: Option<String>, keyed: KeyedEvent },
    Bad { line: usize, error: String },
}

pub fn run(common: &Common, max_batch: usize) -> Result<()> {
    let workspace = Workspace::open(common)?;
    let committer = GroupCommitter::start(workspace.store()?, max_batch);
    let (sender, inbox) = mpsc::sync_channel::<Parsed>(max_batch.max(1) * 4);
    std::thread::spawn(move || {
        let mut occurrences: HashMap<EventKey, u32> = HashMap::new();
        for (index, line) in std::io::stdin().lock().lines().enumerate() {
            let line_number = index + 1;
            let Ok(text) = line else { break };
            if text.trim().is_empty() {
                continue;
            }
            let parsed = match serde_json::from_str::<EventLine>(&text) {
                Ok(input) => {
                    let event = Event {
                        user: input.user,
                        item: input.item,
                        event_type: input.event_type,
                        value: input.value,
                        ts_ms: input.ts_ms,
                    };
                    let key =
                        EventKey::for_event(input.event_id.as_deref(), &event, &mut occurrences);
                    Parsed::Event {
                        line: line_number,
                        event_id: input.event_id,
                        keyed: KeyedEvent { key, event },
                    }
                }
                Err(e) => Parsed::Bad { line: line_number, error: e.to_string() },
            };
            if sender.send(parsed).is_err() {
                break;
            }
        }
    });
    let stdout = std::io::stdout();
    while let Ok(first) = inbox.recv() {
        let mut round = vec![first];
        while round.len() < max_batch {
            match inbox.try_recv() {
                Ok(next) => round.push(next),
                Err(_) => break,
            }
        }
        let events: Vec<KeyedEvent> = round
            .iter()
            .filter_map(|p| match p {
                Parsed::Event { keyed, .. } => Some(keyed.clone()),
                Parsed::Bad { .. } => None,
            })
            .collect();
        let statuses = if events.is_empty() {
            Vec::new()
        } else {
            committer.append(events).map_err(|e| anyhow::anyhow!("{e}"))?
        };
        let mut statuses = statuses.into_iter();
        let mut out = stdout.lock();
        for parsed in &round {
            let ack = match parsed {
                Parsed::Event { line, event_id, .. } => {
                    let status = statuses.next().expect("one status per event");
                    let (state, seq) = match status {
                        AppendStatus::Appended(seq) => ("appended", seq),
                        AppendStatus::Duplicate(seq) => ("duplicate", seq),
                    };
                    serde_json::json!({ "line": line, "event_id": event_id, "status": state, "seq": seq })
                }
                Parsed::Bad { line, error } => {
                    serde_json::json!({ "line": line, "status": "rejected", "error": error })
                }
            };
            writeln!(out, "{ack}")?;
        }
        out.flush()?;
    }
    Ok(())
}
