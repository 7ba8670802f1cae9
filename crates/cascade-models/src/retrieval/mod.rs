//! Retrieval models: user and item embeddings whose dot product scores every
//! item, trained on sparse embedding tables (`cascade-nn`).

pub mod bpr_mf;
pub mod negatives;
pub mod neumf;
mod neumf_kernel;
pub mod sasrec;
pub mod two_tower;

pub use bpr_mf::{BprMf, BprMfConfig, EpochReport};
pub use negatives::{NegativeSampler, NegativeSampling};
pub use neumf::{NeuMf, NeuMfConfig};
pub use sasrec::{SasRec, SasRecConfig};
pub use two_tower::{TowerFeatures, TwoTower, TwoTowerConfig};

use cascade_eval::protocols::{FullRanker, LooSplit, Stage, evaluate_loo};

use crate::early_stopping::{EarlyStopping, Verdict};

/// What one training epoch did, before validation.
pub(crate) struct EpochWork {
    pub epoch: usize,
    pub loss_sum: f64,
    pub batches: usize,
    pub samples: usize,
    pub train_seconds: f64,
}

/// Validates `model` after an epoch (NDCG@10 on the validation item),
/// reports the epoch, and says whether it is the best so far or patience has
/// run out.
pub(crate) fn close_epoch(
    model: &dyn FullRanker,
    split: &LooSplit,
    work: EpochWork,
    stopping: &mut EarlyStopping,
    reports: &mut Vec<EpochReport>,
    on_epoch: &mut dyn FnMut(&EpochReport),
) -> Verdict {
    let valid_ndcg10 = evaluate_loo(model, split, Stage::Valid).metrics["ndcg@10"];
    let report = EpochReport {
        epoch: work.epoch,
        loss: work.loss_sum / work.batches.max(1) as f64,
        valid_ndcg10,
        samples_per_s: work.samples as f64 / work.train_seconds,
        train_seconds: work.train_seconds,
    };
    on_epoch(&report);
    reports.push(report);
    stopping.observe(work.epoch, valid_ndcg10)
}
