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
//! The step is a fused kernel: the loss is a few dot products per triple, so
//! its gradient is computed in closed form in one pass over the batch and
//! handed straight to the tables' row-wise optimizer (as TorchRec's fused
//! embedding backward does), without building a candle graph for ~10 tiny
//! ops per step. A test checks the fused gradient against candle's autograd
//! of the same loss.

use serde::{Deserialize, Serialize};

use cascade_eval::protocols::{FullRanker, LooSplit, Query};
use cascade_nn::{EmbeddingTable, OptimizerConfig, TableConfig};

use crate::early_stopping::{EarlyStopping, Verdict};
use crate::interactions::Interactions;
use crate::random::SeededRng;
use crate::retrieval::negatives::{NegativeSampler, NegativeSampling};
use crate::retrieval::{EpochWork, close_epoch};
use crate::training::TrainingSettings;

/// BPR-MF hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BprMfConfig {
    /// Embedding dimension D.
    pub dim: usize,
    /// Embeddings start uniform in ±init_scale. Small matters on sparse
    /// logs: a rare item's row is rarely drawn, so it stays near where it
    /// started, and a large start ranks rare items at random.
    #[serde(default = "default_init_scale")]
    pub init_scale: f32,
    /// How the unseen item of each triple is drawn.
    pub negatives: NegativeSampling,
    /// Batching (triples per step), epochs, early stopping on validation
    /// NDCG@10, L2, optimizer of both tables, seed (also of negative sampling).
    pub training: TrainingSettings,
}

fn default_init_scale() -> f32 {
    0.01
}

impl Default for BprMfConfig {
    fn default() -> Self {
        BprMfConfig {
            dim: 64,
            init_scale: default_init_scale(),
            negatives: NegativeSampling::Uniform,
            training: TrainingSettings {
                batch_size: 2048,
                max_epochs: 200,
                patience: 10,
                reg: 1e-4,
                optimizer: OptimizerConfig::Adam { lr: 0.005, beta1: 0.9, beta2: 0.999 },
                seed: 2026,
                time_budget_s: None,
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
    /// The user embeddings' table, as checkpoints name it.
    pub const USER_TABLE: &str = "user";
    /// The item embeddings' table, as checkpoints name it.
    pub const ITEM_TABLE: &str = "item";

    fn new(n_items: usize, config: &BprMfConfig) -> BprMf {
        let table = |name: &str, seed: u64| {
            EmbeddingTable::new(TableConfig {
                name: name.into(),
                dim: config.dim,
                optimizer: config.training.optimizer,
                init_scale: config.init_scale,
                seed,
            })
        };
        BprMf {
            users: table(Self::USER_TABLE, config.training.seed),
            items: table(Self::ITEM_TABLE, config.training.seed ^ 0x5EED),
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
        let both: Vec<u64> = positives.iter().chain(negatives).copied().collect();
        let (user_rows, u) = self.users.gather(users);
        let (item_rows, items) = self.items.gather(&both);
        let (loss, user_grad, item_grad) = bpr_gradients(&u, &items, self.dim, reg);
        self.users.apply_row_gradients(&user_rows, &user_grad);
        self.items.apply_row_gradients(&item_rows, &item_grad);
        Ok(loss)
    }

    /// Trains on the split's train part, choosing the epoch by validation
    /// NDCG@10 (the test item is never read). `on_epoch` sees every epoch.
    pub fn train(
        split: &LooSplit,
        config: &BprMfConfig,
        mut on_epoch: impl FnMut(&EpochReport),
    ) -> candle_core::Result<(BprMf, Vec<EpochReport>)> {
        let data = Interactions::from_split(split);
        let mut pairs: Vec<(u32, u32)> = data.pairs();
        let mut rng = SeededRng::new(config.training.seed);
        let sampler = NegativeSampler::new(&data, config.negatives);
        let mut model = BprMf::new(split.n_items, config);
        let mut best = None;
        let mut stopping = EarlyStopping::for_training(&config.training);
        let mut reports = Vec::new();
        for epoch in 0..config.training.max_epochs {
            let work = model.epoch(epoch, &data, &mut pairs, &sampler, config, &mut rng)?;
            match close_epoch(&model, split, work, &mut stopping, &mut reports, &mut on_epoch) {
                Verdict::Improved => best = Some(model.clone()),
                Verdict::Continue => {}
                Verdict::Stop => break,
            }
            if stopping.out_of_time() {
                break;
            }
        }
        Ok((best.unwrap_or(model), reports))
    }

    /// Trains on every user's whole history for exactly `epochs` epochs and
    /// keeps the last: the serving refit, once `train` has chosen the epoch
    /// count on validation (nothing is held out, so nothing can choose it here).
    pub fn refit(
        n_items: usize,
        histories: &[Vec<u32>],
        config: &BprMfConfig,
        epochs: usize,
    ) -> candle_core::Result<BprMf> {
        let data = Interactions::new(n_items, histories);
        let mut pairs: Vec<(u32, u32)> = data.pairs();
        let mut rng = SeededRng::new(config.training.seed);
        let sampler = NegativeSampler::new(&data, config.negatives);
        let mut model = BprMf::new(n_items, config);
        for epoch in 0..epochs {
            model.epoch(epoch, &data, &mut pairs, &sampler, config, &mut rng)?;
        }
        Ok(model)
    }

    /// One pass over `pairs` in a fresh shuffled order, each positive
    /// against one sampled negative.
    fn epoch(
        &mut self,
        epoch: usize,
        data: &Interactions,
        pairs: &mut [(u32, u32)],
        sampler: &NegativeSampler,
        config: &BprMfConfig,
        rng: &mut SeededRng,
    ) -> candle_core::Result<EpochWork> {
        let started = std::time::Instant::now();
        rng.shuffle(pairs);
        let (mut loss_sum, mut batches) = (0.0, 0usize);
        for chunk in pairs.chunks(config.training.batch_size) {
            let users: Vec<u64> = chunk.iter().map(|&(u, _)| u as u64).collect();
            let positives: Vec<u64> = chunk.iter().map(|&(_, i)| i as u64).collect();
            let negatives: Vec<u64> = chunk
                .iter()
                .map(|&(u, _)| sampler.sample(&data.by_user[u as usize], rng) as u64)
                .collect();
            loss_sum += self.step(&users, &positives, &negatives, config.training.reg)?;
            batches += 1;
        }
        let train_seconds = started.elapsed().as_secs_f64();
        self.refresh_item_matrix()?;
        Ok(EpochWork { epoch, loss_sum, batches, samples: pairs.len(), train_seconds })
    }
}

/// BPR loss and its gradient for B users (`u`, B × D) against their
/// positives and negatives (`items`, 2B × D: positives first):
/// mean softplus(−clamp(⟨u, p − n⟩, ±30)) + reg · (‖U‖² + ‖P‖² + ‖N‖²) / B.
/// Returns (loss, ∂/∂U, ∂/∂[P; N]).
fn bpr_gradients(u: &[f32], items: &[f32], dim: usize, reg: f32) -> (f64, Vec<f32>, Vec<f32>) {
    let b = u.len() / dim;
    let decay = 2.0 * reg / b as f32;
    let mut user_grad = vec![0f32; u.len()];
    let mut item_grad = vec![0f32; items.len()];
    let mut loss = 0f64;
    let mut penalty = 0f64;
    for k in 0..b {
        let uk = &u[k * dim..(k + 1) * dim];
        let pk = &items[k * dim..(k + 1) * dim];
        let nk = &items[(b + k) * dim..(b + k + 1) * dim];
        let margin: f32 = uk.iter().zip(pk.iter().zip(nk)).map(|(u, (p, n))| u * (p - n)).sum();
        let clamped = margin.clamp(-30.0, 30.0);
        loss += f64::from((-clamped).exp().ln_1p());
        // d softplus(−x)/dx = −σ(−x); the clamp passes no gradient outside ±30.
        let slope = if margin.abs() < 30.0 { -1.0 / (1.0 + clamped.exp()) / b as f32 } else { 0.0 };
        for d in 0..dim {
            let (ud, pd, nd) = (uk[d], pk[d], nk[d]);
            penalty += f64::from(ud * ud + pd * pd + nd * nd);
            user_grad[k * dim + d] = slope * (pd - nd) + decay * ud;
            item_grad[k * dim + d] = slope * ud + decay * pd;
            item_grad[(b + k) * dim + d] = -slope * ud + decay * nd;
        }
    }
    (loss / b as f64 + penalty * f64::from(reg) / b as f64, user_grad, item_grad)
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

    /// One product for the batch: its users' rows (zeros for a user the
    /// tables never saw) times the item matrix.
    #[allow(
        clippy::expect_used,
        reason = "the eval traits have no error path; CPU product of shapes fixed here"
    )]
    fn score_batch(&self, queries: &[Query<'_>], scores: &mut [f32]) {
        let mut users = vec![0f32; queries.len() * self.dim];
        for (query, row) in queries.iter().zip(users.chunks_exact_mut(self.dim)) {
            if let Some(u) = self.users.row(u64::from(query.user)) {
                row.copy_from_slice(u);
            }
        }
        let n_items = self.item_matrix.len() / self.dim.max(1);
        let product =
            cascade_nn::matrix::a_bt(&users, &self.item_matrix, queries.len(), self.dim, n_items)
                .expect("a CPU matrix product of matching shapes");
        scores.copy_from_slice(&product);
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var};

    use super::*;

    /// The fused kernel's loss and gradients equal candle's autograd of the
    /// same expression.
    #[test]
    fn fused_gradient_matches_autograd() {
        let (b, dim, reg) = (7, 5, 0.01f32);
        let mut rng = SeededRng::new(4);
        let mut draw = |n: usize| -> Vec<f32> {
            (0..n).map(|_| (rng.below(2001) as f32 - 1000.0) / 400.0).collect()
        };
        let (u, items) = (draw(b * dim), draw(2 * b * dim));
        let (loss, user_grad, item_grad) = bpr_gradients(&u, &items, dim, reg);

        let uv = Var::from_tensor(&Tensor::from_vec(u, (b, dim), &Device::Cpu).unwrap()).unwrap();
        let iv = Var::from_tensor(&Tensor::from_vec(items, (2 * b, dim), &Device::Cpu).unwrap())
            .unwrap();
        let (ut, it) = (uv.as_tensor(), iv.as_tensor());
        let margin =
            (ut * (it.narrow(0, 0, b).unwrap() - it.narrow(0, b, b).unwrap()).unwrap()).unwrap();
        let margin = margin.sum(1).unwrap().clamp(-30f32, 30f32).unwrap();
        let ranking = margin.neg().unwrap().exp().unwrap().affine(1.0, 1.0).unwrap();
        let ranking = ranking.log().unwrap().mean_all().unwrap();
        let penalty = (ut.sqr().unwrap().sum_all().unwrap() + it.sqr().unwrap().sum_all().unwrap())
            .unwrap()
            * (reg as f64 / b as f64);
        let reference = (ranking + penalty.unwrap()).unwrap();
        let grads = reference.backward().unwrap();
        let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5);
        let reference_loss = f64::from(reference.to_scalar::<f32>().unwrap());
        assert!((loss - reference_loss).abs() < 1e-4, "{loss} vs {reference_loss}");
        let grad_of = |v: &Var| -> Vec<f32> {
            grads.get(v.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap()
        };
        assert!(close(&user_grad, &grad_of(&uv)), "user gradients differ");
        assert!(close(&item_grad, &grad_of(&iv)), "item gradients differ");
    }

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
