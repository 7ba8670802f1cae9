//! Factorization Machine (Rendle, ICDM 2010) over categorical fields:
//! `logit = b + Σ_f w_f + ½ · Σ_k ((Σ_f v_{f,k})² − Σ_f v_{f,k}²)`, where a
//! multi-valued field's w and v are the mean over its ids.
//!
//! Arches and shapes (B = batch, F = fields, K = factor dimension):
//! - `bias`: a one-row table (B × 1 after gathering the same row B times);
//! - `linear`: sparse table of dimension 1, pooled per field (F tensors of B × 1);
//! - `factors`: sparse table of dimension K, pooled per field (F tensors of B × K);
//! - interaction: ½ (sum² − sum of squares) over fields, summed over K (B).
//!
//! All parameters are sparse rows, so a step touches only the rows the batch uses.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use cascade_eval::protocols::{CtrExample, CtrScorer, evaluate_ctr};
use cascade_nn::{EmbeddingTable, Lookup, OptimizerConfig, Pooling, TableConfig};

use crate::early_stopping::{EarlyStopping, Verdict};
use crate::random::SeededRng;
use crate::ranking::fields::FieldIds;
use crate::training::TrainingSettings;

/// FM hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FmConfig {
    /// Factor dimension K.
    pub dim: usize,
    /// Batching, epochs, early stopping on validation AUC, L2 on factor rows,
    /// optimizer of all tables, seed.
    pub training: TrainingSettings,
}

impl Default for FmConfig {
    fn default() -> Self {
        FmConfig {
            dim: 16,
            training: TrainingSettings {
                batch_size: 1024,
                max_epochs: 30,
                patience: 3,
                reg: 1e-5,
                optimizer: OptimizerConfig::Adam { lr: 0.002, beta1: 0.9, beta2: 0.999 },
                seed: 2026,
            },
        }
    }
}

/// A trained FM.
#[derive(Debug, Clone)]
pub struct Fm {
    bias: EmbeddingTable,
    linear: EmbeddingTable,
    factors: EmbeddingTable,
}

/// Per-field pooled rows of one table, with the lookups to update.
struct Pooled {
    lookups: Vec<Lookup>,
    fields: Vec<Tensor>,
}

fn pool_fields(table: &mut EmbeddingTable, batch: &[&FieldIds]) -> candle_core::Result<Pooled> {
    let n_fields = batch.first().map_or(0, |ids| ids.len());
    let mut lookups = Vec::with_capacity(n_fields);
    let mut fields = Vec::with_capacity(n_fields);
    for f in 0..n_fields {
        let bags: Vec<Vec<u64>> = batch.iter().map(|ids| ids[f].clone()).collect();
        let (lookup, pooled) = table.lookup_bags(&bags, Pooling::Mean)?;
        lookups.push(lookup);
        fields.push(pooled);
    }
    Ok(Pooled { lookups, fields })
}

fn frozen_fields(table: &EmbeddingTable, batch: &[&FieldIds]) -> candle_core::Result<Vec<Tensor>> {
    // Inference: mean of known rows, unknown ids contribute zeros.
    let n_fields = batch.first().map_or(0, |ids| ids.len());
    let dim = table.config().dim;
    (0..n_fields)
        .map(|f| {
            let mut pooled = vec![0f32; batch.len() * dim];
            for (b, ids) in batch.iter().enumerate() {
                let bag = &ids[f];
                for &id in bag {
                    if let Some(row) = table.row(id) {
                        for (p, w) in pooled[b * dim..(b + 1) * dim].iter_mut().zip(row) {
                            *p += w / bag.len() as f32;
                        }
                    }
                }
            }
            Tensor::from_vec(pooled, (batch.len(), dim), &candle_core::Device::Cpu)
        })
        .collect()
}

/// FM logits (B) from per-field linear (B × 1) and factor (B × K) tensors.
fn logits(bias: &Tensor, linear: &[Tensor], factors: &[Tensor]) -> candle_core::Result<Tensor> {
    let linear_sum = Tensor::stack(linear, 0)?.sum(0)?.squeeze(1)?;
    let stacked = Tensor::stack(factors, 0)?; // F × B × K
    let sum_sq = stacked.sum(0)?.sqr()?;
    let sq_sum = stacked.sqr()?.sum(0)?;
    let interaction = ((sum_sq - sq_sum)? * 0.5)?.sum(1)?;
    (bias.squeeze(1)? + linear_sum)? + interaction
}

impl Fm {
    fn new(config: &FmConfig) -> Fm {
        let table = |name: &str, dim: usize, scale: f32, seed: u64| {
            EmbeddingTable::new(TableConfig {
                name: name.into(),
                dim,
                optimizer: config.training.optimizer,
                init_scale: scale,
                seed,
            })
        };
        Fm {
            bias: table("bias", 1, 0.0, config.training.seed),
            linear: table("linear", 1, 0.0, config.training.seed ^ 1),
            factors: table("factors", config.dim, 0.01, config.training.seed ^ 2),
        }
    }

    fn step(&mut self, batch: &[&CtrExample<FieldIds>], reg: f32) -> candle_core::Result<f64> {
        let ids: Vec<&FieldIds> = batch.iter().map(|e| &e.features).collect();
        let bias_lookup = self.bias.lookup(&vec![0; batch.len()])?;
        let linear = pool_fields(&mut self.linear, &ids)?;
        let factors = pool_fields(&mut self.factors, &ids)?;
        let z = logits(bias_lookup.var.as_tensor(), &linear.fields, &factors.fields)?;
        let labels: Vec<f32> = batch.iter().map(|e| e.label as u8 as f32).collect();
        let y = Tensor::from_vec(labels, batch.len(), &candle_core::Device::Cpu)?;
        // Binary cross-entropy with logits: log(1 + e^z) − y·z, z clamped for exp.
        let z = z.clamp(-30f32, 30f32)?;
        let bce = (z.exp()?.affine(1.0, 1.0)?.log()? - (&y * &z)?)?.mean_all()?;
        let mut penalty = Tensor::new(0f32, &candle_core::Device::Cpu)?;
        for lookup in &factors.lookups {
            penalty = (penalty + lookup.var.as_tensor().sqr()?.sum_all()?)?;
        }
        let loss = (bce + (penalty * (reg as f64 / batch.len() as f64))?)?;
        let grads = loss.backward()?;
        self.bias.apply_gradients(&bias_lookup, &grads)?;
        for lookup in &linear.lookups {
            self.linear.apply_gradients(lookup, &grads)?;
        }
        for lookup in &factors.lookups {
            self.factors.apply_gradients(lookup, &grads)?;
        }
        loss.to_scalar::<f32>().map(f64::from)
    }

    /// Trains on `train`, keeping the epoch with the best AUC on `valid`.
    /// Returns the model and each epoch's (train loss, validation AUC).
    pub fn train(
        train: &[CtrExample<FieldIds>],
        valid: &[CtrExample<FieldIds>],
        config: &FmConfig,
        mut on_epoch: impl FnMut(usize, f64, f64),
    ) -> candle_core::Result<(Fm, Vec<(f64, f64)>)> {
        let mut model = Fm::new(config);
        let mut order: Vec<usize> = (0..train.len()).collect();
        let mut rng = SeededRng::new(config.training.seed);
        let mut stopping = EarlyStopping::new(config.training.patience);
        let mut best = None;
        let mut history = Vec::new();
        for epoch in 0..config.training.max_epochs {
            rng.shuffle(&mut order);
            let (mut loss_sum, mut batches) = (0.0, 0usize);
            for chunk in order.chunks(config.training.batch_size) {
                let batch: Vec<&CtrExample<FieldIds>> = chunk.iter().map(|&i| &train[i]).collect();
                loss_sum += model.step(&batch, config.training.reg)?;
                batches += 1;
            }
            let auc = evaluate_ctr(&model, valid).auc;
            let loss = loss_sum / batches.max(1) as f64;
            on_epoch(epoch, loss, auc);
            history.push((loss, auc));
            match stopping.observe(epoch, auc) {
                Verdict::Improved => best = Some(model.clone()),
                Verdict::Continue => {}
                Verdict::Stop => break,
            }
        }
        Ok((best.unwrap_or(model), history))
    }

    fn predict_batch(&self, batch: &[&FieldIds]) -> candle_core::Result<Vec<f64>> {
        let bias = self.bias.lookup_frozen(&vec![0; batch.len()])?;
        let linear = frozen_fields(&self.linear, batch)?;
        let factors = frozen_fields(&self.factors, batch)?;
        let z: Vec<f32> = logits(&bias, &linear, &factors)?.to_vec1()?;
        Ok(z.into_iter().map(|z| 1.0 / (1.0 + (-(z as f64)).exp())).collect())
    }
}

impl CtrScorer<FieldIds> for Fm {
    fn predict(&self, examples: &[CtrExample<FieldIds>]) -> Vec<f64> {
        examples
            .chunks(4096)
            .flat_map(|chunk| {
                let ids: Vec<&FieldIds> = chunk.iter().map(|e| &e.features).collect();
                self.predict_batch(&ids).expect("inference on CPU tensors of matching shapes")
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Labels follow an interaction: positive iff user group and item group
    /// agree. Neither field alone predicts it; FM's factors must.
    #[test]
    fn learns_a_pure_interaction() {
        let mut rng = SeededRng::new(5);
        let example = |rng: &mut SeededRng| {
            let (u, i) = (rng.below(20) as u64, rng.below(20) as u64);
            CtrExample {
                user: u as u32,
                label: (u % 2) == (i % 2),
                features: vec![vec![u], vec![100 + i]],
            }
        };
        let train: Vec<_> = (0..4000).map(|_| example(&mut rng)).collect();
        let valid: Vec<_> = (0..500).map(|_| example(&mut rng)).collect();
        let mut config = FmConfig { dim: 4, ..FmConfig::default() };
        config.training.batch_size = 128;
        config.training.max_epochs = 25;
        config.training.patience = 25;
        config.training.optimizer = OptimizerConfig::Adam { lr: 0.02, beta1: 0.9, beta2: 0.999 };
        let (model, history) = Fm::train(&train, &valid, &config, |_, _, _| {}).unwrap();
        let auc = evaluate_ctr(&model, &valid).auc;
        assert!(auc > 0.95, "FM should capture the interaction, AUC {auc}; history {history:?}");
    }
}
