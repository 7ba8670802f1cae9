//! An acknowledged event survives `kill -9`: the test streams events into
//! `cascade append`, kills the process with SIGKILL mid-stream, reopens the
//! store, and finds every acknowledged event exactly once. Retrying the same
//! events afterwards adds nothing.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;

use cascade_store::{EventKey, Store};

use crate::cascade;

fn line(n: usize) -> String {
    format!(
        r#"{{"event_id":"ev-{n}","user_id":"u{}","item_id":"i{}","event_type":"click","ts_ms":{n}}}"#,
        n % 97,
        n % 1009
    )
}

#[test]
fn acknowledged_events_survive_kill_9_exactly_once() {
    let work = tempfile::tempdir().unwrap();
    let mut child = cascade()
        .args(["append", "--max-batch", "64", "--workspace"])
        .arg(work.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        for n in 0..200_000 {
            if writeln!(stdin, "{}", line(n)).is_err() {
                break; // the process was killed
            }
        }
    });
    let mut acked = HashSet::new();
    let mut acks = BufReader::new(child.stdout.take().unwrap()).lines();
    while acked.len() < 2_000 {
        let ack: serde_json::Value = serde_json::from_str(&acks.next().unwrap().unwrap()).unwrap();
        assert_eq!(ack["status"], "appended", "{ack}");
        acked.insert(ack["event_id"].as_str().unwrap().to_owned());
    }
    child.kill().unwrap(); // SIGKILL on Unix: no chance to flush or clean up
    child.wait().unwrap();
    writer.join().unwrap();

    let store = Store::open(&work.path().join("store.redb")).unwrap();
    let events = store.events(0).unwrap();
    assert!(
        events.len() >= acked.len(),
        "{} events stored, {} acknowledged",
        events.len(),
        acked.len()
    );
    for id in &acked {
        let seq = store.find_key(&EventKey::from_client_id(id)).unwrap();
        assert!(seq.is_some(), "acknowledged event {id} was lost");
    }
    let distinct: HashSet<(i64, String)> =
        events.iter().map(|e| (e.event.ts_ms, e.event.user.clone())).collect();
    assert_eq!(distinct.len(), events.len(), "an event was stored twice");
    let stored = events.len();
    drop(store);

    // The client retries everything it sent a moment ago: nothing is added.
    let mut retry = cascade()
        .args(["append", "--workspace"])
        .arg(work.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut stdin = retry.stdin.take().unwrap();
        for n in 0..stored {
            writeln!(stdin, "{}", line(n)).unwrap();
        }
    }
    let output = retry.wait_with_output().unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    assert_eq!(text.lines().count(), stored);
    assert!(text.lines().all(|l| l.contains("\"duplicate\"")), "a retry appended again");
    assert_eq!(
        Store::open(&work.path().join("store.redb")).unwrap().event_count().unwrap() as usize,
        stored
    );
}
