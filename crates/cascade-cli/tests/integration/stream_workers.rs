//! The scale-out data path on a real `redis-server`: `cascade ingest` into
//! the embedded log, `cascade forward-events` into the Redis stream (exactly
//! once), two `cascade stream-worker` processes in one consumer group, one
//! of them killed with SIGKILL mid-stream. The survivor claims what the
//! dead one left pending, and every event is counted exactly once in the
//! Redis online store.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use cascade_store::RedisEventBus;
use cascade_store::online::test_server::RedisForTests;
use cascade_store::online::{FeatureRead, RedisOnlineStore, Tally};
use cascade_stream::StreamSettings;

use crate::serve::{get, item_ids, post, start_with};
use crate::{cascade, texts};

const EVENTS: usize = 40_000;
const USERS: usize = 500;

fn config_with_redis(dir: &Path, url: &str, prefix: &str) -> std::path::PathBuf {
    let builtin =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../cascade.toml"))
            .unwrap();
    let config = format!(
        "{builtin}\n[online_store]\nbackend = \"redis\"\nredis_url = \"{url}\"\nkey_prefix = \"{prefix}\"\n"
    );
    let path = dir.join("cascade-redis.toml");
    std::fs::write(&path, config).unwrap();
    path
}

fn worker(config: &Path, work: &Path, name: &str) -> Child {
    cascade()
        .args(["stream-worker", "--consumer", name, "--claim-idle-ms", "300", "--batch", "200"])
        .args(["--exit-when-drained-ms", "1500", "--config"])
        .arg(config)
        .arg("--workspace")
        .arg(work)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn two_workers_split_the_stream_and_a_killed_ones_entries_are_claimed() {
    let Some(server) = RedisForTests::start() else { return };
    let prefix = server.fresh_prefix("workers");
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    let config = config_with_redis(dir.path(), &server.url, &prefix);

    // Every 4th event an interaction, the rest impressions.
    let mut expected = Tally::default();
    let mut interactions_per_user: HashMap<String, usize> = HashMap::new();
    let lines: Vec<String> = (0..EVENTS)
        .map(|n| {
            let user = format!("u{}", n % USERS);
            let kind = if n.is_multiple_of(4) { "click" } else { "impression" };
            if kind == "click" {
                expected.interactions += 1;
                *interactions_per_user.entry(user.clone()).or_default() += 1;
            } else {
                expected.impressions += 1;
            }
            serde_json::json!({ "event_id": format!("e{n}"), "user_id": user, "item_id": format!("i{}", n % 997),
                "event_type": kind, "ts_ms": 1_700_000_000_000i64 + n as i64 })
            .to_string()
        })
        .collect();
    let file = dir.path().join("events.jsonl");
    std::fs::write(&file, lines.join("\n")).unwrap();
    let ingest = cascade().arg("ingest").arg(&file).arg("--workspace").arg(&work).output().unwrap();
    assert!(ingest.status.success(), "{:?}", texts(&ingest));

    let forward = || {
        let output = cascade()
            .arg("forward-events")
            .arg("--config")
            .arg(&config)
            .arg("--workspace")
            .arg(&work)
            .output()
            .unwrap();
        let (stdout, stderr) = texts(&output);
        assert!(output.status.success(), "{stderr}");
        serde_json::from_str::<serde_json::Value>(stdout.trim()).unwrap()["forwarded"].as_u64()
    };
    assert_eq!(forward(), Some(EVENTS as u64));
    assert_eq!(forward(), Some(0), "forwarding again sends nothing twice");

    let bus = RedisEventBus::open(&server.url, &prefix).unwrap();
    let mut doomed = worker(&config, &work, "doomed");
    let survivor = worker(&config, &work, "survivor");
    // Kill the first worker a quarter of the way into the stream, at a
    // moment it holds entries it has read and not acked.
    let deadline = Instant::now() + Duration::from_secs(60);
    let held_by = |consumer| bus.pending_by_consumer().unwrap().get(consumer).copied();
    loop {
        assert!(Instant::now() < deadline, "the doomed worker never held a batch mid-way");
        if held_by("doomed").unwrap_or(0) > 0 && bus.unread().unwrap() < (EVENTS * 3 / 4) as u64 {
            doomed.kill().unwrap();
            break;
        }
    }
    doomed.wait().unwrap();
    let pending_at_kill = held_by("doomed").unwrap_or(0);

    let output = survivor.wait_with_output().unwrap();
    let (stdout, _) = texts(&output);
    assert!(output.status.success(), "survivor: {stdout}");
    let stats: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    eprintln!("pending at the kill: {pending_at_kill}; survivor: {stats}");
    assert_eq!(bus.pending().unwrap(), 0, "nothing left pending");
    assert_eq!(bus.unread().unwrap(), 0, "nothing left unread");
    let (read, claimed) = (stats["read"].as_u64().unwrap(), stats["claimed"].as_u64().unwrap());
    assert!(
        read > 0 && read + claimed < EVENTS as u64,
        "the two workers split the stream: {stats}"
    );
    assert!(
        claimed >= pending_at_kill,
        "the survivor claimed what the dead worker held ({pending_at_kill}): {stats}"
    );

    let store =
        RedisOnlineStore::open(&server.url, &prefix, StreamSettings::default().online()).unwrap();
    assert_eq!(store.global_tally().unwrap(), expected, "every event counted exactly once");
    for user in ["u0", "u4", "u120", "u496"] {
        let history = store.history(user).unwrap();
        assert_eq!(history.len(), interactions_per_user[user].min(50), "{user}: {history:?}");
    }
}

/// `cascade serve` with `backend = "redis"`: its log is forwarded to the
/// stream, a worker keeps the Redis store, and the server's features and
/// histories come from there.
#[test]
fn a_server_on_redis_reads_the_features_its_workers_keep() {
    let Some(data) = crate::movielens_dir() else { return };
    let Some(server) = RedisForTests::start() else { return };
    let prefix = server.fresh_prefix("serve");
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    let config = config_with_redis(dir.path(), &server.url, &prefix);
    let mut worker = cascade()
        .args(["stream-worker", "--consumer", "w", "--config"])
        .arg(&config)
        .arg("--workspace")
        .arg(&work)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let serve = start_with(&data, &work, &["--config".as_ref(), config.as_os_str()]);
    let base = &serve.base;

    let (_, body) = post(base, "/v1/recommend", r#"{"user_id": "1", "n": 5}"#);
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    let watched = answer["items"][0]["item_id"].as_str().unwrap().to_owned();
    let click = format!(
        r#"{{"events": [{{"event_id": "redis-1", "user_id": "1", "item_id": "{watched}", "event_type": "click"}}]}}"#
    );
    let (status, body) = post(base, "/v1/events", &click);
    assert_eq!(status, 200, "{body}");
    let acked = Instant::now();
    // Through the forwarder, the stream and the worker into Redis (the
    // workers first catch up with MovieLens' 100,000 ratings).
    let features = loop {
        let (status, body) = get(base, "/v1/users/1/features");
        assert_eq!(status, 200, "{body}");
        let features: serde_json::Value = serde_json::from_str(&body).unwrap();
        if features["history"].as_array().unwrap().last().and_then(|v| v.as_str())
            == Some(watched.as_str())
        {
            break features;
        }
        assert!(acked.elapsed() < Duration::from_secs(60), "never visible: {body}");
        std::thread::sleep(Duration::from_millis(20));
    };
    eprintln!("ack → visible through Redis: {:?}", acked.elapsed());
    assert!(!features["category_affinities"].as_array().unwrap().is_empty(), "{features}");
    let (_, body) = get(base, "/v1/trending?n=3");
    let trending: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(trending["items"][0]["item_id"], watched.as_str(), "{body}");
    let (_, body) = post(base, "/v1/recommend", r#"{"user_id": "1", "n": 20}"#);
    assert!(!body.contains(&format!("\"{watched}\"")), "the Redis history excludes it: {body}");

    let store =
        RedisOnlineStore::open(&server.url, &prefix, StreamSettings::default().online()).unwrap();
    assert_eq!(store.history("1").unwrap().last(), Some(&watched), "the worker wrote Redis");
    let other = item_ids(&answer)[1].clone();
    crate::serve::far_future_event_is_refused_and_later_clicks_count(base, &other);
    worker.kill().unwrap();
    worker.wait().unwrap();
}
