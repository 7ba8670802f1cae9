//! Rank: a CTR model scores every candidate of a request in one batch, with
//! the user's, each item's and the request context's features.

use std::collections::BTreeMap;

use cascade_batch::ranking_features::FieldEncoder;
use cascade_models::ranking::{CtrFeatures, CtrModel};

/// The moment a request is for: the request's `context` map, and the
/// server's clock for declared features the map leaves out.
#[derive(Debug, Clone, Copy)]
pub struct RequestMoment<'a> {
    /// The request's `context`.
    pub context: &'a BTreeMap<String, serde_json::Value>,
    /// Now, in milliseconds since the Unix epoch.
    pub now_ms: i64,
}

/// Scores candidates for a user.
pub trait Ranker: Send + Sync {
    /// Model name, reported in responses (e.g. `deepfm`).
    fn name(&self) -> &str;
    /// Checks the context features the model reads: a declared one the
    /// request gives must be in range. The message names the bad key.
    fn check_context(&self, moment: &RequestMoment<'_>) -> Result<(), String>;
    /// One score per item, higher is better; `None` where the model cannot
    /// score this user (e.g. a user it has no features for). `moment` has
    /// passed `check_context`.
    fn score(
        &self,
        user: Option<u32>,
        history: &[u32],
        items: &[u32],
        moment: &RequestMoment<'_>,
    ) -> Option<Vec<f32>>;
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
    /// Wraps `model`, which reads the last `history_length` items, and
    /// prepares it for many small batches (`CtrModel::prepare_for_serving`).
    pub fn new(
        name: &str,
        mut model: CtrModel,
        encoder: FieldEncoder,
        history_length: usize,
    ) -> candle_core::Result<Self> {
        model.prepare_for_serving()?;
        Ok(CtrRanker { name: name.to_owned(), model, encoder, history_length })
    }

    /// One value per declared context feature: the request's where it gives
    /// one, else the value at `now_ms`.
    fn context_values(&self, moment: &RequestMoment<'_>) -> Result<Vec<u32>, String> {
        self.encoder
            .context_features()
            .iter()
            .map(|(name, derive)| match moment.context.get(name) {
                None => Ok(derive.value_at(moment.now_ms)),
                Some(value) => value
                    .as_u64()
                    .filter(|&v| v <= u64::from(derive.max_value()))
                    .map(|v| v as u32)
                    .ok_or_else(|| {
                        format!(
                            "context.{name} must be an integer from 0 to {}, got {value}",
                            derive.max_value()
                        )
                    }),
            })
            .collect()
    }
}

impl Ranker for CtrRanker {
    fn name(&self) -> &str {
        &self.name
    }

    fn check_context(&self, moment: &RequestMoment<'_>) -> Result<(), String> {
        self.context_values(moment).map(drop)
    }

    fn score(
        &self,
        user: Option<u32>,
        history: &[u32],
        items: &[u32],
        moment: &RequestMoment<'_>,
    ) -> Option<Vec<f32>> {
        // The model's user fields exist only for users it was built with.
        let user = user.filter(|&u| (u as usize) < self.encoder.user_fields().len())?;
        let context = self.encoder.context_fields(&self.context_values(moment).ok()?);
        // Only DIN / DIEN read it; the others would copy it per candidate for nothing.
        let recent = match self.model.reads_history() {
            true => &history[history.len().saturating_sub(self.history_length)..],
            false => &[],
        };
        let history: Vec<u64> = recent.iter().map(|&i| self.encoder.item_key(i)).collect();
        let examples: Vec<CtrFeatures> = items
            .iter()
            .map(|&item| CtrFeatures {
                fields: self.encoder.encode(user, item, &context),
                history: history.clone(),
            })
            .collect();
        let refs: Vec<&CtrFeatures> = examples.iter().collect();
        let scores = self.model.score(&refs).ok()?;
        Some(scores.into_iter().map(|s| s as f32).collect())
    }
}
