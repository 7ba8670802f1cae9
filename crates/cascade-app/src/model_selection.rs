//! Choosing hyperparameters and models on the validation item only:
//! `cascade tune` (a seeded random search over each model's space, logged
//! as JSON lines) and `cascade eval --model auto` (every candidate model at
//! its tuned or configured setting; the best validation NDCG@10 is scored
//! on test, once).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use cascade_eval::protocols::{LooSplit, Stage, evaluate_loo};
use cascade_models::random::SeededRng;
use cascade_models::training::Hyperparameters;

use crate::evaluation::{
    EpochSummary, FittedLoo, LooRun, ModelSettings, fit_on_validation, model_settings,
};
use crate::progress::Progress;
use crate::registry::ModelKind;
use crate::workspace::Workspace;
use cascade_models::training::Overrides;

/// The models `--model auto` compares: every leave-one-out model that
/// reads no user or item features, but NeuMF, whose MLP scores every
/// (user, item) pair at each validation (on amazon-toys one epoch and its
/// validation took 860 s) and which trails BPR-MF on every log measured.
pub const AUTO_CANDIDATES: [ModelKind; 5] =
    [ModelKind::Pop, ModelKind::Itemknn, ModelKind::Ease, ModelKind::BprMf, ModelKind::Sasrec];

/// The dropout rates `--model auto` tries SASRec at when the config sets
/// neither `dropout` nor `dropout_grid`: the SASRec paper's, 0.2 for dense
/// logs (MovieLens) and 0.5 for sparse ones (Amazon); validation picks.
pub const AUTO_SASREC_DROPOUT_GRID: [f32; 2] = [0.2, 0.5];

/// The settings `cascade tune` draws from for `model`: the hyperparameters
/// that matter for it, as a grid. The model's defaults are always tried
/// first, so tuning never ends below them on validation.
pub fn search_space(model: ModelKind) -> Vec<Hyperparameters> {
    let one = vec![Hyperparameters::default()];
    match model {
        ModelKind::Ease => {
            axis(one, &[10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0], |h, v| {
                h.lambda = Some(v)
            })
        }
        ModelKind::Itemknn => {
            let ks = axis(one, &[10, 20, 50, 100, 200, 400], |h, v| h.k = Some(v));
            axis(ks, &[0.0, 10.0, 50.0, 100.0], |h, v| h.shrink = Some(v))
        }
        ModelKind::BprMf => {
            let dims = axis(one, &[32, 64, 128], |h, v| h.dim = Some(v));
            let starts = axis(dims, &[0.001, 0.01, 0.1], |h, v| h.init_scale = Some(v));
            axis(starts, &[0.0005, 0.001, 0.002, 0.005, 0.01], |h, v| h.learning_rate = Some(v))
        }
        ModelKind::TwoTower => {
            let dims = axis(one, &[32, 64, 128], |h, v| h.dim = Some(v));
            axis(dims, &[0.0005, 0.001, 0.002, 0.005, 0.01], |h, v| h.learning_rate = Some(v))
        }
        ModelKind::Neumf => {
            let dims = axis(one, &[32, 64], |h, v| h.dim = Some(v));
            let negatives = axis(dims, &[2, 4, 8], |h, v| h.negatives = Some(v));
            axis(negatives, &[0.001, 0.002, 0.005], |h, v| h.learning_rate = Some(v))
        }
        ModelKind::Sasrec => {
            let dims = axis(one, &[32, 64, 128], |h, v| h.dim = Some(v));
            let dropouts = axis(dims, &[0.1, 0.2, 0.3, 0.5], |h, v| h.dropout = Some(v));
            let lengths = axis(dropouts, &[20, 50, 100], |h, v| h.max_length = Some(v));
            let rates = axis(lengths, &[0.0005, 0.001, 0.002], |h, v| h.learning_rate = Some(v));
            axis(rates, &[256, 1000, 4000], |h, v| h.negatives = Some(v))
        }
        _ => Vec::new(),
    }
}

/// Every setting of `space` with each of `values` set by `set`: one more
/// axis of the grid.
fn axis<V: Copy>(
    space: Vec<Hyperparameters>,
    values: &[V],
    set: impl Fn(&mut Hyperparameters, V),
) -> Vec<Hyperparameters> {
    space
        .iter()
        .flat_map(|setting| {
            values.iter().map(|&value| {
                let mut setting = setting.clone();
                set(&mut setting, value);
                setting
            })
        })
        .collect()
}

/// `budget` settings to try: the defaults, then distinct draws from the
/// space in a seeded order.
pub fn draw_trials(model: ModelKind, budget: usize, seed: u64) -> Vec<Hyperparameters> {
    let mut space = search_space(model);
    let mut rng = SeededRng::new(seed);
    rng.shuffle(&mut space);
    let mut trials = vec![Hyperparameters::default()];
    trials.extend(space.into_iter().filter(|h| *h != Hyperparameters::default()));
    trials.truncate(budget.max(1));
    trials
}

/// One tried setting.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrialRecord {
    pub model: String,
    pub trial: usize,
    pub hyperparameters: Hyperparameters,
    pub setting: String,
    pub valid_ndcg10: f64,
    pub epochs: Option<EpochSummary>,
    pub seconds: f64,
}

/// What `cascade tune` did.
#[derive(Debug, Clone, Serialize)]
pub struct TuneReport {
    pub model: String,
    pub trials: Vec<TrialRecord>,
    pub best: TrialRecord,
    /// The JSON-lines log of every trial.
    pub log: PathBuf,
    /// The best setting, which `--model auto` and later runs read.
    pub best_file: PathBuf,
}

fn tuning_dir(workspace: &Workspace) -> PathBuf {
    workspace.dir.join("tuning")
}

fn best_file(workspace: &Workspace, model: ModelKind) -> PathBuf {
    tuning_dir(workspace).join(format!("{}.best.json", model.name()))
}

/// The setting `cascade tune` chose for `model` in this workspace, if any.
pub fn tuned_setting(workspace: &Workspace, model: ModelKind) -> Result<Option<Hyperparameters>> {
    let path = best_file(workspace, model);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let record: TrialRecord = serde_json::from_str(&text)
                .with_context(|| format!("{}: not a tuning result", path.display()))?;
            Ok(Some(record.hyperparameters))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Tries `budget` settings of `model` on the validation item, logging each
/// as a JSON line, and keeps the best as the workspace's tuned setting.
pub fn tune(
    workspace: &Workspace,
    split: &LooSplit,
    model: ModelKind,
    base: &ModelSettings,
    budget: usize,
    progress: Progress,
) -> Result<TuneReport> {
    let seed = base.overrides.seed.unwrap_or(2026);
    let trials = draw_trials(model, budget, seed);
    let dir = tuning_dir(workspace);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let log = dir.join(format!("{}.jsonl", model.name()));
    let mut log_file =
        std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let bar = progress.bar(trials.len() as u64, &format!("tuning {model}"), "settings");
    let mut records: Vec<TrialRecord> = Vec::new();
    for (trial, hyper) in trials.into_iter().enumerate() {
        let started = std::time::Instant::now();
        let merged = merge(&base.hyper, &hyper);
        let settings = ModelSettings { overrides: base.overrides, hyper: merged.clone() };
        let fitted = fit_featureless(model, split, &settings, Progress { quiet: true })?;
        let record = TrialRecord {
            model: model.name().into(),
            trial,
            hyperparameters: merged,
            setting: fitted.setting,
            valid_ndcg10: fitted.valid_ndcg10,
            epochs: fitted.epochs,
            seconds: started.elapsed().as_secs_f64(),
        };
        writeln!(log_file, "{}", serde_json::to_string(&record)?)
            .and_then(|()| log_file.flush())
            .with_context(|| format!("writing {}", log.display()))?;
        let best_so_far =
            records.iter().map(|r| r.valid_ndcg10).fold(record.valid_ndcg10, f64::max);
        bar.set_message(format!("best valid NDCG@10 {best_so_far:.4}"));
        bar.inc(1);
        records.push(record);
    }
    bar.finish_and_clear();
    let best = records
        .iter()
        .fold(None::<&TrialRecord>, |best, r| match best {
            Some(b) if b.valid_ndcg10 >= r.valid_ndcg10 => Some(b),
            _ => Some(r),
        })
        .cloned()
        .context("no trial ran")?;
    let best_path = best_file(workspace, model);
    std::fs::write(&best_path, serde_json::to_string_pretty(&best)?)
        .with_context(|| format!("writing {}", best_path.display()))?;
    Ok(TuneReport { model: model.name().into(), trials: records, best, log, best_file: best_path })
}

/// `model`'s settings as `cascade eval` runs it: the config's and flags'
/// ([`model_settings`]), with the hyperparameters `cascade tune` kept in
/// this workspace over the config's.
pub fn tuned_model_settings(
    workspace: &Workspace,
    model: ModelKind,
    flags: Overrides,
) -> Result<ModelSettings> {
    let mut settings = model_settings(workspace, model, flags)?;
    if let Some(tuned) = tuned_setting(workspace, model)? {
        settings.hyper = merge(&settings.hyper, &tuned);
    }
    Ok(settings)
}

/// Fits a model that reads no user or item features at `settings`.
fn fit_featureless(
    model: ModelKind,
    split: &LooSplit,
    settings: &ModelSettings,
    progress: Progress,
) -> Result<FittedLoo> {
    fit_on_validation(LooRun {
        model,
        split,
        tower_features: None,
        tune: false,
        settings,
        progress,
    })
}

/// `over`'s keys replace `base`'s.
fn merge(base: &Hyperparameters, over: &Hyperparameters) -> Hyperparameters {
    Hyperparameters {
        lambda: over.lambda.or(base.lambda),
        lambda_grid: over.lambda_grid.clone().or_else(|| base.lambda_grid.clone()),
        k: over.k.or(base.k),
        shrink: over.shrink.or(base.shrink),
        dim: over.dim.or(base.dim),
        init_scale: over.init_scale.or(base.init_scale),
        dropout: over.dropout.or(base.dropout),
        dropout_grid: over.dropout_grid.clone().or_else(|| base.dropout_grid.clone()),
        max_length: over.max_length.or(base.max_length),
        negatives: over.negatives.or(base.negatives),
        full_softmax_max_items: over.full_softmax_max_items.or(base.full_softmax_max_items),
        learning_rate: over.learning_rate.or(base.learning_rate),
    }
}

/// One candidate of `--model auto` as it scored on validation.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    pub model: String,
    pub setting: String,
    pub valid_ndcg10: f64,
    pub epochs: Option<EpochSummary>,
    pub seconds: f64,
}

/// `--model auto`'s choice and its test metrics, read once.
pub struct AutoChoice {
    pub model: ModelKind,
    pub fitted: FittedLoo,
    pub candidates: Vec<Candidate>,
    pub test: std::collections::BTreeMap<String, f64>,
}

/// Fits every candidate at the settings `settings_of` gives (for the CLI,
/// [`tuned_model_settings`]), keeps the one with the best validation NDCG@10 (the earlier
/// on ties) and evaluates it on test.
pub fn choose_model(
    split: &LooSplit,
    candidates: &[ModelKind],
    settings_of: impl Fn(ModelKind) -> Result<ModelSettings>,
    progress: Progress,
) -> Result<AutoChoice> {
    let mut scored = Vec::new();
    let mut best: Option<(ModelKind, FittedLoo)> = None;
    for &model in candidates {
        let mut settings = settings_of(model)?;
        let hyper = &mut settings.hyper;
        if model == ModelKind::Sasrec && hyper.dropout.is_none() && hyper.dropout_grid.is_none() {
            hyper.dropout_grid = Some(AUTO_SASREC_DROPOUT_GRID.to_vec());
        }
        progress.say(format!("auto: fitting {model} on the train part"));
        let started = std::time::Instant::now();
        let fitted = fit_featureless(model, split, &settings, progress)?;
        scored.push(Candidate {
            model: model.name().into(),
            setting: fitted.setting.clone(),
            valid_ndcg10: fitted.valid_ndcg10,
            epochs: fitted.epochs,
            seconds: started.elapsed().as_secs_f64(),
        });
        if best.as_ref().is_none_or(|(_, b)| fitted.valid_ndcg10 > b.valid_ndcg10) {
            best = Some((model, fitted));
        }
    }
    let (model, fitted) = best.context("--model auto needs at least one candidate model")?;
    let test = evaluate_loo(fitted.ranker.as_ref(), split, Stage::Test).metrics;
    Ok(AutoChoice { model, fitted, candidates: scored, test })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trials_start_at_the_defaults_and_are_distinct_and_seeded() {
        for model in AUTO_CANDIDATES {
            let trials = draw_trials(model, 6, 1);
            assert_eq!(trials[0], Hyperparameters::default(), "{model}");
            let space = search_space(model);
            assert_eq!(trials.len(), (space.len() + 1).min(6), "{model}");
            for (i, a) in trials.iter().enumerate() {
                assert!(trials[i + 1..].iter().all(|b| b != a), "{model}: repeated {a:?}");
                let keys = a.keys_set();
                assert!(
                    keys.iter().all(|k| model.hyperparameters().contains(k)),
                    "{model}: {keys:?}"
                );
            }
            assert_eq!(trials, draw_trials(model, 6, 1), "the seed fixes the draw");
        }
        assert_ne!(draw_trials(ModelKind::Sasrec, 6, 1), draw_trials(ModelKind::Sasrec, 6, 2));
    }
}
