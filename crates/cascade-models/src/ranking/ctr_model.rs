//! One ranking model = sparse inputs ([`SparseInputs`]) + a dense head
//! ([`heads`](crate::ranking::heads)), trained on binary cross-entropy with
//! early stopping on validation AUC.
//!
//! Per step: gather the batch's rows (sparse), run the head (dense, candle),
//! backward once, then the row-wise optimizer updates the touched rows and
//! AdamW the dense parameters. The epoch with the best validation AUC is kept.

use std::time::Instant;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use cascade_eval::protocols::{CtrExample, CtrScorer, evaluate_ctr};
use cascade_nn::{DenseParams, DenseSnapshot, EmbeddingTable, OptimizerConfig};

use crate::early_stopping::{EarlyStopping, Verdict};
use crate::random::SeededRng;
use crate::ranking::fused::FusedFactorization;
use crate::ranking::heads::{self, Head, HeadShape};
use crate::ranking::inputs::{CtrFeatures, SparseInputs};
use crate::training::TrainingSettings;

/// The ranking architectures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CtrArch {
    /// Logistic regression on the fields' ids.
    Lr,
    /// Factorization machine.
    Fm,
    /// Wide & Deep.
    WideDeep,
    /// DeepFM.
    DeepFm,
    /// DCNv2 (stacked, full-rank cross layers).
    DcnV2,
    /// Deep Interest Network (attention over the history).
    Din,
    /// Deep Interest Evolution Network (GRU + AUGRU over the history).
    Dien,
}

impl CtrArch {
    /// Every architecture, in the order the docs list them.
    pub const ALL: [CtrArch; 7] = [
        CtrArch::Lr,
        CtrArch::Fm,
        CtrArch::WideDeep,
        CtrArch::DeepFm,
        CtrArch::DcnV2,
        CtrArch::Din,
        CtrArch::Dien,
    ];

    /// The CLI and checkpoint name.
    pub fn name(self) -> &'static str {
        match self {
            CtrArch::Lr => "lr",
            CtrArch::Fm => "fm",
            CtrArch::WideDeep => "wide-deep",
            CtrArch::DeepFm => "deepfm",
            CtrArch::DcnV2 => "dcnv2",
            CtrArch::Din => "din",
            CtrArch::Dien => "dien",
        }
    }
}

/// Settings of a ranking model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CtrModelConfig {
    /// Architecture.
    pub arch: CtrArch,
    /// Embedding dimension D.
    pub dim: usize,
    /// Hidden widths of the deep tower.
    pub hidden: Vec<usize>,
    /// History items read by DIN / DIEN (most recent L).
    pub history_length: usize,
    /// AdamW learning rate of the dense parameters.
    pub dense_lr: f64,
    /// Batching, epochs, patience, L2 on gathered rows, sparse optimizer, seed.
    pub training: TrainingSettings,
}

impl CtrModelConfig {
    /// Defaults that converge on ML100K-CTR without touching test (chosen on
    /// validation AUC).
    pub fn default_for(arch: CtrArch) -> CtrModelConfig {
        // LR's first-order weights start at zero and are all it has: at 0.002
        // it was still improving after 30 epochs. Validation AUC on
        // ML100K-CTR: lr 0.002 → 0.7800, 0.01 → 0.7850, 0.05 → 0.7816.
        let sparse_lr = if arch == CtrArch::Lr { 0.01 } else { 0.002 };
        // DIEN's two GRUs unroll over L = 50 steps and candle keeps the whole
        // graph until backward: at 1,024 rows a step peaked at 555 MB of RSS,
        // over the 500 MB budget; 512 rows halve the graph.
        let batch_size = if arch == CtrArch::Dien { 512 } else { 1024 };
        CtrModelConfig {
            arch,
            dim: 16,
            hidden: vec![64, 32],
            history_length: 50,
            dense_lr: 0.001,
            training: TrainingSettings {
                batch_size,
                max_epochs: 30,
                patience: 3,
                reg: 1e-5,
                optimizer: OptimizerConfig::Adam { lr: sparse_lr, beta1: 0.9, beta2: 0.999 },
                seed: 2026,
                time_budget_s: None,
            },
        }
    }
}

/// One epoch's numbers.
#[derive(Debug, Clone, Serialize)]
pub struct CtrEpoch {
    /// 0-based epoch.
    pub epoch: usize,
    /// Mean training loss (BCE + auxiliary + L2).
    pub train_loss: f64,
    /// Validation AUC after the epoch.
    pub valid_auc: f64,
    /// Seconds spent training (not validating).
    pub train_seconds: f64,
    /// Training examples per second.
    pub samples_per_s: f64,
}

/// A ranking model.
#[derive(Debug)]
pub struct CtrModel {
    config: CtrModelConfig,
    item_field: usize,
    sparse: SparseInputs,
    dense: DenseParams,
    head: Box<dyn Head>,
    n_fields: usize,
    /// A candle-free copy of the head for serving, once asked for; dropped
    /// by every training step, so it is never stale.
    fused: Option<FusedFactorization>,
}

/// How [`CtrModel::update`] learns from new examples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OnlineUpdate {
    /// Examples per step.
    pub batch_size: usize,
    /// AdamW learning rate of the dense layers.
    pub dense_lr: f64,
    /// How the sparse rows step.
    pub sparse: SparseOnline,
}

/// The sparse rows' optimizer online.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SparseOnline {
    /// Training's optimizer, its step scaled by this factor; the rows'
    /// state (lazy Adam's moments) carries on.
    TrainingScaled(f32),
    /// Row-wise Adagrad at this learning rate. The rows' training state
    /// is dropped at the first update; from then on each coordinate's step
    /// shrinks with the gradients it has seen, so a row seen often settles
    /// while a new one learns fast.
    Adagrad(f32),
}

/// Adagrad's initial accumulator online: caps a fresh row's first steps
/// at about 3× the learning rate.
const ONLINE_ADAGRAD_INITIAL_ACCUMULATOR: f32 = 0.1;

/// The rows and tensors an online-updated copy publishes to the serving
/// copy ([`CtrModel::delta_for`], [`CtrModel::apply_delta`]).
#[derive(Debug, Clone)]
pub struct ModelDelta {
    /// (feature id, row) of the linear table.
    pub linear: Vec<(u64, Vec<f32>)>,
    /// (feature id, row) of the embedding table.
    pub embedding: Vec<(u64, Vec<f32>)>,
    /// Every dense tensor.
    pub dense: DenseSnapshot,
}

impl ModelDelta {
    /// Sparse rows carried.
    pub fn rows(&self) -> usize {
        self.linear.len() + self.embedding.len()
    }
}

/// Binary cross-entropy with logits: mean of log(1 + eᶻ) − y·z.
fn bce_with_logits(logits: &Tensor, labels: &Tensor) -> candle_core::Result<Tensor> {
    let z = logits.clamp(-30f32, 30f32)?;
    (z.exp()?.affine(1.0, 1.0)?.log()? - (labels * &z)?)?.mean_all()
}

impl CtrModel {
    /// A fresh model over `n_fields` fields; `item_field` is the target item's field.
    pub fn new(
        config: &CtrModelConfig,
        n_fields: usize,
        item_field: usize,
    ) -> candle_core::Result<CtrModel> {
        let seed = config.training.seed;
        let sparse =
            SparseInputs::new(config.dim, config.history_length, config.training.optimizer, seed);
        let mut dense = DenseParams::new(seed ^ 3, config.dense_lr);
        let shape = HeadShape { fields: n_fields, dim: config.dim, hidden: &config.hidden };
        let head = heads::build(config.arch, shape, &mut dense)?;
        Ok(CtrModel {
            config: config.clone(),
            n_fields,
            item_field,
            sparse,
            dense,
            head,
            fused: None,
        })
    }

    /// The settings it was built with.
    pub fn config(&self) -> &CtrModelConfig {
        &self.config
    }

    fn step(
        &mut self,
        batch: &[&CtrExample<CtrFeatures>],
        item_pool: &[u64],
        rng: &mut SeededRng,
    ) -> candle_core::Result<f64> {
        self.fused = None;
        let features: Vec<&CtrFeatures> = batch.iter().map(|e| &e.features).collect();
        let (embedded, gathered) =
            self.sparse.embed_for_training(&features, self.head.needs(), item_pool, rng)?;
        let output = self.head.forward(&embedded, self.item_field)?;
        let labels: Vec<f32> = batch.iter().map(|e| f32::from(u8::from(e.label))).collect();
        let labels = Tensor::from_vec(labels, batch.len(), &Device::Cpu)?;
        let mut loss = bce_with_logits(&output.logits, &labels)?;
        if let Some(auxiliary) = output.auxiliary_loss {
            loss = (loss + auxiliary)?;
        }
        let penalty = SparseInputs::squared_norm(&gathered)?;
        let loss = (loss + (penalty * (self.config.training.reg as f64 / batch.len() as f64))?)?;
        let grads = loss.backward()?;
        self.sparse.apply_gradients(&gathered, &grads)?;
        self.dense.step(&grads)?;
        loss.to_scalar::<f32>().map(f64::from)
    }

    /// Trains on `train`, keeping the epoch with the best AUC on `valid`.
    /// `on_epoch` sees each epoch's numbers as they come.
    pub fn train(
        train: &[CtrExample<CtrFeatures>],
        valid: &[CtrExample<CtrFeatures>],
        config: &CtrModelConfig,
        item_field: usize,
        mut on_epoch: impl FnMut(&CtrEpoch),
    ) -> candle_core::Result<(CtrModel, Vec<CtrEpoch>)> {
        let n_fields = train.first().map_or(0, |e| e.features.fields.len());
        let mut model = CtrModel::new(config, n_fields, item_field)?;
        let item_pool = Self::item_pool(train, item_field);
        let mut order: Vec<usize> = (0..train.len()).collect();
        let mut rng = SeededRng::new(config.training.seed);
        let mut stopping = EarlyStopping::for_training(&config.training);
        let mut best: Option<(SparseInputs, DenseSnapshot)> = None;
        let mut history = Vec::new();
        for epoch in 0..config.training.max_epochs {
            let started = Instant::now();
            let train_loss = model.epoch(train, &mut order, &item_pool, &mut rng)?;
            let train_seconds = started.elapsed().as_secs_f64();
            let report = CtrEpoch {
                epoch,
                train_loss,
                valid_auc: evaluate_ctr(&model, valid).auc,
                train_seconds,
                samples_per_s: train.len() as f64 / train_seconds.max(1e-9),
            };
            on_epoch(&report);
            let verdict = stopping.observe(epoch, report.valid_auc);
            history.push(report);
            match verdict {
                Verdict::Improved => best = Some((model.sparse.clone(), model.dense.snapshot()?)),
                Verdict::Continue => {}
                Verdict::Stop => break,
            }
            if stopping.out_of_time() {
                break;
            }
        }
        if let Some((sparse, dense)) = best {
            model.sparse = sparse;
            model.dense.restore(&dense)?;
        }
        Ok((model, history))
    }

    /// Trains on `train` for exactly `epochs` epochs and keeps the last:
    /// the serving refit on every row, once `train` has chosen the epoch
    /// count on validation (nothing is held out, so nothing can choose it here).
    pub fn refit(
        train: &[CtrExample<CtrFeatures>],
        config: &CtrModelConfig,
        item_field: usize,
        epochs: usize,
    ) -> candle_core::Result<CtrModel> {
        let n_fields = train.first().map_or(0, |e| e.features.fields.len());
        let mut model = CtrModel::new(config, n_fields, item_field)?;
        let item_pool = Self::item_pool(train, item_field);
        let mut order: Vec<usize> = (0..train.len()).collect();
        let mut rng = SeededRng::new(config.training.seed);
        for _ in 0..epochs {
            model.epoch(train, &mut order, &item_pool, &mut rng)?;
        }
        Ok(model)
    }

    /// DIEN's negatives: items drawn in proportion to how often they occur.
    fn item_pool(train: &[CtrExample<CtrFeatures>], item_field: usize) -> Vec<u64> {
        train.iter().filter_map(|e| e.features.fields.get(item_field)?.first().copied()).collect()
    }

    /// One pass over `train` in a fresh shuffled `order`; the mean batch loss.
    fn epoch(
        &mut self,
        train: &[CtrExample<CtrFeatures>],
        order: &mut [usize],
        item_pool: &[u64],
        rng: &mut SeededRng,
    ) -> candle_core::Result<f64> {
        rng.shuffle(order);
        let (mut loss_sum, mut batches) = (0.0, 0usize);
        for chunk in order.chunks(self.config.training.batch_size) {
            let batch: Vec<&CtrExample<CtrFeatures>> = chunk.iter().map(|&i| &train[i]).collect();
            loss_sum += self.step(&batch, item_pool, rng)?;
            batches += 1;
        }
        Ok(loss_sum / batches.max(1) as f64)
    }

    /// An independent copy (sparse rows with their optimizer state, dense
    /// weights; the dense optimizer's moments start afresh).
    pub fn duplicate(&self) -> candle_core::Result<CtrModel> {
        let mut copy = CtrModel::new(&self.config, self.n_fields, self.item_field)?;
        copy.sparse = self.sparse.clone();
        copy.dense.restore(&self.dense.snapshot()?)?;
        Ok(copy)
    }

    /// One online pass over `examples` in the order given (the order they
    /// happened), in mini-batches of `settings.batch_size`: the sparse
    /// rows move by the row-wise optimizer they were trained with (its
    /// state carried on, its step scaled by `settings.sparse_step_scale`),
    /// the dense layers by AdamW at `settings.dense_lr`. Returns the mean loss before each
    /// step, i.e. on examples the model had not learned from yet.
    pub fn update(
        &mut self,
        examples: &[CtrExample<CtrFeatures>],
        settings: OnlineUpdate,
        rng: &mut SeededRng,
    ) -> candle_core::Result<f64> {
        let item_field = self.item_field;
        let item_pool: Vec<u64> = examples
            .iter()
            .filter_map(|e| e.features.fields.get(item_field)?.first().copied())
            .collect();
        self.dense.set_learning_rate(settings.dense_lr);
        let trained_with = self.config.training.optimizer;
        let online = match settings.sparse {
            SparseOnline::TrainingScaled(scale) => trained_with.with_step_scaled(scale),
            SparseOnline::Adagrad(lr) => OptimizerConfig::Adagrad {
                lr,
                initial_accumulator: ONLINE_ADAGRAD_INITIAL_ACCUMULATOR,
            },
        };
        self.sparse.use_optimizer(online);
        let (mut loss_sum, mut batches) = (0.0, 0usize);
        for chunk in examples.chunks(settings.batch_size.max(1)) {
            let batch: Vec<&CtrExample<CtrFeatures>> = chunk.iter().collect();
            loss_sum += self.step(&batch, &item_pool, rng)?;
            batches += 1;
        }
        self.dense.set_learning_rate(self.config.dense_lr);
        // Training's own optimizer comes back; Adagrad's accumulators stay
        // for the next update (a training run would restart them).
        if let SparseOnline::TrainingScaled(_) = settings.sparse {
            self.sparse.set_optimizer(trained_with);
        }
        Ok(loss_sum / batches.max(1) as f64)
    }

    fn predict_batch(&self, batch: &[&CtrFeatures]) -> candle_core::Result<Vec<f64>> {
        let embedded = self.sparse.embed_frozen(batch, self.head.needs())?;
        let logits: Vec<f32> = self.head.forward(&embedded, self.item_field)?.logits.to_vec1()?;
        Ok(logits.into_iter().map(|z| 1.0 / (1.0 + (-f64::from(z)).exp())).collect())
    }

    /// What changed since another copy of this model was taken, for the
    /// ids the updates touched: their sparse rows, and every dense tensor
    /// (a few thousand floats; the tables are what is large).
    pub fn delta_for(&self, touched: &[u64]) -> candle_core::Result<ModelDelta> {
        let [linear, embedding] = self.sparse.rows_of(touched);
        Ok(ModelDelta { linear, embedding, dense: self.dense.snapshot()? })
    }

    /// Applies a delta from an updated copy; the serving path is rebuilt
    /// if this model had one, so it is never stale.
    pub fn apply_delta(&mut self, delta: &ModelDelta) -> candle_core::Result<()> {
        self.sparse.set_rows(&delta.linear, &delta.embedding);
        self.dense.restore(&delta.dense)?;
        if self.fused.is_some() {
            self.prepare_for_serving()?;
        }
        Ok(())
    }

    /// The sparse tables and dense tensors, for a checkpoint.
    pub fn parts(&self) -> candle_core::Result<([&EmbeddingTable; 2], DenseSnapshot)> {
        Ok((self.sparse.tables(), self.dense.snapshot()?))
    }

    /// Rebuilds a model from checkpointed parts.
    pub fn from_parts(
        config: &CtrModelConfig,
        n_fields: usize,
        item_field: usize,
        linear: EmbeddingTable,
        embedding: EmbeddingTable,
        dense: &[(String, Tensor)],
    ) -> candle_core::Result<CtrModel> {
        let mut model = CtrModel::new(config, n_fields, item_field)?;
        model.sparse = SparseInputs::from_tables(linear, embedding, config.history_length);
        for (name, tensor) in dense {
            model.dense.set(name, tensor)?;
        }
        Ok(model)
    }
}

impl CtrModel {
    /// Prepares the model for scoring many small batches: LR, FM, Wide&Deep
    /// and DeepFM then score in plain Rust (`ranking::fused`), with the
    /// same results as candle to float rounding. Other heads are unchanged.
    pub fn prepare_for_serving(&mut self) -> candle_core::Result<()> {
        self.fused = self.head.as_factorization().map(FusedFactorization::new).transpose()?;
        Ok(())
    }

    /// Like `score`, for `n` examples of `n_fields` fields whose ids are
    /// `bag(example, field)`, without building `CtrFeatures`; `None` unless
    /// `prepare_for_serving` gave this model the serving path (the other
    /// heads need `score`).
    pub fn score_bags<'a>(
        &self,
        n: usize,
        n_fields: usize,
        bag: impl Fn(usize, usize) -> &'a [u64],
    ) -> Option<candle_core::Result<Vec<f64>>> {
        let fused = self.fused.as_ref()?;
        Some(fused.score_bags(&self.sparse, n, n_fields, bag))
    }

    /// Whether it reads `CtrFeatures::history` (DIN, DIEN).
    pub fn reads_history(&self) -> bool {
        self.head.needs().history
    }

    /// Click probabilities of `examples`, e.g. a request's candidates.
    pub fn score(&self, examples: &[&CtrFeatures]) -> candle_core::Result<Vec<f64>> {
        if let Some(fused) = &self.fused {
            return fused.score(&self.sparse, examples);
        }
        // Parameters are candle variables, so inference builds a graph too; small
        // chunks keep DIEN's unrolled GRU graph (L steps × chunk rows) small.
        let mut scores = Vec::with_capacity(examples.len());
        for chunk in examples.chunks(512) {
            scores.extend(self.predict_batch(chunk)?);
        }
        Ok(scores)
    }
}

impl CtrScorer<CtrFeatures> for CtrModel {
    #[allow(
        clippy::expect_used,
        reason = "the eval traits have no error path; CPU inference on shapes fixed at build"
    )]
    fn predict(&self, examples: &[CtrExample<CtrFeatures>]) -> Vec<f64> {
        let features: Vec<&CtrFeatures> = examples.iter().map(|e| &e.features).collect();
        self.score(&features).expect("inference on CPU tensors of matching shapes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Labels follow an interaction: positive iff user group and item group
    /// agree. Neither field alone predicts it; FM-style and deep models must
    /// learn it, LR cannot.
    fn interaction_data(seed: u64, n: usize) -> Vec<CtrExample<CtrFeatures>> {
        let mut rng = SeededRng::new(seed);
        (0..n)
            .map(|_| {
                let (u, i) = (rng.below(20) as u64, rng.below(20) as u64);
                CtrExample {
                    user: u as u32,
                    label: (u % 2) == (i % 2),
                    features: CtrFeatures {
                        fields: vec![vec![u], vec![100 + i]],
                        history: vec![100 + (i + 2) % 20],
                    },
                }
            })
            .collect()
    }

    fn trained_auc(arch: CtrArch) -> f64 {
        let (train, valid) = (interaction_data(5, 4000), interaction_data(6, 500));
        let mut config = CtrModelConfig::default_for(arch);
        config.dim = 4;
        config.hidden = vec![16];
        config.history_length = 2;
        config.dense_lr = 0.01;
        config.training.batch_size = 128;
        config.training.max_epochs = 25;
        config.training.patience = 25;
        config.training.optimizer = OptimizerConfig::Adam { lr: 0.02, beta1: 0.9, beta2: 0.999 };
        let (model, _) = CtrModel::train(&train, &valid, &config, 1, |_| {}).unwrap();
        evaluate_ctr(&model, &valid).auc
    }

    #[test]
    fn every_interaction_model_learns_a_pure_interaction_and_lr_cannot() {
        for arch in CtrArch::ALL {
            let auc = trained_auc(arch);
            if arch == CtrArch::Lr {
                assert!(auc < 0.6, "LR has no interaction term, AUC {auc}");
            } else {
                assert!(auc > 0.95, "{} should capture the interaction, AUC {auc}", arch.name());
            }
        }
    }

    /// New items arrive after training: the frozen model cannot tell their
    /// groups apart, and online updates on their first examples teach it.
    #[test]
    fn online_updates_learn_items_the_model_never_saw() {
        let shifted = |seed: u64, n: usize| -> Vec<CtrExample<CtrFeatures>> {
            interaction_data(seed, n)
                .into_iter()
                .map(|mut e| {
                    e.features.fields[1][0] += 100; // items 200..219: new ids
                    e
                })
                .collect()
        };
        let mut config = CtrModelConfig::default_for(CtrArch::Fm);
        config.dim = 4;
        config.training.batch_size = 64;
        config.training.max_epochs = 15;
        config.training.optimizer = OptimizerConfig::Adam { lr: 0.02, beta1: 0.9, beta2: 0.999 };
        let (train, valid) = (interaction_data(5, 4000), interaction_data(6, 500));
        let (model, _) = CtrModel::train(&train, &valid, &config, 1, |_| {}).unwrap();
        let (stream, later) = (shifted(7, 3000), shifted(8, 500));
        let frozen = evaluate_ctr(&model, &later).auc;
        assert!(frozen < 0.6, "unseen items carry no signal yet: AUC {frozen}");
        let trained = model;
        for sparse in [SparseOnline::TrainingScaled(1.0), SparseOnline::Adagrad(0.05)] {
            let mut model = trained.duplicate().unwrap();
            let mut rng = SeededRng::new(1);
            let settings = OnlineUpdate { batch_size: 64, dense_lr: config.dense_lr * 0.1, sparse };
            for day in stream.chunks(500) {
                model.update(day, settings, &mut rng).unwrap();
            }
            let online = evaluate_ctr(&model, &later).auc;
            assert!(online > 0.9, "{sparse:?} learns the new items: AUC {online}");
            let old = evaluate_ctr(&model, &valid).auc;
            assert!(old > 0.9, "{sparse:?} keeps the old ones: AUC {old}");
        }
        assert!(evaluate_ctr(&trained, &later).auc < 0.6, "a duplicate is independent of updates");
    }

    /// Serving's candle-free path gives candle's probabilities, with
    /// multi-id bags, empty bags and ids the model never saw.
    #[test]
    fn fused_factorization_scores_match_candle() {
        let mut rng = SeededRng::new(9);
        let mut example = |unseen: bool| {
            let (u, i) = (rng.below(20) as u64, rng.below(20) as u64);
            let genres = match i % 3 {
                0 => vec![],
                1 => vec![200 + i % 4],
                _ => vec![200 + i % 4, 210 + i % 5],
            };
            let item = if unseen { 999 } else { 100 + i };
            CtrExample {
                user: u as u32,
                label: (u % 2) == (i % 2),
                features: CtrFeatures {
                    fields: vec![vec![u], vec![item], genres],
                    history: vec![],
                },
            }
        };
        let train: Vec<_> = (0..2000).map(|_| example(false)).collect();
        let valid: Vec<_> = (0..200).map(|_| example(false)).collect();
        let probe: Vec<_> = (0..300).map(|k| example(k % 7 == 0)).collect();
        let probe: Vec<&CtrFeatures> = probe.iter().map(|e| &e.features).collect();
        for arch in [CtrArch::Lr, CtrArch::Fm, CtrArch::WideDeep, CtrArch::DeepFm] {
            let mut config = CtrModelConfig::default_for(arch);
            config.dim = 8;
            config.hidden = vec![16, 8];
            config.training.max_epochs = 3;
            let (mut model, _) = CtrModel::train(&train, &valid, &config, 1, |_| {}).unwrap();
            let candle = model.score(&probe).unwrap();
            model.prepare_for_serving().unwrap();
            assert!(model.fused.is_some(), "{}", arch.name());
            let fused = model.score(&probe).unwrap();
            let worst = candle.iter().zip(&fused).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            assert!(worst < 1e-5, "{}: largest difference {worst}", arch.name());
            assert!(candle.iter().any(|&p| (p - candle[0]).abs() > 1e-3), "scores vary");
        }
    }

    #[test]
    fn same_seed_same_predictions() {
        let (train, valid) = (interaction_data(1, 600), interaction_data(2, 100));
        let mut config = CtrModelConfig::default_for(CtrArch::Dien);
        config.dim = 4;
        config.history_length = 2;
        config.training.max_epochs = 2;
        let run = || {
            let (model, _) = CtrModel::train(&train, &valid, &config, 1, |_| {}).unwrap();
            model.predict(&valid)
        };
        assert_eq!(run(), run());
    }
}
