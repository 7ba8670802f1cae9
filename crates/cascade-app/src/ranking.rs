//! Ranking models on ML100K-CTR: turning the split into model inputs (every
//! declared feature, the request context at each row's event time, plus each
//! row's preceding items in protocol order) and
//! training one architecture with progress and early stopping.

use anyhow::Result;

use cascade_batch::pipeline::CtrSplit;
use cascade_eval::protocols::CtrExample;
use cascade_models::ranking::{CtrArch, CtrEpoch, CtrFeatures, CtrModel, CtrModelConfig};
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

/// Encodes every row's fields and its user's items before it in protocol
/// order (train, then valid, then test, each in time order), keeping the
/// `history_length` most recent.
pub fn encode(
    workspace: &Workspace,
    prepared: &Prepared,
    split: &CtrSplit,
    history_length: usize,
    context: ContextFeatures,
) -> Result<CtrInputs> {
    let encoder = match context {
        ContextFeatures::Declared => prepared.field_encoder(workspace)?,
        ContextFeatures::Excluded => prepared.field_encoder(workspace)?.without_context(),
    };
    Ok(encode_with(encoder, prepared.users.len(), split, history_length))
}

/// [`encode`] with a given encoder, over `n_users` users (the indices of
/// `split`'s rows).
pub fn encode_with(
    encoder: FieldEncoder,
    n_users: usize,
    split: &CtrSplit,
    history_length: usize,
) -> CtrInputs {
    let mut sequences: Vec<Vec<u64>> = vec![Vec::new(); n_users];
    let mut encode_part = |rows: &[CtrExample<(u32, u32)>], times: &[i64]| {
        rows.iter()
            .zip(times)
            .map(|(row, &ts_ms)| {
                let (user, item) = row.features;
                let sequence = &mut sequences[user as usize];
                let history = sequence[sequence.len().saturating_sub(history_length)..].to_vec();
                sequence.push(encoder.item_key(item));
                let fields = encoder.encode(user, item, &encoder.context_at(ts_ms));
                CtrExample {
                    user: row.user,
                    label: row.label,
                    features: CtrFeatures { fields, history },
                }
            })
            .collect::<Vec<_>>()
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
    let inputs = encode(workspace, prepared, &split, history_length, ContextFeatures::Excluded)?;
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
