//! BPR-MF (Rendle et al., UAI 2009): matrix factorisation trained with the
//! Bayesian personalised ranking loss on (user, seen item, unseen item)
//! triples. A user's score for an item is the dot product of their embeddings.
//!
//! Arches and shapes (B = batch, D = dimension):
//! - `user_table`: sparse table, gathers U (B × D);
//! - `item_table`: sparse table, gathers one leaf for [positives; negatives]
//!   (2B × D), split into P and N (B × D each);
//! - loss: mean softplus(−(⟨U,P⟩ − ⟨U,N⟩)) + reg · (‖U‖² + ‖P‖² + ‖N‖²) / B.
//!
//! Candle differentiates the loss with respect to the two leaves; the tables
//! apply their row-wise optimizer to the touched rows only.

use serde::{Deserialize, Serialize};

use cascade_eval::protocols::{FullRanker, LooSplit, Stage, evaluate_loo};
use cascade_nn::{EmbeddingTable, OptimizerConfig, TableConfig};

use crate::early_stopping::{EarlyStopping, Verdict};
use crate::interactions::Interactions;
use crate::random::SeededRng;
use crate::retrieval::negatives::{NegativeSampler, NegativeSampling};
use crate::training::TrainingSettings;

/// BPR-MF hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BprMfConfig {
    /// Embedding dimension D.
    pub dim: usize,
    /// How the unseen item of each triple is drawn.
    pub negatives: NegativeSampling,
    /// Batching (triples per step), epochs, early stopping on validation
    /// NDCG@10, L2, optimizer of both tables, seed (also of negative sampling).
    pub training: TrainingSettings,
}

impl Default for BprMfConfig {
    fn default() -> Self {
        BprMfConfig {
            dim: 64,
            negatives: NegativeSampling::Uniform,
            training: TrainingSettings {
                batch_size: 2048,
                max_epochs: 200,
                patience: 10,
                reg: 1e-4,
                optimizer: OptimizerConfig::Adam { lr: 0.005, beta1: 0.9, beta2: 0.999 },
                seed: 2026,
            },
        }
    }
}

/// One epoch's numbers.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct EpochReport {
    /// 0-based epoch.
    pub epoch: usize,
    /// Mean training loss.
    pub loss: f64,
    /// Validation NDCG@10 after the epoch.
    pub valid_ndcg10: f64,
    /// Training triples per second in this epoch.
    pub samples_per_s: f64,
    /// Seconds spent training (not evaluating) in this epoch.
    pub train_seconds: f64,
}

/// A trained model: the tables of the best validation epoch.
#[derive(Debug, Clone)]
pub struct BprMf {
    users: EmbeddingTable,
    items: EmbeddingTable,
    /// Item embeddings as one items × D matrix, for scoring all items at once.
    item_matrix: Vec<f32>,
    n_items: usize,
    dim: usize,
}

impl BprMf {
    fn new(n_items: usize, config: &BprMfConfig) -> BprMf {
        let table = |name: &str, seed: u64| {
            EmbeddingTable::new(TableConfig {
                name: name.into(),
                dim: config.dim,
                optimizer: config.training.optimizer,
                init_scale: 0.1,
                seed,
            })
        };
        BprMf {
            users: table("user", config.training.seed),
            items: table("item", config.training.seed ^ 0x5EED),
            item_matrix: Vec::new(),
            n_items,
            dim: config.dim,
        }
    }

    fn refresh_item_matrix(&mut self) -> candle_core::Result<()> {
        let ids: Vec<u64> = (0..self.n_items as u64).collect();
        self.item_matrix = self.items.lookup_frozen(&ids)?.flatten_all()?.to_vec1()?;
        Ok(())
    }

    /// The embedding tables (user, item), e.g. for checkpoints.
    pub fn tables(&self) -> (&EmbeddingTable, &EmbeddingTable) {
        (&self.users, &self.items)
    }

    fn step(
        &mut self,
        users: &[u64],
        positives: &[u64],
        negatives: &[u64],
        reg: f32,
    ) -> candle_core::Result<f64> {
        let b = users.len();
        let user_lookup = self.users.lookup(users)?;
        let both: Vec<u64> = positives.iter().chain(negatives).copied().collect();
        let item_lookup = self.items.lookup(&both)?;
        let u = user_lookup.var.as_tensor();
        let items = item_lookup.var.as_tensor();
        let p = items.narrow(0, 0, b)?;
        let n = items.narrow(0, b, b)?;
        let margin = (u * (p - n)?)?.sum(1)?;
        // softplus(−x) = log(1 + e^(−x)); clamped so e^(−x) cannot overflow.
        let ranking =
            margin.clamp(-30f32, 30f32)?.neg()?.exp()?.affine(1.0, 1.0)?.log()?.mean_all()?;
        let penalty = ((u.sqr()?.sum_all()? + items.sqr()?.sum_all()?)? * (reg as f64 / b as f64))?;
        let loss = (ranking + penalty)?;
        let grads = loss.backward()?;
        self.users.apply_gradients(&user_lookup, &grads)?;
        self.items.apply_gradients(&item_lookup, &grads)?;
        loss.to_scalar::<f32>().map(f64::from)
    }

    /// Trains on the split's train part, choosing the epoch by validation
    /// NDCG@10 (the test item is never read). `on_epoch` sees every epoch.
    pub fn train(
        split: &LooSplit,
        config: &BprMfConfig,
        mut on_epoch: impl FnMut(&EpochReport),
    ) -> candle_core::Result<(BprMf, Vec<EpochReport>)> {
        let data = Interactions::from_split(split);
        let mut pairs: Vec<(u32, u32)> = data
            .by_user
            .iter()
            .enumerate()
            .flat_map(|(u, items)| items.iter().map(move |&i| (u as u32, i)))
            .collect();
        let mut rng = SeededRng::new(config.training.seed);
        let sampler = NegativeSampler::new(&data, config.negatives);
        let mut model = BprMf::new(split.n_items, config);
        let mut best = None;
        let mut stopping = EarlyStopping::new(config.training.patience);
        let mut reports = Vec::new();
        for epoch in 0..config.training.max_epochs {
            let started = std::time::Instant::now();
            rng.shuffle(&mut pairs);
            let (mut loss_sum, mut batches) = (0.0, 0usize);
            for chunk in pairs.chunks(config.training.batch_size) {
                let users: Vec<u64> = chunk.iter().map(|&(u, _)| u as u64).collect();
                let positives: Vec<u64> = chunk.iter().map(|&(_, i)| i as u64).collect();
                let negatives: Vec<u64> = chunk
                    .iter()
                    .map(|&(u, _)| sampler.sample(&data.by_user[u as usize], &mut rng) as u64)
                    .collect();
                loss_sum += model.step(&users, &positives, &negatives, config.training.reg)?;
                batches += 1;
            }
            let train_seconds = started.elapsed().as_secs_f64();
            model.refresh_item_matrix()?;
            let valid_ndcg10 = evaluate_loo(&model, split, Stage::Valid).metrics["ndcg@10"];
            let report = EpochReport {
                epoch,
                loss: loss_sum / batches.max(1) as f64,
                valid_ndcg10,
                samples_per_s: pairs.len() as f64 / train_seconds,
                train_seconds,
            };
            on_epoch(&report);
            reports.push(report);
            match stopping.observe(epoch, valid_ndcg10) {
                Verdict::Improved => best = Some(model.clone()),
                Verdict::Continue => {}
                Verdict::Stop => break,
            }
        }
        Ok((best.unwrap_or(model), reports))
    }
}

impl FullRanker for BprMf {
    fn score_user(&self, user: u32, _history: &[u32], scores: &mut [f32]) {
        let Some(u) = self.users.row(user as u64) else {
            scores.iter_mut().for_each(|s| *s = 0.0);
            return;
        };
        for (score, item) in scores.iter_mut().zip(self.item_matrix.chunks_exact(self.dim)) {
            *score = u.iter().zip(item).map(|(a, b)| a * b).sum();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two communities of users and items: BPR must learn to rank a user's
    /// own community first, and be deterministic for a seed.
    #[test]
    fn learns_communities_deterministically() {
        let n_items = 20;
        let mut train = Vec::new();
        for u in 0..40u32 {
            let offset = if u % 2 == 0 { 0 } else { 10 };
            train.push((0..8).map(|k| offset + (u + k) % 10).collect::<Vec<u32>>());
        }
        let split = LooSplit {
            n_items,
            valid: train.iter().map(|t| (t[0] / 10) * 10 + (t[0] + 8) % 10).collect(),
            test: train.iter().map(|t| (t[0] / 10) * 10 + (t[0] + 9) % 10).collect(),
            train,
        };
        let mut config = BprMfConfig { dim: 8, ..BprMfConfig::default() };
        config.training.batch_size = 64;
        config.training.max_epochs = 40;
        config.training.patience = 40;
        let (model, reports) = BprMf::train(&split, &config, |_| {}).unwrap();
        assert!(reports.last().unwrap().loss < reports[0].loss, "loss falls");
        let mut scores = vec![0f32; n_items];
        model.score_user(0, &split.train[0], &mut scores);
        let own: f32 = scores[..10].iter().sum();
        let other: f32 = scores[10..].iter().sum();
        assert!(own > other, "user 0 prefers its community: {own} vs {other}");
        let (again, _) = BprMf::train(&split, &config, |_| {}).unwrap();
        assert_eq!(again.item_matrix, model.item_matrix, "same seed, same model");
    }
}
