//! Online learning of the retrieval embeddings: a thread tails the event
//! log and, for every consumption, takes one BPR step ("the user chose
//! this item over a random one") on the user's vector and, for an item
//! added through the API since the build, on the item's vector, with
//! row-wise Adagrad (`cascade_nn::optimizers::Adagrad`: rows seen rarely
//! take the largest steps). Rows the build did not train (added items,
//! users it never saw) learn at `learning_rate`; users it trained at
//! `built_user_learning_rate`, smaller, because moving them towards new
//! items costs them the built items they were good at
//! (`cascade replay-new-items` measures both sides, docs/results.md). Each round
//! publishes the moved vectors at once: users' into `recall/ann`'s learned
//! vectors, added items' into the ANN index (removed and re-inserted).
//!
//! Items the build knew keep their vectors: moving them would move the
//! index under every other user, and the next build learns them from all
//! the data. A swap of the models drops what was learned, since the new
//! models were trained on the same events. The thread starts at the log's
//! end: what came before is the build's.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cascade_core::config::OnlineLearningConfig;
use cascade_core::event::IMPRESSION;
use cascade_models::random::SeededRng;
use cascade_nn::matrix::dot;
use cascade_nn::optimizers::{Adagrad, RowOptimizer};
use cascade_store::Store;

use crate::metrics::Metrics;
use crate::recommender::{Models, Recommender};

/// Step sizes and pace of the learner.
#[derive(Debug, Clone, Copy)]
pub struct RetrievalLearningSettings {
    /// Adagrad's learning rate for rows the build did not train: added
    /// items, and users it never saw.
    pub learning_rate: f32,
    /// Adagrad's learning rate for users the build trained (0 keeps them).
    pub built_user_learning_rate: f32,
    /// Adagrad's initial accumulator: caps the first steps.
    pub initial_accumulator: f32,
    /// L2 pull towards zero per step, as in BPR-MF's training.
    pub regularization: f32,
    /// How often the log is read when it had nothing new.
    pub poll: Duration,
    /// Events read per round at most.
    pub page: usize,
}

impl From<&OnlineLearningConfig> for RetrievalLearningSettings {
    fn from(config: &OnlineLearningConfig) -> Self {
        RetrievalLearningSettings {
            learning_rate: config.retrieval_learning_rate,
            built_user_learning_rate: config.built_user_learning_rate,
            initial_accumulator: config.retrieval_initial_accumulator,
            regularization: config.retrieval_regularization,
            poll: Duration::from_millis(config.retrieval_poll_ms),
            page: config.retrieval_page,
        }
    }
}

/// What `[online_learning]` documents.
impl Default for RetrievalLearningSettings {
    fn default() -> Self {
        RetrievalLearningSettings::from(&OnlineLearningConfig::default())
    }
}

/// What one round learned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetrievalReport {
    /// Log entries read, impressions included.
    pub read: usize,
    /// Consumptions learned from.
    pub learned: usize,
    /// Consumptions of items the models do not know (yet).
    pub skipped: usize,
    /// Distinct users whose vectors moved.
    pub users: usize,
    /// Distinct added items whose vectors moved and were re-indexed.
    pub items: usize,
}

/// An item's side of a BPR step: its vector, and its Adagrad state if it
/// learns (an added item).
type ItemSide<'a> = (&'a mut [f32], Option<&'a mut [f32]>);

/// One BPR step with Adagrad for "the user chose `positive` over
/// `negative`": the user's vector moves with `user_optimizer`, each item's
/// (with `optimizer`) only when it learns.
fn bpr_step(
    (optimizer, user_optimizer): (&Adagrad, &Adagrad),
    regularization: f32,
    (user, user_state): (&mut [f32], &mut [f32]),
    (positive, positive_state): ItemSide<'_>,
    (negative, negative_state): ItemSide<'_>,
) {
    let margin = dot(user, positive) - dot(user, negative);
    // d/dx of −ln σ(x) is −σ(−x).
    let pull = -1.0 / (1.0 + margin.exp());
    let user_grad: Vec<f32> = (0..user.len())
        .map(|d| pull * (positive[d] - negative[d]) + regularization * user[d])
        .collect();
    for (item, state, sign) in [(positive, positive_state, 1.0), (negative, negative_state, -1.0)] {
        if let Some(state) = state {
            let grad: Vec<f32> =
                (0..item.len()).map(|d| sign * pull * user[d] + regularization * item[d]).collect();
            optimizer.update(item, state, &grad, 0);
        }
    }
    user_optimizer.update(user, user_state, &user_grad, 0);
}

/// Adagrad's accumulators for the models they belong to.
struct LearnerState {
    models: Arc<Models>,
    users: HashMap<String, Vec<f32>>,
    added_items: HashMap<u32, Vec<f32>>,
}

/// The learning itself, apart from where consumptions come from (the
/// server's log, or `cascade replay-new-items`).
pub struct OnlineRetrieval {
    settings: RetrievalLearningSettings,
    state: Option<LearnerState>,
    rng: SeededRng,
}

impl OnlineRetrieval {
    /// No state yet; negatives drawn with a fixed seed.
    pub fn new(settings: RetrievalLearningSettings) -> OnlineRetrieval {
        OnlineRetrieval { settings, state: None, rng: SeededRng::new(2026) }
    }

    /// Learns from (user id, item id) consumptions, in order, and publishes
    /// the moved vectors into `models`. `read` and nothing else of the
    /// report is left to the caller.
    pub fn learn<'a>(
        &mut self,
        models: &Arc<Models>,
        consumptions: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<RetrievalReport, String> {
        if !self.state.as_ref().is_some_and(|state| Arc::ptr_eq(&state.models, models)) {
            let (users, added_items) = (HashMap::new(), HashMap::new());
            self.state = Some(LearnerState { models: models.clone(), users, added_items });
        }
        let Some(state) = self.state.as_mut() else {
            return Err("the learner has no state for these models".into());
        };
        let (user_states, item_states) = (&mut state.users, &mut state.added_items);
        let (catalog, ann) = (&models.catalog, &models.ann);
        let index = ann.index();
        let dim = index.dim();
        let adagrad =
            |lr: f32| Adagrad { lr, initial_accumulator: self.settings.initial_accumulator };
        let new_rows = adagrad(self.settings.learning_rate);
        let built_users = adagrad(self.settings.built_user_learning_rate);
        let regularization = self.settings.regularization;
        let mut users: HashMap<&str, Vec<f32>> = HashMap::new();
        let mut items: HashMap<u32, Vec<f32>> = HashMap::new();
        let mut report = RetrievalReport::default();
        for (user_id, item_id) in consumptions {
            let Some(item) = catalog.item_index(item_id) else {
                report.skipped += 1;
                continue;
            };
            let known = catalog.users.index(user_id);
            let user = users.entry(user_id).or_insert_with(|| {
                ann.user_vector(known, user_id).unwrap_or_else(|| vec![0.0; dim])
            });
            let optimizers = (&new_rows, if known.is_some() { &built_users } else { &new_rows });
            let user_state =
                user_states.entry(user_id.to_owned()).or_insert_with(|| vec![0.0; dim]);
            let user = (user.as_mut_slice(), user_state.as_mut_slice());
            // Negatives come from every indexed item: an added item is
            // pushed away from the users who chose something else.
            let mut negative = self.rng.below(index.len().max(2)) as u32;
            if negative == item {
                negative = (negative + 1) % index.len() as u32;
            }
            let mut vector_and_state = |k: u32| -> (Vec<f32>, Option<Vec<f32>>) {
                let vector = items.get(&k).cloned().unwrap_or_else(|| index.item(k).into_owned());
                let state = catalog
                    .is_added(k)
                    .then(|| item_states.remove(&k).unwrap_or_else(|| vec![0.0; dim]));
                (vector, state)
            };
            let (mut positive_vector, mut positive_state) = vector_and_state(item);
            let (mut negative_vector, mut negative_state) = vector_and_state(negative);
            bpr_step(
                optimizers,
                regularization,
                user,
                (&mut positive_vector, positive_state.as_deref_mut()),
                (&mut negative_vector, negative_state.as_deref_mut()),
            );
            for (k, vector, state) in [
                (item, positive_vector, positive_state),
                (negative, negative_vector, negative_state),
            ] {
                if let Some(state) = state {
                    item_states.insert(k, state);
                    items.insert(k, vector);
                }
            }
            report.learned += 1;
        }
        // Built users at rate 0 did not move: nothing to keep for them.
        let frozen = self.settings.built_user_learning_rate == 0.0;
        users.retain(|user_id, _| !(frozen && catalog.users.index(user_id).is_some()));
        report.users = users.len();
        report.items = items.len();
        for (user_id, vector) in users {
            ann.set_user_vector(user_id, vector);
        }
        for (item, vector) in &items {
            index.set_added(*item, vector)?;
        }
        Ok(report)
    }
}

/// The server's learner: where it is in the event log.
pub struct RetrievalLearner {
    store: Store,
    next_seq: u64,
    recommender: Arc<Recommender>,
    metrics: Arc<Metrics>,
    poll: Duration,
    page: usize,
    learning: OnlineRetrieval,
}

impl RetrievalLearner {
    /// A learner of `recommender`'s retrieval vectors from `store`'s event
    /// log, starting at its current end.
    pub fn new(
        store: Store,
        recommender: Arc<Recommender>,
        metrics: Arc<Metrics>,
        settings: RetrievalLearningSettings,
    ) -> Result<RetrievalLearner, String> {
        let next_seq = store.event_count().map_err(|e| e.to_string())?;
        Ok(RetrievalLearner {
            store,
            next_seq,
            recommender,
            metrics,
            poll: settings.poll,
            page: settings.page,
            learning: OnlineRetrieval::new(settings),
        })
    }

    /// Learns from the events logged since the last round and publishes
    /// the moved vectors.
    pub fn round(&mut self) -> Result<RetrievalReport, String> {
        let page = self.store.events_page(self.next_seq, self.page);
        let page = page.map_err(|e| e.to_string())?;
        let Some(last) = page.last() else {
            return Ok(RetrievalReport::default());
        };
        self.next_seq = last.seq + 1;
        let consumptions = page
            .iter()
            .filter(|stored| stored.event.event_type != IMPRESSION)
            .map(|stored| (stored.event.user.as_str(), stored.event.item.as_str()));
        let report = self.learning.learn(&self.recommender.models(), consumptions)?;
        let report = RetrievalReport { read: page.len(), ..report };
        self.metrics.retrieval_round(report.learned, report.skipped, report.users, report.items);
        Ok(report)
    }

    /// Runs rounds on a thread of its own: back to back while the log has
    /// more, every `poll` otherwise. A failed round is reported and retried.
    pub fn spawn(mut self) {
        std::thread::spawn(move || {
            loop {
                match self.round() {
                    Ok(report) if report.read == self.page => continue,
                    Ok(_) => {}
                    Err(e) => eprintln!("retrieval learning: {e}"),
                }
                std::thread::sleep(self.poll);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use cascade_core::{Event, FeatureValue, Record};
    use cascade_nn::matrix::dot;
    use cascade_store::{EventKey, KeyedEvent};

    use super::*;
    use crate::recall::AnnBackend;
    use crate::recommender::PipelineSettings;
    use crate::test_fixture::small_recommender;

    fn event(n: usize, user: &str, item: &str, event_type: &str) -> KeyedEvent {
        KeyedEvent {
            key: EventKey::from_client_id(&format!("e{n}")),
            event: Event {
                user: user.into(),
                item: item.into(),
                event_type: event_type.into(),
                value: None,
                ts_ms: n as i64,
                served: None,
            },
        }
    }

    /// Consumptions move the consumer's vector (a user the build never saw
    /// gets one, and with it ANN recall) and an added item's vector towards
    /// its consumers; built items stay put; impressions teach nothing.
    #[test]
    fn consumptions_teach_users_and_added_items() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store.redb")).unwrap();
        let recommender = Arc::new(small_recommender(
            PipelineSettings { exposure_cap: None, ..PipelineSettings::default() },
            AnnBackend::Usearch,
        ));
        let metrics = Arc::new(Metrics::default());
        // Built users learn too here (by default they keep their vectors).
        let settings = RetrievalLearningSettings {
            built_user_learning_rate: 0.1,
            ..RetrievalLearningSettings::default()
        };
        let mut learner =
            RetrievalLearner::new(store.clone(), recommender.clone(), metrics.clone(), settings)
                .unwrap();
        let record = Record::from([("genres".to_owned(), FeatureValue::List(vec!["c1".into()]))]);
        recommender.add_item("new", &record);
        let models = recommender.models();
        let (ann, index) = (&models.ann, models.ann.index());
        let new = models.catalog.item_index("new").unwrap();
        let user_a = ann.user_vector(Some(0), "a").unwrap();
        let (built_3, new_before) = (index.item(3).into_owned(), index.item(new).into_owned());
        assert!(ann.user_vector(None, "z").is_none(), "the build never saw z");

        let mut events =
            vec![event(0, "a", "new", "impression"), event(1, "z", "unknown", "click")];
        events.extend((0..3).map(|k| event(10 + k, "z", &(3 * k + 3).to_string(), "click")));
        events.extend((0..20).map(|k| event(20 + k, "a", "new", "click")));
        store.append(&events).unwrap();
        let report = learner.round().unwrap();
        assert_eq!(
            report,
            RetrievalReport { read: 25, learned: 23, skipped: 1, users: 2, items: 1 }
        );
        assert!(learner.round().unwrap() == RetrievalReport::default(), "nothing new");

        let z = ann.user_vector(None, "z").expect("learned from z's clicks");
        assert!(z.iter().any(|v| *v != 0.0));
        let request = crate::recommender::RecommendRequest {
            user_id: "z".into(),
            context: Default::default(),
            n: Some(10),
            exclude: Vec::new(),
            pin: Vec::new(),
            filters: Default::default(),
        };
        let items = recommender.recommend(&request).unwrap().items;
        assert!(items.iter().any(|i| i.sources.iter().any(|s| s == "recall/ann")), "{items:?}");

        let a_after = ann.user_vector(Some(0), "a").unwrap();
        let new_after = index.item(new).into_owned();
        assert!(
            dot(&a_after, &new_after) > dot(&user_a, &new_before) + 0.1,
            "a and the item a chose moved together: {} → {}",
            dot(&user_a, &new_before),
            dot(&a_after, &new_after)
        );
        assert_eq!(index.item(3).as_ref(), built_3.as_slice(), "built items keep their vectors");
        let rank_of_new = index.search(&a_after, 31).iter().position(|h| h.0 == new);
        assert_eq!(rank_of_new, Some(0), "a's top item by ANN is the one a keeps choosing");

        // A swap drops what was learned: the new build saw the same events.
        recommender.swap(crate::test_fixture::small_models(AnnBackend::Usearch));
        learner.round().unwrap();
        assert!(recommender.models().ann.user_vector(None, "z").is_none());
    }

    /// By default the build's users keep their vectors (moving them cost
    /// the built items, docs/results.md); added items and unseen users learn.
    #[test]
    fn by_default_built_users_keep_their_vectors() {
        let models = Arc::new(crate::test_fixture::small_models(AnnBackend::Usearch));
        let reader = crate::catalog::ItemFactsReader::default();
        let (new, _) = models.add_item("new", &Record::new(), &reader).unwrap().unwrap();
        let index = models.ann.index();
        let (a_before, new_before) =
            (models.ann.user_vector(Some(0), "a").unwrap(), index.item(new).into_owned());
        let mut learning = OnlineRetrieval::new(RetrievalLearningSettings::default());
        let report = learning.learn(&models, [("a", "new"), ("a", "new"), ("newbie", "new")]);
        assert_eq!(report.unwrap().users, 1, "only the unseen user moved");
        assert_eq!(models.ann.user_vector(Some(0), "a").unwrap(), a_before);
        assert_ne!(index.item(new).as_ref(), new_before.as_slice());
        assert!(
            models.ann.user_vector(None, "newbie").is_some_and(|v| v.iter().any(|x| *x != 0.0))
        );
    }
}
