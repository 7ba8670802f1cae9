//! DIEN (Zhou et al., AAAI 2019): interest extraction and evolution.
//!
//! - extractor: GRU over the history (B × L × D) → states B × L × D, trained
//!   with the auxiliary loss: state t should score item t + 1 above a sampled
//!   negative (both real positions only);
//! - attention: softmax over real positions of states_t · W q, q = the target
//!   item (B × D);
//! - evolution: AUGRU over the states with that attention; its last state is
//!   the evolved interest (B × D);
//! - deep: MLP([fields (F·D), interest (D)]) → logit.

use candle_core::{D, Module, Tensor};
use candle_nn::Linear;

use cascade_nn::{DenseParams, Mlp};

use super::din::{masked_softmax, target_item};
use super::gru::GruCell;
use super::{Head, HeadOutput, HeadShape, first_order, flatten_fields};
use crate::ranking::inputs::{Embedded, Needs};

/// Interest extractor GRU, attention, AUGRU, deep tower.
#[derive(Debug)]
pub struct Dien {
    bias: Tensor,
    extractor: GruCell,
    query: Linear,
    evolution: GruCell,
    deep: Mlp,
}

/// log(1 + eᶻ), stable for large |z|.
fn softplus(z: &Tensor) -> candle_core::Result<Tensor> {
    z.relu()? + z.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?
}

impl Dien {
    /// Hidden size = D so states and item embeddings share a space.
    pub fn new(
        bias: Tensor,
        shape: HeadShape<'_>,
        params: &mut DenseParams,
    ) -> candle_core::Result<Dien> {
        Ok(Dien {
            bias,
            extractor: GruCell::new("extractor", shape.dim, shape.dim, params)?,
            query: params.linear("attention.query", shape.dim, shape.dim)?,
            evolution: GruCell::new("evolution", shape.dim, shape.dim, params)?,
            deep: params.mlp("deep", (shape.fields + 1) * shape.dim, shape.hidden, 1)?,
        })
    }

    /// Mean over consecutive real positions of softplus(−h·pos) + softplus(h·neg).
    fn auxiliary_loss(
        states: &Tensor,
        items: &Tensor,
        negatives: &Tensor,
        mask: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let steps = states.dim(1)?;
        if steps < 2 {
            return Tensor::new(0f32, states.device());
        }
        let current = states.narrow(1, 0, steps - 1)?;
        let positive = (&current * items.narrow(1, 1, steps - 1)?)?.sum(D::Minus1)?;
        let negative = (&current * negatives.narrow(1, 1, steps - 1)?)?.sum(D::Minus1)?;
        let valid = (mask.narrow(1, 0, steps - 1)? * mask.narrow(1, 1, steps - 1)?)?;
        let loss = (softplus(&positive.neg()?)? + softplus(&negative)?)?;
        let count = valid.sum_all()?.to_scalar::<f32>()?.max(1.0);
        (loss * valid)?.sum_all()? / count as f64
    }
}

impl Head for Dien {
    fn needs(&self) -> Needs {
        Needs { history: true, negatives: true }
    }

    fn forward(&self, x: &Embedded, item_field: usize) -> candle_core::Result<HeadOutput> {
        let history = x
            .history
            .as_ref()
            .ok_or_else(|| candle_core::Error::Msg("DIEN needs the history input".to_owned()))?;
        let states = self.extractor.run(&history.items, &history.mask, None)?;
        let auxiliary_loss = match &history.negatives {
            Some(negatives) => {
                Some(Self::auxiliary_loss(&states, &history.items, negatives, &history.mask)?)
            }
            None => None,
        };
        let query = self.query.forward(&target_item(&x.fields, item_field)?)?; // B × D
        let scores = states.matmul(&query.unsqueeze(2)?)?.squeeze(2)?; // B × L
        let attention = masked_softmax(&scores, &history.mask)?;
        let evolved = self.evolution.run(&states, &history.mask, Some(&attention))?;
        let steps = evolved.dim(1)?;
        let interest = evolved.narrow(1, steps - 1, 1)?.squeeze(1)?;
        let deep_input = Tensor::cat(&[&flatten_fields(&x.fields)?, &interest], 1)?;
        let deep = self.deep.forward(&deep_input)?.squeeze(1)?;
        Ok(HeadOutput { logits: (first_order(&self.bias, x)? + deep)?, auxiliary_loss })
    }
}
