//! `cascade bench stream`: how fast one stream-processor worker applies the
//! log, and how large its state gets (the sizing numbers of
//! docs/scaling.md).
//!
//! A synthetic catalog's histories become a log of sessions: each
//! interaction is preceded by impressions of the item and of
//! `impressions_per_click - 1` popular items, every event a second apart
//! per user. The log is written first (not timed); then one processor
//! applies it from offset 0 in pages, and a checkpoint is written.

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{Result, bail};
use serde_json::json;

use cascade_core::Event;
use cascade_core::event::IMPRESSION;
use cascade_serve::synthetic::{CatalogSpec, SyntheticCatalog};
use cascade_store::{CommitDurability, LogEntry, Store};
use cascade_stream::{StreamProcessor, StreamSettings};

use crate::bench::serving::{synthetic_item_id, synthetic_user_id};
use crate::progress::Progress;

/// The synthetic session log the stream benchmarks apply.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct SessionLogArgs {
    /// Catalog items.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 100_000))]
    pub items: usize,
    /// Users; each contributes its session-shaped history.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 20_000))]
    pub users: usize,
    /// Impressions logged per interaction.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 5))]
    pub impressions_per_click: usize,
    /// Seed of the synthetic catalog.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 2026))]
    pub seed: u64,
}

/// A generated session log: the events in time order, and each item's
/// category.
pub struct SessionLog {
    pub spec: CatalogSpec,
    pub events: Vec<Event>,
    pub categories: HashMap<String, Vec<String>>,
}

impl SessionLogArgs {
    /// Generates the catalog and its log.
    pub fn generate(&self) -> Result<SessionLog> {
        if self.items == 0 || self.users == 0 {
            bail!("--items and --users must be positive");
        }
        let spec = CatalogSpec {
            items: self.items,
            users: self.users,
            dim: 8,
            categories: 64,
            mean_sessions: 3.0,
            mean_session_length: 8.0,
            seed: self.seed,
        };
        let synthetic = SyntheticCatalog::generate(spec);
        let events = session_log(&synthetic, self.impressions_per_click);
        let categories = (0..spec.items)
            .map(|i| {
                let category = synthetic.item_categories[i].to_string();
                (synthetic_item_id(&spec, i), vec![category])
            })
            .collect();
        Ok(SessionLog { spec, events, categories })
    }
}

/// What `cascade bench stream` measures.
#[derive(Debug, Clone, Copy)]
pub struct StreamBench {
    pub log: SessionLogArgs,
    /// Events per processor page.
    pub page: usize,
}

pub fn stream_bench(bench: &StreamBench) -> Result<serde_json::Value> {
    if bench.page == 0 {
        bail!("--page must be positive");
    }
    let progress = Progress { quiet: false };
    let spinner = progress.spinner("generating the log");
    let SessionLog { spec, events, categories } = bench.log.generate()?;
    let scratch = tempfile::tempdir()?;
    let store = Store::open(&scratch.path().join("store.redb"))?;
    for chunk in events.chunks(100_000) {
        let entries: Vec<LogEntry> = chunk.iter().cloned().map(LogEntry::Telemetry).collect();
        store.append_round(&entries, CommitDurability::Deferred)?;
    }
    store.sync()?;
    spinner.finish_and_clear();

    let checkpoint = scratch.path().join("stream").join("checkpoint.json");
    let samples = scratch.path().join("stream").join("samples.jsonl");
    let mut processor =
        StreamProcessor::open(store.clone(), &checkpoint, StreamSettings::default(), categories)?
            .with_sample_log(&samples)?;
    let bar = progress.bar(events.len() as u64, "applying", "events");
    let started = Instant::now();
    let mut labelled = 0usize;
    loop {
        let step = processor.step(bench.page)?;
        if step.events == 0 {
            break;
        }
        labelled += step.samples.len();
        bar.inc(step.events as u64);
    }
    let apply_s = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let started = Instant::now();
    processor.checkpoint()?;
    let checkpoint_s = started.elapsed().as_secs_f64();
    let checkpoint_bytes = std::fs::metadata(&checkpoint)?.len();
    let open_impressions = processor.features().read(|state| state.open_impressions());
    let report = json!({
        "bench": "stream",
        "events": events.len(),
        "users": spec.users,
        "items": spec.items,
        "impressions_per_click": bench.log.impressions_per_click,
        "apply_s": apply_s,
        "events_per_s": events.len() as f64 / apply_s.max(1e-9),
        "labelled_samples": labelled,
        "open_impressions": open_impressions,
        "checkpoint_s": checkpoint_s,
        "checkpoint_bytes": checkpoint_bytes,
        "sample_log_bytes": std::fs::metadata(&samples)?.len(),
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
    });
    Ok(report)
}

/// Users' histories as interleaved sessions of impressions and clicks, in
/// time order (user u's k-th event at second k, users interleaved).
fn session_log(synthetic: &SyntheticCatalog, impressions_per_click: usize) -> Vec<Event> {
    let spec = &synthetic.spec;
    let per_user: Vec<Vec<(String, &'static str)>> = synthetic
        .histories
        .iter()
        .map(|history| {
            history
                .iter()
                .enumerate()
                .flat_map(|(k, &item)| {
                    // Popular items (low ids) shown beside the clicked one.
                    let shown = (1..impressions_per_click)
                        .map(move |j| ((k * 7 + j * 13) % 50, IMPRESSION))
                        .chain([(item as usize, IMPRESSION), (item as usize, "click")]);
                    shown.map(|(i, kind)| (synthetic_item_id(spec, i), kind)).collect::<Vec<_>>()
                })
                .collect()
        })
        .collect();
    let longest = per_user.iter().map(Vec::len).max().unwrap_or(0);
    let start_ms = 1_700_000_000_000i64;
    let mut events = Vec::new();
    for position in 0..longest {
        for (user, session) in per_user.iter().enumerate() {
            if let Some((item, kind)) = session.get(position) {
                events.push(Event {
                    user: synthetic_user_id(spec, user),
                    item: item.clone(),
                    event_type: (*kind).into(),
                    value: None,
                    ts_ms: start_ms + position as i64 * 1000,
                    served: None,
                });
            }
        }
    }
    events
}
