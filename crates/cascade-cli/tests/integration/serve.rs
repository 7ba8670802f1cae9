//! `cascade serve` end to end: a real server process on loopback, real HTTP
//! requests, trained models (LR ranker to keep the test short).

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde_json::Value;

use crate::{cascade, movielens_dir};

/// The server process, killed when dropped.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl Server {
    /// SIGKILL, and wait until the process is gone (its file locks with it).
    pub fn kill_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill_hard();
    }
}

/// Starts `cascade serve` with an LR ranker and `extra` arguments.
pub fn start_with(
    data: &std::path::Path,
    workspace: &std::path::Path,
    extra: &[&std::ffi::OsStr],
) -> Server {
    let mut child = cascade()
        .args(["serve", "--addr", "127.0.0.1:0", "--ranker", "lr", "--data"])
        .arg(data)
        .arg("--workspace")
        .arg(workspace)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let base = line.trim().rsplit(' ').next().unwrap().to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "first line: {line:?}");
    Server { child, base }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().into()
}

/// (status, body) of a request with a JSON body.
fn send_json(
    request: ureq::RequestBuilder<ureq::typestate::WithBody>,
    body: &str,
) -> (u16, String) {
    let sent = request.header("content-type", "application/json").send(body);
    let mut response = sent.unwrap();
    (response.status().as_u16(), response.body_mut().read_to_string().unwrap())
}

/// (status, body) of a JSON POST.
pub fn post(base: &str, path: &str, body: &str) -> (u16, String) {
    send_json(agent().post(&format!("{base}{path}")), body)
}

/// (status, body) of a JSON PUT.
pub fn put(base: &str, path: &str, body: &str) -> (u16, String) {
    send_json(agent().put(&format!("{base}{path}")), body)
}

pub fn get(base: &str, path: &str) -> (u16, String) {
    let mut response = agent().get(&format!("{base}{path}")).call().unwrap();
    (response.status().as_u16(), response.body_mut().read_to_string().unwrap())
}

/// A counter's value in Prometheus text; 0 when absent.
pub fn metric(text: &str, name: &str) -> u64 {
    let line = text.lines().find(|l| l.starts_with(&format!("{name} ")));
    line.and_then(|l| l.rsplit(' ').next()?.parse().ok()).unwrap_or(0)
}

pub fn item_ids(response: &Value) -> Vec<String> {
    response["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["item_id"].as_str().unwrap().to_owned())
        .collect()
}

/// User 1's items in u.data.
fn consumed_by_user_1(data: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(data.join("u.data")).unwrap();
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split('\t');
            (fields.next() == Some("1")).then(|| fields.next().unwrap().to_owned())
        })
        .collect()
}

/// Each item's genres: u.item's 19 flag columns named as u.genre names them.
fn genres_by_item(data: &std::path::Path) -> std::collections::HashMap<String, Vec<&'static str>> {
    const GENRES: [&str; 19] = [
        "unknown",
        "Action",
        "Adventure",
        "Animation",
        "Children's",
        "Comedy",
        "Crime",
        "Documentary",
        "Drama",
        "Fantasy",
        "Film-Noir",
        "Horror",
        "Musical",
        "Mystery",
        "Romance",
        "Sci-Fi",
        "Thriller",
        "War",
        "Western",
    ];
    let bytes = std::fs::read(data.join("u.item")).unwrap();
    String::from_utf8_lossy(&bytes)
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split('|').collect();
            let own = fields[5..].iter().zip(GENRES).filter(|(f, _)| **f == "1").map(|p| p.1);
            (fields[0].to_owned(), own.collect())
        })
        .collect()
}

#[test]
fn serve_recommends_refuses_bad_input_hides_items_and_reloads_under_load() {
    let Some(data) = movielens_dir() else { return };
    let work = tempfile::tempdir().unwrap();
    // The shipped config with its `[context]` example switched on.
    let shipped = include_str!("../../../../cascade.toml");
    let with_context = shipped
        .replace("# [context]", "[context]")
        .replace("# hour_of_day = ", "hour_of_day = ")
        .replace("# day_of_week = ", "day_of_week = ");
    assert_ne!(shipped, with_context, "cascade.toml no longer has the [context] example");
    let config = work.path().join("with-context.toml");
    std::fs::write(&config, with_context).unwrap();
    // A user with a single interaction, in the log before the build (at a
    // time inside MovieLens's months, so popularity's decay is unchanged).
    let solo = r#"{"user_id": "solo", "item_id": "50", "event_type": "rating", "value": 5, "ts_ms": 893286638000}"#;
    let mut append = cascade()
        .args(["append", "--workspace"])
        .arg(work.path().join("ws"))
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut append.stdin.take().unwrap(), solo.as_bytes()).unwrap();
    assert!(append.wait().unwrap().success(), "cascade append of the single interaction");
    let args = ["--config".as_ref(), config.as_os_str(), "--online-learning".as_ref()];
    let server = start_with(&data, &work.path().join("ws"), &args);
    let base = server.base.clone();

    // A known user: n items, none already consumed, each with its channels.
    let (status, body) = post(&base, "/v1/recommend", r#"{"user_id": "1", "n": 20}"#);
    assert_eq!(status, 200, "{body}");
    let response: Value = serde_json::from_str(&body).unwrap();
    let items = item_ids(&response);
    assert_eq!(items.len(), 20);
    let consumed = consumed_by_user_1(&data);
    assert!(items.iter().all(|i| !consumed.contains(i)), "consumed items returned: {items:?}");
    assert_eq!(response["ranker"], "lr");
    for item in response["items"].as_array().unwrap() {
        let sources = item["sources"].as_array().unwrap();
        assert!(
            !sources.is_empty()
                && sources.iter().all(|s| s.as_str().unwrap().starts_with("recall/"))
        );
    }

    // Cold start: an unknown user gets popular items, unranked.
    let (status, body) = get(&base, "/v1/users/somebody-new/recommend?n=5");
    assert_eq!(status, 200, "{body}");
    let cold: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(item_ids(&cold).len(), 5);
    assert!(cold["ranker"].is_null());
    // One interaction makes a known user: ranked, with personal recall, and
    // not the popular list an unknown user gets.
    let (status, body) = get(&base, "/v1/users/solo/recommend?n=5");
    assert_eq!(status, 200, "{body}");
    let solo: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(solo["ranker"], "lr", "{body}");
    assert_ne!(item_ids(&solo), item_ids(&cold), "{body}");
    assert!(!item_ids(&solo).contains(&"50".to_owned()), "its one item again: {body}");
    let personal = solo["items"].as_array().unwrap().iter().any(|item| {
        let sources = item["sources"].as_array().unwrap();
        sources.iter().any(|s| s == "recall/ann" || s == "recall/item_cf")
    });
    assert!(personal, "no personal recall for a user with one interaction: {body}");

    // Bad input: 400 with a message, never a 500.
    for (body, expected) in [
        (r#"{"user_id": "1", "n": 0}"#, "n must be in 1..=1000"),
        (r#"{"user_id": "1", "n": 1001}"#, "n must be in 1..=1000"),
        (r#"{"user_id": 1}"#, "invalid type"),
        (r#"{"user_id": "1", "colour": "red"}"#, "unknown field"),
        (r#"{"user_id": "1""#, "request body"),
        (
            r#"{"user_id": "1", "context": {"hour_of_day": 24}}"#,
            "context.hour_of_day must be an integer from 0 to 23",
        ),
        (r#"{"user_id": "1", "context": {"day_of_week": "monday"}}"#, "context.day_of_week"),
    ] {
        let (status, answer) = post(&base, "/v1/recommend", body);
        assert_eq!(status, 400, "{body} → {answer}");
        assert!(answer.contains(expected), "{body} → {answer}");
    }

    // Request context reaches the ranker: the ranker learnt hour-of-day
    // weights, so the same user and item score differently at 3 and at 20
    // o'clock. Keys the schema does not declare are ignored.
    let score_at = |context: &str| -> f64 {
        let body = format!(r#"{{"user_id": "1", "n": 1, "context": {context}}}"#);
        let (status, answer) = post(&base, "/v1/recommend", &body);
        assert_eq!(status, 200, "{answer}");
        let response: Value = serde_json::from_str(&answer).unwrap();
        response["items"][0]["score"].as_f64().unwrap()
    };
    let night = score_at(r#"{"hour_of_day": 3, "day_of_week": 2, "device": "tv"}"#);
    let evening = score_at(r#"{"hour_of_day": 20, "day_of_week": 2}"#);
    assert_ne!(night, evening, "hour of day changed nothing");

    // Category filters, by the genre names of u.item's flag columns.
    let genres = genres_by_item(&data);
    let (status, body) = post(
        &base,
        "/v1/recommend",
        r#"{"user_id": "1", "n": 30, "filters": {"categories": ["Comedy"], "exclude_categories": ["Romance"]}}"#,
    );
    assert_eq!(status, 200, "{body}");
    let filtered = item_ids(&serde_json::from_str(&body).unwrap());
    assert_eq!(filtered.len(), 30, "{body}");
    for item in &filtered {
        let own = &genres[item];
        assert!(own.contains(&"Comedy") && !own.contains(&"Romance"), "{item}: {own:?}");
    }
    let (status, body) =
        post(&base, "/v1/recommend", r#"{"user_id": "1", "filters": {"categories": ["Comdy"]}}"#);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("no category named") && body.contains("Comdy"), "{body}");
    // A new user asking for many items still gets them (popular top-up).
    let (_, body) = get(&base, "/v1/users/somebody-else/recommend?n=100");
    assert_eq!(item_ids(&serde_json::from_str(&body).unwrap()).len(), 100, "{body}");

    // Events: each gets a status; a consumed item leaves the next answer.
    let watched = items[1].clone();
    let batch = format!(
        r#"{{"events": [
            {{"event_id": "e-1", "user_id": "1", "item_id": "{watched}", "event_type": "click"}},
            {{"user_id": "1", "item_id": "{watched}", "event_type": 5}}
        ]}}"#
    );
    let (status, body) = post(&base, "/v1/events", &batch);
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((answer["appended"].as_u64(), answer["rejected"].as_u64()), (Some(1), Some(1)));
    assert_eq!(answer["events"][1]["status"], "rejected");
    assert!(answer["events"][1]["error"].as_str().unwrap().contains("invalid type"), "{body}");
    let (_, body) = post(&base, "/v1/recommend", r#"{"user_id": "1", "n": 20}"#);
    assert!(!item_ids(&serde_json::from_str(&body).unwrap()).contains(&watched), "{body}");
    let (_, body) = post(&base, "/v1/events", &batch);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["duplicate"], 1, "retry: {body}");
    assert_eq!(post(&base, "/v1/events", r#"{"event": []}"#).0, 400);

    // The stream processor's features reflect the click at once.
    let (status, body) = get(&base, "/v1/users/1/features");
    assert_eq!(status, 200, "{body}");
    let features: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(features["history"].as_array().unwrap().last().unwrap(), watched.as_str());
    assert!(!features["category_affinities"].as_array().unwrap().is_empty(), "{body}");
    let (_, body) = get(&base, &format!("/v1/items/{watched}/stats"));
    let hour = &serde_json::from_str::<Value>(&body).unwrap()["windows"][0];
    assert_eq!((hour["window_s"].as_i64(), hour["interactions"].as_u64()), (Some(3600), Some(1)));
    assert!(hour["impressions"].as_u64().unwrap() >= 1, "it was shown before: {body}");
    // The only interaction of the last hour (MovieLens' own are from 1998).
    let (_, body) = get(&base, "/v1/trending?n=5");
    let trending: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(trending["items"][0]["item_id"], watched.as_str(), "{body}");
    assert_eq!(get(&base, "/v1/trending?n=0").0, 400);
    far_future_event_is_refused_and_later_clicks_count(&base, &items[2]);

    // Online learning: the click answered an impression of the first
    // answer, so the trainer learns that sample and publishes its rows
    // within a round or two (every 5 s).
    let started = std::time::Instant::now();
    loop {
        let (_, metrics) = get(&base, "/metrics");
        if metric(&metrics, "cascade_online_samples_learned_total") >= 1 {
            assert!(metric(&metrics, "cascade_online_rows_published_total") > 0, "{metrics}");
            break;
        }
        assert!(started.elapsed().as_secs() < 30, "nothing learned online: {metrics}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    // User records: typed by the config, readable, deletable.
    let put = |path: &str, body: &str| put(&base, path, body);
    let profile = r#"{"age": "30", "gender": "F", "occupation": "engineer"}"#;
    assert_eq!(put("/v1/users/newbie", profile).0, 201);
    assert_eq!(put("/v1/users/newbie", profile).0, 204, "a replacement");
    let (status, body) = get(&base, "/v1/users/newbie");
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["record"]["occupation"], "engineer");
    let (status, body) = put("/v1/users/newbie", r#"{"shoe_size": 42}"#);
    assert_eq!(status, 400);
    assert!(body.contains("unknown feature") && body.contains("shoe_size"), "{body}");
    assert_eq!(agent().delete(&format!("{base}/v1/users/newbie")).call().unwrap().status(), 204);
    assert_eq!(get(&base, "/v1/users/newbie").0, 404);

    // Business rules: exclude and pin.
    let top = items[0].clone();
    let (_, body) = post(
        &base,
        "/v1/recommend",
        &format!(
            r#"{{"user_id": "1", "n": 5, "exclude": ["{top}"], "pin": [{{"item_id": "50", "position": 0}}]}}"#
        ),
    );
    let ruled = item_ids(&serde_json::from_str(&body).unwrap());
    assert_eq!(ruled[0], "50", "{body}");
    assert!(!ruled.contains(&top), "{body}");

    // A hidden item is never recommended again, effective immediately.
    let mut response = agent().delete(&format!("{base}/v1/items/{top}")).call().unwrap();
    assert_eq!(
        response.status().as_u16(),
        204,
        "{}",
        response.body_mut().read_to_string().unwrap()
    );
    let (_, body) = get(&base, &format!("/v1/items/{top}"));
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["hidden"], true);
    let (_, body) = post(&base, "/v1/recommend", r#"{"user_id": "1", "n": 50}"#);
    assert!(!item_ids(&serde_json::from_str(&body).unwrap()).contains(&top));
    let (_, body) = get(&base, "/v1/items/50/similar?n=50");
    assert!(!item_ids(&serde_json::from_str(&body).unwrap()).contains(&top));
    assert_eq!(get(&base, "/v1/items/no-such-item").0, 404);

    // Similar items: n of them, never the item itself.
    let (status, body) = get(&base, "/v1/items/50/similar?n=10");
    assert_eq!(status, 200, "{body}");
    let similar = item_ids(&serde_json::from_str(&body).unwrap());
    assert_eq!(similar.len(), 10);
    assert!(!similar.contains(&"50".to_owned()));

    crate::serve_new_items::new_items_join_at_once_and_learn(&base);

    // Hot swap under continuous load: no request fails, the version changes.
    let version = response_version(&base);
    let stop = Arc::new(AtomicBool::new(false));
    let (served, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load = {
        let (base, stop, served, failed) =
            (base.clone(), stop.clone(), served.clone(), failed.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let (status, _) = post(&base, "/v1/recommend", r#"{"user_id": "7", "n": 10}"#);
                let counter = if status == 200 { &served } else { &failed };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let (status, body) = post(&base, "/admin/models/reload", "");
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(failed.load(Ordering::Relaxed), 0, "requests failed during the swap");
    assert!(served.load(Ordering::Relaxed) > 0, "the load generator ran during the reload");
    let reloaded = response_version(&base);
    assert_ne!(version, reloaded, "a reload installs new models");
    assert_eq!(get(&base, "/v1/items/brand-new/similar").0, 200, "the added item survives it");

    let (_, metrics) = get(&base, "/metrics");
    assert!(
        metrics.contains("cascade_request_duration_seconds_count{route=\"/v1/recommend\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("cascade_stage_duration_seconds_count{stage=\"rank\"}"), "{metrics}");
    assert_eq!(get(&base, "/health").0, 200);
    let (status, body) = get(&base, "/openapi.json");
    assert_eq!(status, 200);
    let document: Value = serde_json::from_str(&body).unwrap();
    assert!(document["paths"]["/v1/recommend"]["post"]["requestBody"].is_object(), "{body}");
}

/// One event from the far future must not empty the real-time windows
/// for everyone: it is refused by name, and a click on `item` after it
/// still counts (read through whichever online store the server uses).
pub fn far_future_event_is_refused_and_later_clicks_count(base: &str, item: &str) {
    let far = r#"{"events": [{"user_id": "2", "item_id": "50", "event_type": "click", "ts_ms": 99999999999999999}]}"#;
    let (status, body) = post(base, "/v1/events", far);
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["rejected"], 1, "{body}");
    let error = answer["events"][0]["error"].as_str().unwrap();
    assert!(error.contains("ts_ms") && error.contains("max_future_skew_s"), "{error}");
    let (_, body) = post(
        base,
        "/v1/events",
        r#"{"events": [{"user_id": "3", "item_id": "50", "event_type": "click", "ts_ms": -5}]}"#,
    );
    assert!(body.contains("min_ts_ms"), "a time before the floor: {body}");

    let click = format!(
        r#"{{"events": [{{"event_id": "after-the-far-future", "user_id": "2", "item_id": "{item}", "event_type": "click"}}]}}"#
    );
    let (status, body) = post(base, "/v1/events", &click);
    assert_eq!(status, 200, "{body}");
    let started = std::time::Instant::now();
    loop {
        let (_, body) = get(base, &format!("/v1/items/{item}/stats"));
        let stats: Value = serde_json::from_str(&body).unwrap();
        if stats["windows"][0]["interactions"].as_u64() >= Some(1) {
            break;
        }
        assert!(started.elapsed().as_secs() < 60, "the click after it never counted: {body}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let (_, body) = get(base, "/v1/trending?n=10");
    assert!(body.contains(&format!("\"{item}\"")), "trending still follows now: {body}");
}

pub fn response_version(base: &str) -> String {
    let (_, body) = post(base, "/v1/recommend", r#"{"user_id": "1", "n": 1}"#);
    serde_json::from_str::<Value>(&body).unwrap()["model_version"].as_str().unwrap().to_owned()
}
