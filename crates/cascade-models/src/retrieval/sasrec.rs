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
//! The item matrix is dense, not a sparse table: the full softmax touches
//! every row on every step, so there is nothing for row-wise updates to save.

use candle_core::{D, Device, Module, Tensor};
use candle_nn::Linear;
use serde::{Deserialize, Serialize};

use cascade_eval::protocols::{FullRanker, LooSplit, Query};
use cascade_nn::{DenseParams, DenseSnapshot, Mlp, OptimizerConfig};

use crate::early_stopping::{EarlyStopping, Verdict};
use crate::random::SeededRng;
use crate::retrieval::{EpochReport, EpochWork, close_epoch};
use crate::training::TrainingSettings;

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
        mut rng: Option<&mut SeededRng>,
    ) -> candle_core::Result<(Tensor, usize)> {
        let (b, l, d, h) =
            (sequences.len(), self.width(sequences), self.config.dim, self.config.heads);
        let (rows, lengths) = SasRec::pad(sequences, l);
        let rows = Tensor::from_vec(rows, b * l, &Device::Cpu)?;
        let embedded = self.items.index_select(&rows, 0)?.reshape((b, l, d))?;
        let positions = self.positions.narrow(0, self.config.max_length - l, l)?;
        let mut x = (embedded * (d as f64).sqrt())?.broadcast_add(&positions)?;
        x = dropout(&x, self.config.dropout, rng.as_deref_mut())?;
        let mask = SasRec::attention_mask(&lengths, l)?;
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
        Ok((layer_norm(&x, &self.final_norm)?, l))
    }

    /// N × D item embeddings (no padding row).
    fn item_matrix(&self) -> candle_core::Result<Tensor> {
        self.items.narrow(0, 1, self.n_items)
    }

    fn step(&mut self, sequences: &[&[u32]], rng: &mut SeededRng) -> candle_core::Result<f64> {
        // Inputs are each sequence but its last item; targets are shifted by one.
        let inputs: Vec<&[u32]> = sequences.iter().map(|s| &s[..s.len() - 1]).collect();
        let l = self.width(&inputs);
        let mut picked = Vec::new();
        let mut targets = Vec::new();
        for (b, sequence) in sequences.iter().enumerate() {
            let len = inputs[b].len().min(l);
            for p in 0..len {
                picked.push((b * l + (l - len + p)) as u32);
                targets.push(sequence[sequence.len() - len + p]);
            }
        }
        let (hidden, _) = self.encode(&inputs, Some(rng))?;
        let hidden = hidden.reshape((sequences.len() * l, self.config.dim))?;
        let picked = Tensor::from_vec(picked, targets.len(), &Device::Cpu)?;
        let states = hidden.index_select(&picked, 0)?;
        let loss = if self.config.samples_softmax(self.n_items) {
            self.sampled_softmax_loss(&states, &targets, rng)?
        } else {
            let logits = states.matmul(&self.item_matrix()?.t()?)?;
            let targets = Tensor::from_vec(targets, logits.dim(0)?, &Device::Cpu)?;
            candle_nn::loss::cross_entropy(&logits, &targets)?
        };
        self.params.step(&loss.backward()?)?;
        loss.to_scalar::<f32>().map(f64::from)
    }

    /// Cross-entropy of each target against `negatives` items drawn
    /// uniformly for the batch: logits `[target, negatives...]`, class 0.
    fn sampled_softmax_loss(
        &self,
        states: &Tensor,
        targets: &[u32],
        rng: &mut SeededRng,
    ) -> candle_core::Result<Tensor> {
        let negatives: Vec<u32> =
            (0..self.config.negatives).map(|_| rng.below(self.n_items) as u32).collect();
        let items = self.item_matrix()?;
        let target_rows = Tensor::from_vec(targets.to_vec(), targets.len(), &Device::Cpu)?;
        let positive = (states * items.index_select(&target_rows, 0)?)?.sum_keepdim(1)?;
        let negative_rows = Tensor::from_vec(negatives.clone(), negatives.len(), &Device::Cpu)?;
        let negative = states.matmul(&items.index_select(&negative_rows, 0)?.t()?)?;
        // A drawn negative that is the position's own target is no negative.
        let hits: Vec<f32> = targets
            .iter()
            .flat_map(|&t| negatives.iter().map(move |&n| if n == t { -1e9 } else { 0.0 }))
            .collect();
        let hits = Tensor::from_vec(hits, negative.shape(), &Device::Cpu)?;
        let logits = Tensor::cat(&[positive, (negative + hits)?], 1)?;
        let zeros = Tensor::zeros(targets.len(), candle_core::DType::U32, &Device::Cpu)?;
        candle_nn::loss::cross_entropy(&logits, &zeros)
    }

    /// Trains on each user's train sequence (next-item targets at every
    /// position), choosing the epoch by validation NDCG@10.
    pub fn train(
        split: &LooSplit,
        config: &SasRecConfig,
        mut on_epoch: impl FnMut(&EpochReport),
    ) -> candle_core::Result<(SasRec, Vec<EpochReport>)> {
        let mut model = SasRec::new(split.n_items, config)?;
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
                loss_sum += model.step(sequences, &mut rng)?;
                batches += 1;
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

/// One epoch's batches: windows shuffled, then sorted by length within
/// pools of 50 batches and cut into batches in a shuffled order, so a batch
/// is padded to about its own windows' length while its make-up and the
/// order of batches stay random.
fn length_grouped_batches<'a>(
    windows: &mut [&'a [u32]],
    batch_size: usize,
    rng: &mut SeededRng,
) -> Vec<Vec<&'a [u32]>> {
    rng.shuffle(windows);
    let mut batches: Vec<Vec<&[u32]>> = Vec::new();
    for pool in windows.chunks_mut(batch_size * 50) {
        pool.sort_by_key(|w| w.len());
        batches.extend(pool.chunks(batch_size).map(<[&[u32]]>::to_vec));
    }
    rng.shuffle(&mut batches);
    batches
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
