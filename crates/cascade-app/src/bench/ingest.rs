//! `cascade bench ingest`: durable event ingestion over real HTTP.
//!
//! The real server (`POST /v1/events`, group commit into a fresh redb store,
//! the stream processor that the answer waits for) on loopback, and closed-loop clients each sending batches
//! of client-identified events as fast as they are acknowledged. An event
//! counts once its batch's answer says `appended`, which the server sends
//! only after the fsync, so the rate is of durable events.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use cascade_core::Config;
use cascade_serve::http::AppState;
use cascade_serve::metrics::Metrics;
use cascade_serve::recommender::Recommender;
use cascade_serve::synthetic::{CatalogSpec, SyntheticCatalog};
use cascade_store::online::RedisOnlineStore;
use cascade_store::{RedisEventBus, Store};
use cascade_stream::{LivePace, LiveStream, StreamProcessor, StreamSettings};

use crate::bench::serving::{
    percentile, start_server, synthetic_item_id, synthetic_models, synthetic_user_id,
};
use crate::bench::training::median;
use crate::progress::Progress;
use crate::serving::redis::spawn_forwarder;
use crate::serving::redis::spawn_worker_thread;
use crate::serving::server::{ann_settings, event_log, pipeline_settings};
use crate::workspace::Workspace;

/// What `cascade bench ingest` measures.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct IngestBench {
    /// Events sent per run.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 200_000))]
    pub events: usize,
    /// Events per request.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 100))]
    pub batch: usize,
    /// Concurrent clients, each with one keep-alive connection.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 16))]
    pub clients: usize,
    /// Runs, each appending new events to the same log; the median is reported.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 3))]
    pub runs: usize,
    /// The most events one group commit takes
    /// [default: the config's `[serve] events_per_commit`, as `cascade serve`].
    #[cfg_attr(feature = "clap", arg(long))]
    pub max_events_per_commit: Option<usize>,
    /// Seed of the synthetic catalog whose histories are sent.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 2026))]
    pub seed: u64,
}

/// The catalog the events come from: big enough for Zipf-skewed items and
/// session-shaped histories, small enough that building its models is quick.
fn catalog_spec(seed: u64) -> CatalogSpec {
    CatalogSpec {
        items: 5_000,
        users: 5_000,
        dim: 32,
        categories: 32,
        mean_sessions: 3.0,
        mean_session_length: 8.0,
        seed,
    }
}

/// The server as `cascade serve` runs it (event log, stream processor,
/// recommender reading its histories) over a fresh store and a small
/// synthetic catalog, on loopback.
pub struct LiveServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The catalog whose histories the benchmarks replay as events.
    pub synthetic: SyntheticCatalog,
    /// The server's store.
    pub store: Store,
    /// The stream processor the recommender reads.
    pub live: Arc<LiveStream>,
    _scratch: tempfile::TempDir,
}

impl LiveServer {
    /// Builds the catalog's models and starts everything. With `redis` (a
    /// server URL), the recommender reads its features from the Redis online
    /// store, fed by a forwarder thread and one stream-worker thread, as
    /// `cascade serve` on Redis with `cascade stream-worker` beside it.
    pub fn start(
        seed: u64,
        config: &Config,
        redis: Option<&str>,
        progress: Progress,
    ) -> Result<LiveServer> {
        let spinner = progress.spinner("building the serving models the events update");
        let synthetic = SyntheticCatalog::generate(catalog_spec(seed));
        let models = synthetic_models(&synthetic, ann_settings(config), Progress { quiet: true })?;
        spinner.finish_and_clear();

        let scratch = tempfile::tempdir()?;
        let store = Store::open(&scratch.path().join("store.redb"))?;
        let checkpoint = scratch.path().join("stream").join("checkpoint.json");
        let processor = StreamProcessor::open(
            store.clone(),
            &checkpoint,
            StreamSettings::from(&config.stream),
            HashMap::new(),
        )?;
        let live = LiveStream::start(processor, checkpoint, LivePace::from(&config.stream))?;
        let events = Arc::new(event_log(store.clone(), config));
        let metrics = Arc::new(Metrics::default());
        let mut recommender = Recommender::new(models, pipeline_settings(config), metrics.clone())
            .with_live(live.clone());
        if let Some(url) = redis {
            let prefix = format!("bench:{}", std::process::id());
            let bus = RedisEventBus::open(url, &prefix)?;
            spawn_forwarder(bus, store.clone(), "bench".into(), HashMap::new());
            let settings = StreamSettings::from(&config.stream).online();
            let worker = "bench-worker".to_owned();
            spawn_worker_thread(url.to_owned(), prefix.clone(), worker, settings.clone())?;
            let shared = RedisOnlineStore::open(url, &prefix, settings)?;
            recommender = recommender.with_shared_features(Arc::new(shared));
        }
        let state = Arc::new(AppState {
            recommender: Arc::new(recommender),
            metrics,
            loader: None,
            events: Some(events),
            entities: None,
            access: Arc::new(cascade_serve::access::AccessKeys::none()),
            experiments: None,
        });
        let base = format!("http://{}", start_server(state)?);
        Ok(LiveServer { base, synthetic, store, live, _scratch: scratch })
    }
}

/// Starts the server over a fresh store, replays the catalog's histories as
/// click events in batches and prints events/s and batch latency as JSON.
pub fn ingest_bench(workspace: &Workspace, bench: &IngestBench) -> Result<serde_json::Value> {
    if bench.batch == 0 || bench.clients == 0 || bench.events == 0 {
        bail!("--events, --batch and --clients must be positive");
    }
    let mut config = workspace.config.clone();
    if let Some(most) = bench.max_events_per_commit {
        config.serve.events_per_commit = most;
    }
    let progress = Progress { quiet: false };
    let live = LiveServer::start(bench.seed, &config, None, progress)?;
    let (synthetic, store) = (&live.synthetic, &live.store);
    let url = format!("{}/v1/events", live.base);

    // (user, item) pairs in each user's order, users interleaved: the skew
    // and session shape of the catalog, in an arrival order a live system sees.
    let longest = synthetic.histories.iter().map(Vec::len).max().unwrap_or(0);
    let stream: Vec<(usize, u32)> = (0..longest)
        .flat_map(|position| {
            synthetic
                .histories
                .iter()
                .enumerate()
                .filter_map(move |(user, history)| history.get(position).map(|&i| (user, i)))
        })
        .collect();
    if stream.is_empty() {
        bail!("the synthetic catalog has no events");
    }

    let mut runs = Vec::new();
    for run in 0..bench.runs.max(1) {
        let body = |batch: u64| -> String {
            let first = batch as usize * bench.batch;
            let events: Vec<Value> = (first..first + bench.batch)
                .map(|k| {
                    let (user, item) = stream[k % stream.len()];
                    json!({
                        "event_id": format!("bench-{run}-{k}"),
                        "user_id": synthetic_user_id(&synthetic.spec, user),
                        "item_id": synthetic_item_id(&synthetic.spec, item as usize),
                        "event_type": "click",
                        "ts_ms": 1_700_000_000_000i64 + k as i64,
                    })
                })
                .collect();
            json!({ "events": events }).to_string()
        };
        runs.push(closed_loop(&url, bench, &body, progress)?);
    }
    let rates: Vec<f64> = runs.iter().map(|r| r["events_per_s"].as_f64().unwrap_or(0.0)).collect();
    let report = json!({
        "bench": "ingest",
        "path": "POST /v1/events → validation → group commit (redb, fsync) → stream processor applied (read-your-writes wait)",
        "events_per_run": bench.events,
        "batch": bench.batch,
        "clients": bench.clients,
        "max_events_per_commit": config.serve.events_per_commit,
        "runs": runs,
        "median_events_per_s": median(rates),
        "events_in_log": store.event_count()?,
        "threads": rayon::current_num_threads(),
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
    });
    Ok(report)
}

/// Sends `bench.events / bench.batch` batches from `bench.clients` threads,
/// each waiting for its answer before the next; every answer must say that
/// the whole batch was appended.
fn closed_loop(
    url: &str,
    bench: &IngestBench,
    body: &(dyn Fn(u64) -> String + Sync),
    progress: Progress,
) -> Result<Value> {
    let batches = bench.events.div_ceil(bench.batch) as u64;
    // Built before the clock starts: the clients share the server's cores,
    // and JSON-encoding the load is not the server's work.
    let bodies: Vec<String> = (0..batches).map(body).collect();
    let next = AtomicU64::new(0);
    let latencies = Mutex::new(Vec::with_capacity(batches as usize));
    let failure = Mutex::new(None::<String>);
    let bar = progress.bar(batches * bench.batch as u64, "ingesting", "events");
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..bench.clients {
            scope.spawn(|| {
                let agent: ureq::Agent =
                    ureq::Agent::config_builder().http_status_as_error(false).build().into();
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= batches || failure.lock().is_some() {
                        break;
                    }
                    let sent = Instant::now();
                    match post_batch(&agent, url, &bodies[k as usize], bench.batch) {
                        Ok(()) => {
                            let ms = sent.elapsed().as_secs_f64() * 1e3;
                            latencies.lock().push(ms);
                            bar.inc(bench.batch as u64);
                        }
                        Err(error) => {
                            failure.lock().get_or_insert(error);
                        }
                    }
                }
            });
        }
    });
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    if let Some(error) = failure.into_inner() {
        bail!("ingest benchmark: a batch failed: {error}");
    }
    let mut latencies = latencies.into_inner();
    let acknowledged = latencies.len() * bench.batch;
    Ok(json!({
        "events": acknowledged,
        "seconds": elapsed.as_secs_f64(),
        "events_per_s": acknowledged as f64 / elapsed.max(Duration::from_nanos(1)).as_secs_f64(),
        "batch_ms": {
            "p50": percentile(&mut latencies, 50.0),
            "p99": percentile(&mut latencies, 99.0),
        },
    }))
}

fn post_batch(agent: &ureq::Agent, url: &str, body: &str, batch: usize) -> Result<(), String> {
    let mut response = agent
        .post(url)
        .header("content-type", "application/json")
        .send(body)
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let text = response.body_mut().read_to_string().map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("{status}: {text}"));
    }
    let answer: Value = serde_json::from_str(&text)
        .with_context(|| format!("the answer is not JSON: {text}"))
        .map_err(|e| e.to_string())?;
    if answer["appended"].as_u64() != Some(batch as u64) {
        return Err(format!("expected {batch} appended events, got {text}"));
    }
    Ok(())
}
