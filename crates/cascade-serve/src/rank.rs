//! Rank: a CTR model scores every candidate of a request in one batch.

use cascade_batch::ranking_features::FieldEncoder;
use cascade_models::ranking::{CtrFeatures, CtrModel};

/// Scores candidates for a user.
pub trait Ranker: Send + Sync {
    /// Model name, reported in responses (e.g. `deepfm`).
    fn name(&self) -> &str;
    /// One score per item, higher is better; `None` where the model cannot
    /// score this user (e.g. a user it has no features for).
    fn score(&self, user: Option<u32>, history: &[u32], items: &[u32]) -> Option<Vec<f32>>;
}

/// A trained CTR model with the encoder of its training features.
pub struct CtrRanker {
    name: String,
    model: CtrModel,
    encoder: FieldEncoder,
    history_length: usize,
}

impl std::fmt::Debug for CtrRanker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CtrRanker").field("name", &self.name).finish()
    }
}

impl CtrRanker {
    /// Wraps `model`, which reads the last `history_length` items.
    pub fn new(name: &str, model: CtrModel, encoder: FieldEncoder, history_length: usize) -> Self {
        CtrRanker { name: name.to_owned(), model, encoder, history_length }
    }
}

impl Ranker for CtrRanker {
    fn name(&self) -> &str {
        &self.name
    }

    fn score(&self, user: Option<u32>, history: &[u32], items: &[u32]) -> Option<Vec<f32>> {
        // The model's user fields exist only for users it was built with.
        let user = user.filter(|&u| (u as usize) < self.encoder.user_fields().len())?;
        let recent = &history[history.len().saturating_sub(self.history_length)..];
        let history: Vec<u64> = recent.iter().map(|&i| self.encoder.item_key(i)).collect();
        let examples: Vec<CtrFeatures> = items
            .iter()
            .map(|&item| CtrFeatures {
                fields: self.encoder.encode(user, item),
                history: history.clone(),
            })
            .collect();
        let refs: Vec<&CtrFeatures> = examples.iter().collect();
        let scores = self.model.score(&refs).ok()?;
        Some(scores.into_iter().map(|s| s as f32).collect())
    }
}
