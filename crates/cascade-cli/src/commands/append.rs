//! `cascade append` (standard input) and `cascade ingest FILE`: durable,
//! group-committed appends of JSON-lines events, one `cascade_core::EventInput`
//! per line (the format of `POST /v1/events`), checked by `[ingest]`.
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

use cascade_core::{EventInput, IngestConfig};
use cascade_store::{AppendStatus, EventKey, GroupCommitter, KeyedEvent};

use crate::Common;
use cascade_app::Progress;

enum Parsed {
    Event {
        line: usize,
        event_id: Option<String>,
        keyed: KeyedEvent,
    },
    Bad {
        line: usize,
        error: String,
    },
    /// The input could not be read past this line (an I/O error).
    Failed {
        line: usize,
        error: String,
    },
}

/// Where the events come from and how their outcome is reported.
pub enum Input {
    /// Standard input; one acknowledgement line per event on standard output.
    Stdin,
    /// A JSON-lines file; a progress spinner, then a summary as JSON, and a
    /// failure naming the file and lines if any line was rejected.
    File(PathBuf),
}

/// Rejected lines a failed `cascade ingest` names in its error.
const REJECTIONS_NAMED: usize = 10;

/// One event's outcome.
enum Ack {
    Logged { line: usize, event_id: Option<String>, status: &'static str, seq: u64 },
    Rejected { line: usize, error: String },
}

pub fn run(common: &Common, max_batch: usize, input: Input) -> Result<()> {
    let workspace = common.open_workspace()?;
    let committer = GroupCommitter::start(workspace.store()?, max_batch);
    let reader: Box<dyn BufRead + Send> = match &input {
        Input::Stdin => Box::new(BufReader::new(std::io::stdin())),
        Input::File(path) => Box::new(BufReader::new(
            File::open(path).with_context(|| format!("opening {}", path.display()))?,
        )),
    };
    let (sender, inbox) = mpsc::sync_channel::<Parsed>(max_batch.max(1) * 4);
    let limits = workspace.config.ingest.clone();
    std::thread::spawn(move || parse_lines(reader, &limits, &sender));
    match input {
        Input::Stdin => append_stdin(&committer, &inbox, max_batch),
        Input::File(path) => ingest_file(&committer, &inbox, max_batch, &path),
    }
}

/// One acknowledgement line per input line; fails (after every good line
/// is durable) when no line was accepted.
fn append_stdin(
    committer: &GroupCommitter,
    inbox: &mpsc::Receiver<Parsed>,
    max_batch: usize,
) -> Result<()> {
    let stdout = std::io::stdout();
    let (mut accepted, mut rejected) = (0usize, 0usize);
    commit_rounds(committer, inbox, max_batch, |ack| {
        let line = match ack {
            Ack::Logged { line, event_id, status, seq } => {
                accepted += 1;
                serde_json::json!({ "line": line, "event_id": event_id, "status": status, "seq": seq })
            }
            Ack::Rejected { line, error } => {
                rejected += 1;
                serde_json::json!({ "line": line, "status": "rejected", "error": error })
            }
        };
        writeln!(stdout.lock(), "{line}")?;
        Ok(())
    })?;
    if accepted == 0 && rejected > 0 {
        bail!("standard input: all {rejected} line(s) rejected; nothing was appended");
    }
    Ok(())
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
    if !rejected.is_empty() {
        // The first few by line, so a file with one bad encoding and one
        // bad field shows both.
        let named: Vec<String> = rejected
            .iter()
            .take(REJECTIONS_NAMED)
            .map(|(line, error)| format!("line {line}: {error}"))
            .collect();
        let more = rejected.len().saturating_sub(REJECTIONS_NAMED);
        let more = if more > 0 { format!("\n  … and {more} more") } else { String::new() };
        bail!(
            "{}: {} line(s) rejected (the other events are durable):\n  {}{more}",
            path.display(),
            rejected.len(),
            named.join("\n  ")
        );
    }
    Ok(())
}

/// Reads `reader` line by line as raw bytes, so a line that is not UTF-8
/// is rejected by number and the lines after it are still read.
fn parse_lines(
    mut reader: Box<dyn BufRead + Send>,
    limits: &IngestConfig,
    sender: &mpsc::SyncSender<Parsed>,
) {
    let mut occurrences: HashMap<EventKey, u32> = HashMap::new();
    let mut bytes = Vec::new();
    for line_number in 1.. {
        bytes.clear();
        match reader.read_until(b'\n', &mut bytes) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                let _ = sender.send(Parsed::Failed { line: line_number, error: e.to_string() });
                break;
            }
        }
        let parsed = match parse_line(&bytes, limits, &mut occurrences) {
            Ok(None) => continue,
            Ok(Some((event_id, keyed))) => Parsed::Event { line: line_number, event_id, keyed },
            Err(error) => Parsed::Bad { line: line_number, error },
        };
        if sender.send(parsed).is_err() {
            break;
        }
    }
}

/// One line's event, `None` for a blank line, or why it was rejected.
fn parse_line(
    bytes: &[u8],
    limits: &IngestConfig,
    occurrences: &mut HashMap<EventKey, u32>,
) -> Result<Option<(Option<String>, KeyedEvent)>, String> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| format!("not UTF-8 text (invalid byte at column {})", e.valid_up_to() + 1))?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    // Each line is one JSON text, so serde's "line 1" is noise.
    let input: EventInput = serde_json::from_str(text)
        .map_err(|e| format!("{e}").replace(" at line 1 column", " at column"))?;
    let (event_id, event) = input.into_event(cascade_core::timestamp::now_ms(), limits)?;
    let key = EventKey::for_event(event_id.as_deref(), &event, occurrences);
    Ok(Some((event_id, KeyedEvent { key, event })))
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
                Parsed::Bad { .. } | Parsed::Failed { .. } => None,
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
                    let (status, seq) = match statuses.next() {
                        Some(AppendStatus::Appended(seq)) => ("appended", seq),
                        Some(AppendStatus::Duplicate(seq)) => ("duplicate", seq),
                        None => bail!("line {line}: the event log gave no status for it"),
                    };
                    Ack::Logged { line, event_id, status, seq }
                }
                Parsed::Bad { line, error } => Ack::Rejected { line, error },
                Parsed::Failed { line, error } => {
                    bail!("reading line {line} failed (the lines before it are durable): {error}")
                }
            })?;
        }
    }
    Ok(())
}
