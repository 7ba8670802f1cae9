//! `cascade bench experiments`: the cost of experiment results. A ledger
//! takes `exposures` impressions (and the clicks and other events that
//! follow some of them) for two variants and ten metrics, then the results
//! are computed from its sufficient statistics, `repeats` times; the
//! report gives the ingest rate and the median results time.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use cascade_core::config::{ExperimentConfig, LabelConfig, VariantConfig};
use cascade_core::event::{Event, IMPRESSION, Served, StoredEvent};
use cascade_experiments::assignment::position;
use cascade_experiments::calibration::SplitMix;
use cascade_experiments::results::{AnalysisSettings, analyse};
use cascade_serve::experiments::ledger::Ledger;
use cascade_serve::experiments::{ExperimentRecord, ExperimentStatus};

/// What to measure.
#[derive(Debug, Clone, Copy)]
pub struct ExperimentsBench {
    pub exposures: usize,
    pub users: usize,
    pub repeats: usize,
    pub seed: u64,
}

/// Event types counted per user besides clicks and CTR: ten metrics in all.
const EVENT_METRICS: usize = 8;

pub fn experiments_bench(options: &ExperimentsBench) -> Result<Value> {
    let event_metrics: Vec<String> = (0..EVENT_METRICS).map(|k| format!("event_{k}")).collect();
    let labels = LabelConfig { positive_event_types: vec!["click".into()], rating: None };
    let analysis = AnalysisSettings::default();
    let mut ledger =
        Ledger::new(labels, event_metrics.clone(), 30 * 60 * 1000, analysis, 14 * 24 * 3600 * 1000);
    let variant = |name: &str| VariantConfig {
        name: name.into(),
        weight: 0.5,
        recommend: Default::default(),
        models_dir: None,
    };
    let record = ExperimentRecord {
        config: ExperimentConfig {
            name: "bench".into(),
            layer: "default".into(),
            salt: None,
            allocation: 1.0,
            traffic_start: 0.0,
            variants: vec![variant("control"), variant("treatment")],
            interleave: false,
            planned_users: None,
            planned_looks: 20,
        },
        status: ExperimentStatus::Running,
        started_ms: 0,
        stopped_ms: None,
    };
    ledger.sync(&[record]);
    let events = synthetic_log(options, &event_metrics);
    let started = Instant::now();
    for stored in &events {
        ledger.observe(stored);
    }
    let ingest_s = started.elapsed().as_secs_f64();
    let progress =
        ledger.progress("bench").cloned().context("the bench experiment has no totals")?;
    let settings = AnalysisSettings::default();
    let mut times = Vec::with_capacity(options.repeats.max(1));
    let mut metrics = 0;
    for _ in 0..options.repeats.max(1) {
        let mut monitor = progress.srm;
        let started = Instant::now();
        let results = analyse(&progress.variants, &settings, &mut monitor);
        times.push(started.elapsed().as_secs_f64());
        metrics = results.comparisons.len();
    }
    times.sort_by(f64::total_cmp);
    let users: BTreeMap<&str, u64> =
        progress.variants.iter().map(|v| (v.name.as_str(), v.users)).collect();
    Ok(json!({
        "exposures": options.exposures,
        "log_events": events.len(),
        "users": users,
        "metrics_compared": metrics,
        "ledger_ingest_s": ingest_s,
        "ledger_events_per_s": events.len() as f64 / ingest_s.max(1e-9),
        "results_median_s": times[times.len() / 2],
        "results_max_s": times[times.len() - 1],
        "repeats": times.len(),
    }))
}

/// `exposures` impressions of users drawn uniformly, each followed by a
/// click with probability 5% and by one of the other event types with 2%.
fn synthetic_log(options: &ExperimentsBench, event_metrics: &[String]) -> Vec<StoredEvent> {
    let mut rng = SplitMix::new(options.seed);
    let mut events = Vec::with_capacity(options.exposures * 11 / 10);
    let mut push = |event: Event| {
        let seq = events.len() as u64;
        events.push(StoredEvent { seq, event });
    };
    for k in 0..options.exposures {
        let user = format!("user-{}", rng.next_u64() % options.users.max(1) as u64);
        let variant = if position("bench", &user) < 0.5 { "control" } else { "treatment" };
        let item = format!("item-{}", rng.next_u64() % 10_000);
        let ts_ms = k as i64;
        let served = Served {
            request_id: format!("r{k}"),
            model_version: "bench".into(),
            variants: vec![("bench".into(), variant.into())],
            prior_consumption: (rng.next_u64() % 50) as u32,
            team: None,
            policy: None,
            propensity: None,
            candidates: Vec::new(),
        };
        let event = |event_type: &str, item: &str, served: Option<Box<Served>>| Event {
            user: user.clone(),
            item: item.to_owned(),
            event_type: event_type.to_owned(),
            value: None,
            ts_ms,
            served,
        };
        push(event(IMPRESSION, &item, Some(Box::new(served))));
        if rng.unit() < 0.05 {
            push(event("click", &item, None));
        }
        if rng.unit() < 0.02 {
            let kind = &event_metrics[(rng.next_u64() % event_metrics.len() as u64) as usize];
            push(event(kind, &item, None));
        }
    }
    events
}
