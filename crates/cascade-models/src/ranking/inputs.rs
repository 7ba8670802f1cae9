//! What every ranking model reads, and how it reaches the dense part.
//!
//! An example is its fields' hashed ids plus the user's preceding items
//! (hashed like the `item_id` field, so the history shares the item rows).
//! [`SparseInputs`] owns the two sparse tables every ranking model has — a
//! first-order weight per id (dimension 1) and an embedding per id
//! (dimension D) — and turns a batch into [`Embedded`] tensors:
//!
//! - `linear`: B, the sum over fields of the (bag-mean) first-order weights;
//! - `fields`: B × F × D, each field's (bag-mean) embedding;
//! - `history`: B × L × D item embeddings, left-padded with zeros so the most
//!   recent item is at position L − 1, with a B × L mask (1 = real item), and
//!   for DIEN's auxiliary loss B × L embeddings of sampled negative items.

use candle_core::{DType, Device, Tensor};

use cascade_nn::{EmbeddingTable, Lookup, OptimizerConfig, Pooling, TableConfig};

use crate::random::SeededRng;
use crate::ranking::fields::FieldIds;

/// One example's input.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CtrFeatures {
    /// Each field's ids, in the schema's field order.
    pub fields: FieldIds,
    /// The user's items before this example, oldest first (hashed item ids).
    pub history: Vec<u64>,
}

/// The user's recent items as tensors.
#[derive(Debug, Clone)]
pub struct History {
    /// B × L × D, left-padded with zero rows.
    pub items: Tensor,
    /// B × L, 1.0 where a real item sits.
    pub mask: Tensor,
    /// B × L × D embeddings of one sampled negative item per real position
    /// (training with an auxiliary loss only).
    pub negatives: Option<Tensor>,
}

/// A batch after the sparse lookups.
#[derive(Debug, Clone)]
pub struct Embedded {
    /// B: Σ over fields of the first-order weights.
    pub linear: Tensor,
    /// B × F × D.
    pub fields: Tensor,
    /// Present when the model reads the history.
    pub history: Option<History>,
}

/// Which optional inputs a model reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// The history tensors.
    pub history: bool,
    /// Negative items per history position.
    pub negatives: bool,
}

/// The rows a training batch gathered, to update after backward.
#[derive(Debug)]
pub struct Gathered {
    linear: Vec<Lookup>,
    embedding: Vec<Lookup>,
}

/// The sparse tables of a ranking model.
#[derive(Debug, Clone)]
pub struct SparseInputs {
    linear: EmbeddingTable,
    embedding: EmbeddingTable,
    history_length: usize,
}

/// Rows of one gathered tensor, arranged B × L × D with left zero padding.
fn arrange_history(
    gathered: &Tensor,
    lengths: &[usize],
    history_length: usize,
) -> candle_core::Result<Tensor> {
    let (total, dim) = gathered.dims2()?;
    let padded = Tensor::cat(&[gathered, &Tensor::zeros((1, dim), DType::F32, &Device::Cpu)?], 0)?;
    let mut index = Vec::with_capacity(lengths.len() * history_length);
    let mut next = 0u32;
    for &len in lengths {
        index.extend(std::iter::repeat_n(total as u32, history_length - len));
        index.extend(next..next + len as u32);
        next += len as u32;
    }
    let index = Tensor::from_vec(index, lengths.len() * history_length, &Device::Cpu)?;
    padded.index_select(&index, 0)?.reshape((lengths.len(), history_length, dim))
}

fn history_mask(lengths: &[usize], history_length: usize) -> candle_core::Result<Tensor> {
    let mask: Vec<f32> = lengths
        .iter()
        .flat_map(|&len| (0..history_length).map(move |p| f32::from(p >= history_length - len)))
        .collect();
    Tensor::from_vec(mask, (lengths.len(), history_length), &Device::Cpu)
}

impl SparseInputs {
    /// The first-order weights' table, as checkpoints name it.
    pub const LINEAR_TABLE: &str = "linear";
    /// The field embeddings' table, as checkpoints name it.
    pub const EMBEDDING_TABLE: &str = "embedding";

    /// Empty tables of dimension `dim`, reading at most `history_length` items.
    pub fn new(
        dim: usize,
        history_length: usize,
        optimizer: OptimizerConfig,
        seed: u64,
    ) -> SparseInputs {
        let table = |name: &str, dim: usize, init_scale: f32, seed: u64| {
            EmbeddingTable::new(TableConfig { name: name.into(), dim, optimizer, init_scale, seed })
        };
        SparseInputs {
            linear: table(Self::LINEAR_TABLE, 1, 0.0, seed ^ 1),
            embedding: table(Self::EMBEDDING_TABLE, dim, 0.01, seed ^ 2),
            history_length,
        }
    }

    /// The recent part of a history that the model reads.
    fn recent<'a>(&self, history: &'a [u64]) -> &'a [u64] {
        &history[history.len().saturating_sub(self.history_length)..]
    }

    /// Training lookups (new ids get rows). Negatives are drawn from `item_pool`.
    pub fn embed_for_training(
        &mut self,
        batch: &[&CtrFeatures],
        needs: Needs,
        item_pool: &[u64],
        rng: &mut SeededRng,
    ) -> candle_core::Result<(Embedded, Gathered)> {
        let n_fields = batch.first().map_or(0, |x| x.fields.len());
        let mut gathered = Gathered { linear: Vec::new(), embedding: Vec::new() };
        let mut linear_terms = Vec::with_capacity(n_fields);
        let mut field_embeddings = Vec::with_capacity(n_fields);
        for f in 0..n_fields {
            let bags: Vec<Vec<u64>> = batch.iter().map(|x| x.fields[f].clone()).collect();
            let (lookup, pooled) = self.linear.lookup_bags(&bags, Pooling::Mean)?;
            gathered.linear.push(lookup);
            linear_terms.push(pooled);
            let (lookup, pooled) = self.embedding.lookup_bags(&bags, Pooling::Mean)?;
            gathered.embedding.push(lookup);
            field_embeddings.push(pooled);
        }
        let history = if needs.history {
            let recent: Vec<&[u64]> = batch.iter().map(|x| self.recent(&x.history)).collect();
            let lengths: Vec<usize> = recent.iter().map(|h| h.len()).collect();
            let flat: Vec<u64> = recent.iter().flat_map(|h| h.iter().copied()).collect();
            let lookup = self.embedding.lookup(&flat)?;
            let items = arrange_history(lookup.var.as_tensor(), &lengths, self.history_length)?;
            gathered.embedding.push(lookup);
            let negatives = if needs.negatives && !item_pool.is_empty() {
                let sampled: Vec<u64> =
                    flat.iter().map(|_| item_pool[rng.below(item_pool.len())]).collect();
                let lookup = self.embedding.lookup(&sampled)?;
                let arranged =
                    arrange_history(lookup.var.as_tensor(), &lengths, self.history_length)?;
                gathered.embedding.push(lookup);
                Some(arranged)
            } else {
                None
            };
            Some(History { items, mask: history_mask(&lengths, self.history_length)?, negatives })
        } else {
            None
        };
        let embedded = Embedded {
            linear: Tensor::stack(&linear_terms, 0)?.sum(0)?.squeeze(1)?,
            fields: Tensor::stack(&field_embeddings, 1)?,
            history,
        };
        Ok((embedded, gathered))
    }

    /// Inference lookups: no growth, unseen ids read as zeros.
    pub fn embed_frozen(
        &self,
        batch: &[&CtrFeatures],
        needs: Needs,
    ) -> candle_core::Result<Embedded> {
        let n_fields = batch.first().map_or(0, |x| x.fields.len());
        let mut linear_terms = Vec::with_capacity(n_fields);
        let mut field_embeddings = Vec::with_capacity(n_fields);
        for f in 0..n_fields {
            let bags: Vec<Vec<u64>> = batch.iter().map(|x| x.fields[f].clone()).collect();
            linear_terms.push(self.linear.lookup_bags_frozen(&bags, Pooling::Mean)?);
            field_embeddings.push(self.embedding.lookup_bags_frozen(&bags, Pooling::Mean)?);
        }
        let history = if needs.history {
            let recent: Vec<&[u64]> = batch.iter().map(|x| self.recent(&x.history)).collect();
            let lengths: Vec<usize> = recent.iter().map(|h| h.len()).collect();
            let flat: Vec<u64> = recent.iter().flat_map(|h| h.iter().copied()).collect();
            let gathered = self.embedding.lookup_frozen(&flat)?;
            Some(History {
                items: arrange_history(&gathered, &lengths, self.history_length)?,
                mask: history_mask(&lengths, self.history_length)?,
                negatives: None,
            })
        } else {
            None
        };
        Ok(Embedded {
            linear: Tensor::stack(&linear_terms, 0)?.sum(0)?.squeeze(1)?,
            fields: Tensor::stack(&field_embeddings, 1)?,
            history,
        })
    }

    /// Σ of squared gathered embedding rows, for L2 on what the batch touched.
    pub fn squared_norm(gathered: &Gathered) -> candle_core::Result<Tensor> {
        let mut total = Tensor::new(0f32, &Device::Cpu)?;
        for lookup in &gathered.embedding {
            total = (total + lookup.var.as_tensor().sqr()?.sum_all()?)?;
        }
        Ok(total)
    }

    /// Applies the row-wise optimizer to every gathered row.
    pub fn apply_gradients(
        &mut self,
        gathered: &Gathered,
        grads: &candle_core::backprop::GradStore,
    ) -> candle_core::Result<()> {
        for lookup in &gathered.linear {
            self.linear.apply_gradients(lookup, grads)?;
        }
        for lookup in &gathered.embedding {
            self.embedding.apply_gradients(lookup, grads)?;
        }
        Ok(())
    }

    /// Switches both tables to `optimizer` (same kind, see
    /// `EmbeddingTable::set_optimizer`).
    pub fn set_optimizer(&mut self, optimizer: OptimizerConfig) {
        self.linear.set_optimizer(optimizer);
        self.embedding.set_optimizer(optimizer);
    }

    /// Switches both tables to `optimizer`, restarting the rows' state
    /// when it is of another kind than theirs (see
    /// [`EmbeddingTable::restart_optimizer`]).
    pub fn use_optimizer(&mut self, optimizer: OptimizerConfig) {
        for table in [&mut self.linear, &mut self.embedding] {
            let same_kind = std::mem::discriminant(&table.config().optimizer)
                == std::mem::discriminant(&optimizer);
            match same_kind {
                true => table.set_optimizer(optimizer),
                false => table.restart_optimizer(optimizer),
            }
        }
    }

    /// The (linear, embedding) rows of `ids` that have any, for a delta.
    pub fn rows_of(&self, ids: &[u64]) -> [Vec<(u64, Vec<f32>)>; 2] {
        let rows = |table: &EmbeddingTable| {
            ids.iter().filter_map(|&id| Some((id, table.row(id)?.to_vec()))).collect()
        };
        [rows(&self.linear), rows(&self.embedding)]
    }

    /// Overwrites (or adds) the rows a delta carries.
    pub fn set_rows(&mut self, linear: &[(u64, Vec<f32>)], embedding: &[(u64, Vec<f32>)]) {
        linear.iter().for_each(|(id, row)| self.linear.set_row(*id, row));
        embedding.iter().for_each(|(id, row)| self.embedding.set_row(*id, row));
    }

    /// The two tables, for checkpoints.
    pub fn tables(&self) -> [&EmbeddingTable; 2] {
        [&self.linear, &self.embedding]
    }

    /// Rebuilds from checkpointed tables (linear, embedding).
    pub fn from_tables(
        linear: EmbeddingTable,
        embedding: EmbeddingTable,
        history_length: usize,
    ) -> SparseInputs {
        SparseInputs { linear, embedding, history_length }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_is_left_padded_and_truncated_to_the_most_recent() {
        let mut inputs = SparseInputs::new(
            2,
            3,
            OptimizerConfig::Adagrad { lr: 0.1, initial_accumulator: 0.1 },
            1,
        );
        let a = CtrFeatures { fields: vec![vec![1]], history: vec![10, 11, 12, 13] };
        let b = CtrFeatures { fields: vec![vec![2]], history: vec![12] };
        let c = CtrFeatures { fields: vec![vec![2]], history: vec![] };
        let needs = Needs { history: true, negatives: false };
        let (embedded, _) =
            inputs.embed_for_training(&[&a, &b, &c], needs, &[], &mut SeededRng::new(1)).unwrap();
        let history = embedded.history.unwrap();
        let mask: Vec<Vec<f32>> = history.mask.to_vec2().unwrap();
        assert_eq!(mask, vec![vec![1.0, 1.0, 1.0], vec![0.0, 0.0, 1.0], vec![0.0, 0.0, 0.0]]);
        let items: Vec<Vec<Vec<f32>>> = history.items.to_vec3().unwrap();
        // a keeps 11, 12, 13; b's only item (12) sits last and equals a's 12.
        assert_eq!(items[1][2], items[0][1]);
        assert_eq!(items[1][0], vec![0.0, 0.0]);
        assert_ne!(items[0][2], vec![0.0, 0.0]);
        assert_eq!(embedded.fields.dims(), &[3, 1, 2]);
        assert_eq!(embedded.linear.dims(), &[3]);
    }
}
