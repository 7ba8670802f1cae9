//! Hyperparameter selection on the validation item only. The test item is
//! never looked at here; the caller evaluates the chosen model on test once.

use cascade_eval::protocols::{FullRanker, LooSplit, Stage, evaluate_loo};

use crate::baselines::{EaseConfig, ItemKnnConfig};

/// The metric a candidate is chosen by.
pub const SELECTION_METRIC: &str = "ndcg@10";

/// One evaluated candidate.
#[derive(Debug, Clone)]
pub struct Trial {
    /// The hyperparameters, as a person reads them.
    pub setting: String,
    /// Its validation NDCG@10.
    pub valid_ndcg10: f64,
}

/// The best candidate's model with every trial.
#[derive(Debug)]
pub struct Tuned<M> {
    /// The model fitted with the winning setting.
    pub model: M,
    /// The winning setting.
    pub setting: String,
    /// Its validation NDCG@10.
    pub valid_ndcg10: f64,
    /// Every candidate, in grid order.
    pub trials: Vec<Trial>,
}

/// Fits each candidate, scores it on the validation item, and keeps the best
/// (the first one on ties, so the grid order decides deterministically).
pub fn select_on_validation<C, M: FullRanker, E>(
    split: &LooSplit,
    candidates: &[C],
    describe: impl Fn(&C) -> String,
    mut fit: impl FnMut(&C) -> Result<M, E>,
    mut on_trial: impl FnMut(&Trial),
) -> Result<Tuned<M>, E> {
    assert!(!candidates.is_empty(), "a grid needs at least one candidate");
    let mut best: Option<(M, String, f64)> = None;
    let mut trials = Vec::new();
    for candidate in candidates {
        let model = fit(candidate)?;
        let valid_ndcg10 = evaluate_loo(&model, split, Stage::Valid).metrics[SELECTION_METRIC];
        let trial = Trial { setting: describe(candidate), valid_ndcg10 };
        on_trial(&trial);
        if best.as_ref().is_none_or(|(_, _, score)| valid_ndcg10 > *score) {
            best = Some((model, trial.setting.clone(), valid_ndcg10));
        }
        trials.push(trial);
    }
    #[allow(clippy::expect_used, reason = "asserted above: grids are never empty")]
    let (model, setting, valid_ndcg10) = best.expect("at least one candidate");
    Ok(Tuned { model, setting, valid_ndcg10, trials })
}

/// RecBole's ItemKNN defaults (k = 100, no shrinkage): the setting the
/// PROTOCOLS.md reference was measured with, used unless tuning is asked for.
pub const ITEM_KNN_DEFAULT: ItemKnnConfig = ItemKnnConfig { k: 100, shrink: 0.0 };

/// The ItemKNN grid: neighbours × shrinkage.
pub fn item_knn_grid() -> Vec<ItemKnnConfig> {
    let mut grid = Vec::new();
    for k in [20, 50, 100, 200, 400] {
        for shrink in [0.0, 10.0, 50.0] {
            grid.push(ItemKnnConfig { k, shrink });
        }
    }
    grid
}

/// The EASE grid over λ (RecBole's default is 250).
pub fn ease_grid() -> Vec<EaseConfig> {
    [50.0, 100.0, 250.0, 500.0, 1000.0].into_iter().map(|lambda| EaseConfig { lambda }).collect()
}
