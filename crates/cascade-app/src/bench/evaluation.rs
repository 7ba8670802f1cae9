//! `cascade bench eval`: a leave-one-out model's fit and full-ranking
//! evaluation time and the process's peak memory, on a seeded synthetic log
//! of the size asked for (default 30,000 users × 24,000 items, the Yelp
//! shape): Zipf item popularity and per-user lengths from 5 up, skewed as
//! sparse review logs are. One model per process, so the peak is its own.

use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::json;

use cascade_eval::protocols::{LooSplit, Stage, evaluate_loo};
use cascade_models::random::SeededRng;
use cascade_serve::synthetic::{zipf, zipf_cdf};

use crate::evaluation::{LooRun, ModelSettings, fit_on_validation};
use crate::progress::Progress;
use crate::registry::ModelKind;

/// What `cascade bench eval` measures.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct EvalBench {
    /// Model (loo-full, no features).
    #[cfg_attr(feature = "clap", arg(long, default_value = "pop"))]
    pub model: ModelKind,
    /// Users of the synthetic log.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 30_000))]
    pub users: usize,
    /// Items of the synthetic log.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 24_000))]
    pub items: usize,
    /// Mean interactions per user (at least 5 each).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 10.0))]
    pub mean_length: f64,
    /// Epochs of a trained model (the cost of evaluation is what is measured).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 1))]
    pub epochs: usize,
    /// EASE's λ, one fit [default: the validation grid].
    #[cfg_attr(feature = "clap", arg(long))]
    pub lambda: Option<f64>,
    /// Seed of the synthetic log.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 2026))]
    pub seed: u64,
}

/// A leave-one-out split of a seeded synthetic log.
pub fn synthetic_split(users: usize, items: usize, mean_length: f64, seed: u64) -> LooSplit {
    let mut rng = SeededRng::new(seed);
    let popularity = zipf_cdf(items, 1.0);
    let mut split = LooSplit { n_items: items, ..LooSplit::default() };
    for _ in 0..users {
        // 5 plus an exponential tail: most users near the minimum, a few long.
        let tail = -(1.0 - f64::from(rng.unit())).ln() * (mean_length - 5.0).max(0.0);
        let length = 5 + (tail as usize).min(500);
        let mut sequence: Vec<u32> =
            (0..length).map(|_| zipf(&mut rng, &popularity) as u32).collect();
        let test = sequence.pop().unwrap_or_default();
        let valid = sequence.pop().unwrap_or_default();
        split.train.push(sequence);
        split.valid.push(valid);
        split.test.push(test);
    }
    split
}

/// Megabytes of a `/proc/self/status` field (`VmRSS`, `VmHWM`).
fn memory_mb(field: &str) -> Result<f64> {
    super::process_memory_bytes(field)
        .map(|bytes| bytes as f64 / (1024.0 * 1024.0))
        .with_context(|| format!("cannot read {field} from /proc/self/status"))
}

/// Fits the model on the synthetic train part and evaluates it on test.
pub fn eval_bench(options: &EvalBench) -> Result<serde_json::Value> {
    let started = Instant::now();
    let split = synthetic_split(options.users, options.items, options.mean_length, options.seed);
    let generate_s = started.elapsed().as_secs_f64();
    let mut settings = ModelSettings::default();
    settings.overrides.max_epochs = Some(options.epochs);
    settings.hyper.lambda = options.lambda;
    let fit_started = Instant::now();
    let fitted = fit_on_validation(LooRun {
        model: options.model,
        split: &split,
        tower_features: None,
        tune: false,
        settings: &settings,
        progress: Progress { quiet: true },
    })?;
    let fit_s = fit_started.elapsed().as_secs_f64();
    let rss_before_eval = memory_mb("VmRSS")?;
    let eval_started = Instant::now();
    let report = evaluate_loo(fitted.ranker.as_ref(), &split, Stage::Test);
    let eval_s = eval_started.elapsed().as_secs_f64();
    Ok(json!({
        "model": options.model.name(),
        "users": options.users,
        "items": options.items,
        "train_interactions": split.train.iter().map(Vec::len).sum::<usize>(),
        "setting": fitted.setting,
        "generate_seconds": generate_s,
        "fit_seconds": fit_s,
        "test_eval_seconds": eval_s,
        "rss_before_test_eval_mb": rss_before_eval,
        "rss_after_test_eval_mb": memory_mb("VmRSS")?,
        "peak_rss_mb": memory_mb("VmHWM")?,
        "test_ndcg10": report.metrics["ndcg@10"],
    }))
}
