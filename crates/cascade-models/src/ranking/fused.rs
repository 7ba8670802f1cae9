//! LR, FM, Wide&Deep and DeepFM inference for serving, with a handful of
//! tensor ops instead of a graph.
//!
//! The candle heads gather and pool each field separately and build ~30
//! small tensor ops per batch, each allocating. This computes the same logit
//! per example in one pass: first-order weights and mean-pooled field
//! embeddings straight from the sparse tables and FM's pairwise term; the
//! MLP then runs as one batched candle forward. It reads the model's
//! parameters as they are when scoring, but `CtrModel` drops it at every
//! training step anyway, so a training model always scores through candle.

use candle_core::{Device, Module, Tensor};

use cascade_nn::Mlp;

use crate::ranking::heads::Factorization;
use crate::ranking::inputs::{CtrFeatures, SparseInputs};

/// A factorization head's weights, ready for scoring without a graph.
#[derive(Debug, Clone)]
pub struct FusedFactorization {
    bias: f32,
    fm: bool,
    /// The deep tower stays on candle: one batched matrix product per layer
    /// is what its gemm is good at, and its SIMD is chosen at run time.
    deep: Option<Mlp>,
}

impl FusedFactorization {
    /// Copies the head's current weights.
    pub fn new(head: &Factorization) -> candle_core::Result<FusedFactorization> {
        let bias = head.bias().flatten_all()?.to_vec1::<f32>()?.first().copied().unwrap_or(0.0);
        Ok(FusedFactorization { bias, fm: head.fm(), deep: head.deep().cloned() })
    }

    /// Click probabilities of `batch`, as the candle head gives them.
    pub fn score(
        &self,
        sparse: &SparseInputs,
        batch: &[&CtrFeatures],
    ) -> candle_core::Result<Vec<f64>> {
        let n_fields = batch.first().map_or(0, |x| x.fields.len());
        self.score_bags(sparse, batch.len(), n_fields, |example, field| {
            &batch[example].fields[field]
        })
    }

    /// Click probabilities of `n` examples of `n_fields` fields each, where
    /// `bag(example, field)` gives the ids: lets a caller whose examples
    /// share most fields (one user, one context, many items) build none.
    pub fn score_bags<'a>(
        &self,
        sparse: &SparseInputs,
        n: usize,
        n_fields: usize,
        bag: impl Fn(usize, usize) -> &'a [u64],
    ) -> candle_core::Result<Vec<f64>> {
        let [linear, embedding] = sparse.tables();
        let dim = embedding.config().dim;
        let width = n_fields * dim;
        // B × (F·D): each example's mean-pooled field embeddings, side by side.
        let mut fields = vec![0f32; n * width];
        let mut logits = Vec::with_capacity(n);
        for example in 0..n {
            let row = &mut fields[example * width..(example + 1) * width];
            let mut logit = self.bias;
            for (field, pooled) in row.chunks_exact_mut(dim).enumerate() {
                let bag = bag(example, field);
                let scale = 1.0 / bag.len() as f32;
                for &id in bag {
                    if let Some(weight) = linear.row(id) {
                        logit += weight[0] * scale;
                    }
                    if let Some(values) = embedding.row(id) {
                        pooled.iter_mut().zip(values).for_each(|(p, v)| *p += v * scale);
                    }
                }
            }
            if self.fm {
                logit += pairwise_interactions(row, n_fields, dim);
            }
            logits.push(logit);
        }
        if let Some(deep) = &self.deep {
            let input = Tensor::from_vec(fields, (n, width), &Device::Cpu)?;
            let towers: Vec<f32> = deep.forward(&input)?.flatten_all()?.to_vec1()?;
            logits.iter_mut().zip(towers).for_each(|(logit, tower)| *logit += tower);
        }
        Ok(logits.into_iter().map(|z| 1.0 / (1.0 + (-f64::from(z)).exp())).collect())
    }
}

/// FM's second-order term of one example's F × D field embeddings:
/// ½ Σ_k ((Σ_f v_{f,k})² − Σ_f v_{f,k}²).
fn pairwise_interactions(fields: &[f32], n_fields: usize, dim: usize) -> f32 {
    (0..dim)
        .map(|k| {
            let (sum, sum_sq) = (0..n_fields).fold((0f32, 0f32), |(s, q), f| {
                let v = fields[f * dim + k];
                (s + v, q + v * v)
            });
            0.5 * (sum * sum - sum_sq)
        })
        .sum()
}
