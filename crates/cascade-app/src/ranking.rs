//! Ranking models on ML100K-CTR: turning the split into model inputs (every
//! declared feature, the request context at each row's event time, plus each
//! row's preceding items in protocol order) and
//! training one architecture with progress and early stopping.

use anyhow::Result;

use cascade_batch::pipeline::CtrSplit;
use cascade_eval::protocols::CtrExample;
use cascade_models::interactions::Interactions;
use cascade_models::random::SeededRng;
use cascade_models::ranking::{CtrArch, CtrEpoch, CtrFeatures, CtrModel, CtrModelConfig};
use cascade_models::retrieval::{NegativeSampler, NegativeSampling};
use cascade_serve::field_encoder::FieldEncoder;

use crate::evaluation::Prepared;
use crate::progress::Progress;
use crate::workspace::Workspace;

/// The CTR split as model inputs.
pub struct CtrInputs {
    pub train: Vec<CtrExample<CtrFeatures>>,
    pub valid: Vec<CtrExample<CtrFeatures>>,
    pub test: Vec<CtrExample<CtrFeatures>>,
    pub field_names: Vec<String>,
    pub item_field: usize,
}

/// Whether ranking inputs carry the config's `[context]` features.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextFeatures {
    /// Left out: ML100K-CTR (PROTOCOLS.md) forbids reading the timestamp
    /// they are derived from, so protocol results never see them.
    Excluded,
    /// Every declared one, at each row's event time: what serving reads.
    Declared,
}

/// What a ranking example's label says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RankingLabels {
    /// The split's own labels (ML100K-CTR: rating ≥ 4 among rated items):
    /// whether the user liked what they consumed.
    Protocol,
    /// Whether the user consumed the item: every row is a positive, and
    /// `negatives` items the user never consumed, drawn uniformly with
    /// `seed`, are negatives at the row's time with its history. What a
    /// serving ranker must learn to put what users will take first.
    Consumption { negatives: usize, n_items: usize, seed: u64 },
}

/// Encodes every row's fields and its user's items before it in protocol
/// order (train, then valid, then test, each in time order), keeping the
/// `history_length` most recent.
pub fn encode(
    workspace: &Workspace,
    prepared: &Prepared,
    split: &CtrSplit,
    history_length: usize,
    context: ContextFeatures,
    labels: RankingLabels,
) -> Result<CtrInputs> {
    let encoder = match context {
        ContextFeatures::Declared => prepared.field_encoder(workspace)?,
        ContextFeatures::Excluded => prepared.field_encoder(workspace)?.without_context(),
    };
    Ok(encode_with(encoder, prepared.users.len(), split, history_length, labels))
}

/// [`encode`] with a given encoder, over `n_users` users (the indices of
/// `split`'s rows).
pub fn encode_with(
    encoder: FieldEncoder,
    n_users: usize,
    split: &CtrSplit,
    history_length: usize,
    labels: RankingLabels,
) -> CtrInputs {
    let mut sequences: Vec<Vec<u64>> = vec![Vec::new(); n_users];
    // Consumption labels draw negatives among the items each user never
    // consumed in any part of the split; the protocol's labels need neither.
    let mut negatives = match labels {
        RankingLabels::Consumption { negatives, n_items, seed } => {
            let mut consumed: Vec<Vec<u32>> = vec![Vec::new(); n_users];
            for row in split.train.iter().chain(&split.valid).chain(&split.test) {
                consumed[row.features.0 as usize].push(row.features.1);
            }
            let consumed = Interactions::new(n_items, &consumed);
            let sampler = NegativeSampler::new(&consumed, NegativeSampling::Uniform);
            Some((negatives, n_items, consumed.by_user, sampler, SeededRng::new(seed)))
        }
        RankingLabels::Protocol => None,
    };
    let mut encode_part = |rows: &[CtrExample<(u32, u32)>], times: &[i64]| {
        let mut examples = Vec::with_capacity(rows.len());
        for (row, &ts_ms) in rows.iter().zip(times) {
            let (user, item) = row.features;
            let sequence = &mut sequences[user as usize];
            let history = sequence[sequence.len().saturating_sub(history_length)..].to_vec();
            sequence.push(encoder.item_key(item));
            let context = encoder.context_at(ts_ms);
            let example = |item: u32, label: bool| CtrExample {
                user: row.user,
                label,
                features: CtrFeatures {
                    fields: encoder.encode(user, item, &context),
                    history: history.clone(),
                },
            };
            let Some((count, n_items, consumed, sampler, rng)) = negatives.as_mut() else {
                examples.push(example(item, row.label));
                continue;
            };
            examples.push(example(item, true));
            let seen = &consumed[user as usize];
            // A user who consumed every item has no negative to give.
            if seen.len() < *n_items {
                for _ in 0..*count {
                    examples.push(example(sampler.sample(seen, rng), false));
                }
            }
        }
        examples
    };
    let train = encode_part(&split.train, &split.times.train);
    let valid = encode_part(&split.valid, &split.times.valid);
    let test = encode_part(&split.test, &split.times.test);
    CtrInputs {
        train,
        valid,
        test,
        item_field: encoder.item_field(),
        field_names: encoder.field_names,
    }
}

/// ML100K-CTR as PROTOCOLS.md defines it (no context features): the split,
/// for its row times, and its rows as model inputs.
pub fn protocol_inputs(
    workspace: &Workspace,
    prepared: &Prepared,
    history_length: usize,
) -> Result<(CtrSplit, CtrInputs)> {
    let split = prepared.pipeline.ctr_split(&prepared.users, &prepared.items)?;
    let inputs = encode(
        workspace,
        prepared,
        &split,
        history_length,
        ContextFeatures::Excluded,
        RankingLabels::Protocol,
    )?;
    Ok((split, inputs))
}

/// Trains `config` on the inputs with a progress bar of epochs.
pub fn train(
    inputs: &CtrInputs,
    config: &CtrModelConfig,
    progress: Progress,
) -> Result<(CtrModel, Vec<CtrEpoch>)> {
    let name = config.arch.name();
    let bar =
        progress.bar(config.training.max_epochs as u64, &format!("training {name}"), "epochs");
    let (model, epochs) =
        CtrModel::train(&inputs.train, &inputs.valid, config, inputs.item_field, |epoch| {
            bar.set_message(format!(
                "loss {:.4}, valid AUC {:.4}, {:.0} samples/s",
                epoch.train_loss, epoch.valid_auc, epoch.samples_per_s
            ));
            bar.inc(1);
        })?;
    bar.finish_and_clear();
    Ok((model, epochs))
}

/// A one-line description of what was trained, for reports.
pub fn describe(inputs: &CtrInputs, config: &CtrModelConfig, epochs: &[CtrEpoch]) -> String {
    // The first epoch with the highest validation AUC, as early stopping kept it.
    let best = epochs.iter().fold(None::<&CtrEpoch>, |best, e| match best {
        Some(b) if e.valid_auc <= b.valid_auc => Some(b),
        _ => Some(e),
    });
    let history = match config.arch {
        CtrArch::Din | CtrArch::Dien => format!(" + last {} items", config.history_length),
        _ => String::new(),
    };
    format!(
        "fields {}{history}, dim {}, lr {}, epoch {} of {} (valid AUC {:.4}, early stopping), seed {}",
        inputs.field_names.join("+"),
        config.dim,
        config.training.optimizer.learning_rate(),
        best.map_or(0, |b| b.epoch + 1),
        epochs.len(),
        best.map_or(f64::NAN, |b| b.valid_auc),
        config.training.seed
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use cascade_batch::pipeline::CtrTimes;

    /// Users and items with their id as their only field.
    fn encoder(n_users: usize, n_items: usize) -> FieldEncoder {
        FieldEncoder::from_parts(
            vec!["user_id".into(), "item_id".into()],
            (0..n_users).map(|u| vec![vec![1_000 + u as u64]]).collect(),
            (0..n_items).map(|i| vec![vec![i as u64]]).collect(),
            Vec::new(),
        )
    }

    fn row(user: u32, item: u32, label: bool) -> CtrExample<(u32, u32)> {
        CtrExample { user, label, features: (user, item) }
    }

    /// Consumption labels: every consumed row is a positive (a disliked
    /// rating too), each followed by negatives the user never consumed,
    /// which share its history and never enter a later row's history.
    #[test]
    fn consumption_labels_add_unconsumed_negatives_outside_the_history() {
        let (n_users, n_items) = (2, 8);
        let split = CtrSplit {
            train: vec![row(0, 0, true), row(0, 1, false), row(1, 2, true)],
            valid: vec![row(0, 3, false)],
            test: Vec::new(),
            times: CtrTimes { train: vec![1, 2, 3], valid: vec![4], test: Vec::new() },
        };
        let labels = RankingLabels::Consumption { negatives: 3, n_items, seed: 9 };
        let inputs = encode_with(encoder(n_users, n_items), n_users, &split, 2, labels);
        assert_eq!(inputs.train.len(), 3 * 4);
        assert_eq!(inputs.valid.len(), 4);
        let consumed = [vec![0u64, 1, 3], vec![2]];
        for group in inputs.train.chunks(4).chain(inputs.valid.chunks(4)) {
            let (positive, negatives) = group.split_first().unwrap();
            assert!(positive.label);
            for negative in negatives {
                assert!(!negative.label);
                assert_eq!(negative.features.history, positive.features.history);
                let item = negative.features.fields[1][0];
                assert!(!consumed[negative.user as usize].contains(&item), "{item}");
            }
        }
        // User 0's rows read the items before them, never a negative.
        assert_eq!(inputs.train[4].features.history, vec![0]);
        assert_eq!(inputs.valid[0].features.history, vec![0, 1]);

        let protocol =
            encode_with(encoder(n_users, n_items), n_users, &split, 2, RankingLabels::Protocol);
        let labels: Vec<bool> = protocol.train.iter().map(|e| e.label).collect();
        assert_eq!(labels, [true, false, true], "the split's own labels");
    }
}
