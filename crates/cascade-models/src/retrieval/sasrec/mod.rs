//! SASRec (Kang & McAuley, ICDM 2018): causal self-attention over the user's
//! item sequence; the state at the last position is the user's embedding,
//! scored against every item embedding.
//!
//! Parts and shapes (B = windows per batch, L = sequence length, D = dimension,
//! H = heads, N = items):
//! - `items`: N + 1 × D (row 0 = padding), `positions`: L × D;
//! - input: items[seq] + positions, left-padded to L, dropout → B × L × D;
//! - each block: x + Attn(LN(x)) with a causal, padding-aware mask
//!   (B × 1 × L × L), then x + FFN(LN(x)) (D → D → D, ReLU);
//! - output: LN(x) → B × L × D; logits against items[1..]: (·) × N;
//! - loss: cross-entropy of the next item at every real position: the full
//!   softmax over the N items (RecBole's CE loss) on catalogues up to
//!   `full_softmax_max_items`, else a sampled softmax against `negatives`
//!   items drawn uniformly per batch and shared by its positions (uniform
//!   proposals make the logQ correction a constant, which cancels; a
//!   negative that is the position's own target is masked out).
//!
//! A batch is padded to its longest window, not to L: the positions of a
//! left-padded sequence are the last `width` rows of `positions` either
//! way, so the real positions compute exactly what they would at L, and
//! short Amazon-style sequences do not pay for 50 slots. Windows are
//! grouped by length before batching for the same reason.
//!
//! With the full softmax the item matrix is a dense parameter: every row
//! is a class on every step. With the sampled softmax a step touches only
//! its batch's items and its negatives, so training keeps the matrix as a
//! sparse table (`cascade-nn`) whose touched rows are gathered per step and
//! updated by lazy Adam, and copies it back into the matrix after each
//! epoch for validation. Either way a batch's windows are split in two
//! shares whose forward and backward passes run on the two cores.

use candle_core::backprop::GradStore;
use candle_core::{D, Device, Module, Tensor};
use candle_nn::Linear;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use cascade_eval::protocols::{FullRanker, LooSplit, Query};
use cascade_nn::{DenseParams, DenseSnapshot, EmbeddingTable, Mlp, OptimizerConfig, TableConfig};

use crate::early_stopping::{EarlyStopping, Verdict};

mod batches;
use crate::random::SeededRng;
use crate::retrieval::{EpochReport, EpochWork, close_epoch};
use crate::training::TrainingSettings;
use batches::{DistinctRows, Share, length_grouped_batches, sampled_softmax_gradients, sum_shares};

/// SASRec hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SasRecConfig {
    /// Hidden size D.
    pub dim: usize,
    /// Attention heads H (D must be a multiple).
    pub heads: usize,
    /// Transformer blocks.
    pub blocks: usize,
    /// Longest sequence read, L.
    pub max_length: usize,
    /// Dropout on embeddings and block outputs while training.
    pub dropout: f32,
    /// Catalogues up to this many items train with the full softmax; larger
    /// ones with the sampled softmax.
    #[serde(default = "default_full_softmax_max_items")]
    pub full_softmax_max_items: usize,
    /// Items drawn per batch as the sampled softmax's negatives.
    #[serde(default = "default_negatives")]
    pub negatives: usize,
    /// Windows per step, epochs, patience on validation NDCG@10, seed; the
    /// optimizer's `lr` is AdamW's learning rate.
    pub training: TrainingSettings,
}

impl Default for SasRecConfig {
    fn default() -> Self {
        SasRecConfig {
            dim: 64,
            heads: 2,
            blocks: 2,
            max_length: 50,
            dropout: 0.2,
            full_softmax_max_items: default_full_softmax_max_items(),
            negatives: default_negatives(),
            training: TrainingSettings {
                batch_size: 64,
                max_epochs: 200,
                patience: 10,
                reg: 0.0,
                optimizer: OptimizerConfig::Adam { lr: 0.001, beta1: 0.9, beta2: 0.999 },
                seed: 2026,
                time_budget_s: None,
            },
        }
    }
}

fn default_full_softmax_max_items() -> usize {
    5_000
}

fn default_negatives() -> usize {
    1_000
}

impl SasRecConfig {
    /// Whether a catalogue of `n_items` trains with the sampled softmax.
    pub fn samples_softmax(&self, n_items: usize) -> bool {
        n_items > self.full_softmax_max_items
    }
}

#[derive(Debug)]
struct Block {
    norm_attention: (Tensor, Tensor),
    query: Linear,
    key: Linear,
    value: Linear,
    output: Linear,
    norm_ffn: (Tensor, Tensor),
    ffn: Mlp,
}

/// A SASRec model.
#[derive(Debug)]
pub struct SasRec {
    config: SasRecConfig,
    n_items: usize,
    params: DenseParams,
    items: Tensor,
    positions: Tensor,
    blocks: Vec<Block>,
    final_norm: (Tensor, Tensor),
}

/// Layer normalisation over the last axis from differentiable primitives.
fn layer_norm(x: &Tensor, (gain, bias): &(Tensor, Tensor)) -> candle_core::Result<Tensor> {
    let centred = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
    let variance = centred.sqr()?.mean_keepdim(D::Minus1)?;
    centred.broadcast_div(&(variance + 1e-8)?.sqrt()?)?.broadcast_mul(gain)?.broadcast_add(bias)
}

/// Inverted dropout with a seeded mask; identity when `rng` is `None`.
fn dropout(x: &Tensor, rate: f32, rng: Option<&mut SeededRng>) -> candle_core::Result<Tensor> {
    let Some(rng) = rng.filter(|_| rate > 0.0) else { return Ok(x.clone()) };
    let keep = 1.0 - rate;
    let mask: Vec<f32> = (0..x.elem_count())
        .map(|_| {
            if (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32 >= rate {
                1.0 / keep
            } else {
                0.0
            }
        })
        .collect();
    x * Tensor::from_vec(mask, x.shape(), x.device())?
}

impl SasRec {
    fn new(n_items: usize, config: &SasRecConfig) -> candle_core::Result<SasRec> {
        let lr = f64::from(config.training.optimizer.learning_rate());
        let mut params = DenseParams::new(config.training.seed, lr);
        let d = config.dim;
        let items = params.uniform("items", &[n_items + 1, d], (1.0 / d as f32).sqrt())?;
        let positions =
            params.uniform("positions", &[config.max_length, d], (1.0 / d as f32).sqrt())?;
        let norm =
            |params: &mut DenseParams, name: &str| -> candle_core::Result<(Tensor, Tensor)> {
                Ok((
                    params.ones(&format!("{name}.gain"), &[d])?,
                    params.zeros(&format!("{name}.bias"), &[d])?,
                ))
            };
        let mut blocks = Vec::with_capacity(config.blocks);
        for b in 0..config.blocks {
            let name = |part: &str| format!("block{b}.{part}");
            blocks.push(Block {
                norm_attention: norm(&mut params, &name("norm_attention"))?,
                query: params.linear(&name("query"), d, d)?,
                key: params.linear(&name("key"), d, d)?,
                value: params.linear(&name("value"), d, d)?,
                output: params.linear(&name("output"), d, d)?,
                norm_ffn: norm(&mut params, &name("norm_ffn"))?,
                ffn: params.mlp(&name("ffn"), d, &[d], d)?,
            });
        }
        let final_norm = norm(&mut params, "final_norm")?;
        Ok(SasRec { config: config.clone(), n_items, params, items, positions, blocks, final_norm })
    }

    /// The batch's width: its longest sequence, at most L (at least 1).
    fn width(&self, sequences: &[&[u32]]) -> usize {
        sequences.iter().map(|s| s.len()).max().unwrap_or(0).clamp(1, self.config.max_length)
    }

    /// Item rows of sequences left-padded to `l` (0 = padding) and their lengths.
    fn pad(sequences: &[&[u32]], l: usize) -> (Vec<u32>, Vec<usize>) {
        let mut rows = Vec::with_capacity(sequences.len() * l);
        let mut lengths = Vec::with_capacity(sequences.len());
        for sequence in sequences {
            let recent = &sequence[sequence.len().saturating_sub(l)..];
            rows.extend(std::iter::repeat_n(0, l - recent.len()));
            rows.extend(recent.iter().map(|&i| i + 1));
            lengths.push(recent.len());
        }
        (rows, lengths)
    }

    /// Additive attention mask B × 1 × l × l: query i sees real keys j ≤ i.
    fn attention_mask(lengths: &[usize], l: usize) -> candle_core::Result<Tensor> {
        let mut mask = Vec::with_capacity(lengths.len() * l * l);
        for &len in lengths {
            let first_real = l - len;
            for i in 0..l {
                mask.extend((0..l).map(|j| if j <= i && j >= first_real { 0f32 } else { -1e9 }));
            }
        }
        Tensor::from_vec(mask, (lengths.len(), 1, l, l), &Device::Cpu)
    }

    /// Hidden states B × l × D of sequences left-padded to the batch's
    /// width l, and l.
    fn encode(
        &self,
        sequences: &[&[u32]],
        rng: Option<&mut SeededRng>,
    ) -> candle_core::Result<(Tensor, usize)> {
        let l = self.width(sequences);
        let (rows, lengths) = SasRec::pad(sequences, l);
        Ok((self.encode_rows(&self.items, rows, &lengths, l, rng)?, l))
    }

    /// Hidden states B × l × D of left-padded sequences given as rows of
    /// `items` (the model's matrix, or one batch's rows gathered from the
    /// training table) and their real lengths.
    fn encode_rows(
        &self,
        items: &Tensor,
        rows: Vec<u32>,
        lengths: &[usize],
        l: usize,
        mut rng: Option<&mut SeededRng>,
    ) -> candle_core::Result<Tensor> {
        let (b, d, h) = (lengths.len(), self.config.dim, self.config.heads);
        let rows = Tensor::from_vec(rows, b * l, &Device::Cpu)?;
        let embedded = items.index_select(&rows, 0)?.reshape((b, l, d))?;
        let positions = self.positions.narrow(0, self.config.max_length - l, l)?;
        let mut x = (embedded * (d as f64).sqrt())?.broadcast_add(&positions)?;
        x = dropout(&x, self.config.dropout, rng.as_deref_mut())?;
        let mask = SasRec::attention_mask(lengths, l)?;
        let heads = |t: Tensor| -> candle_core::Result<Tensor> {
            t.reshape((b, l, h, d / h))?.transpose(1, 2)?.contiguous()
        };
        for block in &self.blocks {
            let normed = layer_norm(&x, &block.norm_attention)?;
            let q = heads(block.query.forward(&normed)?)?;
            let k = heads(block.key.forward(&normed)?)?;
            let v = heads(block.value.forward(&normed)?)?;
            let scores = (q.matmul(&k.transpose(2, 3)?.contiguous()?)? / ((d / h) as f64).sqrt())?
                .broadcast_add(&mask)?;
            let attended = candle_nn::ops::softmax(&scores, D::Minus1)?.matmul(&v)?;
            let merged = attended.transpose(1, 2)?.contiguous()?.reshape((b, l, d))?;
            let attention =
                dropout(&block.output.forward(&merged)?, self.config.dropout, rng.as_deref_mut())?;
            x = (x + attention)?;
            let ffn = block.ffn.forward(&layer_norm(&x, &block.norm_ffn)?)?;
            x = (&x + dropout(&ffn, self.config.dropout, rng.as_deref_mut())?)?;
        }
        layer_norm(&x, &self.final_norm)
    }

    /// N × D item embeddings (no padding row).
    fn item_matrix(&self) -> candle_core::Result<Tensor> {
        self.items.narrow(0, 1, self.n_items)
    }

    /// A full-softmax step: every item is a class, so the whole item
    /// matrix is a dense parameter.
    fn full_softmax_step(
        &mut self,
        sequences: &[&[u32]],
        rng: &mut SeededRng,
    ) -> candle_core::Result<f64> {
        let shares = Share::split(sequences, self.config.max_length, rng);
        let model = &*self;
        let results: Vec<_> =
            shares.par_iter().map(|share| model.full_softmax_share(share)).collect();
        let (grads, loss) = sum_shares(results)?;
        if let Some(grads) = grads {
            self.params.step(&grads)?;
        }
        Ok(loss)
    }

    /// The hidden state of every real position of `share` (P × D), its
    /// inputs read from `items`, with the share's own dropout draws.
    fn share_states(&self, items: &Tensor, share: &Share) -> candle_core::Result<Tensor> {
        let batch = &share.batch;
        let mut rng = SeededRng::new(share.seed);
        let hidden = self.encode_rows(
            items,
            share.inputs.clone(),
            &batch.lengths,
            batch.width,
            Some(&mut rng),
        )?;
        batch.picked_states(&hidden, self.config.dim)
    }

    /// Forward and backward of one share of a full-softmax batch: its
    /// gradients and its weighted loss.
    fn full_softmax_share(&self, share: &Share) -> candle_core::Result<(GradStore, f64)> {
        let states = self.share_states(&self.items, share)?;
        let logits = states.matmul(&self.item_matrix()?.t()?)?;
        let targets = Tensor::from_vec(share.targets.clone(), logits.dim(0)?, &Device::Cpu)?;
        let loss = (candle_nn::loss::cross_entropy(&logits, &targets)? * share.weight)?;
        let value = f64::from(loss.to_scalar::<f32>()?);
        Ok((loss.backward()?, value))
    }

    /// A sampled-softmax step: only the batch's items and its negatives
    /// have gradients, so their rows are gathered from `table` and updated
    /// there (lazy Adam), and the rest of the catalogue costs nothing.
    fn sampled_softmax_step(
        &mut self,
        sequences: &[&[u32]],
        table: &mut EmbeddingTable,
        rng: &mut SeededRng,
    ) -> candle_core::Result<f64> {
        let negatives: Vec<u32> =
            (0..self.config.negatives).map(|_| rng.below(self.n_items) as u32).collect();
        let mut shares = Share::split(sequences, self.config.max_length, rng);
        // The shares read the batch's distinct rows, gathered once; table
        // rows are the matrix's: item i is row i + 1, 0 is padding.
        let mut distinct = DistinctRows::new(self.n_items + 1);
        for share in &mut shares {
            share.inputs.iter_mut().for_each(|row| *row = distinct.local(*row));
            share.targets.iter_mut().for_each(|item| *item = distinct.local(*item + 1));
        }
        let negative_rows: Vec<u32> = negatives.iter().map(|&n| distinct.local(n + 1)).collect();
        let lookup = table.lookup(&distinct.ids)?;
        let negative_rows = Tensor::from_vec(negative_rows, negatives.len(), &Device::Cpu)?;
        let gathered = lookup.var.as_tensor();
        let model = &*self;
        let results: Vec<_> = shares
            .par_iter()
            .map(|share| model.sampled_share(gathered, share, &negatives, &negative_rows))
            .collect();
        let (grads, loss) = sum_shares(results)?;
        if let Some(grads) = grads {
            self.params.step(&grads)?;
            table.apply_gradients(&lookup, &grads)?;
        }
        Ok(loss)
    }

    /// Forward and backward of one share of a sampled-softmax batch against
    /// the gathered rows: its gradients and its weighted loss.
    fn sampled_share(
        &self,
        gathered: &Tensor,
        share: &Share,
        negatives: &[u32],
        negative_rows: &Tensor,
    ) -> candle_core::Result<(GradStore, f64)> {
        let batch = &share.batch;
        let states = self.share_states(gathered, share)?;
        let target_rows =
            Tensor::from_vec(share.targets.clone(), share.targets.len(), &Device::Cpu)?;
        let positive = (&states * gathered.index_select(&target_rows, 0)?)?.sum_keepdim(1)?;
        let negative = states.matmul(&gathered.index_select(negative_rows, 0)?.t()?)?;
        let (value, positive_grad, negative_grad) = sampled_softmax_gradients(
            &positive.flatten_all()?.to_vec1()?,
            &negative.flatten_all()?.to_vec1()?,
            &batch.targets,
            negatives,
            share.weight,
        );
        // The loss's gradient with respect to the logits is known in closed
        // form, so candle differentiates Σ logits · gradient instead of
        // building the softmax and its backward pass from tensor ops.
        let positions = batch.targets.len();
        let positive_grad = Tensor::from_vec(positive_grad, (positions, 1), &Device::Cpu)?;
        let negative_grad = Tensor::from_vec(negative_grad, negative.shape(), &Device::Cpu)?;
        let surrogate =
            ((positive * positive_grad)?.sum_all()? + (negative * negative_grad)?.sum_all()?)?;
        Ok((surrogate.backward()?, value))
    }

    /// The item matrix as a sparse training table (one row per matrix row,
    /// same values), for the sampled softmax.
    fn item_table(&self) -> candle_core::Result<EmbeddingTable> {
        let mut table = EmbeddingTable::new(TableConfig {
            name: "items".to_owned(),
            dim: self.config.dim,
            optimizer: self.config.training.optimizer,
            init_scale: 0.0,
            seed: self.config.training.seed,
        });
        let values = self.params.values("items")?;
        for (row, weights) in values.chunks(self.config.dim).enumerate() {
            table.set_row(row as u64, weights);
        }
        Ok(table)
    }

    /// Copies the training table back into the item matrix, which
    /// validation, snapshots and inference read.
    fn sync_items(&mut self, table: &EmbeddingTable) -> candle_core::Result<()> {
        let mut values = Vec::with_capacity((self.n_items + 1) * self.config.dim);
        for row in 0..=self.n_items as u64 {
            let weights = table
                .row(row)
                .ok_or_else(|| candle_core::Error::Msg(format!("the item table lost row {row}")))?;
            values.extend_from_slice(weights);
        }
        let matrix = Tensor::from_vec(values, (self.n_items + 1, self.config.dim), &Device::Cpu)?;
        self.params.set("items", &matrix)
    }

    /// Trains on each user's train sequence (next-item targets at every
    /// position), choosing the epoch by validation NDCG@10.
    pub fn train(
        split: &LooSplit,
        config: &SasRecConfig,
        mut on_epoch: impl FnMut(&EpochReport),
    ) -> candle_core::Result<(SasRec, Vec<EpochReport>)> {
        let mut model = SasRec::new(split.n_items, config)?;
        let mut table = match config.samples_softmax(split.n_items) {
            true => Some(model.item_table()?),
            false => None,
        };
        // Each user's train sequence cut, from its end, into windows of L + 1
        // items: every item is a next-item target once per epoch, and attention
        // stays L × L however long the user's history is.
        let mut windows: Vec<&[u32]> = Vec::new();
        for sequence in &split.train {
            let mut end = sequence.len();
            while end >= 2 {
                let start = end.saturating_sub(config.max_length + 1);
                windows.push(&sequence[start..end]);
                end = start + 1;
                if start == 0 {
                    break;
                }
            }
        }
        let targets: usize = windows.iter().map(|w| w.len() - 1).sum();
        let mut rng = SeededRng::new(config.training.seed);
        let mut stopping = EarlyStopping::for_training(&config.training);
        let mut best: Option<DenseSnapshot> = None;
        let mut reports = Vec::new();
        let batch_size = config.training.batch_size.max(1);
        for epoch in 0..config.training.max_epochs {
            let started = std::time::Instant::now();
            let batches_of_windows = length_grouped_batches(&mut windows, batch_size, &mut rng);
            let (mut loss_sum, mut batches) = (0.0, 0usize);
            for sequences in &batches_of_windows {
                loss_sum += match table.as_mut() {
                    Some(table) => model.sampled_softmax_step(sequences, table, &mut rng)?,
                    None => model.full_softmax_step(sequences, &mut rng)?,
                };
                batches += 1;
            }
            if let Some(table) = &table {
                model.sync_items(table)?;
            }
            let train_seconds = started.elapsed().as_secs_f64();
            let work = EpochWork { epoch, loss_sum, batches, samples: targets, train_seconds };
            match close_epoch(&model, split, work, &mut stopping, &mut reports, &mut on_epoch) {
                Verdict::Improved => best = Some(model.params.snapshot()?),
                Verdict::Continue => {}
                Verdict::Stop => break,
            }
            if stopping.out_of_time() {
                break;
            }
        }
        if let Some(best) = best {
            model.params.restore(&best)?;
        }
        Ok((model, reports))
    }

    /// The dense tensors (SASRec has no sparse table), for a checkpoint.
    pub fn parts(&self) -> candle_core::Result<DenseSnapshot> {
        self.params.snapshot()
    }

    /// The user embedding for a sequence: the last position's state (D).
    pub fn user_embedding(&self, sequence: &[u32]) -> candle_core::Result<Vec<f32>> {
        self.user_states(&[sequence])?.flatten_all()?.to_vec1()
    }

    /// The last position's state of each sequence: B × D.
    fn user_states(&self, sequences: &[&[u32]]) -> candle_core::Result<Tensor> {
        let (hidden, l) = self.encode(sequences, None)?;
        hidden.narrow(1, l - 1, 1)?.squeeze(1)
    }
}

impl FullRanker for SasRec {
    fn score_user(&self, user: u32, history: &[u32], scores: &mut [f32]) {
        self.score_sequence(user, history, history, scores);
    }

    fn score_sequence(
        &self,
        _user: u32,
        _history: &[u32],
        before_target: &[u32],
        scores: &mut [f32],
    ) {
        let query = Query { user: 0, history: before_target, before_target };
        self.score_batch(&[query], scores);
    }

    #[allow(
        clippy::expect_used,
        reason = "the eval traits have no error path; CPU inference on shapes fixed at build"
    )]
    fn score_batch(&self, queries: &[Query<'_>], scores: &mut [f32]) {
        let sequences: Vec<&[u32]> = queries.iter().map(|q| q.before_target).collect();
        let scored = (|| -> candle_core::Result<Vec<f32>> {
            let users = self.user_states(&sequences)?;
            users.matmul(&self.item_matrix()?.t()?)?.flatten_all()?.to_vec1()
        })()
        .expect("inference on CPU tensors of matching shapes");
        scores.copy_from_slice(&scored);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cascade_eval::protocols::{Stage, evaluate_loo};

    /// Every user walks a cycle of items; the next item is always the
    /// successor of the last one. SASRec must learn the transition.
    fn cycle_split() -> LooSplit {
        // 40 items: after masking a user's 11 seen items, 29 remain, so a
        // random ranker hits the top 10 about a third of the time.
        let n_items = 40;
        let train: Vec<Vec<u32>> =
            (0..60u32).map(|u| (0..10).map(|k| (u + k) % n_items as u32).collect()).collect();
        LooSplit {
            n_items,
            valid: (0..60u32).map(|u| (u + 10) % n_items as u32).collect(),
            test: (0..60u32).map(|u| (u + 11) % n_items as u32).collect(),
            train,
        }
    }

    fn small_config() -> SasRecConfig {
        SasRecConfig {
            dim: 16,
            heads: 2,
            blocks: 1,
            max_length: 10,
            dropout: 0.0,
            full_softmax_max_items: 5_000,
            negatives: 1_000,
            training: TrainingSettings {
                batch_size: 16,
                max_epochs: 30,
                patience: 30,
                reg: 0.0,
                optimizer: OptimizerConfig::Adam { lr: 0.01, beta1: 0.9, beta2: 0.999 },
                seed: 3,
                time_budget_s: None,
            },
        }
    }

    /// The sampled softmax learns the same transition from 8 negatives.
    #[test]
    fn the_sampled_softmax_learns_the_transition() {
        let split = cycle_split();
        let config = SasRecConfig { full_softmax_max_items: 0, negatives: 8, ..small_config() };
        assert!(config.samples_softmax(split.n_items));
        let (model, _) = SasRec::train(&split, &config, |_| {}).unwrap();
        let test = evaluate_loo(&model, &split, Stage::Test).metrics;
        assert!(test["hr@10"] > 0.9, "next item in the top 10: {test:?}");
    }

    /// Sequences of different lengths scored in one batch, padded to the
    /// longest, score as each does alone.
    #[test]
    fn batch_scores_equal_one_at_a_time() {
        let split = cycle_split();
        let config = SasRecConfig {
            training: TrainingSettings { max_epochs: 2, ..small_config().training },
            ..small_config()
        };
        let (model, _) = SasRec::train(&split, &config, |_| {}).unwrap();
        let sequences: [&[u32]; 3] = [&[3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14], &[7], &[1, 2]];
        let queries: Vec<Query<'_>> =
            sequences.iter().map(|s| Query { user: 0, history: s, before_target: s }).collect();
        let mut batch = vec![0f32; 3 * 40];
        model.score_batch(&queries, &mut batch);
        for (sequence, row) in sequences.iter().zip(batch.chunks(40)) {
            let mut alone = vec![0f32; 40];
            model.score_user(0, sequence, &mut alone);
            for (a, b) in alone.iter().zip(row) {
                assert!((a - b).abs() < 1e-4, "{a} vs {b}");
            }
        }
    }

    #[test]
    fn learns_a_deterministic_transition() {
        let split = cycle_split();
        let config = small_config();
        let (model, reports) = SasRec::train(&split, &config, |_| {}).unwrap();
        let test = evaluate_loo(&model, &split, Stage::Test).metrics;
        assert!(reports.last().unwrap().loss < reports[0].loss);
        assert!(test["hr@10"] > 0.9, "next item in the top 10: {test:?}");
    }
}
