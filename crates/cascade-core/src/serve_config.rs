//! `[serve]`: how the HTTP server is reached, with which keys, and its
//! build's knobs; `[recommend]`: the serving pipeline's.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

/// `[serve]`. Every route of the API has an access class; a request to a
/// route needs a key of its class (or an admin token) once any key is
/// configured. With none configured the server answers everyone, and so
/// `cascade serve` binds only to a loopback address.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeConfig {
    /// Items the ANN search examines per query (its `ef`): a search returns
    /// at most this many, and consumed items are removed after it, so heavy
    /// users (MovieLens has users with 700 ratings) need room.
    pub ann_ef_search: usize,
    /// The most events one durable commit of `POST /v1/events` takes.
    pub events_per_commit: usize,
    /// A consumption this much older than the newest one counts half in
    /// `recall/popular`, `recall/category_popular` and popularity dampening.
    pub popularity_half_life_days: f64,
    /// The server's ranker learns what users consume: every interaction is
    /// a positive and this many items the user never consumed, drawn
    /// uniformly, are negatives beside it. 0 trains it on the data's own
    /// labels instead (`[labels]`: on MovieLens, rating ≥ 4 among rated
    /// items), which teaches it what users like among what they watched
    /// and ranks rarely-watched films first.
    pub ranker_negatives: usize,
    /// Tokens for admin routes (model reload, metrics); an admin token is
    /// also accepted on every other route. One, or a list so they can be rotated.
    #[serde(deserialize_with = "one_or_many")]
    pub admin_token: Vec<String>,
    /// Keys for `POST /v1/events`.
    #[serde(deserialize_with = "one_or_many")]
    pub ingest_key: Vec<String>,
    /// Keys for user and item records (PUT, DELETE, and reading users).
    #[serde(deserialize_with = "one_or_many")]
    pub catalog_key: Vec<String>,
    /// Keys for public reads (recommendations, similar items, trending).
    #[serde(deserialize_with = "one_or_many")]
    pub public_key: Vec<String>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            ann_ef_search: 500,
            events_per_commit: 10_000,
            popularity_half_life_days: 30.0,
            ranker_negatives: 4,
            admin_token: Vec::new(),
            ingest_key: Vec::new(),
            catalog_key: Vec::new(),
            public_key: Vec::new(),
        }
    }
}

/// `[recommend]`: the serving pipeline as values: which recall channels run
/// and in what order, their quotas, which re-ranking steps run and in what
/// order, their knobs, and request limits. An experiment's variant is this
/// section with some keys overridden.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecommendConfig {
    /// Recall channels (`recall/<name>`), in the order their candidates
    /// are merged: a channel's quota counts only items no earlier channel
    /// proposed. Built in: ann, item_cf, category_popular, trending,
    /// popular, fresh; a library user registers more by name.
    pub channels: Vec<String>,
    /// Candidates each listed channel contributes, by channel name. A key
    /// given replaces that channel's default; the others keep theirs.
    #[serde(deserialize_with = "quotas_over_defaults")]
    pub quotas: BTreeMap<String, usize>,
    /// A listed channel's own parameters beyond its quota, by channel
    /// name (`[recommend.channel_params.<name>]`): what a channel a
    /// library user registers is configured with, read when it is built,
    /// and overridable like any other key of this section.
    pub channel_params: BTreeMap<String, toml::Table>,
    /// Re-ranking steps, in the order they run. Built in: freshness,
    /// popularity, diversity (MMR), pins, exposure_cap, and the exploring
    /// steps epsilon_greedy, plackett_luce, thompson and linear_thompson
    /// (at most one, listed last, not with pins: the propensities it logs
    /// are of the list as served).
    pub rerankers: Vec<String>,
    /// The exploring steps' knobs.
    pub exploration: ExplorationConfig,
    /// Whether the ranking model orders the candidates; off, they keep
    /// recall order (the channels' order, then each channel's own), which
    /// is how a popularity-only or recall-only variant is served.
    pub use_ranker: bool,
    /// Added to a just-published item's relevance (relevance spans 0..1);
    /// halves every `freshness_half_life_days`.
    pub freshness_boost: f32,
    /// The freshness boost's half-life.
    pub freshness_half_life_days: f64,
    /// Subtracted from the most popular item's relevance, in proportion to
    /// log(1 + count) / log(1 + max count) for the others.
    pub popularity_dampening: f32,
    /// MMR's relevance weight (1 = no diversity).
    pub mmr_lambda: f32,
    /// MMR picks among this many most relevant candidates (at least n).
    pub mmr_pool: usize,
    /// Whether items the user already consumed are removed.
    pub remove_consumed: bool,
    /// An item shown to a user this many times within `exposure_window_s`
    /// is not shown to them again until older showings leave the window
    /// (0 disables the cap).
    pub exposure_cap: usize,
    /// The exposure cap's window.
    pub exposure_window_s: u64,
    /// The most ids one request list (`exclude`, `pin`, filters) may hold.
    pub max_list_ids: usize,
    /// How long one reading of the stream's trending items serves requests
    /// (a reading scans every item counted in the window).
    pub trending_refresh_ms: u64,
    /// How many trending items one reading keeps for `recall/trending`:
    /// the channel's quota plus room for the ones a user has consumed or
    /// the catalog does not know.
    pub trending_pool: usize,
}

impl Default for RecommendConfig {
    fn default() -> Self {
        RecommendConfig {
            channels: BUILT_IN_CHANNELS.iter().map(|&(name, _)| name.to_owned()).collect(),
            quotas: default_quotas(),
            channel_params: BTreeMap::new(),
            rerankers: BUILT_IN_RERANKERS.iter().map(|&name| name.to_owned()).collect(),
            use_ranker: true,
            freshness_boost: 0.1,
            freshness_half_life_days: 14.0,
            popularity_dampening: 0.05,
            mmr_lambda: 0.8,
            mmr_pool: 100,
            remove_consumed: true,
            exposure_cap: 3,
            exposure_window_s: 3600,
            max_list_ids: 10_000,
            trending_refresh_ms: 1000,
            trending_pool: 200,
            exploration: ExplorationConfig::default(),
        }
    }
}

/// `[recommend.exploration]`: how much the exploring re-rankers explore.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExplorationConfig {
    /// `epsilon_greedy`: each slot's chance of showing a candidate from
    /// outside the greedy list instead.
    pub epsilon: f64,
    /// `plackett_luce`: T of softmax(relevance / T), relevance in 0..1; the
    /// lower, the closer to the greedy list.
    pub temperature: f64,
    /// `plackett_luce`: prefixes drawn to estimate an item-position
    /// probability that is not summed exactly; `thompson`: rankings drawn
    /// to estimate every propensity.
    pub monte_carlo_samples: usize,
    /// `plackett_luce`: item-position probabilities are summed exactly over
    /// at most this many prefixes, else estimated.
    pub exact_prefix_limit: usize,
    /// All: the explorer draws from this many of the most relevant
    /// candidates, and logs them with their relevance on the list's first
    /// impression, so that `cascade ope` can evaluate other policies on
    /// the same candidates.
    pub candidates: usize,
    /// `linear_thompson`: slots at the end of the list it fills.
    pub bandit_slots: usize,
    /// `linear_thompson`: how wide θ̃ is drawn around the fit (1: the
    /// posterior itself; larger explores more).
    pub bandit_scale: f64,
    /// `linear_thompson`: the ridge regression's prior precision.
    pub bandit_ridge: f64,
    /// `linear_thompson`: how often the fit over every item's window is
    /// redone.
    pub bandit_refresh_ms: u64,
    /// `learned_policy`: the JSON file `cascade learn-policy` wrote (its
    /// `policies/` folder in the workspace), whose logits rank the list.
    pub learned_policy: String,
}

impl Default for ExplorationConfig {
    fn default() -> Self {
        ExplorationConfig {
            epsilon: 0.1,
            temperature: 0.1,
            monte_carlo_samples: 256,
            exact_prefix_limit: 10_000,
            candidates: 100,
            bandit_slots: 2,
            bandit_scale: 1.0,
            bandit_ridge: 1.0,
            bandit_refresh_ms: 5_000,
            learned_policy: String::new(),
        }
    }
}

/// The built-in recall channels in their default merge order, with their
/// default quotas. `trending` proposes nothing without a stream processor.
pub const BUILT_IN_CHANNELS: [(&str, usize); 6] = [
    ("ann", 150),
    ("item_cf", 100),
    ("category_popular", 30),
    ("trending", 20),
    ("popular", 10),
    ("fresh", 10),
];

/// The built-in re-ranking steps in their default order.
pub const BUILT_IN_RERANKERS: [&str; 5] =
    ["freshness", "popularity", "diversity", "pins", "exposure_cap"];

/// The built-in exploring steps: listed last, and at most one
/// (`learned_policy` explores nothing, but logs its candidates the same
/// way, so that `cascade ope` reads its lists).
pub const EXPLORING_RERANKERS: [&str; 5] =
    ["epsilon_greedy", "plackett_luce", "thompson", "linear_thompson", "learned_policy"];

fn default_quotas() -> BTreeMap<String, usize> {
    BUILT_IN_CHANNELS.iter().map(|&(name, quota)| (name.to_owned(), quota)).collect()
}

/// `[recommend.quotas]` over the built-in quotas: setting one channel's
/// quota (in the file or as `CASCADE__RECOMMEND__QUOTAS__ANN`) leaves the
/// others' alone.
fn quotas_over_defaults<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, usize>, D::Error> {
    let mut quotas = default_quotas();
    quotas.extend(BTreeMap::<String, usize>::deserialize(deserializer)?);
    Ok(quotas)
}

impl RecommendConfig {
    /// This section with `overrides`' keys in place of its own (tables
    /// merge key by key, so `quotas = { ann = 50 }` keeps the other
    /// quotas): an experiment variant's pipeline. An unknown key or a
    /// value of the wrong type is an error naming it.
    pub fn overridden(&self, overrides: &toml::Table) -> Result<RecommendConfig, String> {
        let mut table = toml::Table::try_from(self).map_err(|e| e.to_string())?;
        merge_tables(&mut table, overrides);
        toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| e.message().to_owned())
    }

    /// The listed channels with their quotas, in merge order.
    pub fn channel_quotas(&self) -> Vec<(String, usize)> {
        let quota = |name: &String| self.quotas.get(name).copied().unwrap_or(0);
        self.channels.iter().map(|name| (name.clone(), quota(name))).collect()
    }
}

impl ServeConfig {
    /// Whether any key is configured: then every route but health,
    /// readiness and the OpenAPI document needs one.
    pub fn requires_keys(&self) -> bool {
        [&self.admin_token, &self.ingest_key, &self.catalog_key, &self.public_key]
            .iter()
            .any(|keys| !keys.is_empty())
    }
}

/// A list of keys, or one string of comma-separated keys (the form an
/// environment variable such as `CASCADE__SERVE__ADMIN_TOKEN` takes).
fn one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let keys = match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(text) => text.split(',').map(str::to_owned).collect(),
        OneOrMany::Many(keys) => keys,
    };
    let keys: Vec<String> = keys.into_iter().map(|k| k.trim().to_owned()).collect();
    if keys.iter().any(String::is_empty) {
        return Err(serde::de::Error::custom("a key is empty"));
    }
    Ok(keys)
}

/// `overrides` written over `base`, descending into tables both have.
fn merge_tables(base: &mut toml::Table, overrides: &toml::Table) {
    for (key, value) in overrides {
        match (base.get_mut(key), value) {
            (Some(toml::Value::Table(inner)), toml::Value::Table(over)) => {
                merge_tables(inner, over)
            }
            _ => {
                base.insert(key.clone(), value.clone());
            }
        }
    }
}
