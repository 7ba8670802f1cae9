//! `cascade replay`: what online learning is worth, on MovieLens-100k's
//! ratings replayed in time order.
//!
//! Every ML100K-CTR row (features and label as PROTOCOLS.md defines them)
//! is ordered by its event time. The first `initial_share` of rows train a
//! ranking model, early-stopped on their own last tenth. The remaining rows
//! arrive day by day; each day is scored by three arms *before* any of them
//! learns from it (prequential evaluation, so no arm sees its test rows):
//! - **frozen**: the initial model, never updated;
//! - **online**: the initial model, updated by one pass over each chunk of
//!   the day (an hour by default) once the chunk is scored
//!   (`CtrModel::update`), with a batch size and dense
//!   learning rate chosen by the same replay over the initial rows' last
//!   tenth (validation), which it has also learned from before the replay;
//! - **daily retrain**: a model trained from scratch on every row before the
//!   day, for as many epochs as the initial training found best (keeping
//!   the best of them on the initial rows' last tenth, which it also
//!   trains on, so in effect the last).
//!
//! AUC and LogLoss are over all replayed rows. This is an experiment of its
//! own: the global time split differs from ML100K-CTR's per-user split, so
//! its numbers do not compare with PROTOCOLS.md's reference table.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use serde_json::json;

use cascade_eval::plots::value_curves;
use cascade_eval::protocols::{CtrExample, CtrScorer, evaluate_ctr};
use cascade_models::random::SeededRng;
use cascade_models::ranking::{CtrFeatures, CtrModel, OnlineUpdate, SparseOnline};

use crate::evaluation::model_settings;
use crate::evaluation::prepare;
use crate::progress::Progress;
use crate::ranking;
use crate::registry::ModelKind;
use crate::workspace::Workspace;

const DAY_MS: i64 = 86_400_000;

/// What `cascade replay` runs.
#[derive(Debug, Clone)]
pub struct Replay {
    /// The ranking architecture.
    pub model: ModelKind,
    /// Share of rows, in time order, the initial model trains on.
    pub initial_share: f64,
    /// How often the online arm scores and then learns, in minutes.
    pub online_chunk_minutes: u64,
    /// Skip the daily-retrain arm (it trains once per replayed day).
    pub skip_retrain: bool,
    /// Where to draw each arm's AUC per replayed week (SVG).
    pub plot: Option<std::path::PathBuf>,
    /// The online arm's sparse optimizer.
    pub online_optimizer: OnlineOptimizer,
}

/// The sparse rows' optimizer of the online arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnlineOptimizer {
    /// Training's own (lazy Adam), its step scaled.
    Training,
    /// Row-wise Adagrad, its learning rate `ADAGRAD_BASE_LR` × the scale.
    Adagrad,
}

impl OnlineOptimizer {
    /// Every optimizer, as `--online-optimizer` offers them.
    pub const ALL: [OnlineOptimizer; 2] = [OnlineOptimizer::Training, OnlineOptimizer::Adagrad];

    /// The one spelling of its name.
    pub fn name(self) -> &'static str {
        match self {
            OnlineOptimizer::Training => "training",
            OnlineOptimizer::Adagrad => "adagrad",
        }
    }
}

impl std::str::FromStr for OnlineOptimizer {
    type Err = String;

    fn from_str(name: &str) -> Result<OnlineOptimizer, String> {
        let known = OnlineOptimizer::ALL.into_iter().find(|o| o.name() == name);
        known.ok_or_else(|| format!("no online optimizer named {name:?} (training, adagrad)"))
    }
}

/// Adagrad's learning rate at step scale 1: the validation grid scales it
/// as it scales training's steps.
const ADAGRAD_BASE_LR: f32 = 0.05;

/// Online batch sizes the validation replay chooses among.
const ONLINE_BATCH_SIZES: [usize; 2] = [128, 512];
/// Step sizes of online updates relative to training's, sparse and dense
/// alike, that the validation replay chooses among.
const ONLINE_STEP_SCALES: [f64; 3] = [0.03, 0.1, 1.0];
/// Adagrad's scales: the same, and one step further, since its steps
/// shrink as rows learn (×1 was the grid's best on validation at first).
const ADAGRAD_STEP_SCALES: [f64; 4] = [0.03, 0.1, 1.0, 4.0];

/// Row indices of `rows` (in time order) by period of `period_ms` (UTC).
fn by_period(rows: &[(i64, CtrExample<CtrFeatures>)], period_ms: i64) -> BTreeMap<i64, Vec<usize>> {
    let mut periods: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for (index, (ts, _)) in rows.iter().enumerate() {
        periods.entry(ts.div_euclid(period_ms)).or_default().push(index);
    }
    periods
}

/// Scores each period of `rows` with `model`, then updates it on the
/// period; returns the scores in period order (which is row order).
fn replay_online(
    model: &mut CtrModel,
    rows: &[(i64, CtrExample<CtrFeatures>)],
    periods: &BTreeMap<i64, Vec<usize>>,
    settings: OnlineUpdate,
    rng: &mut SeededRng,
) -> Result<Vec<f64>> {
    let mut scores = Vec::with_capacity(rows.len());
    for indices in periods.values() {
        let period: Vec<_> = indices.iter().map(|&i| rows[i].1.clone()).collect();
        scores.extend(model.predict(&period));
        model.update(&period, settings, rng)?;
    }
    Ok(scores)
}

/// Probabilities recorded while replaying, in row order.
struct Recorded(Vec<f64>);

impl CtrScorer<CtrFeatures> for Recorded {
    fn predict(&self, _: &[CtrExample<CtrFeatures>]) -> Vec<f64> {
        self.0.clone()
    }
}

/// Runs the replay; the report as JSON.
pub fn run(
    workspace: &Workspace,
    data: Option<&std::path::Path>,
    replay: &Replay,
    progress: Progress,
) -> Result<serde_json::Value> {
    let Some(arch) = replay.model.ctr_arch() else {
        bail!("replay needs a ranking model (lr, fm, wide-deep, deepfm, dcnv2, din, dien)");
    };
    if !(0.1..0.99).contains(&replay.initial_share) {
        bail!("--initial-share must be between 0.1 and 0.99");
    }
    let config = model_settings(workspace, replay.model, Default::default())?.ctr(arch);
    let prepared = prepare(workspace, data, progress)?;
    let (split, inputs) = ranking::protocol_inputs(workspace, &prepared, config.history_length)?;
    let times = [&split.times.train, &split.times.valid, &split.times.test];
    let mut rows: Vec<(i64, CtrExample<CtrFeatures>)> = [inputs.train, inputs.valid, inputs.test]
        .into_iter()
        .zip(times)
        .flat_map(|(part, times)| times.iter().copied().zip(part))
        .collect();
    // Stable: rows at the same millisecond keep protocol order.
    rows.sort_by_key(|(ts, _)| *ts);
    let cut = (rows.len() as f64 * replay.initial_share) as usize;
    let (initial, stream) = rows.split_at(cut);
    let examples = |rows: &[(i64, CtrExample<CtrFeatures>)]| -> Vec<CtrExample<CtrFeatures>> {
        rows.iter().map(|(_, e)| e.clone()).collect()
    };
    let valid_from = initial.len() - initial.len() / 10;
    let (fit, valid) = (examples(&initial[..valid_from]), examples(&initial[valid_from..]));

    let spinner = progress.spinner(&format!("training {} on the first {} rows", arch.name(), cut));
    let item_field = inputs.item_field;
    let (frozen, epochs) = CtrModel::train(&fit, &valid, &config, item_field, |_| {})?;
    spinner.finish_and_clear();
    let best_epochs =
        epochs.iter().max_by(|a, b| a.valid_auc.total_cmp(&b.valid_auc)).map_or(1, |e| e.epoch + 1);
    let mut retrain_config = config.clone();
    retrain_config.training.max_epochs = best_epochs;
    retrain_config.training.patience = best_epochs;

    // The online settings are chosen by replaying the initial rows' last
    // tenth (validation), never the replayed test days.
    let chunk_ms = (replay.online_chunk_minutes.max(1) * 60_000) as i64;
    let valid_chunks = by_period(&initial[valid_from..], chunk_ms);
    let mut rng = SeededRng::new(config.training.seed ^ 0x5EED);
    let mut candidates = Vec::new();
    for batch_size in ONLINE_BATCH_SIZES {
        let scales: &[f64] = match replay.online_optimizer {
            OnlineOptimizer::Training => &ONLINE_STEP_SCALES,
            OnlineOptimizer::Adagrad => &ADAGRAD_STEP_SCALES,
        };
        for &lr_scale in scales {
            let settings = OnlineUpdate {
                batch_size,
                dense_lr: config.dense_lr * lr_scale,
                sparse: match replay.online_optimizer {
                    OnlineOptimizer::Training => SparseOnline::TrainingScaled(lr_scale as f32),
                    OnlineOptimizer::Adagrad => {
                        SparseOnline::Adagrad(ADAGRAD_BASE_LR * lr_scale as f32)
                    }
                },
            };
            let mut model = frozen.duplicate()?;
            let scores = replay_online(
                &mut model,
                &initial[valid_from..],
                &valid_chunks,
                settings,
                &mut rng,
            )?;
            let auc = evaluate_ctr(&Recorded(scores), &valid).auc;
            candidates.push((settings, lr_scale, auc));
        }
    }
    let (online_settings, chosen_scale, _) = candidates
        .iter()
        .copied()
        .fold(None, |best: Option<(OnlineUpdate, f64, f64)>, c| match best {
            Some(b) if b.2 >= c.2 => Some(b),
            _ => Some(c),
        })
        .context("the online grid is empty")?;

    // The online arm learns from the validation rows first: they are past
    // by the time the replay starts.
    let mut online = frozen.duplicate()?;
    for indices in valid_chunks.values() {
        let chunk: Vec<_> = indices.iter().map(|&i| initial[valid_from + i].1.clone()).collect();
        online.update(&chunk, online_settings, &mut rng)?;
    }

    let days = by_period(stream, DAY_MS);
    let bar = progress.bar(days.len() as u64, "replaying", "days");
    let mut predictions: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for indices in days.values() {
        let first = indices[0];
        let day: Vec<CtrExample<CtrFeatures>> =
            indices.iter().map(|&i| stream[i].1.clone()).collect();
        predictions.entry("frozen").or_default().extend(frozen.predict(&day));
        // The online arm scores and learns chunk by chunk within the day.
        let day_rows = &stream[first..first + indices.len()];
        let chunks = by_period(day_rows, chunk_ms);
        let scores = replay_online(&mut online, day_rows, &chunks, online_settings, &mut rng)?;
        predictions.entry("online").or_default().extend(scores);
        if !replay.skip_retrain {
            // Everything before this day: the initial rows and the replayed
            // days so far (on the first day, all of the initial rows).
            let seen = examples(&rows[..cut + first]);
            let (model, _) = CtrModel::train(&seen, &valid, &retrain_config, item_field, |_| {})?;
            predictions.entry("daily_retrain").or_default().extend(model.predict(&day));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();

    let replayed = examples(stream);
    let mut arms = serde_json::Map::new();
    for (arm, probabilities) in &predictions {
        let report = evaluate_ctr(&Recorded(probabilities.clone()), &replayed);
        arms.insert(
            (*arm).to_owned(),
            json!({ "auc": report.auc, "logloss": report.logloss, "gauc": report.gauc }),
        );
    }
    if let Some(path) = &replay.plot {
        weekly_auc_plot(path, arch.name(), stream, &days, &predictions)?;
    }
    let first_day = days.keys().next().copied().unwrap_or(0);
    let last_day = days.keys().last().copied().unwrap_or(0);
    let report = json!({
        "experiment": "replay",
        "model": arch.name(),
        "rows": rows.len(),
        "initial_rows": cut,
        "replayed_rows": stream.len(),
        "replayed_days": days.len(),
        "replayed_span_days": last_day - first_day + 1,
        "initial_best_epochs": best_epochs,
        "online_chunk_minutes": replay.online_chunk_minutes.max(1),
        "online_settings_chosen_on_validation": {
            "batch_size": online_settings.batch_size,
            "dense_lr": online_settings.dense_lr,
            "step_scale": chosen_scale,
            "sparse_optimizer": match online_settings.sparse {
                SparseOnline::TrainingScaled(_) => json!({ "training": { "step_scale": chosen_scale } }),
                SparseOnline::Adagrad(lr) => json!({ "adagrad": { "lr": lr } }),
            },
        },
        "validation_replay": candidates.iter().map(|(s, scale, auc)| json!({
            "batch_size": s.batch_size, "step_scale": scale, "valid_auc": auc,
        })).collect::<Vec<_>>(),
        "frozen_valid_auc": evaluate_ctr(&frozen, &valid).auc,
        "arms": arms,
    });
    Ok(report)
}

/// Each arm's AUC over each replayed week, as lines against the week.
fn weekly_auc_plot(
    path: &std::path::Path,
    model: &str,
    stream: &[(i64, CtrExample<CtrFeatures>)],
    days: &BTreeMap<i64, Vec<usize>>,
    predictions: &BTreeMap<&str, Vec<f64>>,
) -> Result<()> {
    let first_day = days.keys().next().copied().unwrap_or(0);
    // Row positions in prediction order are the days' rows, day after day.
    let order: Vec<usize> = days.values().flatten().copied().collect();
    let mut weeks: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for (position, &row) in order.iter().enumerate() {
        let week = (stream[row].0.div_euclid(DAY_MS) - first_day) / 7;
        weeks.entry(week).or_default().push(position);
    }
    let series: Vec<(&str, Vec<(f64, f64)>)> = predictions
        .iter()
        .map(|(arm, probabilities)| {
            let points = weeks
                .iter()
                .filter_map(|(&week, positions)| {
                    let rows: Vec<CtrExample<CtrFeatures>> =
                        positions.iter().map(|&p| stream[order[p]].1.clone()).collect();
                    let recorded = Recorded(positions.iter().map(|&p| probabilities[p]).collect());
                    let auc = evaluate_ctr(&recorded, &rows).auc;
                    auc.is_finite().then_some((week as f64 + 1.0, auc))
                })
                .collect();
            (*arm, points)
        })
        .collect();
    let title = format!("cascade replay: {model}, AUC per replayed week");
    value_curves(path, &title, ("replayed week", "AUC"), &series).map_err(anyhow::Error::msg)
}
