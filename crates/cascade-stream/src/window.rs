//! Counts over a sliding window of event time, in fixed buckets.
//!
//! A window of W split into B buckets keeps B (start, count) pairs; adding
//! or reading drops buckets that have left the window, so memory per
//! counter is bounded and reads are O(B). The window's edge moves one
//! bucket at a time: a read at time t counts events in
//! (bucket_start(t) − W + bucket, t], off by at most one bucket.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

pub use cascade_store::online::Tally;

/// A [`Tally`] over the last `window_ms` of event time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowedTally {
    bucket_ms: i64,
    buckets_per_window: usize,
    /// (bucket start, tally), oldest first.
    buckets: VecDeque<(i64, Tally)>,
}

impl WindowedTally {
    /// Over `window_ms`, kept in `buckets` buckets.
    pub fn new(window_ms: i64, buckets: usize) -> WindowedTally {
        let buckets = buckets.max(1);
        WindowedTally {
            bucket_ms: (window_ms / buckets as i64).max(1),
            buckets_per_window: buckets,
            buckets: VecDeque::new(),
        }
    }

    fn bucket_of(&self, ts_ms: i64) -> i64 {
        ts_ms.div_euclid(self.bucket_ms) * self.bucket_ms
    }

    fn oldest_kept(&self, now_ms: i64) -> i64 {
        self.bucket_of(now_ms) - (self.buckets_per_window as i64 - 1) * self.bucket_ms
    }

    /// Adds one event at `ts_ms`. An event older than the window is ignored.
    pub fn add(&mut self, ts_ms: i64, impression: bool) {
        let bucket = self.bucket_of(ts_ms);
        let newest = self.buckets.back().map_or(bucket, |&(start, _)| start.max(bucket));
        if bucket < self.oldest_kept(newest) {
            return;
        }
        // Late events (out of order within the window) land in their own bucket.
        let position = self.buckets.iter().rposition(|&(start, _)| start <= bucket);
        let slot = match position {
            Some(i) if self.buckets[i].0 == bucket => i,
            Some(i) => {
                self.buckets.insert(i + 1, (bucket, Tally::default()));
                i + 1
            }
            None => {
                self.buckets.push_front((bucket, Tally::default()));
                0
            }
        };
        let tally = &mut self.buckets[slot].1;
        if impression {
            tally.impressions += 1;
        } else {
            tally.interactions += 1;
        }
        self.expire(newest);
    }

    /// Drops buckets that left the window as of `now_ms`.
    pub fn expire(&mut self, now_ms: i64) {
        let oldest = self.oldest_kept(now_ms);
        while self.buckets.front().is_some_and(|&(start, _)| start < oldest) {
            self.buckets.pop_front();
        }
    }

    /// Drops buckets that start after `ceiling_ms`: counts of events from a
    /// time no clock has reached (see [`crate::FeatureState::repair`]).
    pub fn drop_after(&mut self, ceiling_ms: i64) {
        while self.buckets.back().is_some_and(|&(start, _)| start > ceiling_ms) {
            self.buckets.pop_back();
        }
    }

    /// The tally of the window ending at `now_ms`.
    pub fn tally(&self, now_ms: i64) -> Tally {
        let oldest = self.oldest_kept(now_ms);
        let newest = self.bucket_of(now_ms);
        self.buckets
            .iter()
            .filter(|&&(start, _)| start >= oldest && start <= newest)
            .fold(Tally::default(), |sum, (_, t)| sum.plus(*t))
    }

    /// Whether no bucket is kept (the counter can be dropped).
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000;

    #[test]
    fn counts_leave_the_window_a_bucket_at_a_time() {
        // One hour in 60 one-minute buckets.
        let mut tally = WindowedTally::new(60 * MINUTE, 60);
        tally.add(0, true);
        tally.add(30 * MINUTE, false);
        tally.add(30 * MINUTE + 5, true);
        assert_eq!(tally.tally(30 * MINUTE), Tally { impressions: 2, interactions: 1 });
        // At 60 min the bucket of minute 0 has left the window.
        assert_eq!(tally.tally(60 * MINUTE), Tally { impressions: 1, interactions: 1 });
        assert_eq!(tally.tally(90 * MINUTE), Tally::default());
    }

    #[test]
    fn late_events_within_the_window_count_and_older_ones_do_not() {
        let mut tally = WindowedTally::new(10 * MINUTE, 10);
        tally.add(20 * MINUTE, false);
        tally.add(15 * MINUTE, false); // late, inside the window
        tally.add(5 * MINUTE, false); // older than the window: ignored
        assert_eq!(tally.tally(20 * MINUTE).interactions, 2);
        tally.expire(40 * MINUTE);
        assert!(tally.is_empty());
    }
}
