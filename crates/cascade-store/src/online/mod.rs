//! The real-time feature store: what serving reads ([`FeatureRead`]) and
//! what stream processing writes ([`FeatureWrite`]), with two backends.
//!
//! - The stream processor's own state (`cascade-stream`), the default: in
//!   the server's memory, checkpointed to local disk with its log offset.
//! - [`RedisOnlineStore`]: lists, hashes and sorted sets on a Redis server,
//!   for several stream workers and several servers on several machines.
//!
//! Both apply an event's updates atomically and once per update id (a
//! retried or re-delivered event changes nothing), and both answer the same
//! reads the same way: [`conformance`] holds them to it, one test per case
//! per backend ([`conformance_tests!`](crate::conformance_tests)).

pub mod conformance;
mod redis_connection;
mod redis_store;
pub mod test_server;

use serde::{Deserialize, Serialize};

pub use redis_connection::RedisConnection;
pub use redis_store::RedisOnlineStore;

/// How long an applied update id is remembered, so that a re-delivery
/// within it is recognised: a day, far beyond any claim timeout.
pub const DEDUP_TTL_MS: i64 = 24 * 3_600_000;

/// Impressions and interactions of one item over one window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Times it was shown.
    pub impressions: u64,
    /// Times it was clicked, rated, bought… (any non-impression event).
    pub interactions: u64,
}

impl Tally {
    /// Both counts summed.
    pub fn plus(self, other: Tally) -> Tally {
        Tally {
            impressions: self.impressions + other.impressions,
            interactions: self.interactions + other.interactions,
        }
    }

    /// Interactions per impression over everything counted, capped at 1;
    /// 0 before any impression.
    pub fn rate(self) -> f64 {
        match self.impressions {
            0 => 0.0,
            shown => (self.interactions as f64 / shown as f64).min(1.0),
        }
    }

    /// Interactions per impression shrunk towards `prior` with the weight of
    /// `strength` impressions (Bayesian smoothing, so that 1 click in 1
    /// impression is not 100%).
    pub fn smoothed_rate(self, prior: f64, strength: f64) -> f64 {
        let rate = (self.interactions as f64 + strength * prior)
            / (self.impressions as f64 + strength).max(f64::MIN_POSITIVE);
        rate.min(1.0)
    }
}

/// One item's counters over one window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WindowStats {
    /// The window's length in ms.
    pub window_ms: i64,
    /// Impressions and interactions in it.
    pub tally: Tally,
    /// Interactions per impression, smoothed (see [`Tally::smoothed_rate`]).
    pub smoothed_ctr: f64,
}

/// What an online store keeps and for how long.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnlineSettings {
    /// Interactions kept per user, newest last.
    pub history_length: usize,
    /// Sliding windows of item counters, in ms, each with its bucket count;
    /// the first is also the trending window.
    pub windows: Vec<(i64, usize)>,
    /// Weight of the global rate in each item's smoothed one, in impressions.
    pub ctr_prior_impressions: f64,
    /// Half-life of user–category affinities.
    pub affinity_half_life_ms: i64,
}

impl OnlineSettings {
    /// The bucket length of window `w`.
    pub fn bucket_ms(&self, w: usize) -> i64 {
        let (window_ms, buckets) = self.windows[w];
        (window_ms / buckets.max(1) as i64).max(1)
    }

    /// The start of the bucket of window `w` that `ts_ms` falls in.
    pub fn bucket_of(&self, w: usize, ts_ms: i64) -> i64 {
        let bucket = self.bucket_ms(w);
        ts_ms.div_euclid(bucket) * bucket
    }

    /// The bucket starts window `w` covers as of `now_ms`, oldest first: a
    /// read at `now_ms` counts (bucket_of(now) − window + bucket, now], off
    /// by at most one bucket, as the in-process windowed counters do.
    pub fn buckets_in_window(&self, w: usize, now_ms: i64) -> Vec<i64> {
        let bucket = self.bucket_ms(w);
        let newest = self.bucket_of(w, now_ms);
        let count = self.windows[w].1.max(1) as i64;
        (0..count).rev().map(|back| newest - back * bucket).collect()
    }
}

/// One event's worth of feature updates, named by an id that makes applying
/// it idempotent (a log position or a stream entry id).
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureUpdate {
    /// Unique per event; a second update with the same id is ignored.
    pub id: String,
    /// The user.
    pub user: String,
    /// The item.
    pub item: String,
    /// An exposure (counted, but no history, affinity or trend) rather than
    /// an interaction.
    pub impression: bool,
    /// Event time.
    pub ts_ms: i64,
    /// The item's categories, for the user's affinities.
    pub categories: Vec<String>,
}

impl FeatureUpdate {
    /// The updates of `event`, named `id`; impressions by the event type
    /// every part of Cascade uses for them.
    pub fn from_event(id: String, event: &cascade_core::Event, categories: Vec<String>) -> Self {
        FeatureUpdate {
            id,
            user: event.user.clone(),
            item: event.item.clone(),
            impression: event.event_type == cascade_core::event::IMPRESSION,
            ts_ms: event.ts_ms,
            categories,
        }
    }
}

/// Why a feature store call failed (the in-process store never fails).
#[derive(Debug, thiserror::Error)]
pub enum OnlineStoreError {
    /// The Redis server refused or could not be reached.
    #[error("online store on Redis {url}: {message}")]
    Redis {
        /// The server, as configured (credentials removed).
        url: String,
        /// What went wrong.
        message: String,
    },
}

/// The write side: stream processing applies each event's updates.
pub trait FeatureWrite: Send + Sync {
    /// Applies each event's updates atomically, in order; per update,
    /// `false` when one with the same id was applied before (it changes
    /// nothing).
    fn apply_batch(&self, updates: &[FeatureUpdate]) -> Result<Vec<bool>, OnlineStoreError>;

    /// Applies one event's updates atomically; `Ok(false)` when an update
    /// with the same id was applied before (nothing changes).
    fn apply(&self, update: &FeatureUpdate) -> Result<bool, OnlineStoreError> {
        Ok(self.apply_batch(std::slice::from_ref(update))?.first().copied().unwrap_or(false))
    }
}

/// The read side: the real-time features serving reads. Windowed and
/// decayed reads take the time they are as of; readers pass the store's
/// [`watermark_ms`](FeatureRead::watermark_ms), since event time may be far
/// from the clock ([`FeatureRead::now_ms`]).
pub trait FeatureRead: Send + Sync {
    /// The settings the store keeps its features by.
    fn settings(&self) -> &OnlineSettings;

    /// The user's last interactions, oldest first.
    fn history(&self, user: &str) -> Result<Vec<String>, OnlineStoreError>;

    /// Impressions and interactions of everything, ever.
    fn global_tally(&self) -> Result<Tally, OnlineStoreError>;

    /// The latest event time applied, if any: the "now" readers of windows
    /// and decayed scores use, since event time may be far from the clock.
    fn watermark_ms(&self) -> Result<Option<i64>, OnlineStoreError>;

    /// The item's raw counters in each window as of `now_ms`.
    fn item_tallies(&self, item: &str, now_ms: i64) -> Result<Vec<Tally>, OnlineStoreError>;

    /// The user's categories with their scores as of the score's last
    /// update: (category, score, as_of_ms).
    fn raw_affinities(&self, user: &str) -> Result<Vec<(String, f64, i64)>, OnlineStoreError>;

    /// Interactions per item in the first window's buckets as of `now_ms`.
    fn trending_counts(&self, now_ms: i64) -> Result<Vec<(String, u64)>, OnlineStoreError>;

    /// The item's counters and smoothed rates in each window as of `now_ms`.
    fn item_stats(&self, item: &str, now_ms: i64) -> Result<Vec<WindowStats>, OnlineStoreError> {
        let prior = self.global_tally()?.rate();
        let strength = self.settings().ctr_prior_impressions;
        let windows = self.settings().windows.iter();
        Ok(windows
            .zip(self.item_tallies(item, now_ms)?)
            .map(|(&(window_ms, _), tally)| WindowStats {
                window_ms,
                tally,
                smoothed_ctr: tally.smoothed_rate(prior, strength),
            })
            .collect())
    }

    /// The user's categories by decayed interaction count as of `now_ms`,
    /// strongest first.
    fn category_affinities(
        &self,
        user: &str,
        now_ms: i64,
    ) -> Result<Vec<(String, f64)>, OnlineStoreError> {
        let half_life = self.settings().affinity_half_life_ms;
        let mut scores: Vec<(String, f64)> = self
            .raw_affinities(user)?
            .into_iter()
            .map(|(category, score, as_of)| (category, decayed(score, as_of, now_ms, half_life)))
            .collect();
        scores.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Ok(scores)
    }

    /// The time reads are as of: the watermark, or 0 before any event.
    fn now_ms(&self) -> Result<i64, OnlineStoreError> {
        Ok(self.watermark_ms()?.unwrap_or(0))
    }

    /// The `k` items with the most interactions in the first window as of
    /// `now_ms`, most first, ties by id.
    fn trending(&self, now_ms: i64, k: usize) -> Result<Vec<(String, u64)>, OnlineStoreError> {
        let mut counts = self.trending_counts(now_ms)?;
        counts.retain(|&(_, count)| count > 0);
        counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        counts.truncate(k);
        Ok(counts)
    }
}

/// `score` as of `from_ms`, decayed to `to_ms` with `half_life_ms`; never
/// grows when `to_ms` is earlier.
pub fn decayed(score: f64, from_ms: i64, to_ms: i64, half_life_ms: i64) -> f64 {
    let elapsed = (to_ms - from_ms).max(0) as f64;
    score * 0.5f64.powf(elapsed / half_life_ms.max(1) as f64)
}

/// One more interaction on an affinity of `score` as of `as_of_ms`: the
/// score decayed to the later of the two times, plus one. The one rule both
/// backends (and the in-process stream features) follow.
pub fn affinity_after_interaction(
    score: f64,
    as_of_ms: i64,
    ts_ms: i64,
    half_life_ms: i64,
) -> (f64, i64) {
    (decayed(score, as_of_ms, ts_ms, half_life_ms) + 1.0, as_of_ms.max(ts_ms))
}
