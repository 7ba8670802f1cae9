//! The dense part of each ranking model: from [`Embedded`] inputs to one
//! logit per example. Every head adds the shared first-order term (bias +
//! Σ field weights) to what its architecture computes.
//!
//! Shapes: B = batch, F = fields, D = embedding dimension, L = history length.

mod dcn_v2;
mod dien;
mod din;
mod factorization;
mod gru;

use crate::ranking::CtrArch;
use candle_core::Tensor;

use cascade_nn::DenseParams;

use crate::ranking::inputs::{Embedded, Needs};

pub use dcn_v2::DcnV2;
pub use dien::Dien;
pub use din::Din;
pub use factorization::Factorization;

/// A head's output for one batch.
#[derive(Debug)]
pub struct HeadOutput {
    /// B logits.
    pub logits: Tensor,
    /// A loss to add while training (DIEN's next-item auxiliary loss).
    pub auxiliary_loss: Option<Tensor>,
}

/// The dense part of a ranking model.
pub trait Head: Send + Sync + std::fmt::Debug {
    /// Which optional inputs it reads.
    fn needs(&self) -> Needs;
    /// Logits for the batch; `item_field` is the index of the target item's field.
    fn forward(&self, x: &Embedded, item_field: usize) -> candle_core::Result<HeadOutput>;
    /// This head as LR / FM / Wide&Deep / DeepFM, which serving scores
    /// without candle (`ranking::fused`).
    fn as_factorization(&self) -> Option<&Factorization> {
        None
    }
}

/// Sizes every head is built from.
#[derive(Debug, Clone, Copy)]
pub struct HeadShape<'a> {
    /// F.
    pub fields: usize,
    /// D.
    pub dim: usize,
    /// Hidden widths of the deep tower.
    pub hidden: &'a [usize],
}

/// Builds the head of `arch`, registering its parameters in `params`.
pub fn build(
    arch: CtrArch,
    shape: HeadShape<'_>,
    params: &mut DenseParams,
) -> candle_core::Result<Box<dyn Head>> {
    let bias = params.zeros("bias", &[1])?;
    Ok(match arch {
        CtrArch::Lr => Box::new(Factorization::new(bias, false, None)),
        CtrArch::Fm => Box::new(Factorization::new(bias, true, None)),
        CtrArch::WideDeep | CtrArch::DeepFm => {
            let deep = params.mlp("deep", shape.fields * shape.dim, shape.hidden, 1)?;
            Box::new(Factorization::new(bias, arch == CtrArch::DeepFm, Some(deep)))
        }
        CtrArch::DcnV2 => Box::new(DcnV2::new(bias, shape, 2, params)?),
        CtrArch::Din => Box::new(Din::new(bias, shape, params)?),
        CtrArch::Dien => Box::new(Dien::new(bias, shape, params)?),
    })
}

/// B × F × D → B × (F·D).
fn flatten_fields(fields: &Tensor) -> candle_core::Result<Tensor> {
    let (batch, n_fields, dim) = fields.dims3()?;
    fields.reshape((batch, n_fields * dim))
}

/// The first-order term every head starts from: B.
fn first_order(bias: &Tensor, x: &Embedded) -> candle_core::Result<Tensor> {
    x.linear.broadcast_add(bias)
}
