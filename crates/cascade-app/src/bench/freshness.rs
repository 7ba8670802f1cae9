//! `cascade bench freshness`: from an event's acknowledgement to its effect
//! in `/v1/recommend`, over real HTTP, under background ingest.
//!
//! Each probe takes a user, asks for recommendations, logs that the user
//! consumed the top item, and from the moment the acknowledgement arrives
//! asks again and again until the item is gone from the list (consumed
//! items are excluded). The time to the first answer without it is the
//! freshness; both ends are timestamped by the same client clock.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use serde_json::{Value, json};

use cascade_store::online::test_server::RedisForTests;

use crate::bench::ingest::LiveServer;
use crate::bench::serving::{percentile, synthetic_item_id, synthetic_user_id};
use crate::progress::Progress;
use crate::workspace::Workspace;

/// What `cascade bench freshness` measures.
#[derive(Debug, Clone, Copy)]
pub struct FreshnessBench {
    /// Probes (one user each).
    pub probes: usize,
    /// Events per second other clients send meanwhile, in batches of 100.
    pub background_rate: f64,
    /// Seed of the synthetic catalog.
    pub seed: u64,
    /// Read features from a Redis online store kept by a stream worker
    /// (the scale-out path) instead of the server's own stream processor.
    pub redis: bool,
}

/// The longest a probe waits for its event to show.
const GIVE_UP: Duration = Duration::from_secs(5);

pub fn freshness_bench(workspace: &Workspace, bench: &FreshnessBench) -> Result<serde_json::Value> {
    if bench.probes == 0 {
        bail!("--probes must be positive");
    }
    let config = workspace.config.clone();
    let progress = Progress { quiet: false };
    let redis = match bench.redis {
        true => Some(RedisForTests::start().ok_or_else(|| {
            anyhow!("--redis: no Redis (set CASCADE_REDIS_URL or install redis-server)")
        })?),
        false => None,
    };
    let server =
        LiveServer::start(bench.seed, &config, redis.as_ref().map(|r| r.url.as_str()), progress)?;
    let users = server.synthetic.histories.len();
    let stop = AtomicBool::new(false);
    let background_events = AtomicU64::new(0);
    let (ack_to_visible, send_to_visible) = std::thread::scope(|scope| -> Result<_> {
        if bench.background_rate > 0.0 {
            scope.spawn(|| {
                background_load(&server, bench.background_rate, &stop, &background_events)
            });
        }
        let agent: ureq::Agent =
            ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let bar = progress.bar(bench.probes as u64, "freshness probes", "probes");
        let (mut ack_to_visible, mut send_to_visible) = (Vec::new(), Vec::new());
        for probe in 0..bench.probes {
            let user = synthetic_user_id(&server.synthetic.spec, probe % users);
            let top = recommend(&agent, &server.base, &user)?;
            let Some(item) = top.first().cloned() else {
                bail!("no recommendation for {user}");
            };
            let event = json!({ "events": [{
                "event_id": format!("freshness-{probe}"),
                "user_id": user,
                "item_id": item,
                "event_type": "click",
            }]});
            let sent = Instant::now();
            post(&agent, &format!("{}/v1/events", server.base), &event.to_string())?;
            let acknowledged = Instant::now();
            loop {
                if !recommend(&agent, &server.base, &user)?.contains(&item) {
                    break;
                }
                if acknowledged.elapsed() > GIVE_UP {
                    bail!(
                        "probe {probe}: {item} still recommended to {user} {GIVE_UP:?} after the ack"
                    );
                }
            }
            ack_to_visible.push(acknowledged.elapsed().as_secs_f64() * 1e3);
            send_to_visible.push(sent.elapsed().as_secs_f64() * 1e3);
            bar.inc(1);
        }
        bar.finish_and_clear();
        stop.store(true, Ordering::Relaxed);
        Ok((ack_to_visible, send_to_visible))
    })?;
    let summary = |mut ms: Vec<f64>| {
        json!({
            "p50": percentile(&mut ms, 50.0),
            "p99": percentile(&mut ms, 99.0),
            "max": percentile(&mut ms, 100.0),
        })
    };
    let report = json!({
        "bench": "freshness",
        "probes": bench.probes,
        "what": "a click on the top item, then /v1/recommend until the item is excluded",
        "features_from": if bench.redis { "redis (forwarder + one stream worker)" } else { "the server's stream processor" },
        "ack_to_visible_ms": summary(ack_to_visible),
        "send_to_visible_ms": summary(send_to_visible),
        "background_rate_offered": bench.background_rate,
        "background_events_acknowledged": background_events.load(Ordering::Relaxed),
        "stream_offset": server.live.applied(),
        "events_in_log": server.store.event_count()?,
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
    });
    Ok(report)
}

/// Batches of 100 of the catalog's history events at `rate` events/s until `stop`.
fn background_load(server: &LiveServer, rate: f64, stop: &AtomicBool, acknowledged: &AtomicU64) {
    let agent: ureq::Agent =
        ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let url = format!("{}/v1/events", server.base);
    let interval = Duration::from_secs_f64(100.0 / rate);
    let start = Instant::now();
    let (histories, spec) = (&server.synthetic.histories, &server.synthetic.spec);
    for batch in 0u64.. {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        if let Some(wait) =
            (start + interval.mul_f64(batch as f64)).checked_duration_since(Instant::now())
        {
            std::thread::sleep(wait);
        }
        let events: Vec<Value> = (0..100u64)
            .map(|k| {
                let n = batch * 100 + k;
                let user = n as usize % histories.len();
                let history = &histories[user];
                let item = history.get(n as usize / histories.len() % history.len().max(1));
                json!({
                    "event_id": format!("background-{n}"),
                    "user_id": format!("background-{}", synthetic_user_id(spec, user)),
                    "item_id": synthetic_item_id(spec, item.copied().unwrap_or(0) as usize),
                    "event_type": "click",
                })
            })
            .collect();
        if post(&agent, &url, &json!({ "events": events }).to_string()).is_ok() {
            acknowledged.fetch_add(100, Ordering::Relaxed);
        }
    }
}

fn post(agent: &ureq::Agent, url: &str, body: &str) -> Result<Value> {
    let mut response = agent.post(url).header("content-type", "application/json").send(body)?;
    let status = response.status();
    let text = response.body_mut().read_to_string()?;
    if !status.is_success() {
        bail!("{url}: {status}: {text}");
    }
    Ok(serde_json::from_str(&text)?)
}

/// The item ids recommended to `user`, best first.
fn recommend(agent: &ureq::Agent, base: &str, user: &str) -> Result<Vec<String>> {
    let answer = post(
        agent,
        &format!("{base}/v1/recommend"),
        &json!({ "user_id": user, "n": 10 }).to_string(),
    )?;
    Ok(answer["items"]
        .as_array()
        .map(|items| {
            items.iter().filter_map(|i| i["item_id"].as_str().map(str::to_owned)).collect()
        })
        .unwrap_or_default())
}
