//! Joins interactions to the impressions that caused them: labelled samples
//! for online learning.
//!
//! An impression of item I to user U is a positive sample if U interacts
//! with I within the join window after it, and a negative one once the
//! window has passed without that (by event time: the stream's watermark is
//! the latest event time seen). Each sample names its impression's log
//! position, so a consumer that sees one twice (after a crash and replay
//! from the last checkpoint) can drop the copy.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

/// One impression with its outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelledSample {
    /// The impression's sequence number in the log: the sample's identity.
    pub impression_seq: u64,
    /// External user id.
    pub user: String,
    /// External item id.
    pub item: String,
    /// Whether the user interacted with the item within the window.
    pub clicked: bool,
    /// When it was shown (ms since the epoch).
    pub shown_ms: i64,
    /// When the interaction came, for positives.
    pub clicked_ms: Option<i64>,
}

/// An impression waiting for its interaction or for its window to pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Pending {
    seq: u64,
    shown_ms: i64,
}

/// The join's state: open impressions per user and item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImpressionJoin {
    window_ms: i64,
    /// user → item → open impressions, oldest first.
    open: HashMap<String, HashMap<String, VecDeque<Pending>>>,
    /// Every impression as (shown_ms, seq, user, item), by time, until its
    /// window passes. An answered one stays here (removing it from the
    /// middle would move half the queue) and is skipped when it expires.
    by_time: VecDeque<(i64, u64, String, String)>,
    /// Impressions in `open`.
    open_count: usize,
}

impl ImpressionJoin {
    /// Interactions count within `window_ms` after the impression.
    pub fn new(window_ms: i64) -> ImpressionJoin {
        ImpressionJoin { window_ms, open: HashMap::new(), by_time: VecDeque::new(), open_count: 0 }
    }

    /// Impressions still waiting for an outcome.
    pub fn open_impressions(&self) -> usize {
        self.open_count
    }

    /// Opens an impression.
    pub fn impression(&mut self, seq: u64, user: &str, item: &str, shown_ms: i64) {
        let queue =
            self.open.entry(user.to_owned()).or_default().entry(item.to_owned()).or_default();
        let at = queue.partition_point(|p| (p.shown_ms, p.seq) <= (shown_ms, seq));
        queue.insert(at, Pending { seq, shown_ms });
        // Usually the newest, so the insert is a push at the back.
        let at = self.by_time.partition_point(|(ts, s, _, _)| (*ts, *s) <= (shown_ms, seq));
        self.by_time.insert(at, (shown_ms, seq, user.to_owned(), item.to_owned()));
        self.open_count += 1;
    }

    /// An interaction of `user` with `item`: the positive sample of the
    /// oldest open impression it answers (shown at or before it, within the
    /// window), if any.
    pub fn interaction(&mut self, user: &str, item: &str, at_ms: i64) -> Option<LabelledSample> {
        let queue = self.open.get_mut(user)?.get_mut(item)?;
        let window = self.window_ms;
        let index =
            queue.iter().position(|p| p.shown_ms <= at_ms && at_ms - p.shown_ms <= window)?;
        let pending = queue.remove(index)?;
        self.open_count -= 1;
        self.drop_empty(user, item);
        Some(LabelledSample {
            impression_seq: pending.seq,
            user: user.to_owned(),
            item: item.to_owned(),
            clicked: true,
            shown_ms: pending.shown_ms,
            clicked_ms: Some(at_ms),
        })
    }

    /// Negative samples of every impression whose window ended before
    /// `watermark_ms`, oldest first.
    pub fn expire(&mut self, watermark_ms: i64) -> Vec<LabelledSample> {
        let mut negatives = Vec::new();
        let window = self.window_ms;
        while self.by_time.front().is_some_and(|(shown_ms, ..)| shown_ms + window < watermark_ms) {
            let Some((shown_ms, seq, user, item)) = self.by_time.pop_front() else { break };
            if !self.remove_open(&user, &item, seq) {
                continue; // answered by an interaction already
            }
            negatives.push(LabelledSample {
                impression_seq: seq,
                user,
                item,
                clicked: false,
                shown_ms,
                clicked_ms: None,
            });
        }
        negatives
    }

    /// Removes the open impression `seq` of `user` and `item`; returns
    /// whether it was open.
    fn remove_open(&mut self, user: &str, item: &str, seq: u64) -> bool {
        let Some(queue) = self.open.get_mut(user).and_then(|items| items.get_mut(item)) else {
            return false;
        };
        let Some(index) = queue.iter().position(|p| p.seq == seq) else { return false };
        queue.remove(index);
        self.open_count -= 1;
        self.drop_empty(user, item);
        true
    }

    fn drop_empty(&mut self, user: &str, item: &str) {
        if let Some(items) = self.open.get_mut(user) {
            if items.get(item).is_some_and(VecDeque::is_empty) {
                items.remove(item);
            }
            if items.is_empty() {
                self.open.remove(user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_click_in_the_window_labels_its_impression_and_others_expire_negative() {
        let mut join = ImpressionJoin::new(1_000);
        join.impression(1, "u", "a", 100);
        join.impression(2, "u", "b", 100);
        join.impression(3, "u", "a", 2_000);
        assert_eq!(join.interaction("u", "c", 150), None, "never shown");
        // 1,500 is past the first impression's window and before the third.
        assert_eq!(join.interaction("u", "a", 1_500), None);
        let positive = join.interaction("u", "a", 2_400).unwrap();
        assert_eq!((positive.impression_seq, positive.clicked), (3, true));
        assert_eq!(positive.clicked_ms, Some(2_400));
        // Nothing has expired at 1,100 (100 + 1,000 is not before it).
        assert!(join.expire(1_100).is_empty());
        let negatives = join.expire(5_000);
        let seqs: Vec<u64> = negatives.iter().map(|s| s.impression_seq).collect();
        assert_eq!(seqs, [1, 2]);
        assert!(negatives.iter().all(|s| !s.clicked));
        assert_eq!(join.open_impressions(), 0);
        assert!(join.open.is_empty(), "no empty queues left behind");
        assert!(join.by_time.is_empty(), "the answered impression left with its window");
    }

    #[test]
    fn a_click_before_the_impression_does_not_count() {
        let mut join = ImpressionJoin::new(1_000);
        join.impression(7, "u", "a", 500);
        assert_eq!(join.interaction("u", "a", 400), None);
        assert_eq!(join.expire(10_000).len(), 1);
    }
}
