//! An embedding table whose training step touches only the rows in the batch.
//!
//! Shapes: B = examples in the batch, T = ids gathered (B for single-valued
//! features, the total bag size for multi-valued ones), D = dimension.
//!
//! ```text
//! ids (T) ──gather──► leaf Var (T × D) ──[pool: (B × T) · (T × D)]──► B × D ──► model
//!                              ▲                                                  │
//!                              └──── candle backward: ∂loss/∂leaf (T × D) ◄───────┘
//!                                          │ sum per row, row-wise optimizer
//!                                          ▼
//!                                    touched rows only
//! ```

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::id_map::{IdMap, Slot};
use crate::optimizers::{OptimizerConfig, RowOptimizer};

/// How a multi-valued feature's rows are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// Sum of the rows.
    Sum,
    /// Mean of the rows (an empty bag gives zeros).
    Mean,
}

/// A table's settings; saved in checkpoint manifests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableConfig {
    /// Table name; features that share a table name share rows.
    pub name: String,
    /// Embedding dimension D.
    pub dim: usize,
    /// Row-wise optimizer.
    pub optimizer: OptimizerConfig,
    /// Fresh rows are uniform in ±init_scale.
    pub init_scale: f32,
    /// Seed of the deterministic row initialisation.
    pub seed: u64,
}

/// A table: id map, weights, optimizer state.
#[derive(Debug)]
pub struct EmbeddingTable {
    config: TableConfig,
    ids: IdMap,
    weights: Vec<f32>,
    state: Vec<f32>,
    row_steps: Vec<u32>,
    optimizer: Box<dyn RowOptimizer>,
    clock: u64,
}

/// The rows gathered for one batch: the leaf variable candle differentiates,
/// and which table row each of its rows came from.
#[derive(Debug)]
pub struct Lookup {
    /// T × D leaf.
    pub var: Var,
    rows: Vec<u32>,
}

/// A table's stored form: live (id, row) pairs and the row-major arrays.
#[derive(Debug)]
pub struct TableParts<'a> {
    /// Live (id, row) pairs.
    pub entries: Vec<(u64, u32)>,
    /// rows × D weights.
    pub weights: &'a [f32],
    /// rows × (slots · D) optimizer state.
    pub state: &'a [f32],
    /// Updates per row.
    pub row_steps: &'a [u32],
}

/// splitmix64: a fixed, seedable hash for reproducible initialisation.
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl Clone for EmbeddingTable {
    fn clone(&self) -> EmbeddingTable {
        EmbeddingTable {
            config: self.config.clone(),
            ids: self.ids.clone(),
            weights: self.weights.clone(),
            state: self.state.clone(),
            row_steps: self.row_steps.clone(),
            optimizer: self.config.optimizer.build(),
            clock: self.clock,
        }
    }
}

impl EmbeddingTable {
    /// An empty table.
    pub fn new(config: TableConfig) -> EmbeddingTable {
        let optimizer = config.optimizer.build();
        EmbeddingTable {
            config,
            ids: IdMap::new(),
            weights: Vec::new(),
            state: Vec::new(),
            row_steps: Vec::new(),
            optimizer,
            clock: 0,
        }
    }

    /// Switches to `optimizer`, which must keep the state layout (the same
    /// kind, e.g. from [`OptimizerConfig::with_step_scaled`]); rows keep
    /// their weights and optimizer state.
    pub fn set_optimizer(&mut self, optimizer: OptimizerConfig) {
        assert_eq!(
            std::mem::discriminant(&optimizer),
            std::mem::discriminant(&self.config.optimizer),
            "an optimizer of another kind would misread the rows' state"
        );
        self.config.optimizer = optimizer;
        self.optimizer = optimizer.build();
    }

    /// Switches to an optimizer of another kind: rows keep their weights,
    /// and their state starts afresh in the new layout (e.g. Adagrad's
    /// accumulators from zero, for rows trained with Adam and now updated
    /// online).
    pub fn restart_optimizer(&mut self, optimizer: OptimizerConfig) {
        self.config.optimizer = optimizer;
        self.optimizer = optimizer.build();
        let slots = self.optimizer.state_per_dim() * self.config.dim;
        self.state = vec![0.0; self.row_steps.len() * slots];
        self.row_steps.iter_mut().for_each(|steps| *steps = 0);
    }

    /// The table's settings.
    pub fn config(&self) -> &TableConfig {
        &self.config
    }

    /// Live ids.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the table holds no id.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Bytes held by weights, optimizer state and step counts (the id map's
    /// hash table adds about 16 bytes per id on top).
    pub fn memory_bytes(&self) -> usize {
        (self.weights.len() + self.state.len() + self.row_steps.len()) * 4
            + self.ids.capacity_rows() * 24
    }

    /// Sets the logical time recorded as "last seen" for ids looked up from now on.
    pub fn set_clock(&mut self, now: u64) {
        self.clock = now;
    }

    /// Evicts ids unseen since `cutoff`; their rows are reinitialised on reuse.
    pub fn evict_unseen_since(&mut self, cutoff: u64) -> usize {
        self.ids.evict_unseen_since(cutoff).len()
    }

    fn initialise(&mut self, row: u32, id: u64) {
        let dim = self.config.dim;
        let slots = self.optimizer.state_per_dim() * dim;
        let row = row as usize;
        if row * dim == self.weights.len() {
            self.weights.resize((row + 1) * dim, 0.0);
            self.state.resize((row + 1) * slots, 0.0);
            self.row_steps.push(0);
        }
        // The same (seed, id) always starts from the same vector, whatever
        // order ids arrive in: runs are reproducible and online inserts match.
        let base = mix(self.config.seed ^ mix(id));
        for (j, w) in self.weights[row * dim..(row + 1) * dim].iter_mut().enumerate() {
            let unit = (mix(base.wrapping_add(j as u64)) >> 40) as f32 / (1u64 << 24) as f32;
            *w = (unit * 2.0 - 1.0) * self.config.init_scale;
        }
        self.state[row * slots..(row + 1) * slots].iter_mut().for_each(|s| *s = 0.0);
        self.row_steps[row] = 0;
    }

    fn row_for_training(&mut self, id: u64) -> u32 {
        match self.ids.get_or_insert(id, self.clock) {
            Slot::Existing(row) => row,
            Slot::Fresh(row) => {
                self.initialise(row, id);
                row
            }
        }
    }

    /// The weights of `id`, if it has a row.
    pub fn row(&self, id: u64) -> Option<&[f32]> {
        let dim = self.config.dim;
        self.ids.get(id).map(|row| &self.weights[row as usize * dim..(row as usize + 1) * dim])
    }

    /// Overwrites the weights of `id` (adding a row when it has none), e.g.
    /// from a delta another copy of the model published. Its optimizer
    /// state starts fresh: a serving copy never trains.
    pub fn set_row(&mut self, id: u64, weights: &[f32]) {
        assert_eq!(weights.len(), self.config.dim, "a row of the table's dimension");
        let dim = self.config.dim;
        let row = self.row_for_training(id) as usize;
        self.weights[row * dim..(row + 1) * dim].copy_from_slice(weights);
    }

    /// Gathers the rows of `ids` for a training step, giving unseen ids fresh rows.
    pub fn lookup(&mut self, ids: &[u64]) -> candle_core::Result<Lookup> {
        let (rows, gathered) = self.gather(ids);
        let tensor = Tensor::from_vec(gathered, (rows.len(), self.config.dim), &Device::Cpu)?;
        Ok(Lookup { var: Var::from_tensor(&tensor)?, rows })
    }

    /// The rows of `ids` (fresh rows for unseen ids) and their weights, T × D
    /// row-major: for fused kernels that compute their own gradient and hand
    /// it to [`apply_row_gradients`](Self::apply_row_gradients).
    pub fn gather(&mut self, ids: &[u64]) -> (Vec<u32>, Vec<f32>) {
        let dim = self.config.dim;
        let rows: Vec<u32> = ids.iter().map(|&id| self.row_for_training(id)).collect();
        let mut gathered = Vec::with_capacity(rows.len() * dim);
        for &row in &rows {
            gathered.extend_from_slice(&self.weights[row as usize * dim..(row as usize + 1) * dim]);
        }
        (rows, gathered)
    }

    /// Gathers the rows of every id of every bag, and the B × D pooled tensor
    /// (differentiable with respect to the lookup's leaf).
    pub fn lookup_bags(
        &mut self,
        bags: &[Vec<u64>],
        pooling: Pooling,
    ) -> candle_core::Result<(Lookup, Tensor)> {
        let flat: Vec<u64> = bags.iter().flatten().copied().collect();
        let lookup = self.lookup(&flat)?;
        let pooled = self.pool(lookup.var.as_tensor(), bags, pooling)?;
        Ok((lookup, pooled))
    }

    /// [`lookup_bags`](Self::lookup_bags) for inference: no growth, unseen ids
    /// read as zeros (so they still count in a mean's denominator).
    pub fn lookup_bags_frozen(
        &self,
        bags: &[Vec<u64>],
        pooling: Pooling,
    ) -> candle_core::Result<Tensor> {
        let flat: Vec<u64> = bags.iter().flatten().copied().collect();
        self.pool(&self.lookup_frozen(&flat)?, bags, pooling)
    }

    /// Pools `gathered` (T × D, the bags' rows in order) into B × D.
    fn pool(
        &self,
        gathered: &Tensor,
        bags: &[Vec<u64>],
        pooling: Pooling,
    ) -> candle_core::Result<Tensor> {
        if bags.iter().all(|bag| bag.len() == 1) {
            // Every bag holds one id: pooling is the identity, skip the scatter.
            return Ok(gathered.clone());
        }
        let zeros =
            Tensor::zeros((bags.len(), self.config.dim), candle_core::DType::F32, &Device::Cpu)?;
        let total: usize = bags.iter().map(Vec::len).sum();
        if total == 0 {
            return Ok(zeros);
        }
        // Each gathered row is scaled by its bag's weight, then added into its
        // bag's output row: O(T × D), differentiable through index_add.
        let mut owner = Vec::with_capacity(total);
        let mut scale = Vec::with_capacity(total);
        for (b, bag) in bags.iter().enumerate() {
            let weight = match pooling {
                Pooling::Sum => 1.0,
                Pooling::Mean => 1.0 / bag.len() as f32,
            };
            owner.extend(std::iter::repeat_n(b as u32, bag.len()));
            scale.extend(std::iter::repeat_n(weight, bag.len()));
        }
        let owner = Tensor::from_vec(owner, total, &Device::Cpu)?;
        let scale = Tensor::from_vec(scale, (total, 1), &Device::Cpu)?;
        zeros.index_add(&owner, &gathered.broadcast_mul(&scale)?, 0)
    }

    /// Rows for inference: no growth; unseen ids read as zeros.
    pub fn lookup_frozen(&self, ids: &[u64]) -> candle_core::Result<Tensor> {
        let dim = self.config.dim;
        let mut gathered = vec![0f32; ids.len() * dim];
        for (i, &id) in ids.iter().enumerate() {
            if let Some(row) = self.row(id) {
                gathered[i * dim..(i + 1) * dim].copy_from_slice(row);
            }
        }
        Tensor::from_vec(gathered, (ids.len(), dim), &Device::Cpu)
    }

    /// Applies the gradient candle computed for `lookup`'s leaf to the touched
    /// rows (gradients of repeated rows are summed first, one update per row).
    /// Returns the rows updated, which is also what an online update ships.
    pub fn apply_gradients(
        &mut self,
        lookup: &Lookup,
        grads: &GradStore,
    ) -> candle_core::Result<Vec<u32>> {
        let Some(grad) = grads.get(lookup.var.as_tensor()) else { return Ok(Vec::new()) };
        let grad: Vec<f32> = grad.flatten_all()?.to_vec1()?;
        self.apply_row_gradients(&lookup.rows, &grad);
        let mut touched = lookup.rows.clone();
        touched.sort_unstable();
        touched.dedup();
        Ok(touched)
    }

    /// The optimizer step on raw per-lookup-row gradients (`rows.len() × D`).
    pub fn apply_row_gradients(&mut self, rows: &[u32], grad: &[f32]) {
        let dim = self.config.dim;
        let mut order: Vec<usize> = (0..rows.len()).collect();
        order.sort_by_key(|&i| rows[i]);
        let slots = self.optimizer.state_per_dim() * dim;
        let mut summed = vec![0f32; dim];
        let mut i = 0;
        while i < order.len() {
            let row = rows[order[i]] as usize;
            summed.iter_mut().for_each(|s| *s = 0.0);
            while i < order.len() && rows[order[i]] as usize == row {
                let g = &grad[order[i] * dim..(order[i] + 1) * dim];
                summed.iter_mut().zip(g).for_each(|(s, g)| *s += g);
                i += 1;
            }
            let step = self.row_steps[row];
            self.optimizer.update(
                &mut self.weights[row * dim..(row + 1) * dim],
                &mut self.state[row * slots..(row + 1) * slots],
                &summed,
                step,
            );
            self.row_steps[row] = step + 1;
        }
    }

    /// Everything a checkpoint stores.
    pub fn parts(&self) -> TableParts<'_> {
        TableParts {
            entries: self.ids.entries(),
            weights: &self.weights,
            state: &self.state,
            row_steps: &self.row_steps,
        }
    }

    /// Rebuilds a table from checkpoint parts (shapes checked by the caller).
    pub fn from_parts(
        config: TableConfig,
        entries: &[(u64, u32)],
        weights: Vec<f32>,
        state: Vec<f32>,
        row_steps: Vec<u32>,
    ) -> EmbeddingTable {
        let optimizer = config.optimizer.build();
        let ids = IdMap::from_entries(entries, row_steps.len());
        EmbeddingTable { config, ids, weights, state, row_steps, optimizer, clock: 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(dim: usize) -> EmbeddingTable {
        EmbeddingTable::new(TableConfig {
            name: "items".into(),
            dim,
            optimizer: OptimizerConfig::Adagrad { lr: 0.1, initial_accumulator: 0.0 },
            init_scale: 0.1,
            seed: 7,
        })
    }

    /// Another kind of optimizer keeps the weights and restarts the state
    /// in its own layout; the next step is that optimizer's first.
    #[test]
    fn a_restarted_optimizer_keeps_weights_and_reshapes_state() {
        let mut adam = table(4);
        adam.restart_optimizer(OptimizerConfig::Adam { lr: 0.1, beta1: 0.9, beta2: 0.999 });
        let (rows, _) = adam.gather(&[1, 2]);
        adam.apply_row_gradients(&rows, &[1.0; 8]);
        assert_eq!(adam.parts().state.len(), 2 * 2 * 4, "Adam: two slots per coordinate");
        let weights = adam.row(1).unwrap().to_vec();
        adam.restart_optimizer(OptimizerConfig::Adagrad { lr: 0.1, initial_accumulator: 0.0 });
        assert_eq!(adam.row(1).unwrap(), weights.as_slice());
        assert_eq!(adam.parts().state, vec![0.0; 2 * 4].as_slice(), "one fresh slot");
        let (rows, _) = adam.gather(&[1]);
        adam.apply_row_gradients(&rows, &[1.0; 4]);
        // Adagrad's first step from a zero accumulator: exactly lr · sign(g).
        let stepped = adam.row(1).unwrap();
        assert!(stepped.iter().zip(&weights).all(|(w, v)| (v - w - 0.1).abs() < 1e-6));
    }

    #[test]
    fn candle_gradient_reaches_only_the_touched_rows() {
        let mut t = table(4);
        t.lookup(&[1, 2, 3]).unwrap(); // create three rows
        let before: Vec<Vec<f32>> =
            [1, 2, 3].iter().map(|&id| t.row(id).unwrap().to_vec()).collect();
        let lookup = t.lookup(&[2, 2]).unwrap();
        let loss = lookup.var.as_tensor().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        let touched = t.apply_gradients(&lookup, &grads).unwrap();
        assert_eq!(touched.len(), 1);
        assert_eq!(t.row(1).unwrap(), before[0].as_slice());
        assert_eq!(t.row(3).unwrap(), before[2].as_slice());
        // d(sum)/d(row) = 1 per occurrence, summed to 2; Adagrad with acc = 4: step = 0.1·2/2.
        for (after, before) in t.row(2).unwrap().iter().zip(&before[1]) {
            assert!((before - after - 0.1).abs() < 1e-6);
        }
    }

    #[test]
    fn initialisation_is_per_id_not_per_arrival_order() {
        let mut a = table(8);
        let mut b = table(8);
        a.lookup(&[10, 20]).unwrap();
        b.lookup(&[20, 10]).unwrap();
        assert_eq!(a.row(10), b.row(10));
        assert!(a.row(10).unwrap().iter().all(|w| w.abs() <= 0.1));
        assert_ne!(a.row(10), a.row(20));
    }

    #[test]
    fn mean_bags_pool_and_backpropagate() {
        let mut t = table(2);
        let (lookup, pooled) =
            t.lookup_bags(&[vec![1, 2], vec![3], vec![]], Pooling::Mean).unwrap();
        assert_eq!(pooled.dims(), &[3, 2]);
        let p: Vec<Vec<f32>> = pooled.to_vec2().unwrap();
        let r1 = t.row(1).unwrap();
        let r2 = t.row(2).unwrap();
        assert!((p[0][0] - (r1[0] + r2[0]) / 2.0).abs() < 1e-6);
        assert_eq!(p[2], vec![0.0, 0.0]);
        let grads = pooled.sum_all().unwrap().backward().unwrap();
        let g: Vec<f32> =
            grads.get(lookup.var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(g, vec![0.5, 0.5, 0.5, 0.5, 1.0, 1.0]);
    }

    #[test]
    fn frozen_lookups_do_not_grow_and_unknown_ids_are_zero() {
        let mut t = table(3);
        t.lookup(&[5]).unwrap();
        let frozen: Vec<Vec<f32>> = t.lookup_frozen(&[5, 99]).unwrap().to_vec2().unwrap();
        assert_eq!(frozen[1], vec![0.0; 3]);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn evicted_ids_come_back_fresh() {
        let mut t = table(2);
        t.set_clock(1);
        let lookup = t.lookup(&[1]).unwrap();
        let fresh = t.row(1).unwrap().to_vec();
        t.apply_row_gradients(&[lookup.rows[0]], &[1.0, 1.0]);
        assert_ne!(t.row(1).unwrap(), fresh.as_slice());
        t.set_clock(10);
        assert_eq!(t.evict_unseen_since(5), 1);
        assert!(t.row(1).is_none());
        t.lookup(&[1]).unwrap();
        assert_eq!(t.row(1).unwrap(), fresh.as_slice(), "reinitialised, state reset");
    }
}
