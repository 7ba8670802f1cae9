//! The real-time features one pass over the log maintains: the embedded
//! online store.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use cascade_core::StoredEvent;
use cascade_core::event::IMPRESSION;

pub use cascade_store::online::WindowStats;
use cascade_store::online::{OnlineSettings, affinity_after_interaction, decayed};

use crate::join::{ImpressionJoin, LabelledSample};
use crate::window::{Tally, WindowedTally};

const HOUR_MS: i64 = 3_600_000;

/// What the stream processor maintains and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamSettings {
    /// Interactions kept per user, newest last (the history DIN, DIEN and
    /// SASRec read).
    pub history_length: usize,
    /// Sliding windows of item counters, in ms, each with its bucket count;
    /// the first is also the trending window.
    pub windows: Vec<(i64, usize)>,
    /// Weight of the global click-through rate in each item's smoothed one,
    /// in impressions: (clicks + s·p) / (impressions + s).
    pub ctr_prior_impressions: f64,
    /// How long after an impression an interaction still labels it.
    pub join_window_ms: i64,
    /// Half-life of user–category affinities.
    pub affinity_half_life_ms: i64,
}

impl StreamSettings {
    /// The same features kept by a shared online store (the Redis
    /// backend), which has no join.
    pub fn online(&self) -> OnlineSettings {
        OnlineSettings {
            history_length: self.history_length,
            windows: self.windows.clone(),
            ctr_prior_impressions: self.ctr_prior_impressions,
            affinity_half_life_ms: self.affinity_half_life_ms,
        }
    }
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            history_length: 50,
            windows: vec![(HOUR_MS, 60), (24 * HOUR_MS, 24)],
            ctr_prior_impressions: 100.0,
            join_window_ms: 30 * 60_000,
            affinity_half_life_ms: 7 * 24 * HOUR_MS,
        }
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

    /// The latest event time seen (ms), if any event was.
    pub fn watermark_ms(&self) -> Option<i64> {
        (self.watermark_ms != i64::MIN).then_some(self.watermark_ms)
    }

    /// Applies one event; returns the labelled samples it completes (a
    /// positive for an interaction that answers an impression, negatives for
    /// impressions its time has expired).
    pub fn apply(&mut self, stored: &StoredEvent, categories: &[String]) -> Vec<LabelledSample> {
        let event = &stored.event;
        let impression = event.event_type == IMPRESSION;
        self.watermark_ms = self.watermark_ms.max(event.ts_ms);
        let windows = &self.settings.windows;
        let counters = self.item_windows.entry(event.item.clone()).or_insert_with(|| {
            windows.iter().map(|&(window, buckets)| WindowedTally::new(window, buckets)).collect()
        });
        for counter in counters.iter_mut() {
            counter.add(event.ts_ms, impression);
        }
        let mut samples = Vec::new();
        if impression {
            self.all_time.impressions += 1;
            self.join.impression(stored.seq, &event.user, &event.item, event.ts_ms);
        } else {
            self.all_time.interactions += 1;
            let history = self.histories.entry(event.user.clone()).or_default();
            history.push_back(event.item.clone());
            while history.len() > self.settings.history_length {
                history.pop_front();
            }
            let half_life = self.settings.affinity_half_life_ms;
            let affinities = self.affinities.entry(event.user.clone()).or_default();
            for category in categories {
                let affinity = affinities
                    .entry(category.clone())
                    .or_insert(Affinity { score: 0.0, as_of_ms: event.ts_ms });
                let (score, as_of_ms) = affinity_after_interaction(
                    affinity.score,
                    affinity.as_of_ms,
                    event.ts_ms,
                    half_life,
                );
                *affinity = Affinity { score, as_of_ms };
            }
            samples.extend(self.join.interaction(&event.user, &event.item, event.ts_ms));
        }
        samples.extend(self.join.expire(self.watermark_ms));
        samples
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

    /// The user's last interactions, oldest first.
    pub fn history(&self, user: &str) -> Vec<String> {
        self.histories.get(user).map(|h| h.iter().cloned().collect()).unwrap_or_default()
    }

    /// The global interaction rate per impression, the smoothing's prior.
    pub fn global_ctr(&self) -> f64 {
        self.all_time.rate()
    }

    /// The item's counters over each window, as of the watermark.
    pub fn item_stats(&self, item: &str) -> Vec<WindowStats> {
        let prior = self.global_ctr();
        let strength = self.settings.ctr_prior_impressions;
        self.settings
            .windows
            .iter()
            .enumerate()
            .map(|(i, &(window_ms, _))| {
                let tally = self
                    .item_windows
                    .get(item)
                    .map_or_else(Tally::default, |c| c[i].tally(self.watermark_ms));
                WindowStats { window_ms, tally, smoothed_ctr: tally.smoothed_rate(prior, strength) }
            })
            .collect()
    }

    /// The user's categories by decayed interaction count, strongest first.
    pub fn category_affinities(&self, user: &str) -> Vec<(String, f64)> {
        let half_life = self.settings.affinity_half_life_ms;
        let mut scores: Vec<(String, f64)> = self
            .affinities
            .get(user)
            .into_iter()
            .flatten()
            .map(|(category, a)| {
                (category.clone(), decayed(a.score, a.as_of_ms, self.watermark_ms, half_life))
            })
            .collect();
        scores.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        scores
    }

    /// The `k` items with the most interactions in the first (shortest)
    /// window, most first. A scan of every counted item: fine for the
    /// embedded store's sizes; the Redis backend keeps a sorted set.
    pub fn trending(&self, k: usize) -> Vec<(String, u64)> {
        let mut counts: Vec<(String, u64)> = self
            .item_windows
            .iter()
            .filter_map(|(item, counters)| {
                let count = counters.first()?.tally(self.watermark_ms).interactions;
                (count > 0).then(|| (item.clone(), count))
            })
            .collect();
        counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        counts.truncate(k);
        counts
    }

    /// Impressions still waiting for an outcome.
    pub fn open_impressions(&self) -> usize {
        self.join.open_impressions()
    }
}

#[cfg(test)]
mod tests {
    use cascade_core::Event;

    use super::*;

    fn event(seq: u64, user: &str, item: &str, kind: &str, ts_ms: i64) -> StoredEvent {
        let event = Event {
            user: user.into(),
            item: item.into(),
            event_type: kind.into(),
            value: None,
            ts_ms,
        };
        StoredEvent { seq, event }
    }

    #[test]
    fn history_counters_affinity_and_trending_follow_the_events() {
        let settings = StreamSettings { history_length: 2, ..StreamSettings::default() };
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
        assert_eq!(state.history("u"), ["c", "d"], "the last 2, oldest first");

        let a = state.item_stats("a");
        assert_eq!(a[0].tally, Tally { impressions: 1, interactions: 1 });
        // 3 interactions in 2 impressions overall: the prior is capped at 1.
        assert!((state.global_ctr() - 1.0).abs() < 1e-12);
        assert!(a[0].smoothed_ctr <= 1.0);
        let (category, score) = &state.category_affinities("u")[0];
        assert_eq!(category, "Drama");
        // Two Drama interactions (the impression does not count), 1 s apart.
        assert!(*score > 1.99 && *score < 2.0, "two interactions, slightly decayed: {score}");
        assert_eq!(state.trending(2), [("a".to_owned(), 1), ("c".to_owned(), 1)]);

        // An hour and a minute later the one-hour window is empty, b's
        // impression has expired unclicked, and the day window still counts.
        let samples = state.apply(&event(5, "v", "e", IMPRESSION, t0 + 3_660_000), &[]);
        assert_eq!(samples.len(), 1);
        assert_eq!((samples[0].item.as_str(), samples[0].clicked), ("b", false));
        let a = state.item_stats("a");
        assert_eq!(a[0].tally, Tally::default());
        assert_eq!(a[1].tally.interactions, 1);
        assert!(state.trending(5).is_empty());
    }

    #[test]
    fn repair_brings_a_far_future_watermark_back_and_later_clicks_count() {
        let mut state = FeatureState::new(StreamSettings::default());
        let now = 1_800_000_000_000;
        for n in 0..3 {
            state.apply(&event(n, "u", "50", "click", now), &[]);
        }
        state.apply(&event(3, "x", "bad", "click", 99_999_999_999_999_999), &[]);
        assert_eq!(state.item_stats("50")[0].tally.interactions, 0, "the poisoned state");
        assert_eq!(state.repair(now + 300_000), Some(99_999_999_999_999_999));
        assert_eq!(state.watermark_ms(), Some(now + 300_000));
        assert_eq!(state.repair(now + 300_000), None, "nothing left to repair");
        state.apply(&event(4, "v", "60", "click", now + 1_000), &[]);
        assert_eq!(state.item_stats("50")[0].tally.interactions, 3);
        assert_eq!(state.item_stats("60")[0].tally.interactions, 1);
        assert_eq!(state.trending(5), [("50".to_owned(), 3), ("60".to_owned(), 1)]);
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
        let lucky = state.item_stats("lucky")[0].smoothed_ctr;
        assert!(lucky > 0.05 && lucky < 0.07, "1 of 1 is not 100%: {lucky}");
    }
}
