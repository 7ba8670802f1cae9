//! The real-time features one pass over the log maintains: the embedded
//! online store.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use cascade_core::StoredEvent;
use cascade_core::config::StreamConfig;
use cascade_core::event::IMPRESSION;

pub use cascade_store::online::WindowStats;
use cascade_store::online::{
    FeatureRead, FeatureUpdate, OnlineSettings, OnlineStoreError, affinity_after_interaction,
};

use crate::join::{ImpressionJoin, LabelledSample};
use crate::window::{Tally, WindowedTally};

const DAY_MS: f64 = 86_400_000.0;

/// What the stream processor maintains and how: the features any feature
/// store keeps, plus the impression join only the log's processor runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamSettings {
    /// History length, windows, smoothing and half-life (flattened, so a
    /// checkpoint's settings read the same as before they were grouped).
    #[serde(flatten)]
    pub features: OnlineSettings,
    /// How long after an impression an interaction still labels it.
    pub join_window_ms: i64,
}

impl StreamSettings {
    /// The same features kept by a shared online store (the Redis
    /// backend), which has no join.
    pub fn online(&self) -> OnlineSettings {
        self.features.clone()
    }
}

impl From<&StreamConfig> for StreamSettings {
    fn from(config: &StreamConfig) -> Self {
        let ms = cascade_core::timestamp::seconds_to_ms;
        StreamSettings {
            features: OnlineSettings {
                history_length: config.history_length,
                windows: config.windows.iter().map(|w| (ms(w.length_s), w.buckets)).collect(),
                ctr_prior_impressions: config.ctr_prior_impressions,
                affinity_half_life_ms: (config.affinity_half_life_days * DAY_MS) as i64,
            },
            join_window_ms: ms(config.join_window_s),
        }
    }
}

/// What `[stream]` documents.
impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings::from(&StreamConfig::default())
    }
}

/// A user's decayed interest in a category.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Affinity {
    score: f64,
    as_of_ms: i64,
}

/// Every feature, and the join. Serialisable: a checkpoint is this and the
/// log offset it reflects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureState {
    settings: StreamSettings,
    histories: HashMap<String, VecDeque<String>>,
    item_windows: HashMap<String, Vec<WindowedTally>>,
    all_time: Tally,
    affinities: HashMap<String, HashMap<String, Affinity>>,
    join: ImpressionJoin,
    /// The latest event time seen.
    watermark_ms: i64,
}

impl FeatureState {
    /// Empty, maintained by `settings`.
    pub fn new(settings: StreamSettings) -> FeatureState {
        let join = ImpressionJoin::new(settings.join_window_ms);
        FeatureState {
            settings,
            histories: HashMap::new(),
            item_windows: HashMap::new(),
            all_time: Tally::default(),
            affinities: HashMap::new(),
            join,
            watermark_ms: i64::MIN,
        }
    }

    /// The settings it is maintained by.
    pub fn settings(&self) -> &StreamSettings {
        &self.settings
    }

    /// Applies one event of the log; returns the labelled samples it
    /// completes (a positive for an interaction that answers an impression,
    /// negatives for impressions its time has expired).
    pub fn apply(&mut self, stored: &StoredEvent, categories: &[String]) -> Vec<LabelledSample> {
        let event = &stored.event;
        let impression = event.event_type == IMPRESSION;
        self.count(&event.user, &event.item, impression, event.ts_ms, categories);
        let mut samples = Vec::new();
        if impression {
            self.join.impression(stored.seq, &event.user, &event.item, event.ts_ms);
        } else {
            samples.extend(self.join.interaction(&event.user, &event.item, event.ts_ms));
        }
        samples.extend(self.join.expire(self.watermark_ms));
        samples
    }

    /// Applies one event's feature updates. Unlike [`FeatureState::apply`]
    /// it joins nothing: samples are named by log positions, which an
    /// update from elsewhere does not have.
    pub fn apply_update(&mut self, update: &FeatureUpdate) {
        let FeatureUpdate { user, item, impression, ts_ms, categories, .. } = update;
        self.count(user, item, *impression, *ts_ms, categories);
    }

    /// The features' part of an event: the one rule both
    /// [`FeatureState::apply`] and [`FeatureState::apply_update`] follow.
    fn count(
        &mut self,
        user: &str,
        item: &str,
        impression: bool,
        ts_ms: i64,
        categories: &[String],
    ) {
        self.watermark_ms = self.watermark_ms.max(ts_ms);
        let windows = &self.settings.features.windows;
        let counters = self.item_windows.entry(item.to_owned()).or_insert_with(|| {
            windows.iter().map(|&(window, buckets)| WindowedTally::new(window, buckets)).collect()
        });
        for counter in counters.iter_mut() {
            counter.add(ts_ms, impression);
        }
        if impression {
            self.all_time.impressions += 1;
            return;
        }
        self.all_time.interactions += 1;
        let history = self.histories.entry(user.to_owned()).or_default();
        history.push_back(item.to_owned());
        while history.len() > self.settings.features.history_length {
            history.pop_front();
        }
        let half_life = self.settings.features.affinity_half_life_ms;
        let affinities = self.affinities.entry(user.to_owned()).or_default();
        for category in categories {
            let affinity = affinities
                .entry(category.clone())
                .or_insert(Affinity { score: 0.0, as_of_ms: ts_ms });
            let (score, as_of_ms) =
                affinity_after_interaction(affinity.score, affinity.as_of_ms, ts_ms, half_life);
            *affinity = Affinity { score, as_of_ms };
        }
    }

    /// Undoes what events later than `ceiling_ms` (the clock plus the
    /// allowed skew) did to the clock of the features, for state saved
    /// before such events were refused: the watermark comes back to the
    /// ceiling, window buckets beyond it are dropped and affinities are
    /// dated no later than it. Returns the watermark it replaced, if any.
    /// Histories keep such events: they are real consumption, only
    /// misdated.
    pub fn repair(&mut self, ceiling_ms: i64) -> Option<i64> {
        if self.watermark_ms <= ceiling_ms {
            return None;
        }
        let replaced = self.watermark_ms;
        self.watermark_ms = ceiling_ms;
        for counters in self.item_windows.values_mut() {
            counters.iter_mut().for_each(|c| c.drop_after(ceiling_ms));
        }
        for affinity in self.affinities.values_mut().flat_map(HashMap::values_mut) {
            affinity.as_of_ms = affinity.as_of_ms.min(ceiling_ms);
        }
        self.compact();
        Some(replaced)
    }

    /// Drops item counters with nothing left in any window (bounded memory
    /// for a catalog that churns).
    pub fn compact(&mut self) {
        let now = self.watermark_ms;
        self.item_windows.retain(|_, counters| {
            counters.iter_mut().for_each(|c| c.expire(now));
            counters.iter().any(|c| !c.is_empty())
        });
    }

    /// Impressions still waiting for an outcome.
    pub fn open_impressions(&self) -> usize {
        self.join.open_impressions()
    }
}

/// The stream's state is a feature store's read side; its
/// [`InProcessFeatures`](crate::InProcessFeatures) is the shared one.
impl FeatureRead for FeatureState {
    fn settings(&self) -> &OnlineSettings {
        &self.settings.features
    }

    fn history(&self, user: &str) -> Result<Vec<String>, OnlineStoreError> {
        Ok(self.histories.get(user).map(|h| h.iter().cloned().collect()).unwrap_or_default())
    }

    fn global_tally(&self) -> Result<Tally, OnlineStoreError> {
        Ok(self.all_time)
    }

    fn watermark_ms(&self) -> Result<Option<i64>, OnlineStoreError> {
        Ok((self.watermark_ms != i64::MIN).then_some(self.watermark_ms))
    }

    fn item_tallies(&self, item: &str, now_ms: i64) -> Result<Vec<Tally>, OnlineStoreError> {
        let windows = self.settings.features.windows.len();
        Ok(match self.item_windows.get(item) {
            Some(counters) => counters.iter().map(|c| c.tally(now_ms)).collect(),
            None => vec![Tally::default(); windows],
        })
    }

    fn raw_affinities(&self, user: &str) -> Result<Vec<(String, f64, i64)>, OnlineStoreError> {
        let affinities = self.affinities.get(user).into_iter().flatten();
        Ok(affinities.map(|(category, a)| (category.clone(), a.score, a.as_of_ms)).collect())
    }

    /// A scan of every counted item: fine for one machine's catalogue; the
    /// Redis backend keeps a sorted set per bucket.
    fn trending_counts(&self, now_ms: i64) -> Result<Vec<(String, u64)>, OnlineStoreError> {
        Ok(self
            .item_windows
            .iter()
            .filter_map(|(item, counters)| {
                let count = counters.first()?.tally(now_ms).interactions;
                (count > 0).then(|| (item.clone(), count))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use cascade_core::Event;

    use super::*;

    /// The reads a server makes: as of the watermark.
    fn stats(state: &FeatureState, item: &str) -> Vec<WindowStats> {
        state.item_stats(item, state.now_ms().unwrap()).unwrap()
    }

    fn trending(state: &FeatureState, k: usize) -> Vec<(String, u64)> {
        state.trending(state.now_ms().unwrap(), k).unwrap()
    }

    fn event(seq: u64, user: &str, item: &str, kind: &str, ts_ms: i64) -> StoredEvent {
        let event = Event {
            user: user.into(),
            item: item.into(),
            event_type: kind.into(),
            value: None,
            ts_ms,
            served: None,
        };
        StoredEvent { seq, event }
    }

    #[test]
    fn history_counters_affinity_and_trending_follow_the_events() {
        let settings = {
            let mut settings = StreamSettings::default();
            settings.features.history_length = 2;
            settings
        };
        let mut state = FeatureState::new(settings);
        let drama = vec!["Drama".to_owned()];
        let t0 = 1_700_000_000_000;
        state.apply(&event(0, "u", "a", IMPRESSION, t0), &drama);
        state.apply(&event(1, "u", "b", IMPRESSION, t0), &[]);
        let samples = state.apply(&event(2, "u", "a", "click", t0 + 1_000), &drama);
        assert_eq!(samples.len(), 1, "the click labels its impression");
        assert!(samples[0].clicked);
        state.apply(&event(3, "u", "c", "click", t0 + 2_000), &drama);
        state.apply(&event(4, "u", "d", "click", t0 + 3_000), &[]);
        assert_eq!(state.history("u").unwrap(), ["c", "d"], "the last 2, oldest first");

        let a = stats(&state, "a");
        assert_eq!(a[0].tally, Tally { impressions: 1, interactions: 1 });
        // 3 interactions in 2 impressions overall: the prior is capped at 1.
        assert!((state.global_tally().unwrap().rate() - 1.0).abs() < 1e-12);
        assert!(a[0].smoothed_ctr <= 1.0);
        let (category, score) =
            &state.category_affinities("u", state.now_ms().unwrap()).unwrap()[0];
        assert_eq!(category, "Drama");
        // Two Drama interactions (the impression does not count), 1 s apart.
        assert!(*score > 1.99 && *score < 2.0, "two interactions, slightly decayed: {score}");
        assert_eq!(trending(&state, 2), [("a".to_owned(), 1), ("c".to_owned(), 1)]);

        // An hour and a minute later the one-hour window is empty, b's
        // impression has expired unclicked, and the day window still counts.
        let samples = state.apply(&event(5, "v", "e", IMPRESSION, t0 + 3_660_000), &[]);
        assert_eq!(samples.len(), 1);
        assert_eq!((samples[0].item.as_str(), samples[0].clicked), ("b", false));
        let a = stats(&state, "a");
        assert_eq!(a[0].tally, Tally::default());
        assert_eq!(a[1].tally.interactions, 1);
        assert!(trending(&state, 5).is_empty());
    }

    #[test]
    fn repair_brings_a_far_future_watermark_back_and_later_clicks_count() {
        let mut state = FeatureState::new(StreamSettings::default());
        let now = 1_800_000_000_000;
        for n in 0..3 {
            state.apply(&event(n, "u", "50", "click", now), &[]);
        }
        state.apply(&event(3, "x", "bad", "click", 99_999_999_999_999_999), &[]);
        assert_eq!(stats(&state, "50")[0].tally.interactions, 0, "the poisoned state");
        assert_eq!(state.repair(now + 300_000), Some(99_999_999_999_999_999));
        assert_eq!(state.watermark_ms().unwrap(), Some(now + 300_000));
        assert_eq!(state.repair(now + 300_000), None, "nothing left to repair");
        state.apply(&event(4, "v", "60", "click", now + 1_000), &[]);
        assert_eq!(stats(&state, "50")[0].tally.interactions, 3);
        assert_eq!(stats(&state, "60")[0].tally.interactions, 1);
        assert_eq!(trending(&state, 5), [("50".to_owned(), 3), ("60".to_owned(), 1)]);
    }

    #[test]
    fn smoothing_shrinks_a_lucky_item_towards_the_global_rate() {
        let mut state = FeatureState::new(StreamSettings::default());
        let t0 = 1_700_000_000_000;
        // 1,000 impressions of "base" with 50 clicks: a global rate near 5%.
        for n in 0..1_000u64 {
            state.apply(&event(n, &format!("u{n}"), "base", IMPRESSION, t0), &[]);
            if n % 20 == 0 {
                state.apply(&event(n + 10_000, &format!("u{n}"), "base", "click", t0), &[]);
            }
        }
        state.apply(&event(20_000, "x", "lucky", IMPRESSION, t0), &[]);
        state.apply(&event(20_001, "x", "lucky", "click", t0), &[]);
        let lucky = stats(&state, "lucky")[0].smoothed_ctr;
        assert!(lucky > 0.05 && lucky < 0.07, "1 of 1 is not 100%: {lucky}");
    }
}
