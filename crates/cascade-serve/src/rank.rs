//! Rank: a CTR model scores every candidate of a request in one batch, with
//! the user's, each item's and the request context's features.

use parking_lot::RwLock;
use std::collections::BTreeMap;

use crate::field_encoder::FieldEncoder;
use cascade_core::Record;
use cascade_models::ranking::{CtrFeatures, CtrModel, ModelDelta};

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
    /// One score per item, higher is better; `Ok(None)` where the model
    /// has nothing to say about this user (e.g. one it has no features for),
    /// `Err` where it failed (the request falls back to recall order, and
    /// the failure is counted and logged). `moment` has passed `check_context`.
    fn score(
        &self,
        user: Option<u32>,
        history: &[u32],
        items: &[u32],
        moment: &RequestMoment<'_>,
    ) -> Result<Option<Vec<f32>>, String>;

    /// Learns the features of item `item`, added to the catalog after the
    /// build (the next index, or one added before whose record changed).
    /// Until then, and for rankers that read no item features, an added
    /// item is scored on what the model knows without them.
    fn add_item(&self, _item: u32, _id: &str, _record: &Record) {}
}

/// One entity's fields: a bag of ids per field.
type EntityFields = Vec<Vec<u64>>;

/// A trained CTR model with the encoder of its training features. The
/// model sits behind a lock so that an online trainer can publish changed
/// rows into it ([`CtrRanker::apply_delta`]) while requests score.
pub struct CtrRanker {
    name: String,
    model: RwLock<CtrModel>,
    encoder: FieldEncoder,
    history_length: usize,
    /// Fields of items added since the build: item N + k at k, for the
    /// encoder's N items.
    added_fields: RwLock<Vec<EntityFields>>,
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
        Ok(CtrRanker {
            name: name.to_owned(),
            model: RwLock::new(model),
            encoder,
            history_length,
            added_fields: RwLock::default(),
        })
    }

    /// Item `item`'s fields: the encoder's, or an added item's; `None` for
    /// an index it has not been told about (yet).
    fn with_item_fields<T>(&self, item: u32, read: impl FnOnce(&[Vec<u64>]) -> T) -> Option<T> {
        let built = self.encoder.item_fields();
        match built.get(item as usize) {
            Some(fields) => Some(read(fields)),
            None => {
                let added = self.added_fields.read();
                added.get(item as usize - built.len()).map(|fields| read(fields))
            }
        }
    }

    /// The hashed `item_id` history items are read as.
    fn history_keys(&self, history: &[u32]) -> Vec<u64> {
        history.iter().filter_map(|&i| self.with_item_fields(i, |f| f[0][0])).collect()
    }

    fn model(&self) -> parking_lot::RwLockReadGuard<'_, CtrModel> {
        self.model.read()
    }

    /// The ranker's name (the model's, e.g. `deepfm`).
    pub fn model_name(&self) -> &str {
        &self.name
    }

    /// Field names, in the order examples carry them.
    pub fn field_names(&self) -> &[String] {
        &self.encoder.field_names
    }

    /// A trainable copy of the model as it serves now.
    pub fn trainable_copy(&self) -> candle_core::Result<CtrModel> {
        self.model().duplicate()
    }

    /// Publishes an online-updated copy's changed rows; requests after it
    /// score with them.
    pub fn apply_delta(&self, delta: &ModelDelta) -> candle_core::Result<()> {
        self.model.write().apply_delta(delta)
    }

    /// One training example's features, encoded as the candidates of a
    /// request are: `user` saw `item` after `history`, at `at_ms`. `None`
    /// for a user the model has no fields for.
    pub fn encode(&self, user: u32, history: &[u32], item: u32, at_ms: i64) -> Option<CtrFeatures> {
        if user as usize >= self.encoder.user_fields().len() {
            return None;
        }
        let context = self.encoder.context_at(at_ms);
        let recent = &history[history.len().saturating_sub(self.history_length)..];
        let history = match self.model().reads_history() {
            true => self.history_keys(recent),
            false => Vec::new(),
        };
        let fields = self
            .with_item_fields(item, |fields| self.encoder.encode_fields(user, fields, &context))?;
        Some(CtrFeatures { fields, history })
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
    ) -> Result<Option<Vec<f32>>, String> {
        // The model's user fields exist only for users it was built with.
        let Some(user) = user.filter(|&u| (u as usize) < self.encoder.user_fields().len()) else {
            return Ok(None);
        };
        let context = self.encoder.context_fields(&self.context_values(moment)?);
        // The serving path reads each candidate's fields in place: the user's
        // and the context's are shared, the item's are the encoder's own or
        // an added item's. An item the ranker was not told about has empty
        // item fields.
        let user_fields = &self.encoder.user_fields()[user as usize];
        let item_fields = self.encoder.item_fields();
        let added = self.added_fields.read();
        let fields_of = |item: u32| -> Option<&EntityFields> {
            item_fields.get(item as usize).or_else(|| added.get(item as usize - item_fields.len()))
        };
        let (n_user, n_item) = (user_fields.len(), item_fields.first().map_or(0, Vec::len));
        let bag = |example: usize, field: usize| -> &[u64] {
            match field {
                f if f < n_user => &user_fields[f],
                f if f < n_user + n_item => {
                    fields_of(items[example]).map_or(&[], |fields| &fields[f - n_user])
                }
                f => &context[f - n_user - n_item],
            }
        };
        let n_fields = n_user + n_item + context.len();
        let model = self.model();
        let failed = |e: candle_core::Error| format!("{}: {e}", self.name);
        if let Some(scores) = model.score_bags(items.len(), n_fields, bag) {
            return Ok(Some(scores.map_err(failed)?.into_iter().map(|s| s as f32).collect()));
        }
        // Only DIN / DIEN read it; the others would copy it per candidate for nothing.
        let recent = match model.reads_history() {
            true => &history[history.len().saturating_sub(self.history_length)..],
            false => &[],
        };
        let history = self.history_keys(recent);
        let no_fields = vec![Vec::new(); n_item];
        let examples: Vec<CtrFeatures> = items
            .iter()
            .map(|&item| CtrFeatures {
                fields: self.encoder.encode_fields(
                    user,
                    fields_of(item).unwrap_or(&no_fields),
                    &context,
                ),
                history: history.clone(),
            })
            .collect();
        let refs: Vec<&CtrFeatures> = examples.iter().collect();
        let scores = model.score(&refs).map_err(failed)?;
        Ok(Some(scores.into_iter().map(|s| s as f32).collect()))
    }

    fn add_item(&self, item: u32, id: &str, record: &Record) {
        let fields = self.encoder.item_fields_of(id, record);
        let mut added = self.added_fields.write();
        match (item as usize).checked_sub(self.encoder.item_fields().len()) {
            Some(k) if k < added.len() => added[k] = fields,
            Some(k) if k == added.len() => added.push(fields),
            // Out of order or one the build has: nothing to learn.
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cascade_core::context::ContextDerivation;
    use cascade_core::ids::feature_id;
    use cascade_eval::protocols::CtrExample;
    use cascade_models::random::SeededRng;
    use cascade_models::ranking::{CtrArch, CtrModelConfig, OnlineUpdate, SparseOnline};

    /// The ranker's in-place serving path scores what the model gives the
    /// same candidates encoded one by one through candle.
    #[test]
    fn ranker_scores_equal_the_models_on_encoded_candidates() {
        let (users, items) = (30u32, 80u32);
        let encoder = FieldEncoder::from_parts(
            ["user_id", "item_id", "category", "genres", "hour_of_day"].map(String::from).to_vec(),
            (0..users).map(|u| vec![vec![feature_id("user_id", &u.to_string())]]).collect(),
            (0..items)
                .map(|i| {
                    let category = (i % 4).to_string();
                    let genres = (0..i % 3).map(|g| feature_id("g", &g.to_string())).collect();
                    vec![
                        vec![feature_id("item_id", &i.to_string())],
                        vec![feature_id("category", &category)],
                        genres,
                    ]
                })
                .collect(),
            vec![("hour_of_day".to_owned(), ContextDerivation::HourOfDay)],
        );
        let mut rng = SeededRng::new(4);
        let mut examples = |n: usize| -> Vec<CtrExample<CtrFeatures>> {
            (0..n)
                .map(|_| {
                    let (user, item) = (rng.below(users as usize) as u32, rng.below(80) as u32);
                    let at_ms = rng.below(86_400) as i64 * 1000;
                    let fields = encoder.encode(user, item, &encoder.context_at(at_ms));
                    let label = (user + item) % 3 == 0;
                    CtrExample { user, label, features: CtrFeatures { fields, history: vec![] } }
                })
                .collect()
        };
        let (train, valid) = (examples(3000), examples(300));
        let mut config = CtrModelConfig::default_for(CtrArch::DeepFm);
        config.dim = 8;
        config.training.max_epochs = 2;
        let (model, _) = CtrModel::train(&train, &valid, &config, 1, |_| {}).unwrap();

        let (user, candidates): (u32, Vec<u32>) = (7, (0..items).rev().collect());
        let context = BTreeMap::from([("hour_of_day".to_owned(), serde_json::json!(21))]);
        let moment = RequestMoment { context: &context, now_ms: 0 };
        let at_nine_pm = encoder.context_fields(&[21]);
        let encoded: Vec<CtrFeatures> = candidates
            .iter()
            .map(|&i| CtrFeatures { fields: encoder.encode(user, i, &at_nine_pm), history: vec![] })
            .collect();
        let expected = model.score(&encoded.iter().collect::<Vec<_>>()).unwrap();
        let ranker = CtrRanker::new("deepfm", model, encoder.clone(), 0).unwrap();
        let scores = ranker.score(Some(user), &[], &candidates, &moment).unwrap().unwrap();
        assert_eq!(scores.len(), candidates.len());
        for (got, want) in scores.iter().zip(&expected) {
            assert!((f64::from(*got) - want).abs() < 1e-5, "{got} vs {want}");
        }
        assert!(expected.iter().any(|&p| (p - expected[0]).abs() > 1e-4), "scores vary");

        // Online learning: a trainable copy learns that user 7 clicks item
        // 3 in the evening; the rows it touched and the dense tensors,
        // published as a delta, make the serving copy score exactly as the
        // trained copy does.
        let mut trainer = ranker.trainable_copy().unwrap();
        let clicks: Vec<CtrExample<CtrFeatures>> = (0..200)
            .map(|n| CtrExample {
                user,
                label: true,
                features: ranker.encode(user, &[], 3, 21 * 3_600_000 + n).unwrap(),
            })
            .collect();
        let update = OnlineUpdate {
            batch_size: 20,
            dense_lr: 1e-3,
            sparse: SparseOnline::TrainingScaled(1.0),
        };
        trainer.update(&clicks, update, &mut SeededRng::new(9)).unwrap();
        let mut touched: Vec<u64> =
            clicks.iter().flat_map(|e| e.features.fields.iter().flatten().copied()).collect();
        touched.sort_unstable();
        touched.dedup();
        let delta = trainer.delta_for(&touched).unwrap();
        assert!(delta.rows() > 0 && delta.rows() <= 2 * touched.len());
        ranker.apply_delta(&delta).unwrap();
        let updated = ranker.score(Some(user), &[], &candidates, &moment).unwrap().unwrap();
        let trained = trainer.score(&encoded.iter().collect::<Vec<_>>()).unwrap();
        for (got, want) in updated.iter().zip(&trained) {
            assert!((f64::from(*got) - want).abs() < 1e-5, "published {got} vs trained {want}");
        }
        let item_3 = candidates.iter().position(|&i| i == 3).unwrap();
        assert!(
            updated[item_3] > scores[item_3] + 0.02,
            "the clicks raised item 3: {} → {}",
            scores[item_3],
            updated[item_3]
        );

        // An item added after the build is scored on the fields its record
        // encodes to; one the ranker was not told about, on none, without
        // failing the request.
        let record = Record::new();
        ranker.add_item(items, "new", &record);
        let added_fields = encoder.item_fields_of("new", &record);
        assert_eq!(added_fields[0], vec![feature_id("item_id", "new")]);
        let scores =
            ranker.score(Some(user), &[], &[items, items + 1, 3], &moment).unwrap().unwrap();
        let model = ranker.trainable_copy().unwrap();
        let unknown = vec![Vec::new(); added_fields.len()];
        let expected: Vec<f64> = [&added_fields, &unknown]
            .iter()
            .map(|fields| {
                let fields = encoder.encode_fields(user, fields, &at_nine_pm);
                model.score(&[&CtrFeatures { fields, history: vec![] }]).unwrap()[0]
            })
            .collect();
        assert!((f64::from(scores[0]) - expected[0]).abs() < 1e-5, "{scores:?} {expected:?}");
        assert!((f64::from(scores[1]) - expected[1]).abs() < 1e-5, "{scores:?} {expected:?}");
        assert!((scores[2] - updated[item_3]).abs() < 1e-6, "built items unchanged");
        assert!(ranker.encode(user, &[items], items, 0).is_some(), "learnable online");
    }
}
