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
//! - loss: cross-entropy of the next item at every real position (full
//!   softmax over the N items, as RecBole's CE loss).
//!
//! The item matrix is dense, not a sparse table: the full softmax touches
//! every row on every step, so there is nothing for row-wise updates to save.

use candle_core::{D, Device, Module, Tensor};
use candle_nn::Linear;
use serde::{Deserialize, Serialize};

use cascade_eval::protocols::{FullRanker, LooSplit};
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
            training: TrainingSettings {
                batch_size: 64,
                max_epochs: 200,
                patience: 10,
                reg: 0.0,
                optimizer: OptimizerConfig::Adam { lr: 0.001, beta1: 0.9, beta2: 0.999 },
                seed: 2026,
            },
        }
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

    /// Item rows of left-padded sequences (0 = padding) and their lengths.
    fn pad(&self, sequences: &[&[u32]]) -> (Vec<u32>, Vec<usize>) {
        let l = self.config.max_length;
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

    /// Additive attention mask B × 1 × L × L: query i sees real keys j ≤ i.
    fn attention_mask(&self, lengths: &[usize]) -> candle_core::Result<Tensor> {
        let l = self.config.max_length;
        let mut mask = Vec::with_capacity(lengths.len() * l * l);
        for &len in lengths {
            let first_real = l - len;
            for i in 0..l {
                mask.extend((0..l).map(|j| if j <= i && j >= first_real { 0f32 } else { -1e9 }));
            }
        }
        Tensor::from_vec(mask, (lengths.len(), 1, l, l), &Device::Cpu)
    }

    /// Hidden states B × L × D of left-padded sequences.
    fn encode(
        &self,
        sequences: &[&[u32]],
        mut rng: Option<&mut SeededRng>,
    ) -> candle_core::Result<Tensor> {
        let (b, l, d, h) =
            (sequences.len(), self.config.max_length, self.config.dim, self.config.heads);
        let (rows, lengths) = self.pad(sequences);
        let rows = Tensor::from_vec(rows, b * l, &Device::Cpu)?;
        let embedded = self.items.index_select(&rows, 0)?.reshape((b, l, d))?;
        let mut x = (embedded * (d as f64).sqrt())?.broadcast_add(&self.positions)?;
        x = dropout(&x, self.config.dropout, rng.as_deref_mut())?;
        let mask = self.attention_mask(&lengths)?;
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

    fn step(&mut self, sequences: &[&[u32]], rng: &mut SeededRng) -> candle_core::Result<f64> {
        // Inputs are each sequence but its last item; targets are shifted by one.
        let inputs: Vec<&[u32]> = sequences.iter().map(|s| &s[..s.len() - 1]).collect();
        let l = self.config.max_length;
        let mut picked = Vec::new();
        let mut targets = Vec::new();
        for (b, sequence) in sequences.iter().enumerate() {
            let len = inputs[b].len().min(l);
            for p in 0..len {
                picked.push((b * l + (l - len + p)) as u32);
                targets.push(sequence[sequence.len() - len + p]);
            }
        }
        let hidden = self.encode(&inputs, Some(rng))?;
        let hidden = hidden.reshape((sequences.len() * l, self.config.dim))?;
        let picked = Tensor::from_vec(picked, targets.len(), &Device::Cpu)?;
        let states = hidden.index_select(&picked, 0)?;
        let logits = states.matmul(&self.item_matrix()?.t()?)?;
        let targets = Tensor::from_vec(targets, logits.dim(0)?, &Device::Cpu)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &targets)?;
        self.params.step(&loss.backward()?)?;
        loss.to_scalar::<f32>().map(f64::from)
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
        let mut stopping = EarlyStopping::new(config.training.patience);
        let mut best: Option<DenseSnapshot> = None;
        let mut reports = Vec::new();
        for epoch in 0..config.training.max_epochs {
            let started = std::time::Instant::now();
            rng.shuffle(&mut windows);
            let (mut loss_sum, mut batches) = (0.0, 0usize);
            for sequences in windows.chunks(config.training.batch_size) {
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
        let l = self.config.max_length;
        let hidden = self.encode(&[sequence], None)?;
        hidden.narrow(1, l - 1, 1)?.flatten_all()?.to_vec1()
    }
}

impl FullRanker for SasRec {
    fn score_user(&self, user: u32, history: &[u32], scores: &mut [f32]) {
        self.score_sequence(user, history, history, scores);
    }

    #[allow(
        clippy::expect_used,
        reason = "the eval traits have no error path; CPU inference on shapes fixed at build"
    )]
    fn score_sequence(
        &self,
        _user: u32,
        _history: &[u32],
        before_target: &[u32],
        scores: &mut [f32],
    ) {
        let scored = (|| -> candle_core::Result<Vec<f32>> {
            let user = self.user_embedding(before_target)?;
            let user = Tensor::from_vec(user, (self.config.dim, 1), &Device::Cpu)?;
            self.item_matrix()?.matmul(&user)?.flatten_all()?.to_vec1()
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
    #[test]
    fn learns_a_deterministic_transition() {
        // 40 items: after masking a user's 11 seen items, 29 remain, so a
        // random ranker hits the top 10 about a third of the time.
        let n_items = 40;
        let train: Vec<Vec<u32>> =
            (0..60u32).map(|u| (0..10).map(|k| (u + k) % n_items as u32).collect()).collect();
        let split = LooSplit {
            n_items,
            valid: (0..60u32).map(|u| (u + 10) % n_items as u32).collect(),
            test: (0..60u32).map(|u| (u + 11) % n_items as u32).collect(),
            train,
        };
        let config = SasRecConfig {
            dim: 16,
            heads: 2,
            blocks: 1,
            max_length: 10,
            dropout: 0.0,
            training: TrainingSettings {
                batch_size: 16,
                max_epochs: 30,
                patience: 30,
                reg: 0.0,
                optimizer: OptimizerConfig::Adam { lr: 0.01, beta1: 0.9, beta2: 0.999 },
                seed: 3,
            },
        };
        let (model, reports) = SasRec::train(&split, &config, |_| {}).unwrap();
        let test = evaluate_loo(&model, &split, Stage::Test).metrics;
        assert!(reports.last().unwrap().loss < reports[0].loss);
        assert!(test["hr@10"] > 0.9, "next item in the top 10: {test:?}");
    }
}
