//! DIN (Zhou et al., KDD 2018): the user's interest is a weighted sum of
//! their history, weighted by how relevant each past item is to the target.
//!
//! - target q: the item field's embedding, B × D;
//! - attention: MLP([h, q, h − q, h ⊙ q]) over B × L × 4D → B × L scores,
//!   softmax over the real positions (a padded position gets no weight);
//! - interest: Σ_l w_l h_l, B × D;
//! - deep: MLP([fields (F·D), interest (D)]) → logit.

use candle_core::{D, Module, Tensor};

use cascade_nn::{DenseParams, Mlp};

use super::{Head, HeadOutput, HeadShape, first_order, flatten_fields};
use crate::ranking::inputs::{Embedded, Needs};

/// Target attention over the history, then a deep tower.
#[derive(Debug)]
pub struct Din {
    bias: Tensor,
    attention: Mlp,
    deep: Mlp,
}

/// Softmax over the last axis where `mask` is 1; all-masked rows give
/// uniform weights over zero rows, i.e. a zero interest.
pub fn masked_softmax(scores: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    let penalty = ((mask - 1.0)? * 1e9)?;
    candle_nn::ops::softmax(&(scores + penalty)?, D::Minus1)
}

/// B × F × D → the target item's B × D.
pub fn target_item(fields: &Tensor, item_field: usize) -> candle_core::Result<Tensor> {
    fields.narrow(1, item_field, 1)?.squeeze(1)
}

impl Din {
    /// Attention MLP 4D → 36 → 1 (the paper's activation unit size).
    pub fn new(
        bias: Tensor,
        shape: HeadShape<'_>,
        params: &mut DenseParams,
    ) -> candle_core::Result<Din> {
        let attention = params.mlp("attention", 4 * shape.dim, &[36], 1)?;
        let deep = params.mlp("deep", (shape.fields + 1) * shape.dim, shape.hidden, 1)?;
        Ok(Din { bias, attention, deep })
    }
}

impl Head for Din {
    fn needs(&self) -> Needs {
        Needs { history: true, negatives: false }
    }

    fn forward(&self, x: &Embedded, item_field: usize) -> candle_core::Result<HeadOutput> {
        let history = x
            .history
            .as_ref()
            .ok_or_else(|| candle_core::Error::Msg("DIN needs the history input".to_owned()))?;
        let items = &history.items; // B × L × D
        let query =
            target_item(&x.fields, item_field)?.unsqueeze(1)?.broadcast_as(items.shape())?;
        let features =
            Tensor::cat(&[items, &query, &(items - &query)?, &(items * &query)?], D::Minus1)?;
        let scores = self.attention.forward(&features)?.squeeze(D::Minus1)?; // B × L
        let weights = masked_softmax(&scores, &history.mask)?;
        let interest = weights.unsqueeze(1)?.matmul(items)?.squeeze(1)?; // B × D
        let deep_input = Tensor::cat(&[&flatten_fields(&x.fields)?, &interest], 1)?;
        let deep = self.deep.forward(&deep_input)?.squeeze(1)?;
        Ok(HeadOutput { logits: (first_order(&self.bias, x)? + deep)?, auxiliary_loss: None })
    }
}
