//! `cascade append` (standard input) and `cascade ingest FILE`: durable,
//! group-committed appends of JSON-lines events.
//!
//! A reader thread parses lines; the main loop takes every event that is
//! waiting (up to `max_batch`), hands them to the group committer as one
//! transaction, and prints one acknowledgement per event only after the
//! commit is durable. A client that sees an ack may rely on the event
//! surviving a crash; a client that sees none retries with the same
//! `event_id`, and the retry is recognised as a duplicate.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::sync::mpsc;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use cascade_core::Event;
use cascade_store::{AppendStatus, EventKey, GroupCommitter, KeyedEvent};

use crate::Common;
use crate::progress::Progress;
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

/// Where the events come from and how their outcome is reported.
pub enum Input {
    /// Standard input; one acknowledgement line per event on standard output.
    Stdin,
    /// A JSON-lines file; a progress spinner, then a summary as JSON, and a
    /// failure naming the file and lines if any line was rejected.
    File(PathBuf),
}

/// One event's outcome.
enum Ack {
    Logged { line: usize, event_id: Option<String>, status: &'static str, seq: u64 },
    Rejected { line: usize, error: String },
}

pub fn run(common: &Common, max_batch: usize, input: Input) -> Result<()> {
    let workspace = Workspace::open(common)?;
    let committer = GroupCommitter::start(workspace.store()?, max_batch);
    let reader: Box<dyn BufRead + Send> = match &input {
        Input::Stdin => Box::new(BufReader::new(std::io::stdin())),
        Input::File(path) => Box::new(BufReader::new(
            File::open(path).with_context(|| format!("opening {}", path.display()))?,
        )),
    };
    let (sender, inbox) = mpsc::sync_channel::<Parsed>(max_batch.max(1) * 4);
    std::thread::spawn(move || parse_lines(reader, &sender));
    match input {
        Input::Stdin => {
            let stdout = std::io::stdout();
            commit_rounds(&committer, &inbox, max_batch, |ack| {
                let line = match ack {
                    Ack::Logged { line, event_id, status, seq } => {
                        serde_json::json!({ "line": line, "event_id": event_id, "status": status, "seq": seq })
                    }
                    Ack::Rejected { line, error } => {
                        serde_json::json!({ "line": line, "status": "rejected", "error": error })
                    }
                };
                writeln!(stdout.lock(), "{line}")?;
                Ok(())
            })
        }
        Input::File(path) => ingest_file(&committer, &inbox, max_batch, &path),
    }
}

/// Counts outcomes under a spinner, prints the summary, and fails naming the
/// rejected lines (after every good line is durable).
fn ingest_file(
    committer: &GroupCommitter,
    inbox: &mpsc::Receiver<Parsed>,
    max_batch: usize,
    path: &std::path::Path,
) -> Result<()> {
    let spinner = Progress { quiet: false }.spinner(&format!("ingesting {}", path.display()));
    let (mut appended, mut duplicate) = (0usize, 0usize);
    let mut rejected: Vec<(usize, String)> = Vec::new();
    commit_rounds(committer, inbox, max_batch, |ack| {
        match ack {
            Ack::Logged { status: "appended", .. } => appended += 1,
            Ack::Logged { .. } => duplicate += 1,
            Ack::Rejected { line, error } => rejected.push((line, error)),
        }
        spinner.set_message(format!(
            "ingesting {}: {appended} appended, {duplicate} duplicate, {} rejected",
            path.display(),
            rejected.len()
        ));
        Ok(())
    })?;
    spinner.finish_and_clear();
    let summary = serde_json::json!({
        "file": path.display().to_string(),
        "appended": appended,
        "duplicate": duplicate,
        "rejected": rejected.len(),
    });
    println!("{summary}");
    if let Some((line, error)) = rejected.first() {
        bail!(
            "{}: {} line(s) rejected (the other events are durable); first at line {line}: {error}",
            path.display(),
            rejected.len()
        );
    }
    Ok(())
}

fn parse_lines(reader: Box<dyn BufRead + Send>, sender: &mpsc::SyncSender<Parsed>) {
    let mut occurrences: HashMap<EventKey, u32> = HashMap::new();
    for (index, line) in reader.lines().enumerate() {
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
                let key = EventKey::for_event(input.event_id.as_deref(), &event, &mut occurrences);
                Parsed::Event {
                    line: line_number,
                    event_id: input.event_id,
                    keyed: KeyedEvent { key, event },
                }
            }
            // Each line is one JSON text, so serde's "line 1" is noise.
            Err(e) => Parsed::Bad {
                line: line_number,
                error: format!("{e}").replace(" at line 1 column", " at column"),
            },
        };
        if sender.send(parsed).is_err() {
            break;
        }
    }
}

/// Takes every parsed line that is waiting (up to `max_batch`), commits the
/// events among them durably, then reports each line's outcome in order.
fn commit_rounds(
    committer: &GroupCommitter,
    inbox: &mpsc::Receiver<Parsed>,
    max_batch: usize,
    mut report: impl FnMut(Ack) -> Result<()>,
) -> Result<()> {
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
        for parsed in round {
            report(match parsed {
                Parsed::Event { line, event_id, .. } => {
                    let (status, seq) = match statuses.next().expect("one status per event") {
                        AppendStatus::Appended(seq) => ("appended", seq),
                        AppendStatus::Duplicate(seq) => ("duplicate", seq),
                    };
                    Ack::Logged { line, event_id, status, seq }
                }
                Parsed::Bad { line, error } => Ack::Rejected { line, error },
            })?;
        }
    }
    Ok(())
}
