//! LR, FM (Rendle 2010), Wide&Deep (Cheng et al. 2016) and DeepFM (Guo et al.
//! 2017): the first-order term, optionally plus FM's pairwise interactions,
//! optionally plus an MLP over the concatenated field embeddings.
//!
//! - FM: ½ Σ_k ((Σ_f v_{f,k})² − Σ_f v_{f,k}²) over `fields` (B × F × D) → B;
//! - deep: MLP(B × F·D) → B × 1.

use candle_core::{Module, Tensor};

use cascade_nn::Mlp;

use super::{Head, HeadOutput, first_order, flatten_fields};
use crate::ranking::inputs::{Embedded, Needs};

/// First order + optional FM interaction + optional deep tower.
#[derive(Debug)]
pub struct Factorization {
    bias: Tensor,
    fm: bool,
    deep: Option<Mlp>,
}

impl Factorization {
    /// LR: (false, None); FM: (true, None); Wide&Deep: (false, Some);
    /// DeepFM: (true, Some).
    pub fn new(bias: Tensor, fm: bool, deep: Option<Mlp>) -> Factorization {
        Factorization { bias, fm, deep }
    }

    /// The bias (one value).
    pub fn bias(&self) -> &Tensor {
        &self.bias
    }

    /// Whether FM's pairwise term is added.
    pub fn fm(&self) -> bool {
        self.fm
    }

    /// The deep tower, if any.
    pub fn deep(&self) -> Option<&Mlp> {
        self.deep.as_ref()
    }
}

/// FM's second-order term: B × F × D → B.
pub fn fm_interaction(fields: &Tensor) -> candle_core::Result<Tensor> {
    let sum_sq = fields.sum(1)?.sqr()?;
    let sq_sum = fields.sqr()?.sum(1)?;
    ((sum_sq - sq_sum)? * 0.5)?.sum(1)
}

impl Head for Factorization {
    fn needs(&self) -> Needs {
        Needs::default()
    }

    fn as_factorization(&self) -> Option<&Factorization> {
        Some(self)
    }

    fn forward(&self, x: &Embedded, _item_field: usize) -> candle_core::Result<HeadOutput> {
        let mut logits = first_order(&self.bias, x)?;
        if self.fm {
            logits = (logits + fm_interaction(&x.fields)?)?;
        }
        if let Some(deep) = &self.deep {
            logits = (logits + deep.forward(&flatten_fields(&x.fields)?)?.squeeze(1)?)?;
        }
        Ok(HeadOutput { logits, auxiliary_loss: None })
    }
}
