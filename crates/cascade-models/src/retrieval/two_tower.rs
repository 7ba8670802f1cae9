//! Two-tower retrieval (Yi et al., RecSys 2019): a user tower over the user's
//! features and recent items, an item tower over the item's features, trained
//! with in-batch sampled softmax and logQ correction.
//!
//! Parts and shapes (B = pairs per step, F_u / F_i = user / item fields,
//! D = embedding dimension, E = output dimension):
//! - `embeddings`: one sparse table for every field id (history items share
//!   the item_id rows);
//! - user tower: [F_u field embeddings, mean of the last K items] (B × (F_u+1)·D)
//!   → MLP → B × E, L2-normalised;
//! - item tower: F_i field embeddings (B × F_i·D) → MLP → B × E, L2-normalised;
//! - logits: U Vᵀ / τ − log q_j (B × B), q_j = item j's share of train pairs,
//!   so popular items are not over-penalised for appearing as in-batch
//!   negatives more often; loss = cross-entropy with the diagonal as target.

use candle_core::{D, Device, Module, Tensor};
use serde::{Deserialize, Serialize};

use cascade_eval::protocols::{FullRanker, LooSplit};
use cascade_nn::{
    DenseParams, DenseSnapshot, EmbeddingTable, Lookup, Mlp, OptimizerConfig, Pooling, TableConfig,
};

use crate::early_stopping::{EarlyStopping, Verdict};
use crate::random::SeededRng;
use crate::ranking::FieldIds;
use crate::retrieval::{EpochReport, EpochWork, close_epoch};
use crate::training::TrainingSettings;

/// Two-tower hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwoTowerConfig {
    /// Field embedding dimension D.
    pub dim: usize,
    /// Tower output dimension E.
    pub output_dim: usize,
    /// Hidden widths of both towers.
    pub hidden: Vec<usize>,
    /// Recent items the user tower reads, K.
    pub history_length: usize,
    /// Softmax temperature τ.
    pub temperature: f32,
    /// AdamW learning rate of the towers.
    pub dense_lr: f64,
    /// Batching (pairs per step), epochs, patience on validation NDCG@10,
    /// L2, sparse optimizer, seed.
    pub training: TrainingSettings,
}

impl Default for TwoTowerConfig {
    fn default() -> Self {
        TwoTowerConfig {
            dim: 32,
            output_dim: 64,
            hidden: vec![128],
            history_length: 20,
            temperature: 0.1,
            dense_lr: 0.001,
            training: TrainingSettings {
                batch_size: 512,
                max_epochs: 100,
                patience: 5,
                reg: 1e-6,
                optimizer: OptimizerConfig::Adam { lr: 0.002, beta1: 0.9, beta2: 0.999 },
                seed: 2026,
                time_budget_s: None,
            },
        }
    }
}

/// Every user's and item's field ids (dense indices), and each item's key in
/// the shared table (its item_id field id), so history items share its rows.
#[derive(Debug, Clone, Default)]
pub struct TowerFeatures {
    /// Per user, its fields.
    pub users: Vec<FieldIds>,
    /// Per item, its fields.
    pub items: Vec<FieldIds>,
    /// Per item, the id its history occurrences look up.
    pub item_keys: Vec<u64>,
}

/// A trained two-tower model, with every item's tower output cached.
#[derive(Debug)]
pub struct TwoTower {
    config: TwoTowerConfig,
    features: TowerFeatures,
    embeddings: EmbeddingTable,
    params: DenseParams,
    user_tower: Mlp,
    item_tower: Mlp,
    item_matrix: Tensor,
}

fn normalise(x: &Tensor) -> candle_core::Result<Tensor> {
    x.broadcast_div(&(x.sqr()?.sum_keepdim(D::Minus1)? + 1e-12)?.sqrt()?)
}

impl TwoTower {
    fn new(features: TowerFeatures, config: &TwoTowerConfig) -> candle_core::Result<TwoTower> {
        let seed = config.training.seed;
        let embeddings = EmbeddingTable::new(TableConfig {
            name: "fields".into(),
            dim: config.dim,
            optimizer: config.training.optimizer,
            init_scale: 0.05,
            seed,
        });
        let mut params = DenseParams::new(seed ^ 7, config.dense_lr);
        let user_width = (features.users.first().map_or(0, Vec::len) + 1) * config.dim;
        let item_width = features.items.first().map_or(0, Vec::len) * config.dim;
        let user_tower = params.mlp("user_tower", user_width, &config.hidden, config.output_dim)?;
        let item_tower = params.mlp("item_tower", item_width, &config.hidden, config.output_dim)?;
        let item_matrix =
            Tensor::zeros((0, config.output_dim), candle_core::DType::F32, &Device::Cpu)?;
        Ok(TwoTower {
            config: config.clone(),
            features,
            embeddings,
            params,
            user_tower,
            item_tower,
            item_matrix,
        })
    }

    /// Field embeddings (training lookups when `lookups` is given) → B × F·D.
    fn fields(
        &mut self,
        rows: &[&FieldIds],
        lookups: Option<&mut Vec<Lookup>>,
    ) -> candle_core::Result<Tensor> {
        let n_fields = rows.first().map_or(0, |r| r.len());
        let mut pooled = Vec::with_capacity(n_fields);
        let mut lookups = lookups;
        for f in 0..n_fields {
            let bags: Vec<Vec<u64>> = rows.iter().map(|r| r[f].clone()).collect();
            pooled.push(match lookups.as_deref_mut() {
                Some(list) => {
                    let (lookup, tensor) = self.embeddings.lookup_bags(&bags, Pooling::Mean)?;
                    list.push(lookup);
                    tensor
                }
                None => self.embeddings.lookup_bags_frozen(&bags, Pooling::Mean)?,
            });
        }
        Tensor::cat(&pooled, 1)
    }

    fn history_bags(&self, histories: &[&[u32]]) -> Vec<Vec<u64>> {
        histories
            .iter()
            .map(|h| {
                h[h.len().saturating_sub(self.config.history_length)..]
                    .iter()
                    .map(|&i| self.features.item_keys[i as usize])
                    .collect()
            })
            .collect()
    }

    /// User tower outputs (B × E) for users with these item histories.
    fn users(
        &mut self,
        users: &[u32],
        histories: &[&[u32]],
        mut lookups: Option<&mut Vec<Lookup>>,
    ) -> candle_core::Result<Tensor> {
        let features = std::mem::take(&mut self.features);
        let rows: Vec<&FieldIds> = users.iter().map(|&u| &features.users[u as usize]).collect();
        let fields = self.fields(&rows, lookups.as_deref_mut());
        self.features = features;
        let bags = self.history_bags(histories);
        let history = match lookups {
            Some(list) => {
                let (lookup, tensor) = self.embeddings.lookup_bags(&bags, Pooling::Mean)?;
                list.push(lookup);
                tensor
            }
            None => self.embeddings.lookup_bags_frozen(&bags, Pooling::Mean)?,
        };
        normalise(&self.user_tower.forward(&Tensor::cat(&[&fields?, &history], 1)?)?)
    }

    fn items(
        &mut self,
        items: &[u32],
        lookups: Option<&mut Vec<Lookup>>,
    ) -> candle_core::Result<Tensor> {
        let features = std::mem::take(&mut self.features);
        let rows: Vec<&FieldIds> = items.iter().map(|&i| &features.items[i as usize]).collect();
        let fields = self.fields(&rows, lookups);
        self.features = features;
        normalise(&self.item_tower.forward(&fields?)?)
    }

    fn refresh_item_matrix(&mut self) -> candle_core::Result<()> {
        let all: Vec<u32> = (0..self.features.items.len() as u32).collect();
        self.item_matrix = self.items(&all, None)?;
        Ok(())
    }

    fn step(
        &mut self,
        batch: &[(u32, u32, usize)],
        split: &LooSplit,
        log_q: &[f32],
    ) -> candle_core::Result<f64> {
        let users: Vec<u32> = batch.iter().map(|&(u, _, _)| u).collect();
        let items: Vec<u32> = batch.iter().map(|&(_, i, _)| i).collect();
        let histories: Vec<&[u32]> =
            batch.iter().map(|&(u, _, p)| &split.train[u as usize][..p]).collect();
        let mut lookups = Vec::new();
        let u = self.users(&users, &histories, Some(&mut lookups))?;
        let v = self.items(&items, Some(&mut lookups))?;
        let correction: Vec<f32> = items.iter().map(|&i| log_q[i as usize]).collect();
        let correction = Tensor::from_vec(correction, (1, items.len()), &Device::Cpu)?;
        let logits =
            ((u.matmul(&v.t()?)? / self.config.temperature as f64)?).broadcast_sub(&correction)?;
        let targets = Tensor::arange(0u32, batch.len() as u32, &Device::Cpu)?;
        let mut loss = candle_nn::loss::cross_entropy(&logits, &targets)?;
        let mut penalty = Tensor::new(0f32, &Device::Cpu)?;
        for lookup in &lookups {
            penalty = (penalty + lookup.var.as_tensor().sqr()?.sum_all()?)?;
        }
        loss = (loss + (penalty * (self.config.training.reg as f64 / batch.len() as f64))?)?;
        let grads = loss.backward()?;
        for lookup in &lookups {
            self.embeddings.apply_gradients(lookup, &grads)?;
        }
        self.params.step(&grads)?;
        loss.to_scalar::<f32>().map(f64::from)
    }

    /// Trains on every train interaction (with the history before it),
    /// choosing the epoch by validation NDCG@10.
    pub fn train(
        split: &LooSplit,
        features: TowerFeatures,
        config: &TwoTowerConfig,
        mut on_epoch: impl FnMut(&EpochReport),
    ) -> candle_core::Result<(TwoTower, Vec<EpochReport>)> {
        let mut model = TwoTower::new(features, config)?;
        let mut pairs: Vec<(u32, u32, usize)> = split
            .train
            .iter()
            .enumerate()
            .flat_map(|(u, items)| items.iter().enumerate().map(move |(p, &i)| (u as u32, i, p)))
            .collect();
        let popularity = split.train_popularity();
        let total: u64 = popularity.iter().sum();
        let log_q: Vec<f32> =
            popularity.iter().map(|&c| ((c.max(1) as f64) / total as f64).ln() as f32).collect();
        let mut rng = SeededRng::new(config.training.seed);
        let mut stopping = EarlyStopping::for_training(&config.training);
        let mut best: Option<(EmbeddingTable, DenseSnapshot)> = None;
        let mut reports = Vec::new();
        for epoch in 0..config.training.max_epochs {
            let started = std::time::Instant::now();
            rng.shuffle(&mut pairs);
            let (mut loss_sum, mut batches) = (0.0, 0usize);
            for chunk in pairs.chunks(config.training.batch_size) {
                loss_sum += model.step(chunk, split, &log_q)?;
                batches += 1;
            }
            let train_seconds = started.elapsed().as_secs_f64();
            model.refresh_item_matrix()?;
            let work = EpochWork { epoch, loss_sum, batches, samples: pairs.len(), train_seconds };
            match close_epoch(&model, split, work, &mut stopping, &mut reports, &mut on_epoch) {
                Verdict::Improved => {
                    best = Some((model.embeddings.clone(), model.params.snapshot()?))
                }
                Verdict::Continue => {}
                Verdict::Stop => break,
            }
            if stopping.out_of_time() {
                break;
            }
        }
        if let Some((embeddings, dense)) = best {
            model.embeddings = embeddings;
            model.params.restore(&dense)?;
        }
        model.refresh_item_matrix()?;
        Ok((model, reports))
    }

    /// The shared sparse table and the towers' tensors, for a checkpoint.
    pub fn parts(&self) -> candle_core::Result<(&EmbeddingTable, DenseSnapshot)> {
        Ok((&self.embeddings, self.params.snapshot()?))
    }

    fn user_scores(&self, user: u32, before_target: &[u32]) -> candle_core::Result<Vec<f32>> {
        let row = &self.features.users[user as usize];
        let fields: Vec<Tensor> = row
            .iter()
            .map(|bag| self.embeddings.lookup_bags_frozen(std::slice::from_ref(bag), Pooling::Mean))
            .collect::<candle_core::Result<_>>()?;
        let history = self
            .embeddings
            .lookup_bags_frozen(&self.history_bags(&[before_target]), Pooling::Mean)?;
        let mut parts = fields;
        parts.push(history);
        let u = normalise(&self.user_tower.forward(&Tensor::cat(&parts, 1)?)?)?;
        self.item_matrix.matmul(&u.t()?)?.flatten_all()?.to_vec1()
    }
}

impl FullRanker for TwoTower {
    fn score_user(&self, user: u32, history: &[u32], scores: &mut [f32]) {
        self.score_sequence(user, history, history, scores);
    }

    #[allow(
        clippy::expect_used,
        reason = "the eval traits have no error path; CPU inference on shapes fixed at build"
    )]
    fn score_sequence(
        &self,
        user: u32,
        _history: &[u32],
        before_target: &[u32],
        scores: &mut [f32],
    ) {
        let scored = self
            .user_scores(user, before_target)
            .expect("inference on CPU tensors of matching shapes");
        scores.copy_from_slice(&scored);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Users and items in two genres (a user field and an item field say
    /// which); users only consume their own genre. The towers must learn it.
    #[test]
    fn learns_to_match_user_and_item_genres() {
        let n_items = 40;
        let genre = |x: u32| (x % 2) as u64;
        let train: Vec<Vec<u32>> = (0..40u32)
            .map(|u| (0..8).map(|k| (genre(u) as u32 + 2 * ((u + k) % 20)) % 40).collect())
            .collect();
        let split = LooSplit {
            n_items,
            valid: (0..40u32).map(|u| (genre(u) as u32 + 2 * ((u + 8) % 20)) % 40).collect(),
            test: (0..40u32).map(|u| (genre(u) as u32 + 2 * ((u + 9) % 20)) % 40).collect(),
            train,
        };
        let features = TowerFeatures {
            users: (0..40u32).map(|u| vec![vec![1000 + u as u64], vec![2000 + genre(u)]]).collect(),
            items: (0..40u32).map(|i| vec![vec![i as u64], vec![3000 + genre(i)]]).collect(),
            item_keys: (0..40u64).collect(),
        };
        let mut config =
            TwoTowerConfig { dim: 8, output_dim: 8, hidden: vec![16], ..TwoTowerConfig::default() };
        config.dense_lr = 0.01;
        config.training.batch_size = 32;
        config.training.max_epochs = 20;
        config.training.patience = 20;
        config.training.optimizer = OptimizerConfig::Adam { lr: 0.02, beta1: 0.9, beta2: 0.999 };
        let (model, _) = TwoTower::train(&split, features, &config, |_| {}).unwrap();
        let mut scores = vec![0f32; n_items];
        model.score_user(0, &split.train[0], &mut scores);
        let own: f32 = scores.iter().step_by(2).sum();
        let other: f32 = scores.iter().skip(1).step_by(2).sum();
        assert!(own > other, "user 0 (genre 0) prefers genre-0 items: {own} vs {other}");
    }
}
