//! `cascade bench ann` and `cascade bench serve`: the online path measured on
//! seeded synthetic catalogs (`cascade_serve::synthetic`) at sizes MovieLens
//! does not reach. Both print one JSON object; the serve benchmark's load
//! generator lives in `load.rs`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use cascade_core::context::ContextDerivation;
use cascade_core::ids::{IdIndex, feature_id};
use cascade_eval::plots::latency_curves;
use cascade_eval::protocols::CtrExample;
use cascade_models::Interactions;
use cascade_models::random::SeededRng;
use cascade_models::ranking::{CtrArch, CtrFeatures, CtrModelConfig};
use cascade_serve::catalog::{Catalog, ItemFacts};
use cascade_serve::field_encoder::FieldEncoder;
use cascade_serve::http::{AppState, serve};
use cascade_serve::metrics::Metrics;
use cascade_serve::rank::CtrRanker;
use cascade_serve::recall::{
    AnnBackend, AnnIndex, AnnRecall, AnnSettings, EXACT_ADDED_SCAN, ItemCfRecall,
};
use cascade_serve::recommender::{Models, Recommender};
use cascade_serve::synthetic::{CatalogSpec, SyntheticCatalog, clustered_embeddings};
use cascade_store::Store;

use crate::bench::load::{LoadReport, LoadSettings, run_load};
use crate::bench::training::median;
use crate::progress::Progress;
use crate::ranking::{self, CtrInputs};
use crate::serving::server::{event_log, pipeline_settings};
use crate::workspace::Workspace;

/// The p-th percentile (nearest rank) of `samples`, which it sorts.
pub fn percentile(samples: &mut [f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

/// recall@10 and per-query time of `index.search` against the exact scan,
/// over every query of `queries` (Q × dim), timed one after the other.
fn compare_with_exact(index: &AnnIndex, queries: &[f32], progress: Progress) -> Value {
    let dim = index.dim();
    let count = queries.len() / dim.max(1);
    let bar = progress.bar(count as u64, "ANN vs exact", "queries");
    let (mut ann_us, mut exact_us, mut hits) = (Vec::new(), Vec::new(), 0usize);
    for query in queries.chunks_exact(dim) {
        let started = Instant::now();
        let approx = index.search(query, 10);
        ann_us.push(started.elapsed().as_secs_f64() * 1e6);
        let started = Instant::now();
        let exact = index.exact_search(query, 10);
        exact_us.push(started.elapsed().as_secs_f64() * 1e6);
        hits += approx.iter().filter(|(item, _)| exact.iter().any(|(e, _)| e == item)).count();
        bar.inc(1);
    }
    bar.finish_and_clear();
    let (ann_p50, exact_p50) = (percentile(&mut ann_us, 50.0), percentile(&mut exact_us, 50.0));
    json!({
        "backend": index.settings().backend.name(),
        "ef_search": index.settings().ef_search,
        "recall_at_10": hits as f64 / (10 * count.max(1)) as f64,
        "ann_us": { "p50": ann_p50, "p99": percentile(&mut ann_us, 99.0) },
        "exact_us": { "p50": exact_p50, "p99": percentile(&mut exact_us, 99.0) },
        "speedup_p50": exact_p50 / ann_p50,
    })
}

/// Items created after the build that `cascade bench ann` inserts.
const ADDED_ITEMS: usize = 1000;

/// Inserts `added` (K × dim) one by one past the index's items, as `PUT
/// /v1/items/{id}` does, and moves each once (an online-learning update):
/// the time of each, and recall@100 of added and of built items on
/// `queries` against the exact scan.
fn measure_inserts(
    index: &AnnIndex,
    added: &[f32],
    queries: &[f32],
    progress: Progress,
) -> Result<Value> {
    let dim = index.dim();
    let base = index.len() as u32;
    let count = added.len() / dim;
    let bar = progress.bar(2 * count as u64, "inserting, then moving, added items", "items");
    let set_all = |scale: f32| -> Result<Vec<f64>> {
        let mut took_us = Vec::with_capacity(count);
        for (k, vector) in added.chunks_exact(dim).enumerate() {
            let vector: Vec<f32> = vector.iter().map(|v| v * scale).collect();
            let started = Instant::now();
            index.set_added(base + k as u32, &vector).map_err(|e| anyhow::anyhow!(e))?;
            took_us.push(started.elapsed().as_secs_f64() * 1e6);
            bar.inc(1);
        }
        Ok(took_us)
    };
    let mut insert_us = set_all(1.0)?;
    let inserted = recall_of_added(index, base, queries);
    let mut move_us = set_all(0.9)?;
    bar.finish_and_clear();
    Ok(json!({
        "items": count,
        "insert_us": { "p50": percentile(&mut insert_us, 50.0), "p99": percentile(&mut insert_us, 99.0) },
        "move_us": { "p50": percentile(&mut move_us, 50.0), "p99": percentile(&mut move_us, 99.0) },
        "graph_alone_after_inserts": inserted,
        "graph_alone_after_moves": recall_of_added(index, base, queries),
    }))
}

/// Are added items (from `base` on) as findable as built ones? Of each
/// query's exact top 100, the share the index returns, for the two apart.
fn recall_of_added(index: &AnnIndex, base: u32, queries: &[f32]) -> Value {
    let (mut exact, mut found) = ([0usize; 2], [0usize; 2]);
    for query in queries.chunks_exact(index.dim()) {
        let approx: Vec<u32> = index.search(query, 100).iter().map(|(i, _)| *i).collect();
        for (item, _) in index.exact_search(query, 100) {
            let kind = usize::from(item >= base);
            exact[kind] += 1;
            found[kind] += usize::from(approx.contains(&item));
        }
    }
    let share = |kind: usize| found[kind] as f64 / exact[kind].max(1) as f64;
    json!({
        "recall_at_100_built": share(0),
        "recall_at_100_added": share(1),
        "added_in_exact_top_100": exact[1],
    })
}

fn profile() -> &'static str {
    if cfg!(debug_assertions) { "debug" } else { "release" }
}

/// Each HNSW backend against exact brute-force search on the same seeded
/// synthetic embeddings, in one run: build time, recall@10, per-query latency.
pub fn ann(
    items: usize,
    dim: usize,
    queries: usize,
    ef_search: usize,
    backends: &[AnnBackend],
) -> Result<Value> {
    let progress = Progress { quiet: false };
    // The items created later come from the same distribution: a seeded
    // `ADDED_ITEMS` of one draw are held out of the build.
    let (drawn, users) = clustered_embeddings(items + ADDED_ITEMS, dim, 64, queries.max(1), 2026);
    let mut order: Vec<usize> = (0..items + ADDED_ITEMS).collect();
    cascade_models::random::SeededRng::new(2027).shuffle(&mut order);
    let (built, held) = order.split_at_mut(items);
    // The build keeps popularity order: HNSW builds a better graph when the
    // long (popular) vectors come first.
    built.sort_unstable();
    let row = |i: &usize| &drawn[i * dim..(i + 1) * dim];
    let vectors: Vec<f32> = built.iter().flat_map(row).copied().collect();
    let added: Vec<f32> = held.iter().flat_map(row).copied().collect();
    let mut reports = Vec::new();
    for &backend in backends {
        let spinner =
            progress.spinner(&format!("building HNSW ({}) over {items} items", backend.name()));
        let started = Instant::now();
        let settings = AnnSettings { backend, ef_search, seed: 2026 };
        let mut index = AnnIndex::build(vectors.clone(), dim, settings);
        let build_s = started.elapsed().as_secs_f64();
        spinner.finish_and_clear();
        let mut report = compare_with_exact(&index, &users, progress);
        report["build_s"] = json!(build_s);
        // The graph alone first, then as served: added items also scanned.
        index.set_exact_added_scan(0);
        report["inserts"] = measure_inserts(&index, &added, &users, progress)?;
        index.set_exact_added_scan(EXACT_ADDED_SCAN);
        report["inserts"]["served"] = recall_of_added(&index, index.catalog_items(), &users);
        report["after_inserts"] = compare_with_exact(&index, &users, progress);
        reports.push(report);
    }
    let report = json!({
        "bench": "ann",
        "items": items,
        "dim": dim,
        "queries": queries,
        "threads": rayon::current_num_threads(),
        "backends": reports,
        "profile": profile(),
    });
    Ok(report)
}

/// What `cascade bench serve` runs.
#[derive(Debug, Clone)]
pub struct ServeBench {
    /// The synthetic catalog.
    pub spec: CatalogSpec,
    /// The ANN index's implementation.
    pub backend: AnnBackend,
    /// Its `ef`, else the config's `[serve] ann_ef_search`.
    pub ef_search: Option<usize>,
    /// Offered request rates, each held for `duration`.
    pub rates: Vec<f64>,
    /// How long each rate is offered.
    pub duration: Duration,
    /// Repetitions of each rate (medians are reported).
    pub runs: usize,
    /// After the fixed rates, raise the rate by 25% until p99 passes this.
    pub find_max_p99_ms: Option<f64>,
    /// Client threads of the load generator.
    pub clients: usize,
    /// Where to draw latency percentiles against offered load (SVG).
    pub plot: Option<std::path::PathBuf>,
}

/// How long the first rate is offered, unrecorded, before measuring.
const WARM_UP: Duration = Duration::from_secs(5);
/// Ranking examples per user: its last positives and as many sampled negatives.
const POSITIVES_PER_USER: usize = 4;

/// Builds the synthetic catalog and every serving model on it, starts the
/// real HTTP server on loopback, compares the ANN stage with exact search,
/// then offers each request rate and reports latency and stage times.
pub fn serve_bench(workspace: &Workspace, bench: &ServeBench) -> Result<serde_json::Value> {
    if bench.rates.is_empty() && bench.find_max_p99_ms.is_none() {
        bail!("give at least one --rate, or --find-max");
    }
    let config = workspace.config.clone();
    let ef_search = bench.ef_search.unwrap_or(config.serve.ann_ef_search);
    let ann = AnnSettings { backend: bench.backend, ef_search, seed: bench.spec.seed };
    let progress = Progress { quiet: false };
    let spec = bench.spec;
    let spinner =
        progress.spinner(&format!("generating {} items and {} users", spec.items, spec.users));
    let synthetic = SyntheticCatalog::generate(spec);
    spinner.finish_and_clear();

    let started = Instant::now();
    let models = synthetic_models(&synthetic, ann, progress)?;
    let build_s = started.elapsed().as_secs_f64();
    let ann_vs_exact =
        compare_with_exact(models.ann.index(), &query_sample(&synthetic, 500), progress);

    let metrics = Arc::new(Metrics::default());
    let recommender =
        Arc::new(Recommender::new(models, pipeline_settings(&config), metrics.clone()));
    // Impressions are logged as in `cascade serve`, to a scratch store.
    let scratch = tempfile::tempdir()?;
    let store = Store::open(&scratch.path().join("store.redb"))?;
    let events = Arc::new(event_log(store.clone(), &config));
    let state = Arc::new(AppState {
        recommender,
        metrics: metrics.clone(),
        loader: None,
        events: Some(events),
        entities: None,
        access: Arc::new(cascade_serve::access::AccessKeys::none()),
        experiments: None,
    });
    let addr = start_server(state)?;
    let url = format!("http://{addr}/v1/recommend");

    let body = move |k: u64| -> String {
        // Users drawn by a fixed hash of the request number: repeatable.
        let user = (feature_id("bench-user", &k.to_string()) % spec.users as u64) as usize;
        format!(r#"{{"user_id":"{}","n":10}}"#, synthetic_user_id(&spec, user))
    };
    let step = |rate: f64| -> Result<Value> {
        let mut runs = Vec::new();
        for _ in 0..bench.runs.max(1) {
            let before = metrics.stage_totals();
            let settings = LoadSettings { rate, duration: bench.duration, clients: bench.clients };
            let report = run_load(&url, &body, settings, progress)?;
            runs.push((report, stage_means(&before, &metrics.stage_totals())));
        }
        Ok(summarise(rate, &runs))
    };
    // Warm-up, not recorded: the first seconds after the build pay for
    // page faults, allocator growth and thread start-up (a first run's p99
    // was 10-60× the next one's without it).
    if let Some(&first) = bench.rates.first() {
        let settings = LoadSettings { rate: first, duration: WARM_UP, clients: bench.clients };
        run_load(&url, &body, settings, Progress { quiet: true })?;
    }
    let sustained = |summary: &Value, limit_ms: f64| {
        let rate = summary["offered_rps"].as_f64().unwrap_or(f64::INFINITY);
        summary["p99_ms"].as_f64().is_some_and(|p| p <= limit_ms)
            && summary["failed"].as_u64() == Some(0)
            && summary["achieved_rps"].as_f64().is_some_and(|a| a >= 0.95 * rate)
    };
    let mut steps = Vec::new();
    for &rate in &bench.rates {
        steps.push(step(rate)?);
    }
    let mut max_sustainable = Value::Null;
    if let Some(limit_ms) = bench.find_max_p99_ms {
        // From the highest fixed rate that held (or 100 req/s), +25% a step
        // until one does not; at most 12 steps (100 req/s → ~1,450).
        let rate_of = |s: &Value| s["offered_rps"].as_f64().unwrap_or(0.0);
        let best = steps
            .iter()
            .filter(|s| sustained(s, limit_ms))
            .max_by(|a, b| rate_of(a).total_cmp(&rate_of(b)))
            .cloned();
        let mut rate = best.as_ref().map_or(100.0, |s| rate_of(s) * 1.25);
        if let Some(best) = best {
            max_sustainable = best;
        }
        for _ in 0..12 {
            let summary = step(rate)?;
            let passed = sustained(&summary, limit_ms);
            steps.push(summary.clone());
            if !passed {
                break;
            }
            max_sustainable = summary;
            rate *= 1.25;
        }
    }
    if let Some(path) = &bench.plot {
        let curve = |key: &str| -> Vec<(f64, f64)> {
            let point = |s: &Value| Some((s["offered_rps"].as_f64()?, s[key].as_f64()?));
            steps.iter().filter_map(point).collect()
        };
        let series = [("p50", curve("p50_ms")), ("p90", curve("p90_ms")), ("p99", curve("p99_ms"))];
        let title = format!("cascade bench serve: {} items, {} users", spec.items, spec.users);
        latency_curves(path, &title, &series).map_err(anyhow::Error::msg)?;
    }
    let report = json!({
        "bench": "serve",
        "catalog": {
            "items": spec.items,
            "users": spec.users,
            "events": synthetic.histories.iter().map(Vec::len).sum::<usize>(),
            "categories": spec.categories,
            "dim": spec.dim,
            "seed": spec.seed,
        },
        "pipeline": "recall ann 150 + item_cf 100 + category_popular 30 + popular 10 + fresh 10 → deepfm → freshness/popularity adjustments → mmr λ 0.8, n = 10",
        "models_build_s": build_s,
        "ann_vs_exact": ann_vs_exact,
        "duration_s": bench.duration.as_secs_f64(),
        "warm_up_s": WARM_UP.as_secs_f64(),
        "runs_per_rate": bench.runs.max(1),
        "clients": bench.clients,
        "steps": steps,
        "max_sustainable": max_sustainable,
        // Committed so far; the last commits may still be in flight.
        "impressions_logged": store.event_count()?,
        "threads": rayon::current_num_threads(),
        "profile": profile(),
    });
    Ok(report)
}

fn digits(n: usize) -> usize {
    n.max(1).to_string().len()
}

/// The external id of synthetic user `u`: zero-padded, so ids sort as numbers.
pub fn synthetic_user_id(spec: &CatalogSpec, u: usize) -> String {
    format!("u{u:0width$}", width = digits(spec.users))
}

/// The external id of synthetic item `i`.
pub fn synthetic_item_id(spec: &CatalogSpec, i: usize) -> String {
    format!("i{i:0width$}", width = digits(spec.items))
}

/// The first `count` user embeddings (users are drawn independently).
fn query_sample(synthetic: &SyntheticCatalog, count: usize) -> Vec<f32> {
    let dim = synthetic.spec.dim;
    synthetic.user_vectors[..count.min(synthetic.spec.users) * dim].to_vec()
}

/// Mean milliseconds per stage between two readings of the stage totals.
fn stage_means(
    before: &BTreeMap<String, (u64, f64)>,
    after: &BTreeMap<String, (u64, f64)>,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(stage, &(count, sum))| {
            let (count0, sum0) = before.get(stage).copied().unwrap_or((0, 0.0));
            let n = count.saturating_sub(count0).max(1) as f64;
            (stage.clone(), (sum - sum0) * 1e3 / n)
        })
        .collect()
}

/// Medians over the runs of one offered rate.
fn summarise(rate: f64, runs: &[(LoadReport, BTreeMap<String, f64>)]) -> Value {
    let of = |f: &dyn Fn(&LoadReport) -> f64| median(runs.iter().map(|(r, _)| f(r)).collect());
    let stages: BTreeMap<&String, f64> = runs
        .first()
        .map(|(_, s)| s.keys().collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|stage| {
            (stage, median(runs.iter().filter_map(|(_, s)| s.get(stage)).copied().collect()))
        })
        .collect();
    json!({
        "offered_rps": rate,
        "achieved_rps": of(&|r| r.achieved_rps()),
        "p50_ms": of(&|r| r.latency_ms(50.0)),
        "p90_ms": of(&|r| r.latency_ms(90.0)),
        "p99_ms": of(&|r| r.latency_ms(99.0)),
        "max_ms": of(&|r| r.latency_ms(100.0)),
        "p99_ms_per_run": runs.iter().map(|(r, _)| r.latency_ms(99.0)).collect::<Vec<_>>(),
        "failed": runs.iter().map(|(r, _)| r.failed).sum::<u64>(),
        "first_error": runs.iter().find_map(|(r, _)| r.first_error.clone()),
        "stage_mean_ms": stages,
    })
}

/// Starts the HTTP server on an ephemeral loopback port in the background.
pub fn start_server(state: Arc<AppState>) -> Result<SocketAddr> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .context("binding a loopback port")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || runtime.block_on(serve(listener, state)));
    Ok(addr)
}

/// ANN over the catalog's embeddings, item-CF and popularity over its
/// histories, and DeepFM trained one epoch on the histories' last items
/// against sampled negatives.
pub fn synthetic_models(
    synthetic: &SyntheticCatalog,
    ann: AnnSettings,
    progress: Progress,
) -> Result<Models> {
    let spec = synthetic.spec;
    let spinner = progress.spinner(&format!(
        "building HNSW ({}) over {} items",
        ann.backend.name(),
        spec.items
    ));
    let index = AnnIndex::build(synthetic.item_vectors.clone(), spec.dim, ann);
    let ann = AnnRecall::new(index, synthetic.user_vectors.clone());
    spinner.finish_and_clear();

    let spinner = progress.spinner("fitting item-CF");
    let consumed = Interactions::new(spec.items, &synthetic.histories);
    let item_cf = ItemCfRecall::fit(&consumed);
    let counts: Vec<f32> = consumed.by_item.iter().map(|users| users.len() as f32).collect();
    spinner.finish_and_clear();

    let user_ids: Vec<String> = (0..spec.users).map(|u| synthetic_user_id(&spec, u)).collect();
    let item_ids: Vec<String> = (0..spec.items).map(|i| synthetic_item_id(&spec, i)).collect();
    // Hour and weekday context features, so ranking pays for them as a
    // schema declaring them would; the synthetic log has no times, so
    // training draws each example's moment at random and they carry no signal.
    let context = vec![
        ("hour_of_day".to_owned(), ContextDerivation::HourOfDay),
        ("day_of_week".to_owned(), ContextDerivation::DayOfWeek),
    ];
    let mut field_names: Vec<String> = vec!["user_id".into(), "item_id".into(), "category".into()];
    field_names.extend(context.iter().map(|(name, _)| name.clone()));
    let encoder = FieldEncoder::from_parts(
        field_names,
        user_ids.iter().map(|id| vec![vec![feature_id("user_id", id)]]).collect(),
        item_ids
            .iter()
            .zip(&synthetic.item_categories)
            .map(|(id, c)| {
                vec![vec![feature_id("item_id", id)], vec![feature_id("category", &c.to_string())]]
            })
            .collect(),
        context,
    );
    let mut config = CtrModelConfig::default_for(CtrArch::DeepFm);
    config.training.max_epochs = 1;
    let inputs = ranking_examples(synthetic, &encoder, config.history_length);
    let (model, _) = ranking::train(&inputs, &config, progress)?;
    let ranker = CtrRanker::new("deepfm", model, encoder, config.history_length)?;
    let clock = 365 * 86_400;
    let facts = ItemFacts {
        categories: IdIndex::new((0..spec.categories).map(|c| c.to_string())),
        item_categories: synthetic.item_categories.iter().map(|&c| vec![c]).collect(),
        published: synthetic
            .item_age_seconds
            .iter()
            .map(|&age| Some(clock - i64::from(age)))
            .collect(),
        clock,
    };
    let catalog = Catalog::new(
        IdIndex::new(user_ids),
        IdIndex::new(item_ids),
        synthetic.histories.clone(),
        facts,
    );
    let version = format!("synthetic-{}-items@seed{}", spec.items, spec.seed);
    Ok(Models::new(version, catalog, ann, item_cf, &counts, Some(ranker)))
}

/// Each user's last positives (with the items before each as history)
/// against as many negatives drawn from other users' histories (so by
/// popularity); every tenth user's examples validate.
fn ranking_examples(
    synthetic: &SyntheticCatalog,
    encoder: &FieldEncoder,
    history_length: usize,
) -> CtrInputs {
    let mut rng = SeededRng::new(synthetic.spec.seed ^ 0xc7);
    let all: Vec<u32> = synthetic.histories.iter().flatten().copied().collect();
    let (mut train, mut valid) = (Vec::new(), Vec::new());
    for (user, history) in synthetic.histories.iter().enumerate() {
        let user = user as u32;
        for end in history.len().saturating_sub(POSITIVES_PER_USER)..history.len() {
            let before = &history[end.saturating_sub(history_length)..end];
            let keys: Vec<u64> = before.iter().map(|&i| encoder.item_key(i)).collect();
            let negative = all[rng.below(all.len())];
            for (item, label) in [(history[end], true), (negative, false)] {
                let at_ms = rng.below(365 * 86_400) as i64 * 1000;
                let fields = encoder.encode(user, item, &encoder.context_at(at_ms));
                let features = CtrFeatures { fields, history: keys.clone() };
                let example = CtrExample { user, label, features };
                if user.is_multiple_of(10) { valid.push(example) } else { train.push(example) }
            }
        }
    }
    CtrInputs {
        train,
        valid,
        test: Vec::new(),
        item_field: encoder.item_field(),
        field_names: encoder.field_names.clone(),
    }
}
