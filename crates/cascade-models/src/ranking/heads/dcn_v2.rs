//! DCNv2 (Wang et al., WWW 2021), stacked form: full-rank cross layers
//! `x_{l+1} = x_0 ⊙ (W_l x_l + b_l) + x_l` over the concatenated field
//! embeddings x_0 (B × F·D), then an MLP to one logit.

use candle_core::{Module, Tensor};
use candle_nn::Linear;

use cascade_nn::{DenseParams, Mlp};

use super::{Head, HeadOutput, HeadShape, first_order, flatten_fields};
use crate::ranking::inputs::{Embedded, Needs};

/// Cross network then deep tower.
#[derive(Debug)]
pub struct DcnV2 {
    bias: Tensor,
    cross: Vec<Linear>,
    deep: Mlp,
}

impl DcnV2 {
    /// `layers` cross layers of width F·D.
    pub fn new(
        bias: Tensor,
        shape: HeadShape<'_>,
        layers: usize,
        params: &mut DenseParams,
    ) -> candle_core::Result<DcnV2> {
        let width = shape.fields * shape.dim;
        let cross = (0..layers)
            .map(|l| params.linear(&format!("cross.{l}"), width, width))
            .collect::<candle_core::Result<_>>()?;
        let deep = params.mlp("deep", width, shape.hidden, 1)?;
        Ok(DcnV2 { bias, cross, deep })
    }
}

impl Head for DcnV2 {
    fn needs(&self) -> Needs {
        Needs::default()
    }

    fn forward(&self, x: &Embedded, _item_field: usize) -> candle_core::Result<HeadOutput> {
        let x0 = flatten_fields(&x.fields)?;
        let mut crossed = x0.clone();
        for layer in &self.cross {
            crossed = ((&x0 * layer.forward(&crossed)?)? + crossed)?;
        }
        let deep = self.deep.forward(&crossed)?.squeeze(1)?;
        Ok(HeadOutput { logits: (first_order(&self.bias, x)? + deep)?, auxiliary_loss: None })
    }
}
