//! Fitting a model under an evaluation protocol: the data every protocol
//! run needs, tuning on validation only, and one score on test.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Result, bail};

use cascade_batch::pipeline::{CtrSplit, Pipeline};
use cascade_core::IdIndex;
use cascade_eval::protocols::{CtrReport, FullRanker, LooSplit, Stage, evaluate_ctr, evaluate_loo};
use cascade_models::ranking::{CtrArch, CtrModelConfig};
use cascade_models::retrieval::{
    BprMf, BprMfConfig, EpochReport, NeuMf, NeuMfConfig, SasRec, SasRecConfig, TowerFeatures,
    TwoTower, TwoTowerConfig,
};
use cascade_models::training::{Overrides, TrainingSettings};
use cascade_models::tuning::{
    ITEM_KNN_DEFAULT, Trial, ease_grid, item_knn_grid, select_on_validation,
};
use cascade_models::{BiasCtr, Ease, Interactions, ItemKnn, MostPopular, ease::gram_matrix};
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

/// A model fitted for ML100K-LOO-FULL and its test metrics.
pub struct LooOutcome {
    pub setting: String,
    pub ranker: Box<dyn FullRanker + Send>,
    pub test: BTreeMap<String, f64>,
}

/// Fits `model`, then evaluates on test once. EASE's λ is always chosen on
/// the validation item; ItemKNN uses RecBole's defaults unless `tune` asks
/// for the validation grid; trained models use `seed` and stop early on validation.
pub fn fit_loo(
    model: ModelKind,
    split: &LooSplit,
    tower_features: Option<TowerFeatures>,
    tune: bool,
    overrides: Overrides,
    progress: Progress,
) -> Result<LooOutcome> {
    let name = model.name().to_owned();
    let (ranker, setting): (Box<dyn FullRanker + Send>, String) = match model {
        ModelKind::Pop => (Box::new(MostPopular::fit(split)), "train counts".into()),
        ModelKind::Itemknn if !tune => {
            let data = Interactions::from_split(split);
            let setting = format!(
                "k={} shrink={} (RecBole defaults)",
                ITEM_KNN_DEFAULT.k, ITEM_KNN_DEFAULT.shrink
            );
            (Box::new(ItemKnn::fit(&data, ITEM_KNN_DEFAULT)), setting)
        }
        ModelKind::Itemknn => {
            let grid = item_knn_grid();
            let bar = progress.bar(grid.len() as u64, &format!("tuning {name}"), "settings");
            let data = Interactions::from_split(split);
            let tuned = select_on_validation(
                split,
                &grid,
                |c| format!("k={} shrink={} (chosen on validation)", c.k, c.shrink),
                |c| ItemKnn::fit(&data, *c),
                |_: &Trial| bar.inc(1),
            );
            bar.finish_and_clear();
            (Box::new(tuned.model), tuned.setting)
        }
        ModelKind::Ease => {
            let grid = ease_grid();
            let bar = progress.bar(grid.len() as u64, &format!("tuning {name}"), "settings");
            let data = Interactions::from_split(split);
            let gram = gram_matrix(&data);
            let tuned = select_on_validation(
                split,
                &grid,
                |c| format!("lambda={} (chosen on validation)", c.lambda),
                |c| Ease::fit_from_gram(&gram, data.n_items, *c),
                |_: &Trial| bar.inc(1),
            );
            bar.finish_and_clear();
            (Box::new(tuned.model), tuned.setting)
        }
        ModelKind::BprMf => {
            let mut config = BprMfConfig::default();
            config.training.apply(&overrides);
            let bar = epoch_bar(progress, &name, config.training.max_epochs);
            let (model, reports) = BprMf::train(split, &config, |epoch| show_epoch(&bar, epoch))?;
            bar.finish_and_clear();
            (
                Box::new(model),
                describe_epochs(&format!("dim={}", config.dim), &reports, &config.training),
            )
        }
        ModelKind::Neumf => {
            let mut config = NeuMfConfig::default();
            config.training.apply(&overrides);
            let bar = epoch_bar(progress, &name, config.training.max_epochs);
            let (model, reports) = NeuMf::train(split, &config, |epoch| show_epoch(&bar, epoch))?;
            bar.finish_and_clear();
            let setting = format!(
                "dim={} hidden={:?}, {} negatives per positive",
                config.dim, config.hidden, config.negatives_per_positive
            );
            (Box::new(model), describe_epochs(&setting, &reports, &config.training))
        }
        ModelKind::TwoTower => {
            let Some(features) = tower_features else {
                bail!("model `{name}` needs user and item features; none were loaded")
            };
            let mut config = TwoTowerConfig::default();
            config.training.apply(&overrides);
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
            (Box::new(model), describe_epochs(&setting, &reports, &config.training))
        }
        ModelKind::Sasrec => {
            let mut config = SasRecConfig::default();
            config.training.apply(&overrides);
            let bar = epoch_bar(progress, &name, config.training.max_epochs);
            let (model, reports) = SasRec::train(split, &config, |epoch| show_epoch(&bar, epoch))?;
            bar.finish_and_clear();
            let setting = format!(
                "dim={} blocks={} heads={} L={} dropout={}",
                config.dim, config.blocks, config.heads, config.max_length, config.dropout
            );
            (Box::new(model), describe_epochs(&setting, &reports, &config.training))
        }
        _ => bail!("model `{name}` is a click model: use --protocol ctr"),
    };
    let test = evaluate_loo(ranker.as_ref(), split, Stage::Test).metrics;
    Ok(LooOutcome { setting, ranker, test })
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
fn describe_epochs(settings: &str, reports: &[EpochReport], training: &TrainingSettings) -> String {
    let best = reports
        .iter()
        .max_by(|a, b| a.valid_ndcg10.total_cmp(&b.valid_ndcg10))
        .map_or(0, |r| r.epoch);
    format!(
        "{settings}, lr {}, epoch {} of {} (early stopping on validation), seed {}",
        training.optimizer.learning_rate(),
        best + 1,
        reports.len(),
        training.seed
    )
}

/// Fits the smoothed-rate click model, choosing the prior strength on validation AUC.
pub fn fit_ctr(split: &CtrSplit, n_users: usize, n_items: usize) -> (String, CtrReport) {
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
    (format!("prior_strength={strength} (chosen on validation)"), evaluate_ctr(&model, &split.test))
}

/// Trains a ranking architecture on every declared user and item feature
/// (and the history, for DIN / DIEN), early-stopped on validation AUC, and
/// scores test once.
pub fn fit_ranking(
    workspace: &Workspace,
    prepared: &Prepared,
    split: &CtrSplit,
    arch: CtrArch,
    overrides: Overrides,
    context: ContextFeatures,
    progress: Progress,
) -> Result<(String, CtrReport)> {
    let mut config = CtrModelConfig::default_for(arch);
    config.training.apply(&overrides);
    let inputs = ranking::encode(workspace, prepared, split, config.history_length, context)?;
    let (model, epochs) = ranking::train(&inputs, &config, progress)?;
    Ok((ranking::describe(&inputs, &config, &epochs), evaluate_ctr(&model, &inputs.test)))
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
