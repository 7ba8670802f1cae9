//! `POST /v1/events` under `kill -9`: a client keeps sending batches of
//! client-identified events while the test kills the server with SIGKILL at
//! varied moments and restarts it. The client retries every batch it got no
//! answer for, with the same event ids. At the end every acknowledged event
//! is in the log exactly once.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cascade_store::Store;

use crate::movielens_dir;
use crate::serve::start_with;

/// The user every test event belongs to, apart from MovieLens' own users.
const CLIENT_USER: &str = "durability-client";
const BATCH: usize = 20;
const KILLS: usize = 3;

fn batch_body(batch: usize) -> String {
    let events: Vec<serde_json::Value> = (batch * BATCH..(batch + 1) * BATCH)
        .map(|n| {
            serde_json::json!({
                "event_id": format!("kill9-{n}"),
                "user_id": CLIENT_USER,
                // The item names the event, so the log can be checked per event.
                "item_id": format!("kill9-{n}"),
                "event_type": "click",
                "ts_ms": 1_700_000_000_000i64 + n as i64,
            })
        })
        .collect();
    serde_json::json!({ "events": events }).to_string()
}

/// Sends batch after batch to whichever server `base` names, until `stop`;
/// a batch without a 200 answer is sent again, unchanged, until it has one.
fn client(base: Arc<Mutex<String>>, stop: Arc<AtomicBool>, acked: Arc<Mutex<HashSet<usize>>>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    let mut batch = 0;
    while !stop.load(Ordering::Relaxed) {
        let url = format!("{}/v1/events", base.lock().unwrap());
        let answer = agent
            .post(&url)
            .header("content-type", "application/json")
            .send(batch_body(batch).as_str())
            .ok()
            .filter(|response| response.status() == 200)
            .and_then(|mut response| response.body_mut().read_to_string().ok());
        match answer {
            Some(text) => {
                let answer: serde_json::Value = serde_json::from_str(&text).unwrap();
                let ok =
                    answer["appended"].as_u64().unwrap() + answer["duplicate"].as_u64().unwrap();
                assert_eq!(ok, BATCH as u64, "every event is appended or a duplicate: {text}");
                acked.lock().unwrap().insert(batch);
                batch += 1;
            }
            // Killed or restarting: retry the same batch.
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

#[test]
fn acknowledged_events_survive_server_kill_9_exactly_once() {
    let Some(data) = movielens_dir() else { return };
    let work = tempfile::tempdir().unwrap();
    let mut server = start_with(&data, work.path(), &[]);
    let base = Arc::new(Mutex::new(server.base.clone()));
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let sender = {
        let (base, stop, acked) = (base.clone(), stop.clone(), acked.clone());
        std::thread::spawn(move || client(base, stop, acked))
    };
    // Kill moments vary within each round, from just after start to
    // well into steady sending (a fixed spread, so a failure reproduces).
    for (round, pause_ms) in [(0, 700u64), (1, 150), (2, 1_100)].into_iter().take(KILLS) {
        std::thread::sleep(Duration::from_millis(pause_ms));
        let before = acked.lock().unwrap().len();
        server.kill_hard();
        server = start_with(&data, work.path(), &[]);
        *base.lock().unwrap() = server.base.clone();
        eprintln!("round {round}: {before} batches acknowledged before the kill");
    }
    // Let the client get a few answers from the last server, then stop it.
    let target = acked.lock().unwrap().len() + 5;
    while acked.lock().unwrap().len() < target {
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    sender.join().unwrap();
    server.kill_hard();

    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > KILLS, "too few batches acknowledged to test: {}", acked.len());
    let store = Store::open(&work.path().join("store.redb")).unwrap();
    let mut copies: HashMap<String, usize> = HashMap::new();
    for stored in store.events(0).unwrap() {
        if stored.event.user == CLIENT_USER {
            *copies.entry(stored.event.item).or_default() += 1;
        }
    }
    for batch in &acked {
        for n in batch * BATCH..(batch + 1) * BATCH {
            let id = format!("kill9-{n}");
            assert_eq!(copies.get(&id).copied(), Some(1), "acknowledged event {id}");
        }
    }
    let twice: Vec<_> = copies.iter().filter(|(_, count)| **count > 1).collect();
    assert!(twice.is_empty(), "events stored more than once: {twice:?}");
}
