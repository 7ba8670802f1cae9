//! One request through the pipeline: variant → recall → rank → re-rank →
//! response. Models are swapped whole behind an `Arc`; the catalog (ids and
//! histories) and the set of hidden items outlive model swaps.

use parking_lot::{Mutex, RwLock};
use std::borrow::Cow;
use std::collections::HashMap;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cascade_core::ids::feature_id;
use cascade_core::serve_config::{RecallQuotas, RecommendConfig};
use cascade_core::timestamp::now_ms;

use cascade_store::online::OnlineStore;
use cascade_stream::LiveStream;

use crate::catalog::{Catalog, ItemFactsReader};
use crate::entities::HiddenItems;
use crate::exposure::ExposureMemory;
use crate::metrics::Metrics;
use crate::rank::RequestMoment;
use crate::realtime::FeatureSource;
use crate::recall::{CandidateSource, RecallContext, TrendingRecall, merge};
use crate::rerank::{Adjustments, adjust, mmr, pin};

pub use crate::models::Models;
pub use crate::request::{
    Filters, PinRule, RecommendRequest, RecommendResponse, RequestError, ScoredItem, check_n,
};

/// Pipeline settings shared by every variant until experiments define more.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineSettings {
    /// Candidates per channel.
    pub quotas: RecallQuotas,
    /// How long one reading of the stream's trending items serves requests
    /// (reading scans every item counted in the window).
    pub trending_refresh: Duration,
    /// Freshness boost and popularity dampening before diversity.
    pub adjustments: Adjustments,
    /// MMR's relevance weight (1 = no diversity).
    pub mmr_lambda: f32,
    /// MMR picks among this many most relevant candidates (at least n).
    pub mmr_pool: usize,
    /// Whether items the user already consumed are removed.
    pub remove_consumed: bool,
    /// Exposure cap: an item already shown to the user this many times
    /// within `exposure_window` is not shown again until older showings
    /// leave the window. `None` disables the cap.
    pub exposure_cap: Option<usize>,
    /// The exposure cap's window.
    pub exposure_window: Duration,
    /// The longest id or category name a request may carry, in bytes
    /// (`[ingest] max_id_bytes`).
    pub max_id_bytes: usize,
    /// The most ids one request list (`exclude`, `pin`, filters) may hold.
    pub max_list_ids: usize,
}

impl PipelineSettings {
    /// The settings `[recommend]` declares; `max_id_bytes` is `[ingest]`'s.
    pub fn from_config(config: &RecommendConfig, max_id_bytes: usize) -> PipelineSettings {
        PipelineSettings {
            quotas: config.quotas,
            trending_refresh: Duration::from_millis(config.trending_refresh_ms),
            adjustments: Adjustments {
                freshness_boost: config.freshness_boost,
                half_life_seconds: config.freshness_half_life_days * 86_400.0,
                popularity_dampening: config.popularity_dampening,
            },
            mmr_lambda: config.mmr_lambda,
            mmr_pool: config.mmr_pool,
            remove_consumed: config.remove_consumed,
            exposure_cap: (config.exposure_cap > 0).then_some(config.exposure_cap),
            exposure_window: Duration::from_secs(config.exposure_window_s),
            max_id_bytes,
            max_list_ids: config.max_list_ids,
        }
    }
}

/// What `cascade.toml` documents.
impl Default for PipelineSettings {
    fn default() -> Self {
        let max_id_bytes = cascade_core::IngestConfig::default().max_id_bytes;
        PipelineSettings::from_config(&RecommendConfig::default(), max_id_bytes)
    }
}

/// The online recommender. State that outlives a model swap (hidden items,
/// exposures, live histories) is kept by external id, since a swap may
/// renumber the catalog.
pub struct Recommender {
    models: RwLock<Arc<Models>>,
    hidden: HiddenItems,
    settings: PipelineSettings,
    metrics: Arc<Metrics>,
    next_request: AtomicU64,
    /// Start time in hex: request ids stay unique across restarts, which
    /// keeps impression event ids unique in the log.
    request_prefix: String,
    experiment_salt: String,
    /// What each user was shown lately, for the exposure cap.
    exposures: ExposureMemory,
    /// This server's stream processor (ingest waits on it and bounds its
    /// lag).
    live: Option<Arc<LiveStream>>,
    /// Where real-time features are read: each user's latest consumption,
    /// after the catalog's history, and the trending items.
    features: Option<FeatureSource>,
    /// The stream's trending items and when they were read: recomputing
    /// scans every counted item, so requests share one reading a second.
    trending: Mutex<Option<TrendingReading>>,
    /// Where an item record keeps its categories and publication time.
    item_facts: ItemFactsReader,
}

/// When the trending items were read, and the (item id, interactions) read.
type TrendingReading = (Instant, Arc<Vec<(String, u64)>>);

/// Trending items read each time: the channel's quota plus room for the
/// ones a user has consumed or the catalog does not know.
const TRENDING_POOL: usize = 200;

impl std::fmt::Debug for Recommender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recommender").field("settings", &self.settings).finish()
    }
}

impl Recommender {
    /// A recommender answering with `models`.
    pub fn new(models: Models, settings: PipelineSettings, metrics: Arc<Metrics>) -> Recommender {
        let exposures = ExposureMemory::new(settings.exposure_cap, settings.exposure_window);
        Recommender {
            models: RwLock::new(Arc::new(models)),
            hidden: HiddenItems::in_memory(),
            settings,
            metrics,
            next_request: AtomicU64::new(1),
            request_prefix: format!("{:x}", cascade_core::timestamp::now_ms()),
            experiment_salt: "default".into(),
            exposures,
            live: None,
            features: None,
            trending: Mutex::new(None),
            item_facts: ItemFactsReader::default(),
        }
    }

    /// Reads added items' categories and publication times with `reader`.
    pub fn with_item_facts(mut self, reader: ItemFactsReader) -> Recommender {
        self.item_facts = reader;
        self
    }

    /// Makes an item created through the API recommendable now (see
    /// [`Models::add_item`]); an item the models have is left as it is. A
    /// failure is logged: the record is stored, and the next build has it.
    pub fn add_item(&self, item_id: &str, record: &cascade_core::Record) {
        if let Some(live) = &self.live {
            live.set_item_categories(item_id, self.item_facts.categories(record));
        }
        match self.models().add_item(item_id, record, &self.item_facts) {
            Ok(Some((_, true))) => self.metrics.item_added(),
            Ok(_) => {}
            Err(e) => eprintln!("adding item {item_id:?} to the serving models: {e}"),
        }
    }

    /// Reads users' latest consumption from `live` (the stream processor).
    pub fn with_live(mut self, live: Arc<LiveStream>) -> Recommender {
        self.features = Some(FeatureSource::Stream(live.clone()));
        self.live = Some(live);
        self
    }

    /// Reads real-time features from a shared online store instead of this
    /// server's stream processor (several servers, one store).
    pub fn with_shared_features(mut self, store: Arc<dyn OnlineStore>) -> Recommender {
        self.features = Some(FeatureSource::Shared(store));
        self
    }

    /// Where real-time features are read, if anywhere.
    pub fn features(&self) -> Option<&FeatureSource> {
        self.features.as_ref()
    }

    /// The stream processor the histories come from, if any.
    pub fn live(&self) -> Option<&Arc<LiveStream>> {
        self.live.as_ref()
    }

    /// Keeps hidden items in `hidden` (e.g. persisted ones) instead of memory.
    pub fn with_hidden(mut self, hidden: HiddenItems) -> Recommender {
        self.hidden = hidden;
        self
    }

    /// The models answering now.
    pub fn models(&self) -> Arc<Models> {
        self.models.read().clone()
    }

    /// Replaces the models; requests already running finish on the old ones.
    pub fn swap(&self, models: Models) {
        *self.models.write() = Arc::new(models);
    }

    /// The user's variant: a hash of the experiment salt and the user id.
    /// One variant until experiments define more; the seam is here.
    pub fn variant(&self, user_id: &str) -> String {
        let variants = ["default"];
        let hash = feature_id(&self.experiment_salt, user_id);
        variants[(hash % variants.len() as u64) as usize].to_owned()
    }

    /// The stream's trending items, read at most once per `trending_refresh`.
    fn trending_now(&self) -> Option<Arc<Vec<(String, u64)>>> {
        let features = self.features.as_ref()?;
        let mut cached = self.trending.lock();
        match cached.as_ref() {
            Some((read, items)) if read.elapsed() < self.settings.trending_refresh => {
                Some(items.clone())
            }
            _ => {
                // A shared store that fails costs the channel, not the request.
                let items = features.trending(TRENDING_POOL).unwrap_or_else(|e| {
                    self.metrics.feature_error();
                    eprintln!("trending: {e}");
                    Vec::new()
                });
                let items = Arc::new(items);
                *cached = Some((Instant::now(), items.clone()));
                Some(items)
            }
        }
    }

    /// The user's history: the catalog's (as of the models' build), then the
    /// stream's latest consumption that it does not have yet. Items the
    /// catalog does not know are skipped.
    fn history(&self, catalog: &Catalog, user_id: &str, user: Option<u32>) -> Vec<u32> {
        let mut history = user.map_or_else(Vec::new, |u| catalog.histories[u as usize].clone());
        if let Some(features) = &self.features {
            // A shared store that fails leaves the catalog's history alone.
            let recent = features.history(user_id).unwrap_or_else(|e| {
                self.metrics.feature_error();
                eprintln!("history of {user_id}: {e}");
                Vec::new()
            });
            let known: HashSet<u32> = history.iter().copied().collect();
            let fresh = recent.iter().filter_map(|id| catalog.item_index(id));
            history.extend(fresh.filter(|item| !known.contains(item)));
        }
        history
    }

    /// Hides an item: never recommended again, from the next request on.
    pub fn hide(&self, item_id: &str) -> Result<(), RequestError> {
        item(&self.models().catalog, item_id)?;
        self.hidden.hide(item_id)
    }

    /// Whether an item is hidden.
    pub fn is_hidden(&self, item_id: &str) -> Result<bool, RequestError> {
        item(&self.models().catalog, item_id)?;
        Ok(self.hidden.contains(item_id))
    }

    /// Dense indices of the hidden items the catalog knows.
    fn hidden_items(&self, catalog: &Catalog) -> HashSet<u32> {
        let mut items = HashSet::new();
        self.hidden.for_each(|id| items.extend(catalog.item_index(id)));
        items
    }

    /// Items most similar to `item_id` by the retrieval embeddings.
    pub fn similar(&self, item_id: &str, n: usize) -> Result<Vec<ScoredItem>, RequestError> {
        check_n(n)?;
        let models = self.models();
        let catalog = &models.catalog;
        let item = item(catalog, item_id)?;
        let index = models.ann.index();
        let hidden = self.hidden_items(catalog);
        let found = index.search(&index.item(item), n + 1 + hidden.len());
        let items = found
            .into_iter()
            .filter(|&(other, _)| other != item && !hidden.contains(&other))
            .take(n)
            .enumerate()
            .map(|(k, (other, score))| ScoredItem {
                item_id: catalog.item_id(other).into_owned(),
                score: Some(score),
                rank: k + 1,
                sources: vec!["recall/ann".into()],
            })
            .collect();
        Ok(items)
    }

    /// Answers one request.
    pub fn recommend(&self, request: &RecommendRequest) -> Result<RecommendResponse, RequestError> {
        request.validate(self.settings.max_id_bytes, self.settings.max_list_ids)?;
        let n = request.count();
        let models = self.models();
        let moment = RequestMoment { context: &request.context, now_ms: now_ms() };
        if let Some(ranker) = &models.ranker {
            ranker.check_context(&moment).map_err(RequestError::BadRequest)?;
        }
        let catalog = &models.catalog;
        let user = catalog.users.index(&request.user_id);
        let history = self.history(catalog, &request.user_id, user);
        let history = history.as_slice();

        let started = Instant::now();
        let mut excluded: HashSet<u32> = self.hidden_items(catalog);
        if self.settings.remove_consumed {
            excluded.extend(history.iter().copied());
        }
        // Unknown ids (in `exclude`, capped, hidden) cannot be recommended anyway.
        let known = |ids: &mut dyn Iterator<Item = &String>| -> Vec<u32> {
            ids.filter_map(|id| catalog.item_index(id)).collect()
        };
        excluded.extend(known(&mut self.exposures.capped_items(&request.user_id).iter()));
        excluded.extend(known(&mut request.exclude.iter()));
        let only = categories(catalog, &request.filters.categories)?;
        let never = categories(catalog, &request.filters.exclude_categories)?;
        let rejected = |item: u32| {
            excluded.contains(&item)
                || (!only.is_empty() && !catalog.in_any(item, &only))
                || (!never.is_empty() && catalog.in_any(item, &never))
        };
        let context = RecallContext { user_id: &request.user_id, user, history };
        let quotas = self.settings.quotas;
        let trending =
            self.trending_now().map(|t| TrendingRecall::new(&t, |id| catalog.item_index(id)));
        let mut channels: Vec<(&dyn CandidateSource, usize)> = vec![
            (&models.ann, quotas.ann),
            (&models.item_cf, quotas.item_cf),
            (&models.category_popular, quotas.category_popular),
        ];
        if let Some(trending) = &trending {
            channels.push((trending, quotas.trending));
        }
        channels.extend([
            (&models.popular as &dyn CandidateSource, quotas.popular),
            (&models.fresh, quotas.fresh),
        ]);
        let mut candidates = merge(&channels, &context, &rejected);
        if candidates.len() < n {
            // Too few (a new user, narrow filters): top up with popular items.
            let present: HashSet<u32> = candidates.iter().map(|c| c.item).collect();
            let top_up = [(&models.popular as &dyn CandidateSource, n - candidates.len())];
            let not_yet = |item: u32| rejected(item) || present.contains(&item);
            candidates.extend(merge(&top_up, &context, &not_yet));
        }
        for (channel, _) in &channels {
            let count = candidates.iter().filter(|c| c.sources[0] == channel.name()).count();
            self.metrics.candidates(channel.name(), count);
        }
        self.metrics.stage("recall", started.elapsed());

        let started = Instant::now();
        let items: Vec<u32> = candidates.iter().map(|c| c.item).collect();
        let ranked = models.ranker.as_ref().and_then(|ranker| {
            match ranker.score(user, history, &items, &moment) {
                Ok(scores) => scores,
                Err(error) => {
                    self.metrics.ranker_error();
                    eprintln!(
                        "ranking for user {:?} failed, recall order served: {error}",
                        request.user_id
                    );
                    None
                }
            }
        });
        let ranker = ranked.as_ref().and(models.ranker.as_ref()).map(|r| r.name().to_owned());
        // Without a ranker, recall order stands: earlier is better.
        let scores =
            ranked.unwrap_or_else(|| (0..items.len()).map(|k| 1.0 / (1.0 + k as f32)).collect());
        let mut scored: Vec<(u32, f32)> = items.iter().copied().zip(scores).collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        self.metrics.stage("rank", started.elapsed());

        let started = Instant::now();
        let index = models.ann.index();
        let popular = &models.popular;
        let adjusted = adjust(
            &scored,
            self.settings.adjustments,
            |item| catalog.age_seconds(item),
            |item| popular.count(item),
            popular.max_count(),
        );
        // Diversity among the most relevant only: an item below the top
        // `mmr_pool` would not be picked for a short list anyway.
        let mut adjusted = adjusted;
        adjusted.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        adjusted.truncate(self.settings.mmr_pool.max(n));
        let vectors: HashMap<u32, Cow<'_, [f32]>> =
            adjusted.iter().map(|&(item, _)| (item, index.item(item))).collect();
        let mut list = mmr(&adjusted, |item| &vectors[&item], self.settings.mmr_lambda, n);
        // Responses show the ranker's score; the adjusted one only orders.
        let ranker_score: HashMap<u32, f32> = scored.iter().copied().collect();
        for (item, score) in &mut list {
            *score = ranker_score[item];
        }
        let hidden = self.hidden_items(catalog);
        let mut pins: Vec<(u32, usize)> = request
            .pin
            .iter()
            .map(|rule| Ok((item(catalog, &rule.item_id)?, rule.position)))
            .collect::<Result<_, RequestError>>()
            .map_err(|e| RequestError::BadRequest(format!("pin: {e}")))?;
        pins.retain(|(item, _)| !hidden.contains(item));
        pin(&mut list, &pins, n);
        let shown: Vec<Cow<'_, str>> =
            list.iter().map(|&(item, _)| catalog.item_id(item)).collect();
        self.exposures.record(&request.user_id, shown.iter().map(|id| id.as_ref()));
        self.metrics.stage("rerank", started.elapsed());

        let sources_of = |item: u32| -> Vec<String> {
            match candidates.iter().find(|c| c.item == item) {
                Some(c) => c.sources.iter().map(|s| (*s).to_owned()).collect(),
                None => vec!["rule/pin".into()],
            }
        };
        let items = list
            .into_iter()
            .enumerate()
            .map(|(k, (item, score))| ScoredItem {
                item_id: catalog.item_id(item).into_owned(),
                score: (!score.is_nan()).then_some(score),
                rank: k + 1,
                sources: sources_of(item),
            })
            .collect();
        Ok(RecommendResponse {
            request_id: format!(
                "{}-{}",
                self.request_prefix,
                self.next_request.fetch_add(1, Ordering::Relaxed)
            ),
            variant: self.variant(&request.user_id),
            model_version: models.version.clone(),
            ranker,
            items,
        })
    }
}

impl Recommender {
    /// Users with exposures still remembered (for tests and monitoring).
    pub fn exposure_users(&self) -> usize {
        self.exposures.users()
    }
}

fn item(catalog: &Catalog, item_id: &str) -> Result<u32, RequestError> {
    catalog
        .item_index(item_id)
        .ok_or_else(|| RequestError::NotFound(format!("no item with id {item_id:?}")))
}

/// Dense indices of category names; an unknown name is the client's error.
fn categories(catalog: &Catalog, names: &[String]) -> Result<Vec<u32>, RequestError> {
    names
        .iter()
        .map(|name| {
            catalog.facts.categories.index(name).ok_or_else(|| {
                RequestError::BadRequest(format!("filters: no category named {name:?}"))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::exposure::EXPOSURE_SWEEP_EVERY;
    use crate::recall::AnnBackend;
    use crate::test_fixture::small_recommender;

    fn recommender(settings: PipelineSettings) -> Recommender {
        small_recommender(settings, AnnBackend::Usearch)
    }

    fn request(user: &str, n: usize) -> RecommendRequest {
        RecommendRequest {
            user_id: user.into(),
            context: BTreeMap::new(),
            n: Some(n),
            exclude: Vec::new(),
            pin: Vec::new(),
            filters: Filters::default(),
        }
    }

    fn ask(r: &Recommender, user: &str, n: usize) -> Vec<String> {
        r.recommend(&request(user, n)).unwrap().items.into_iter().map(|i| i.item_id).collect()
    }

    #[test]
    fn logged_events_join_the_history_through_the_stream_processor() {
        let dir = tempfile::tempdir().unwrap();
        let store = cascade_store::Store::open(&dir.path().join("store.redb")).unwrap();
        let checkpoint = dir.path().join("stream.json");
        let processor = cascade_stream::StreamProcessor::open(
            store.clone(),
            &checkpoint,
            cascade_stream::StreamSettings::default(),
            HashMap::new(),
        )
        .unwrap();
        let live = LiveStream::start(processor, checkpoint).unwrap();
        let settings = PipelineSettings {
            exposure_cap: None,
            trending_refresh: Duration::ZERO,
            ..PipelineSettings::default()
        };
        let r = recommender(settings).with_live(live.clone());
        let first = ask(&r, "a", 5);
        let log = |events: &[(&str, &str, &str)]| {
            let keyed: Vec<cascade_store::KeyedEvent> = events
                .iter()
                .map(|&(user, item, event_type)| cascade_store::KeyedEvent {
                    key: cascade_store::EventKey::from_client_id(&format!(
                        "{user}{item}{event_type}"
                    )),
                    event: cascade_core::Event {
                        user: user.into(),
                        item: item.into(),
                        event_type: event_type.into(),
                        value: None,
                        ts_ms: 0,
                    },
                })
                .collect();
            let last = store.append(&keyed).unwrap().last().unwrap().seq();
            live.notify();
            assert!(live.wait_applied(last + 1, Duration::from_secs(5)));
        };
        // An impression is not consumption; an unknown item is ignored.
        log(&[("a", &first[0], "impression"), ("a", "no-such-item", "click")]);
        assert_eq!(ask(&r, "a", 5)[0], first[0]);
        log(&[("a", &first[0], "click")]);
        assert!(!ask(&r, "a", 27).contains(&first[0]), "a consumed item is excluded");
        // What was just clicked is trending: a user unrelated to it is offered it.
        let items = r.recommend(&request("stranger", 27)).unwrap().items;
        let trending: Vec<&str> = items
            .iter()
            .filter(|i| i.sources.iter().any(|s| s == "recall/trending"))
            .map(|i| i.item_id.as_str())
            .collect();
        assert!(trending.contains(&first[0].as_str()), "{items:?}");
        // A user the catalog never saw gets history-based recall from events.
        log(&[("new", "3", "click"), ("new", "4", "click")]);
        let items = r.recommend(&request("new", 10)).unwrap().items;
        assert!(items.iter().all(|i| i.item_id != "3" && i.item_id != "4"));
        assert!(items.iter().any(|i| i.sources.iter().any(|s| s == "recall/item_cf")), "{items:?}");
    }

    #[test]
    fn users_whose_exposures_left_the_window_are_forgotten() {
        let window = Duration::from_millis(50);
        let settings = PipelineSettings { exposure_window: window, ..PipelineSettings::default() };
        let r = recommender(settings);
        ask(&r, "a", 3);
        ask(&r, "b", 3);
        assert_eq!(r.exposure_users(), 2);
        std::thread::sleep(window * 2);
        // Enough requests from a third user to pass one sweep.
        for _ in 0..EXPOSURE_SWEEP_EVERY {
            ask(&r, "c", 1);
        }
        assert_eq!(r.exposure_users(), 1, "only the user seen within the window");
    }

    #[test]
    fn category_filters_restrict_and_exclude() {
        let r = recommender(PipelineSettings { exposure_cap: None, ..PipelineSettings::default() });
        let category = |id: &str| id.parse::<usize>().unwrap() % 3;
        let mut only = request("a", 5);
        only.filters.categories = vec!["c1".into()];
        let items = r.recommend(&only).unwrap().items;
        assert_eq!(items.len(), 5);
        assert!(items.iter().all(|i| category(&i.item_id) == 1), "{items:?}");
        let mut never = request("b", 10);
        never.filters.exclude_categories = vec!["c0".into(), "c2".into()];
        let items = r.recommend(&never).unwrap().items;
        assert!(!items.is_empty() && items.iter().all(|i| category(&i.item_id) == 1), "{items:?}");
        let mut typo = request("a", 5);
        typo.filters.categories = vec!["c9".into()];
        let error = r.recommend(&typo).unwrap_err();
        assert!(error.to_string().contains("\"c9\""), "{error}");
    }

    #[test]
    fn every_channel_contributes_and_sources_are_reported() {
        let r = recommender(PipelineSettings { exposure_cap: None, ..PipelineSettings::default() });
        let items = r.recommend(&request("b", 26)).unwrap().items;
        let sources: HashSet<&str> =
            items.iter().flat_map(|i| i.sources.iter().map(String::as_str)).collect();
        for channel in ["recall/ann", "recall/item_cf", "recall/category_popular", "recall/fresh"] {
            assert!(sources.contains(channel), "{channel} missing from {sources:?}");
        }
    }

    #[test]
    fn consumed_and_hidden_items_never_come_back() {
        let r = recommender(PipelineSettings { exposure_cap: None, ..PipelineSettings::default() });
        let first = ask(&r, "a", 10);
        assert_eq!(first.len(), 10);
        assert!(first.iter().all(|i| !["0", "1", "2"].contains(&i.as_str())), "{first:?}");
        r.hide(&first[0]).unwrap();
        assert!(!ask(&r, "a", 27).contains(&first[0]));
        assert!(matches!(r.hide("nope"), Err(RequestError::NotFound(_))));
    }

    #[test]
    fn a_pin_never_resurrects_a_hidden_item_and_pins_may_not_collide() {
        let r = recommender(PipelineSettings { exposure_cap: None, ..PipelineSettings::default() });
        let pinned = |pins: &[(&str, usize)]| RecommendRequest {
            pin: pins
                .iter()
                .map(|&(item, position)| PinRule { item_id: item.into(), position })
                .collect(),
            ..request("a", 5)
        };
        let shown = r.recommend(&pinned(&[("3", 0), ("4", 2)])).unwrap().items;
        assert_eq!((shown[0].item_id.as_str(), shown[2].item_id.as_str()), ("3", "4"));
        r.hide("3").unwrap();
        let shown = ask_ids(&r, &pinned(&[("3", 0), ("4", 2)]));
        assert!(!shown.contains(&"3".to_owned()), "hidden, pinned or not: {shown:?}");
        assert_eq!(shown.len(), 5);
        for (pins, message) in [
            (&[("4", 1), ("5", 1)][..], "pin[1] and pin[0] both take position 1"),
            (&[("4", 1), ("4", 2)][..], "pin[1]: \"4\" is pinned twice"),
            (&[("4", 5)][..], "pin[0]: position 5 is outside a list of n = 5"),
        ] {
            match r.recommend(&pinned(pins)) {
                Err(RequestError::BadRequest(error)) => assert_eq!(error, message),
                other => panic!("{pins:?}: expected 400, got {other:?}"),
            }
        }
    }

    #[test]
    fn ids_longer_than_the_bound_are_refused_by_field() {
        let r = recommender(PipelineSettings { max_id_bytes: 16, ..PipelineSettings::default() });
        let long = "x".repeat(17);
        let cases = [
            (RecommendRequest { user_id: long.clone(), ..request("a", 5) }, "user_id is 17"),
            (
                RecommendRequest { exclude: vec!["1".into(), long.clone()], ..request("a", 5) },
                "exclude[1] is 17",
            ),
        ];
        for (request, message) in cases {
            match r.recommend(&request) {
                Err(RequestError::BadRequest(error)) => {
                    assert!(error.starts_with(message), "{error}")
                }
                other => panic!("expected 400, got {other:?}"),
            }
        }
        assert_eq!(ask(&r, &"a".repeat(16), 5).len(), 5, "at the bound is fine");
    }

    fn ask_ids(r: &Recommender, request: &RecommendRequest) -> Vec<String> {
        r.recommend(request).unwrap().items.into_iter().map(|i| i.item_id).collect()
    }

    #[test]
    fn the_exposure_cap_rotates_items_out() {
        let settings = PipelineSettings { exposure_cap: Some(2), ..PipelineSettings::default() };
        let r = recommender(settings);
        let first = ask(&r, "b", 5);
        assert_eq!(ask(&r, "b", 5), first, "same request, same answer below the cap");
        let third = ask(&r, "b", 5);
        assert!(third.iter().all(|i| !first.contains(i)), "{first:?} then {third:?}");
        // Another user is unaffected.
        assert_eq!(ask(&r, "a", 5).len(), 5);
    }
}
