//! One request through the pipeline: variant → recall → rank → re-rank →
//! response. The stages are values: recall channels and re-ranking steps
//! are looked up by the names `[recommend]` lists, in its order. Models are
//! swapped whole behind an `Arc`; the catalog (ids and histories) and the
//! set of hidden items outlive model swaps.

use parking_lot::{Mutex, RwLock};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use cascade_core::timestamp::now_ms;

use cascade_store::online::FeatureRead;
use cascade_stream::LiveStream;

use crate::catalog::{Catalog, ItemFactsReader};
use crate::entities::HiddenItems;
use crate::experiments::Experiments;
use crate::exposure::ExposureMemory;
use crate::metrics::Metrics;
use crate::rank::RequestMoment;
use crate::recall::{Candidate, CandidateSource, RecallContext, TrendingRecall, merge};
use crate::rerank::{RerankContext, Reranker, Slate};
use cascade_core::config::RecommendConfig;

pub use crate::models::Models;
pub use crate::pipeline_settings::PipelineSettings;
pub use crate::request::{
    ExperimentVariant, Filters, PinRule, RecommendRequest, RecommendResponse, ScoredItem,
    ServeError, check_n,
};

/// The online recommender. State that outlives a model swap (hidden items,
/// exposures, live histories) is kept by external id, since a swap may
/// renumber the catalog.
pub struct Recommender {
    models: RwLock<Arc<Models>>,
    hidden: HiddenItems,
    /// The default pipeline (`[recommend]`): users in no experiment get it.
    pipeline: Arc<Pipeline>,
    metrics: Arc<Metrics>,
    next_request: AtomicU64,
    /// Start time in hex: request ids stay unique across restarts, which
    /// keeps impression event ids unique in the log.
    request_prefix: String,
    /// What each user was shown lately, for the exposure cap.
    exposures: Arc<ExposureMemory>,
    /// Re-ranking steps a library user registered, by name.
    custom_rerankers: HashMap<String, Arc<dyn Reranker>>,
    /// The running experiments, if any: each user's route to a variant's
    /// pipeline.
    experiments: Option<Arc<Experiments>>,
    /// Variants' pipelines, built on first use, by their route's key.
    variant_pipelines: Mutex<HashMap<String, Arc<Pipeline>>>,
    /// Recall channels registered by a library user, by listed name.
    custom_channels: HashMap<String, Box<dyn CandidateSource>>,
    /// This server's stream processor (ingest waits on it and bounds its
    /// lag).
    live: Option<Arc<LiveStream>>,
    /// Where real-time features are read: each user's latest consumption,
    /// after the catalog's history, and the trending items.
    features: Option<Arc<dyn FeatureRead>>,
    /// The stream's trending items and when they were read: recomputing
    /// scans every counted item, so requests share one reading a second.
    trending: Mutex<Option<TrendingReading>>,
    /// Where an item record keeps its categories and publication time.
    item_facts: ItemFactsReader,
}

/// When the trending items were read, and the (item id, interactions) read.
type TrendingReading = (Instant, Arc<Vec<(String, u64)>>);

/// Where a request goes: see [`Recommender::route`].
struct Routed {
    variants: Vec<(String, String)>,
    pipeline: Arc<Pipeline>,
    /// A variant's own models (its `models_dir`); `None` for the server's.
    models: Option<Arc<Models>>,
    interleaved: Option<Teams>,
}

/// An interleaving experiment's two teams: names, pipelines and models.
type Teams = ([String; 2], [Arc<Pipeline>; 2], [Option<Arc<Models>>; 2]);

/// Team-draft interleaving (Radlinski et al., 2008): the team with fewer
/// picks so far (a seeded coin on ties) adds its best item not yet in the
/// list; each item carries its team. Ranks are renumbered.
fn team_draft(
    lists: [&[ScoredItem]; 2],
    teams: &[String; 2],
    n: usize,
    seed: u64,
) -> Vec<ScoredItem> {
    let mut coin = cascade_experiments::calibration::SplitMix::new(seed);
    let mut next = [0usize; 2];
    let mut picks = [0usize; 2];
    let mut drafted: Vec<ScoredItem> = Vec::with_capacity(n);
    let mut taken = HashSet::new();
    while drafted.len() < n {
        let first = match picks[0].cmp(&picks[1]) {
            std::cmp::Ordering::Less => 0,
            std::cmp::Ordering::Greater => 1,
            std::cmp::Ordering::Equal => usize::from(coin.unit() >= 0.5),
        };
        let mut picked = false;
        for team in [first, 1 - first] {
            let list = lists[team];
            while next[team] < list.len() && taken.contains(&list[next[team]].item_id) {
                next[team] += 1;
            }
            if let Some(item) = list.get(next[team]) {
                taken.insert(item.item_id.clone());
                let rank = drafted.len() + 1;
                drafted.push(ScoredItem { rank, team: Some(teams[team].clone()), ..item.clone() });
                picks[team] += 1;
                picked = true;
                break;
            }
        }
        if !picked {
            break;
        }
    }
    drafted
}

/// One pipeline's stages and knobs: the default's or a variant's.
struct Pipeline {
    settings: PipelineSettings,
    /// The re-ranking steps in the order they run, by name; `None` for a
    /// step nothing provides (an error when a request reaches it).
    rerankers: Vec<(String, Option<Arc<dyn Reranker>>)>,
}

impl std::fmt::Debug for Recommender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recommender").field("settings", &self.pipeline.settings).finish()
    }
}

impl Recommender {
    /// A recommender answering with `models`.
    pub fn new(models: Models, settings: PipelineSettings, metrics: Arc<Metrics>) -> Recommender {
        let exposures =
            Arc::new(ExposureMemory::new(settings.exposure_cap, settings.exposure_window));
        let custom_rerankers = HashMap::new();
        let pipeline = Arc::new(build_pipeline(settings, &exposures, &custom_rerankers));
        Recommender {
            models: RwLock::new(Arc::new(models)),
            hidden: HiddenItems::in_memory(),
            pipeline,
            metrics,
            next_request: AtomicU64::new(1),
            request_prefix: format!("{:x}", cascade_core::timestamp::now_ms()),
            exposures,
            custom_rerankers,
            experiments: None,
            variant_pipelines: Mutex::new(HashMap::new()),
            custom_channels: HashMap::new(),
            live: None,
            features: None,
            trending: Mutex::new(None),
            item_facts: ItemFactsReader::default(),
        }
    }

    /// Registers a recall channel of your own: it runs where `[recommend]
    /// channels` lists its name (`recall/<name>` without the prefix), with
    /// that name's quota. An unlisted or built-in name is an error.
    pub fn with_channel(
        mut self,
        channel: Box<dyn CandidateSource>,
    ) -> Result<Recommender, String> {
        let full = channel.name();
        let name = full
            .strip_prefix("recall/")
            .ok_or_else(|| format!("a recall channel's name starts with recall/, got {full:?}"))?;
        if name == "trending" || self.models().channel(name).is_some() {
            return Err(format!("recall channel {name:?} is built in"));
        }
        if !self.pipeline.settings.lists_channel(name) {
            return Err(format!("recall channel {name:?} is not listed in [recommend] channels"));
        }
        self.custom_channels.insert(name.to_owned(), channel);
        Ok(self)
    }

    /// Registers a re-ranking step of your own: it runs where `[recommend]
    /// rerankers` lists its name. An unlisted or built-in name is an error.
    pub fn with_reranker(mut self, step: Box<dyn Reranker>) -> Result<Recommender, String> {
        let name = step.name().to_owned();
        let slot = self.pipeline.rerankers.iter().find(|(listed, _)| *listed == name);
        match slot {
            None => Err(format!("re-ranker {name:?} is not listed in [recommend] rerankers")),
            Some((_, Some(_))) => Err(format!("re-ranker {name:?} is already there")),
            Some((_, None)) => {
                self.custom_rerankers.insert(name, Arc::from(step));
                let settings = self.pipeline.settings.clone();
                self.pipeline =
                    Arc::new(build_pipeline(settings, &self.exposures, &self.custom_rerankers));
                Ok(self)
            }
        }
    }

    /// Routes users through `experiments`: a user in a variant gets the
    /// default pipeline with the variant's `[recommend]` keys overridden.
    pub fn with_experiments(mut self, experiments: Arc<Experiments>) -> Recommender {
        self.experiments = Some(experiments);
        self
    }

    /// The experiments users are routed through, if any.
    pub fn experiments(&self) -> Option<&Arc<Experiments>> {
        self.experiments.as_ref()
    }

    /// Whether every stage `[recommend]` lists is built in or registered;
    /// the error names the first that is not by its dotted key.
    pub fn check_pipeline(&self) -> Result<(), String> {
        let registered_channel = |name: &str| self.custom_channels.contains_key(name);
        let registered_step = |name: &str| self.custom_rerankers.contains_key(name);
        self.pipeline.settings.check_stages(registered_channel, registered_step)?;
        let variants =
            self.experiments.iter().flat_map(|experiments| experiments.variant_pipelines());
        for (variant, config) in variants {
            let settings =
                PipelineSettings::from_config(&config, self.pipeline.settings.max_id_bytes);
            settings
                .check_stages(registered_channel, registered_step)
                .map_err(|e| format!("{variant}: {e}"))?;
        }
        Ok(())
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
        let variant_models = self.experiments.as_ref().and_then(|e| e.variant_models());
        for models in variant_models.map(|loaded| loaded.all()).unwrap_or_default() {
            if let Err(e) = models.add_item(item_id, record, &self.item_facts) {
                eprintln!("adding item {item_id:?} to the models {}: {e}", models.version);
            }
        }
    }

    /// Reads users' latest consumption from `live` (the stream processor).
    pub fn with_live(mut self, live: Arc<LiveStream>) -> Recommender {
        self.features = Some(live.features());
        self.live = Some(live);
        self
    }

    /// Reads real-time features from a shared online store instead of this
    /// server's stream processor (several servers, one store).
    pub fn with_shared_features(mut self, store: Arc<dyn FeatureRead>) -> Recommender {
        self.features = Some(store);
        self
    }

    /// Where real-time features are read, if anywhere.
    pub fn features(&self) -> Option<&Arc<dyn FeatureRead>> {
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

    /// The experiments' variants the user is in, the pipeline they get
    /// (the default one when they are in none) and, in an interleaving
    /// experiment, its two teams' names and pipelines.
    fn route(&self, user_id: &str) -> Routed {
        let default = || Routed {
            variants: Vec::new(),
            pipeline: self.pipeline.clone(),
            models: None,
            interleaved: None,
        };
        let Some(experiments) = &self.experiments else { return default() };
        let route = experiments.route(user_id);
        let Some(recommend) = route.recommend else {
            return Routed { variants: route.variants, ..default() };
        };
        let interleaved = route.interleaved.map(|teams| {
            let [(a, a_key), (b, b_key)] = teams.pipelines;
            let pipelines = [self.variant_pipeline(&a, a_key), self.variant_pipeline(&b, b_key)];
            (teams.teams, pipelines, teams.models)
        });
        Routed {
            variants: route.variants,
            pipeline: self.variant_pipeline(&recommend, route.key),
            models: route.models,
            interleaved,
        }
    }

    /// The pipeline `recommend` declares, built on first use and kept by `key`.
    fn variant_pipeline(&self, recommend: &RecommendConfig, key: String) -> Arc<Pipeline> {
        let mut built = self.variant_pipelines.lock();
        built
            .entry(key)
            .or_insert_with(|| {
                let max_id_bytes = self.pipeline.settings.max_id_bytes;
                let settings = PipelineSettings::from_config(recommend, max_id_bytes);
                // A variant that changes the exposure cap keeps its own memory.
                let same_cap = (settings.exposure_cap, settings.exposure_window)
                    == (
                        self.pipeline.settings.exposure_cap,
                        self.pipeline.settings.exposure_window,
                    );
                let exposures = match same_cap {
                    true => self.exposures.clone(),
                    false => Arc::new(ExposureMemory::new(
                        settings.exposure_cap,
                        settings.exposure_window,
                    )),
                };
                Arc::new(build_pipeline(settings, &exposures, &self.custom_rerankers))
            })
            .clone()
    }

    /// The user's variants as one label: `experiment/variant` pairs joined
    /// by commas, or `default` for a user in no experiment.
    pub fn variant(&self, user_id: &str) -> String {
        variant_label(&self.route(user_id).variants)
    }

    /// The stream's trending items, read at most once per `trending_refresh`.
    fn trending_now(&self) -> Option<Arc<Vec<(String, u64)>>> {
        let features = self.features.as_ref()?;
        let mut cached = self.trending.lock();
        match cached.as_ref() {
            Some((read, items)) if read.elapsed() < self.pipeline.settings.trending_refresh => {
                Some(items.clone())
            }
            _ => {
                // A shared store that fails costs the channel, not the request.
                let read = features
                    .now_ms()
                    .and_then(|now| features.trending(now, self.pipeline.settings.trending_pool));
                let items = read.unwrap_or_else(|e| {
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
    pub fn hide(&self, item_id: &str) -> Result<(), ServeError> {
        item(&self.models().catalog, item_id)?;
        self.hidden.hide(item_id)
    }

    /// Whether an item is hidden.
    pub fn is_hidden(&self, item_id: &str) -> Result<bool, ServeError> {
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
    pub fn similar(&self, item_id: &str, n: usize) -> Result<Vec<ScoredItem>, ServeError> {
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
                team: None,
                propensity: None,
            })
            .collect();
        Ok(items)
    }

    /// Answers one request.
    pub fn recommend(&self, request: &RecommendRequest) -> Result<RecommendResponse, ServeError> {
        let started = Instant::now();
        let Routed { variants, pipeline, models, interleaved } = self.route(&request.user_id);
        let answer = match interleaved {
            None => self.answer(request, &pipeline, models, variants.clone(), true),
            Some((teams, [a, b], [a_models, b_models])) => {
                let first = self.answer(request, &a, a_models, variants.clone(), false)?;
                let second = self.answer(request, &b, b_models, variants.clone(), false)?;
                let seed = u64::from(cascade_experiments::assignment::fnv1a32(&first.request_id));
                let items =
                    team_draft([&first.items, &second.items], &teams, request.count(), seed);
                notify_served(&a, &request.user_id, &items);
                // The drafted list is not either ranking's explorer's draw,
                // so neither's propensities describe it.
                let items =
                    items.into_iter().map(|item| ScoredItem { propensity: None, ..item }).collect();
                let explored_candidates = Vec::new();
                Ok(RecommendResponse { items, policy: None, explored_candidates, ..first })
            }
        };
        for (experiment, variant) in &variants {
            self.metrics.variant_request(experiment, variant, answer.is_ok(), started.elapsed());
        }
        answer
    }

    /// Answers one request through `pipeline`, from `models` if the
    /// variant has its own, else the server's.
    /// `shown` says whether the list is the one served (an interleaved
    /// list's two rankings are not: the drafted list is).
    fn answer(
        &self,
        request: &RecommendRequest,
        pipeline: &Pipeline,
        models: Option<Arc<Models>>,
        variants: Vec<(String, String)>,
        shown: bool,
    ) -> Result<RecommendResponse, ServeError> {
        let settings = &pipeline.settings;
        request.validate(settings.max_id_bytes, settings.max_list_ids)?;
        if !request.pin.is_empty() && !pipeline.rerankers.iter().any(|(name, _)| name == "pins") {
            return Err(ServeError::Invalid(
                "pin: this server's pipeline has no pins step ([recommend] rerankers)".into(),
            ));
        }
        let models = models.unwrap_or_else(|| self.models());
        let moment = RequestMoment { context: &request.context, now_ms: now_ms() };
        if let Some(ranker) = models.ranker() {
            ranker.check_context(&moment).map_err(ServeError::Invalid)?;
        }
        let catalog = &models.catalog;
        let user = catalog.users.index(&request.user_id);
        let history = self.history(catalog, &request.user_id, user);
        let hidden = self.hidden_items(catalog);
        let prior_consumption = history.len();
        let state =
            RequestState { request, models: &models, pipeline, user, history, hidden, moment };

        let started = Instant::now();
        let candidates = self.recall(&state)?;
        self.metrics.stage("recall", started.elapsed());

        let started = Instant::now();
        let (scored, ranker) = self.rank(&state, &candidates);
        self.metrics.stage("rank", started.elapsed());

        let request_id = format!(
            "{}-{}",
            self.request_prefix,
            self.next_request.fetch_add(1, Ordering::Relaxed)
        );
        let started = Instant::now();
        let seed = u64::from(cascade_experiments::assignment::fnv1a32(&request_id));
        let Slate { items: list, exploration } = self.rerank(&state, &scored, seed)?;
        self.metrics.stage("rerank", started.elapsed());

        let sources_of = |item: u32| -> Vec<String> {
            match candidates.iter().find(|c| c.item == item) {
                Some(c) => c.sources.iter().map(|s| (*s).to_owned()).collect(),
                None => vec!["rule/pin".into()],
            }
        };
        let (policy, propensities, explored_candidates) = match exploration {
            Some(e) => {
                let candidates = e.candidates.iter();
                let named = candidates.map(|&(i, r)| (catalog.item_id(i).into_owned(), r));
                (Some(e.policy), e.propensities, named.collect())
            }
            None => (None, Vec::new(), Vec::new()),
        };
        let items: Vec<ScoredItem> = list
            .into_iter()
            .enumerate()
            .map(|(k, entry)| ScoredItem {
                item_id: catalog.item_id(entry.item).into_owned(),
                score: (!entry.score.is_nan()).then_some(entry.score),
                rank: k + 1,
                sources: sources_of(entry.item),
                team: None,
                propensity: propensities.get(k).copied(),
            })
            .collect();
        if shown {
            notify_served(pipeline, &request.user_id, &items);
        }
        Ok(RecommendResponse {
            request_id,
            variant: variant_label(&variants),
            experiments: variants
                .into_iter()
                .map(|(experiment, variant)| ExperimentVariant { experiment, variant })
                .collect(),
            prior_consumption,
            policy,
            explored_candidates,
            model_version: models.version.clone(),
            ranker,
            items,
        })
    }

    /// Recall: each listed channel's quota of candidates the request
    /// allows (not hidden, consumed, excluded by a step, or filtered out),
    /// topped up with popular items when too few remain.
    fn recall(&self, state: &RequestState<'_>) -> Result<Vec<Candidate>, ServeError> {
        let (request, models) = (state.request, state.models);
        let catalog = &models.catalog;
        let mut excluded = state.hidden.clone();
        let settings = &state.pipeline.settings;
        if settings.remove_consumed {
            excluded.extend(state.history.iter().copied());
        }
        // Unknown ids (in `exclude`, capped) cannot be recommended anyway.
        let known = |ids: &[String]| -> Vec<u32> {
            ids.iter().filter_map(|id| catalog.item_index(id)).collect()
        };
        for step in state.pipeline.rerankers.iter().filter_map(|(_, step)| step.as_ref()) {
            excluded.extend(known(&step.excluded(&request.user_id)));
        }
        excluded.extend(known(&request.exclude));
        let only = categories(catalog, &request.filters.categories)?;
        let never = categories(catalog, &request.filters.exclude_categories)?;
        let rejected = |item: u32| {
            excluded.contains(&item)
                || (!only.is_empty() && !catalog.in_any(item, &only))
                || (!never.is_empty() && catalog.in_any(item, &never))
        };
        let context =
            RecallContext { user_id: &request.user_id, user: state.user, history: &state.history };
        let trending = match settings.lists_channel("trending") {
            true => {
                self.trending_now().map(|t| TrendingRecall::new(&t, |id| catalog.item_index(id)))
            }
            false => None,
        };
        let mut channels: Vec<(&dyn CandidateSource, usize)> = Vec::new();
        for (name, quota) in &settings.channels {
            let channel = match name.as_str() {
                // Without a stream processor nothing is trending.
                "trending" => trending.as_ref().map(|t| t as &dyn CandidateSource),
                name => Some(self.channel(models, name)?),
            };
            channels.extend(channel.map(|channel| (channel, *quota)));
        }
        let n = request.count();
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
        Ok(candidates)
    }

    /// The listed channel `name`: the models' or one registered.
    fn channel<'a>(
        &'a self,
        models: &'a Models,
        name: &str,
    ) -> Result<&'a dyn CandidateSource, ServeError> {
        let registered = || self.custom_channels.get(name).map(|channel| channel.as_ref());
        models.channel(name).or_else(registered).ok_or_else(|| {
            ServeError::Unavailable(format!(
                "[recommend] channels lists {name:?}, which no recall channel is registered as"
            ))
        })
    }

    /// Rank: the ranker's scores, best first, and its name; recall order
    /// (earlier is better) where there is no ranker or it has nothing to
    /// say. A failing ranker is counted and logged, and recall order served.
    fn rank(
        &self,
        state: &RequestState<'_>,
        candidates: &[Candidate],
    ) -> (Vec<(u32, f32)>, Option<String>) {
        let items: Vec<u32> = candidates.iter().map(|c| c.item).collect();
        let ranker = state.models.ranker().filter(|_| state.pipeline.settings.use_ranker);
        let ranked = ranker.and_then(|ranker| {
            match ranker.score(state.user, &state.history, &items, &state.moment) {
                Ok(scores) => scores,
                Err(error) => {
                    self.metrics.ranker_error();
                    eprintln!(
                        "ranking for user {:?} failed, recall order served: {error}",
                        state.request.user_id
                    );
                    None
                }
            }
        });
        let name = ranked.as_ref().and(ranker).map(|r| r.name().to_owned());
        let scores =
            ranked.unwrap_or_else(|| (0..items.len()).map(|k| 1.0 / (1.0 + k as f32)).collect());
        let mut scored: Vec<(u32, f32)> = items.into_iter().zip(scores).collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        (scored, name)
    }

    /// Re-rank: the listed steps in order over the ranked list, cut to n;
    /// every step is told the list served.
    fn rerank(
        &self,
        state: &RequestState<'_>,
        scored: &[(u32, f32)],
        seed: u64,
    ) -> Result<Slate, ServeError> {
        let n = state.request.count();
        let context = RerankContext {
            request: state.request,
            models: state.models,
            hidden: &state.hidden,
            n,
            seed,
            features: self.features.as_deref(),
        };
        let mut slate = Slate::from_ranked(scored);
        for (name, step) in &state.pipeline.rerankers {
            let step = step.as_ref().ok_or_else(|| {
                ServeError::Unavailable(format!(
                    "[recommend] rerankers lists {name:?}, which no re-ranker is registered as"
                ))
            })?;
            step.rerank(&mut slate, &context)?;
        }
        slate.items.truncate(n);
        Ok(slate)
    }
}

/// Tells every step of `pipeline` the list the user was shown.
fn notify_served(pipeline: &Pipeline, user_id: &str, items: &[ScoredItem]) {
    let shown: Vec<&str> = items.iter().map(|item| item.item_id.as_str()).collect();
    for step in pipeline.rerankers.iter().filter_map(|(_, step)| step.as_ref()) {
        step.served(user_id, &shown);
    }
}

/// What the stages of one request share.
struct RequestState<'a> {
    request: &'a RecommendRequest,
    models: &'a Models,
    pipeline: &'a Pipeline,
    /// The user's dense index, if the models know them.
    user: Option<u32>,
    /// The catalog's history, then the stream's newer consumption.
    history: Vec<u32>,
    /// Hidden items the catalog knows.
    hidden: HashSet<u32>,
    moment: RequestMoment<'a>,
}

impl Recommender {
    /// Users with exposures still remembered (for tests and monitoring).
    pub fn exposure_users(&self) -> usize {
        self.exposures.users()
    }
}

/// The pipeline `settings` declare: built-in steps, then steps a library
/// user registered.
fn build_pipeline(
    settings: PipelineSettings,
    exposures: &Arc<ExposureMemory>,
    custom: &HashMap<String, Arc<dyn Reranker>>,
) -> Pipeline {
    let rerankers = settings
        .rerankers
        .iter()
        .map(|name| {
            let built_in = crate::rerank::built_in(name, &settings, exposures).map(Arc::from);
            (name.clone(), built_in.or_else(|| custom.get(name).cloned()))
        })
        .collect();
    Pipeline { settings, rerankers }
}

/// `experiment/variant` pairs joined by commas; `default` for none.
fn variant_label(variants: &[(String, String)]) -> String {
    match variants.is_empty() {
        true => "default".into(),
        false => {
            let pairs: Vec<String> = variants.iter().map(|(e, v)| format!("{e}/{v}")).collect();
            pairs.join(",")
        }
    }
}

fn item(catalog: &Catalog, item_id: &str) -> Result<u32, ServeError> {
    catalog
        .item_index(item_id)
        .ok_or_else(|| ServeError::NotFound(format!("no item with id {item_id:?}")))
}

/// Dense indices of category names; an unknown name is the client's error.
fn categories(catalog: &Catalog, names: &[String]) -> Result<Vec<u32>, ServeError> {
    names
        .iter()
        .map(|name| {
            catalog
                .facts
                .categories
                .index(name)
                .ok_or_else(|| ServeError::Invalid(format!("filters: no category named {name:?}")))
        })
        .collect()
}

#[cfg(test)]
mod tests;
