//! Fitting a model under an evaluation protocol: the data every protocol
//! run needs, tuning on validation only, and one score on test.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};

use cascade_batch::pipeline::{CtrSplit, Pipeline};
use cascade_core::IdIndex;
use cascade_eval::metrics::Prediction;
use cascade_eval::protocols::ctr::{predictions, report_of};
use cascade_eval::protocols::{CtrReport, FullRanker, LooSplit, Stage, evaluate_ctr, evaluate_loo};
use cascade_models::early_stopping::kept_epochs;
use cascade_models::ranking::{CtrArch, CtrModelConfig};
use cascade_models::retrieval::{
    BprMf, BprMfConfig, EpochReport, NeuMf, NeuMfConfig, SasRec, SasRecConfig, TowerFeatures,
    TwoTower, TwoTowerConfig,
};
use cascade_models::training::{Hyperparameters, Overrides, TrainingSettings};
use cascade_models::tuning::{
    ITEM_KNN_DEFAULT, Trial, Tuned, ease_grid, item_knn_grid, select_on_validation,
};
use cascade_models::{
    BiasCtr, Ease, EaseConfig, Interactions, ItemKnn, ItemKnnConfig, MostPopular, ease::gram_matrix,
};
use cascade_serve::field_encoder::FieldEncoder;

use crate::progress::Progress;
use crate::ranking::{self, ContextFeatures};
use crate::registry::ModelKind;
use crate::workspace::Workspace;

/// The data every protocol run needs.
pub struct Prepared {
    pub pipeline: Pipeline,
    pub split: LooSplit,
    pub users: IdIndex,
    pub items: IdIndex,
}

/// Imports if needed, exports, and reads the leave-one-out split.
pub fn prepare(workspace: &Workspace, data: Option<&Path>, progress: Progress) -> Result<Prepared> {
    let store = workspace.store()?;
    workspace.ensure_data(&store, data, progress)?;
    let pipeline = workspace.pipeline(&store, progress)?;
    let bar = progress.spinner("computing the leave-one-out split");
    let (split, users, items) = pipeline.loo_split()?;
    bar.finish_and_clear();
    Ok(Prepared { pipeline, split, users, items })
}

/// A model fitted for ML100K-LOO-FULL, chosen on validation, before test.
pub struct FittedLoo {
    /// The model and how it was chosen, as a person reads it.
    pub setting: String,
    pub ranker: Box<dyn FullRanker + Send>,
    /// Validation NDCG@10 of the model kept (its best epoch, its best grid point).
    pub valid_ndcg10: f64,
    /// For trained models: epochs trained and the (1-based) epoch kept.
    pub epochs: Option<EpochSummary>,
    /// For trained models: every epoch's loss, validation metric and
    /// training seconds.
    pub curve: Vec<EpochPoint>,
}

/// One epoch of a training curve.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct EpochPoint {
    /// Mean training loss.
    pub loss: f64,
    /// The validation metric early stopping reads (NDCG@10, or AUC for
    /// click models).
    pub valid: f64,
    /// Seconds spent training (not validating).
    pub train_seconds: f64,
}

/// A click model fitted for ML100K-CTR: its test report and every test
/// row's prediction.
pub struct CtrFit {
    pub setting: String,
    pub report: CtrReport,
    pub predictions: Vec<Prediction>,
    pub curve: Vec<EpochPoint>,
}

/// How long a trained model trained and which epoch it kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EpochSummary {
    pub trained: usize,
    pub best: usize,
}

/// A model fitted for ML100K-LOO-FULL and its test metrics.
pub struct LooOutcome {
    pub fitted: FittedLoo,
    pub test: BTreeMap<String, f64>,
}

/// What to fit under ML100K-LOO-FULL and how.
pub struct LooRun<'a> {
    pub model: ModelKind,
    pub split: &'a LooSplit,
    /// User and item features, for the two-tower model.
    pub tower_features: Option<TowerFeatures>,
    /// Search ItemKNN's grid on validation instead of RecBole's defaults.
    pub tune: bool,
    pub settings: &'a ModelSettings,
    pub progress: Progress,
}

/// Fits `run.model`, then evaluates on test once.
pub fn fit_loo(run: LooRun<'_>) -> Result<LooOutcome> {
    let split = run.split;
    let fitted = fit_on_validation(run)?;
    let test = evaluate_loo(fitted.ranker.as_ref(), split, Stage::Test).metrics;
    Ok(LooOutcome { fitted, test })
}

/// What a run of one model may change from its defaults: the training
/// loop's knobs and the model's own hyperparameters.
#[derive(Debug, Clone, Default)]
pub struct ModelSettings {
    pub overrides: Overrides,
    pub hyper: Hyperparameters,
}

/// Each trained model's config under these settings: every command that
/// trains one (eval, tune, train, serve, the benches and replays) builds
/// it here, so a `[training.<model>]` key means the same everywhere.
impl ModelSettings {
    /// The loop's knobs, then a tuning trial's own learning rate.
    fn apply(&self, training: &mut TrainingSettings) {
        training.apply(&self.overrides);
        if let Some(rate) = self.hyper.learning_rate {
            training.optimizer = training.optimizer.with_learning_rate(rate);
        }
    }

    pub fn bpr_mf(&self) -> BprMfConfig {
        let mut config = BprMfConfig::default();
        self.apply(&mut config.training);
        config.dim = self.hyper.dim.unwrap_or(config.dim);
        config.init_scale = self.hyper.init_scale.unwrap_or(config.init_scale);
        config
    }

    pub fn neumf(&self) -> NeuMfConfig {
        let mut config = NeuMfConfig::default();
        self.apply(&mut config.training);
        config.dim = self.hyper.dim.unwrap_or(config.dim);
        config.negatives_per_positive =
            self.hyper.negatives.unwrap_or(config.negatives_per_positive);
        config
    }

    pub fn two_tower(&self) -> TwoTowerConfig {
        let mut config = TwoTowerConfig::default();
        self.apply(&mut config.training);
        config.dim = self.hyper.dim.unwrap_or(config.dim);
        config
    }

    pub fn sasrec(&self) -> SasRecConfig {
        let mut config = SasRecConfig::default();
        self.apply(&mut config.training);
        config.dim = self.hyper.dim.unwrap_or(config.dim);
        config.dropout = self.hyper.dropout.unwrap_or(config.dropout);
        config.max_length = self.hyper.max_length.unwrap_or(config.max_length);
        config.negatives = self.hyper.negatives.unwrap_or(config.negatives);
        config.full_softmax_max_items =
            self.hyper.full_softmax_max_items.unwrap_or(config.full_softmax_max_items);
        config
    }

    pub fn ctr(&self, arch: CtrArch) -> CtrModelConfig {
        let mut config = CtrModelConfig::default_for(arch);
        self.apply(&mut config.training);
        config.dim = self.hyper.dim.unwrap_or(config.dim);
        config
    }
}

/// Fits the model on the train part, choosing whatever it chooses on the
/// validation item only. EASE searches λ over `lambda_grid` (else the
/// built-in grid) unless `lambda` is set; ItemKNN uses RecBole's defaults
/// unless `tune` asks for the validation grid or `k`/`shrink` are set;
/// trained models use the seed and stop early on validation.
pub fn fit_on_validation(run: LooRun<'_>) -> Result<FittedLoo> {
    let LooRun { model, split, tower_features, tune, settings, progress } = run;
    let name = model.name().to_owned();
    let hyper = &settings.hyper;
    let fixed = |ranker: Box<dyn FullRanker + Send>, setting: String| {
        let valid_ndcg10 = evaluate_loo(ranker.as_ref(), split, Stage::Valid).metrics["ndcg@10"];
        FittedLoo { setting, ranker, valid_ndcg10, epochs: None, curve: Vec::new() }
    };
    let trained = |ranker: Box<dyn FullRanker + Send>,
                   setting: &str,
                   reports: &[EpochReport],
                   training: &TrainingSettings| {
        // The epoch early stopping kept: the first best, 1-based (0 for none).
        let kept = kept_epochs(reports.iter().map(|r| r.valid_ndcg10));
        FittedLoo {
            setting: describe_epochs(setting, kept, reports.len(), training),
            ranker,
            valid_ndcg10: kept.checked_sub(1).map_or(0.0, |i| reports[i].valid_ndcg10),
            epochs: Some(EpochSummary { trained: reports.len(), best: kept }),
            curve: reports
                .iter()
                .map(|r| EpochPoint {
                    loss: r.loss,
                    valid: r.valid_ndcg10,
                    train_seconds: r.train_seconds,
                })
                .collect(),
        }
    };
    Ok(match model {
        ModelKind::Pop => fixed(Box::new(MostPopular::fit(split)), "train counts".into()),
        ModelKind::Itemknn if !tune || hyper.k.is_some() || hyper.shrink.is_some() => {
            let data = Interactions::from_split(split);
            let config = ItemKnnConfig {
                k: hyper.k.unwrap_or(ITEM_KNN_DEFAULT.k),
                shrink: hyper.shrink.map_or(ITEM_KNN_DEFAULT.shrink, |s| s as f32),
            };
            let origin = if config == ITEM_KNN_DEFAULT { "RecBole defaults" } else { "as set" };
            let setting = format!("k={} shrink={} ({origin})", config.k, config.shrink);
            fixed(Box::new(ItemKnn::fit(&data, config)), setting)
        }
        ModelKind::Itemknn => {
            let grid = item_knn_grid();
            let bar = progress.bar(grid.len() as u64, &format!("tuning {name}"), "settings");
            let data = Interactions::from_split(split);
            let tuned = select_on_validation(
                split,
                &grid,
                |c| format!("k={} shrink={} (chosen on validation)", c.k, c.shrink),
                |c| Ok::<_, anyhow::Error>(ItemKnn::fit(&data, *c)),
                |_: &Trial| bar.inc(1),
            )?;
            bar.finish_and_clear();
            tuned_outcome(tuned)
        }
        ModelKind::Ease => {
            let grid: Vec<EaseConfig> = match (hyper.lambda, &hyper.lambda_grid) {
                (Some(lambda), _) => vec![EaseConfig { lambda }],
                (None, Some(grid)) => grid.iter().map(|&lambda| EaseConfig { lambda }).collect(),
                (None, None) => ease_grid(),
            };
            let data = Interactions::from_split(split);
            if let [config] = grid[..] {
                // One λ: no search, and the fit may take the Gram matrix's storage.
                let bar = progress.spinner(&format!("fitting {name}"));
                let model = Ease::fit(&data, config)
                    .with_context(|| format!("EASE with lambda = {}", config.lambda))?;
                bar.finish_and_clear();
                return Ok(fixed(Box::new(model), format!("lambda={} (as set)", config.lambda)));
            }
            let bar = progress.bar(grid.len() as u64, &format!("fitting {name}"), "settings");
            let gram = gram_matrix(&data);
            let tuned = select_on_validation(
                split,
                &grid,
                |c| format!("lambda={} (chosen on validation)", c.lambda),
                |c| {
                    Ease::fit_from_gram(&gram, data.n_items, *c)
                        .with_context(|| format!("EASE with lambda = {}", c.lambda))
                },
                |_: &Trial| bar.inc(1),
            )?;
            bar.finish_and_clear();
            tuned_outcome(tuned)
        }
        ModelKind::BprMf => {
            let config = settings.bpr_mf();
            let bar = epoch_bar(progress, &name, config.training.max_epochs);
            let (model, reports) = BprMf::train(split, &config, |epoch| show_epoch(&bar, epoch))?;
            bar.finish_and_clear();
            let setting = format!("dim={} init ±{}", config.dim, config.init_scale);
            trained(Box::new(model), &setting, &reports, &config.training)
        }
        ModelKind::Neumf => {
            let config = settings.neumf();
            let bar = epoch_bar(progress, &name, config.training.max_epochs);
            let (model, reports) = NeuMf::train(split, &config, |epoch| show_epoch(&bar, epoch))?;
            bar.finish_and_clear();
            let setting = format!(
                "dim={} hidden={:?}, {} negatives per positive",
                config.dim, config.hidden, config.negatives_per_positive
            );
            trained(Box::new(model), &setting, &reports, &config.training)
        }
        ModelKind::TwoTower => {
            let Some(features) = tower_features else {
                bail!("model `{name}` needs user and item features; none were loaded")
            };
            let config = settings.two_tower();
            let bar = epoch_bar(progress, &name, config.training.max_epochs);
            let (model, reports) =
                TwoTower::train(split, features, &config, |epoch| show_epoch(&bar, epoch))?;
            bar.finish_and_clear();
            let setting = format!(
                "dim={} out={} hidden={:?} last {} items, tau={}",
                config.dim,
                config.output_dim,
                config.hidden,
                config.history_length,
                config.temperature
            );
            trained(Box::new(model), &setting, &reports, &config.training)
        }
        ModelKind::Sasrec if hyper.dropout.is_none() && hyper.dropout_grid.is_some() => {
            let grid = hyper.dropout_grid.clone().unwrap_or_default();
            let mut best: Option<FittedLoo> = None;
            for &dropout in &grid {
                let mut one = settings.clone();
                (one.hyper.dropout, one.hyper.dropout_grid) = (Some(dropout), None);
                let run =
                    LooRun { model, split, tower_features: None, tune, settings: &one, progress };
                let fitted = fit_on_validation(run)?;
                if best.as_ref().is_none_or(|b| fitted.valid_ndcg10 > b.valid_ndcg10) {
                    best = Some(fitted);
                }
            }
            let mut best = best.context("dropout_grid is empty")?;
            best.setting = format!("{} (dropout chosen on validation from {grid:?})", best.setting);
            best
        }
        ModelKind::Sasrec => {
            let config = settings.sasrec();
            let bar = epoch_bar(progress, &name, config.training.max_epochs);
            let (model, reports) = SasRec::train(split, &config, |epoch| show_epoch(&bar, epoch))?;
            bar.finish_and_clear();
            let loss = if config.samples_softmax(split.n_items) {
                format!("sampled softmax, {} negatives", config.negatives)
            } else {
                "full softmax".to_owned()
            };
            let setting = format!(
                "dim={} blocks={} heads={} L={} dropout={} {loss}",
                config.dim, config.blocks, config.heads, config.max_length, config.dropout
            );
            trained(Box::new(model), &setting, &reports, &config.training)
        }
        _ => bail!("model `{name}` is a click model: use --protocol ctr"),
    })
}

fn tuned_outcome<M: FullRanker + Send + 'static>(tuned: Tuned<M>) -> FittedLoo {
    let valid_ndcg10 = tuned.valid_ndcg10;
    let ranker = Box::new(tuned.model);
    FittedLoo { setting: tuned.setting, ranker, valid_ndcg10, epochs: None, curve: Vec::new() }
}

fn epoch_bar(progress: Progress, name: &str, max_epochs: usize) -> indicatif::ProgressBar {
    progress.bar(max_epochs as u64, &format!("training {name}"), "epochs")
}

fn show_epoch(bar: &indicatif::ProgressBar, epoch: &EpochReport) {
    bar.set_message(format!(
        "loss {:.4}, valid NDCG@10 {:.4}, {:.0} samples/s",
        epoch.loss, epoch.valid_ndcg10, epoch.samples_per_s
    ));
    bar.inc(1);
}

/// "settings, epoch e of n (early stopping on validation), seed s".
fn describe_epochs(
    settings: &str,
    kept: usize,
    trained: usize,
    training: &TrainingSettings,
) -> String {
    format!(
        "{settings}, lr {}, epoch {} of {trained} (early stopping on validation), seed {}",
        training.optimizer.learning_rate(),
        kept.max(1),
        training.seed
    )
}

/// Fits the smoothed-rate click model, choosing the prior strength on validation AUC.
pub fn fit_ctr(split: &CtrSplit, n_users: usize, n_items: usize) -> CtrFit {
    let (first, rest) = (1.0, [5.0, 20.0, 50.0, 200.0]);
    let valid_auc = |strength: f64| {
        evaluate_ctr(&BiasCtr::fit(&split.train, n_users, n_items, strength), &split.valid).auc
    };
    let mut best = (first, valid_auc(first));
    for strength in rest {
        let auc = valid_auc(strength);
        if auc > best.1 {
            best = (strength, auc);
        }
    }
    let (strength, _) = best;
    let model = BiasCtr::fit(&split.train, n_users, n_items, strength);
    let predictions = predictions(&model, &split.test);
    CtrFit {
        setting: format!("prior_strength={strength} (chosen on validation)"),
        report: report_of(&predictions),
        predictions,
        curve: Vec::new(),
    }
}

/// Trains a ranking architecture on every declared user and item feature
/// (and the history, for DIN / DIEN), early-stopped on validation AUC, and
/// scores test once.
pub fn fit_ranking(
    workspace: &Workspace,
    prepared: &Prepared,
    split: &CtrSplit,
    arch: CtrArch,
    settings: &ModelSettings,
    context: ContextFeatures,
    progress: Progress,
) -> Result<CtrFit> {
    let config = settings.ctr(arch);
    let inputs = ranking::encode(
        workspace,
        prepared,
        split,
        config.history_length,
        context,
        ranking::RankingLabels::Protocol,
    )?;
    let (model, epochs) = ranking::train(&inputs, &config, progress)?;
    let predictions = predictions(&model, &inputs.test);
    Ok(CtrFit {
        setting: ranking::describe(&inputs, &config, &epochs),
        report: report_of(&predictions),
        predictions,
        curve: epochs
            .iter()
            .map(|e| EpochPoint {
                loss: e.train_loss,
                valid: e.valid_auc,
                train_seconds: e.train_seconds,
            })
            .collect(),
    })
}

impl Prepared {
    /// Hashed field ids of every indexed user and item, as the config declares them.
    pub fn field_encoder(&self, workspace: &Workspace) -> Result<FieldEncoder> {
        Ok(FieldEncoder::new(&workspace.store()?, &workspace.config, &self.users, &self.items)?)
    }
}

/// Every user's and item's declared features, for the two-tower model.
pub fn tower_features(workspace: &Workspace, prepared: &Prepared) -> Result<TowerFeatures> {
    let encoder = prepared.field_encoder(workspace)?;
    Ok(TowerFeatures {
        users: encoder.user_fields().to_vec(),
        items: encoder.item_fields().to_vec(),
        item_keys: (0..prepared.items.len() as u32).map(|i| encoder.item_key(i)).collect(),
    })
}

/// `model`'s settings in `workspace`: command-line `flags` over
/// `[training.<model>]`, and the model's own hyperparameters from it.
pub fn model_settings(
    workspace: &Workspace,
    model: ModelKind,
    flags: Overrides,
) -> Result<ModelSettings> {
    Ok(ModelSettings {
        overrides: workspace.training_overrides(model, flags)?,
        hyper: workspace.hyperparameters(model)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every trained model's config takes the settings' loop knobs and its
    /// own hyperparameters, so `train`, `serve` and `eval` agree on them.
    #[test]
    fn configs_take_the_loop_knobs_and_the_models_hyperparameters() {
        let settings = ModelSettings {
            overrides: Overrides {
                seed: Some(7),
                max_epochs: Some(3),
                patience: Some(1),
                time_budget_s: Some(9.0),
                ..Overrides::default()
            },
            hyper: Hyperparameters {
                dim: Some(16),
                dropout: Some(0.4),
                max_length: Some(20),
                negatives: Some(64),
                full_softmax_max_items: Some(0),
                learning_rate: Some(0.0123),
                ..Hyperparameters::default()
            },
        };
        let sasrec = settings.sasrec();
        assert_eq!((sasrec.dim, sasrec.max_length, sasrec.negatives), (16, 20, 64));
        assert_eq!((sasrec.dropout, sasrec.full_softmax_max_items), (0.4, 0));
        let trainings = [
            settings.bpr_mf().training,
            settings.neumf().training,
            settings.two_tower().training,
            sasrec.training,
            settings.ctr(CtrArch::DeepFm).training,
        ];
        for training in trainings {
            assert_eq!((training.seed, training.max_epochs, training.patience), (7, 3, 1));
            assert_eq!(training.time_budget_s, Some(9.0));
            assert_eq!(training.optimizer.learning_rate(), 0.0123);
        }
        assert_eq!(settings.bpr_mf().dim, 16);
        assert_eq!(settings.neumf().negatives_per_positive, 64);
        assert_eq!(settings.ctr(CtrArch::DeepFm).dim, 16);
    }
}
