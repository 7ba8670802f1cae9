//! What one SASRec training step is made of: the batch's next-item
//! problem, its split into shares that run on the two cores (their
//! gradients summed), the rows a sampled-softmax batch gathers, and the
//! sampled softmax's loss and logit gradients in closed form.

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor};

use crate::random::SeededRng;

use super::SasRec;

/// One step's next-item problem: each window but its last item, left-padded
/// to the batch's width as matrix rows (item + 1, 0 = padding), and the
/// target item of every real position.
pub(super) struct NextItemBatch {
    pub(super) width: usize,
    pub(super) rows: Vec<u32>,
    pub(super) lengths: Vec<usize>,
    /// Row of each real position in the flattened B·width hidden states.
    pub(super) picked: Vec<u32>,
    pub(super) targets: Vec<u32>,
}

impl NextItemBatch {
    pub(super) fn new(sequences: &[&[u32]], max_length: usize) -> NextItemBatch {
        // Inputs are each sequence but its last item; targets are shifted by one.
        let inputs: Vec<&[u32]> = sequences.iter().map(|s| &s[..s.len() - 1]).collect();
        let width = inputs.iter().map(|s| s.len()).max().unwrap_or(0).clamp(1, max_length);
        let mut picked = Vec::new();
        let mut targets = Vec::new();
        for (b, sequence) in sequences.iter().enumerate() {
            let len = inputs[b].len().min(width);
            for p in 0..len {
                picked.push((b * width + (width - len + p)) as u32);
                targets.push(sequence[sequence.len() - len + p]);
            }
        }
        let (rows, lengths) = SasRec::pad(&inputs, width);
        NextItemBatch { width, rows, lengths, picked, targets }
    }

    /// The hidden state of every real position, in target order.
    pub(super) fn picked_states(&self, hidden: &Tensor, dim: usize) -> candle_core::Result<Tensor> {
        let hidden = hidden.reshape((self.lengths.len() * self.width, dim))?;
        let picked = Tensor::from_vec(self.picked.clone(), self.picked.len(), &Device::Cpu)?;
        hidden.index_select(&picked, 0)
    }
}

/// Shares a batch is split into, one per core of the machines Cascade
/// targets (2): each share's forward and backward pass runs on its own
/// core. Fixed rather than the machine's thread count because each share
/// draws its own dropout masks: a seed must train the same model on any
/// machine. More shares than cores only add overhead.
const SHARES: usize = 2;

/// One share of a batch: its windows, the rows its inputs read and its
/// targets (as matrix rows and item classes, or as indices into the
/// batch's gathered rows), its weight in the batch's loss (its share of the
/// positions, so the shares' gradients add up to the batch's) and the seed
/// of its dropout.
pub(super) struct Share {
    pub(super) batch: NextItemBatch,
    pub(super) inputs: Vec<u32>,
    pub(super) targets: Vec<u32>,
    pub(super) weight: f64,
    pub(super) seed: u64,
}

impl Share {
    pub(super) fn split(
        sequences: &[&[u32]],
        max_length: usize,
        rng: &mut SeededRng,
    ) -> Vec<Share> {
        let share_size = sequences.len().div_ceil(SHARES).max(1);
        let batches: Vec<NextItemBatch> = sequences
            .chunks(share_size)
            .map(|share| NextItemBatch::new(share, max_length))
            .collect();
        let positions: usize = batches.iter().map(|batch| batch.targets.len()).sum();
        batches
            .into_iter()
            .map(|batch| Share {
                inputs: batch.rows.clone(),
                targets: batch.targets.clone(),
                weight: batch.targets.len() as f64 / positions.max(1) as f64,
                seed: rng.next_u64(),
                batch,
            })
            .collect()
    }
}

/// The shares' gradients summed, for the tensors every share's graph holds
/// (the parameters and the gathered rows; each share's intermediate tensors
/// are its own), and their losses summed.
pub(super) fn sum_shares(
    results: Vec<candle_core::Result<(GradStore, f64)>>,
) -> candle_core::Result<(Option<GradStore>, f64)> {
    let mut loss = 0.0;
    let mut sum: Option<GradStore> = None;
    for result in results {
        let (grads, share_loss) = result?;
        loss += share_loss;
        sum = Some(match sum {
            None => grads,
            Some(mut sum) => {
                let shared: Vec<_> =
                    grads.get_ids().filter(|id| sum.get_id(**id).is_some()).copied().collect();
                for id in shared {
                    if let (Some(a), Some(b)) = (sum.get_id(id), grads.get_id(id)) {
                        let total = (a + b)?;
                        sum.insert_id(id, total);
                    }
                }
                sum
            }
        });
    }
    Ok((sum, loss))
}

/// The sampled softmax's cross-entropy, averaged over the positions and
/// scaled by `weight`, and its gradient with respect to each position's
/// logits: the target's (`positive`, P) and the shared negatives'
/// (`negative`, P × K, row-major). A negative that is the position's own
/// target is left out of that position's softmax.
pub(super) fn sampled_softmax_gradients(
    positive: &[f32],
    negative: &[f32],
    targets: &[u32],
    negatives: &[u32],
    weight: f64,
) -> (f64, Vec<f32>, Vec<f32>) {
    let k = negatives.len();
    let scale = weight / positive.len().max(1) as f64;
    let mut loss = 0.0;
    let mut positive_grad = vec![0f32; positive.len()];
    let mut negative_grad = vec![0f32; negative.len()];
    for (p, (&target, &target_logit)) in targets.iter().zip(positive).enumerate() {
        let row = &negative[p * k..(p + 1) * k];
        let counted = |j: usize| negatives[j] != target;
        let max = (0..k).filter(|&j| counted(j)).map(|j| row[j]).fold(target_logit, f32::max);
        let mut total = f64::from((target_logit - max).exp());
        for j in (0..k).filter(|&j| counted(j)) {
            total += f64::from((row[j] - max).exp());
        }
        let log_total = total.ln() + f64::from(max);
        loss += log_total - f64::from(target_logit);
        // ∂/∂logit of −log softmax(target): softmax − 1 for the target,
        // softmax for each counted negative.
        let probability = |logit: f32| (f64::from(logit) - log_total).exp();
        positive_grad[p] = ((probability(target_logit) - 1.0) * scale) as f32;
        let grads = &mut negative_grad[p * k..(p + 1) * k];
        for j in (0..k).filter(|&j| counted(j)) {
            grads[j] = (probability(row[j]) * scale) as f32;
        }
    }
    (loss * scale, positive_grad, negative_grad)
}

/// The distinct matrix rows one batch touches, in first-use order, and each
/// row's index among them.
pub(super) struct DistinctRows {
    pub(super) ids: Vec<u64>,
    pub(super) index: Vec<u32>,
}

impl DistinctRows {
    pub(super) fn new(rows: usize) -> DistinctRows {
        DistinctRows { ids: Vec::new(), index: vec![u32::MAX; rows] }
    }

    pub(super) fn local(&mut self, row: u32) -> u32 {
        let slot = &mut self.index[row as usize];
        if *slot == u32::MAX {
            *slot = self.ids.len() as u32;
            self.ids.push(u64::from(row));
        }
        *slot
    }
}

/// One epoch's batches: windows shuffled, then sorted by length within
/// pools of 50 batches and cut into batches in a shuffled order, so a batch
/// is padded to about its own windows' length while its make-up and the
/// order of batches stay random.
pub(super) fn length_grouped_batches<'a>(
    windows: &mut [&'a [u32]],
    batch_size: usize,
    rng: &mut SeededRng,
) -> Vec<Vec<&'a [u32]>> {
    rng.shuffle(windows);
    let mut batches: Vec<Vec<&[u32]>> = Vec::new();
    for pool in windows.chunks_mut(batch_size * 50) {
        pool.sort_by_key(|w| w.len());
        batches.extend(pool.chunks(batch_size).map(<[&[u32]]>::to_vec));
    }
    rng.shuffle(&mut batches);
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The closed-form loss and logit gradients equal candle's
    /// cross-entropy over `[target, negatives]` with the target's own
    /// draws masked out, differentiated by autograd.
    #[test]
    fn sampled_softmax_gradients_match_autograd() {
        let targets = [3u32, 7, 5];
        let negatives = [7u32, 1, 3, 9];
        let positive: Vec<f32> = vec![0.3, -1.2, 2.0];
        let negative: Vec<f32> = (0..12).map(|i| ((i * 7 % 11) as f32 - 5.0) / 3.0).collect();
        let weight = 0.4;
        let (loss, positive_grad, negative_grad) =
            sampled_softmax_gradients(&positive, &negative, &targets, &negatives, weight);

        let positive_var =
            candle_core::Var::from_vec(positive.clone(), (3, 1), &Device::Cpu).unwrap();
        let negative_var =
            candle_core::Var::from_vec(negative.clone(), (3, 4), &Device::Cpu).unwrap();
        let hits: Vec<f32> = targets
            .iter()
            .flat_map(|&t| negatives.iter().map(move |&n| if n == t { -1e9 } else { 0.0 }))
            .collect();
        let hits = Tensor::from_vec(hits, (3, 4), &Device::Cpu).unwrap();
        let logits = Tensor::cat(
            &[positive_var.as_tensor().clone(), (negative_var.as_tensor() + hits).unwrap()],
            1,
        )
        .unwrap();
        let zeros = Tensor::zeros(3, candle_core::DType::U32, &Device::Cpu).unwrap();
        let expected = (candle_nn::loss::cross_entropy(&logits, &zeros).unwrap() * weight).unwrap();
        let grads = expected.backward().unwrap();
        let expected_loss = f64::from(expected.to_scalar::<f32>().unwrap());
        assert!((loss - expected_loss).abs() < 1e-5, "{loss} vs {expected_loss}");
        let autograd = |var: &candle_core::Var| -> Vec<f32> {
            grads.get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap()
        };
        for (ours, theirs) in positive_grad.iter().zip(autograd(&positive_var)) {
            assert!((ours - theirs).abs() < 1e-6, "{ours} vs {theirs}");
        }
        for (ours, theirs) in negative_grad.iter().zip(autograd(&negative_var)) {
            assert!((ours - theirs).abs() < 1e-6, "{ours} vs {theirs}");
        }
        // The masked draws (target 3 drew 3, target 7 drew 7) get no gradient.
        assert_eq!(negative_grad[2], 0.0);
        assert_eq!(negative_grad[4], 0.0);
    }
}
