//! The deduplication window of live ingestion.
//!
//! Bulk imports record every key in the store's permanent key table, so that
//! re-importing a file adds nothing. Live ingestion cannot afford that: its
//! keys are hashes, so each commit's inserts land on random leaves of a
//! table that grows with the log, and a commit rewrites ever more of it
//! (ingest fell from 52,000 to 36,000 events/s over 600,000 events). Live
//! keys instead go to a table ordered by sequence number (appends touch only
//! its last leaf), and the most recent [`RECENT_KEYS_CAPACITY`] of them are
//! held in memory for lookups, reloaded from that table when the store
//! opens. A retry is recognised while its first attempt is among the most
//! recent keys, which is when retries happen.

use std::collections::{HashMap, VecDeque};

use crate::event_key::EventKey;

/// How many live-ingested keys are remembered: about 100 MB of memory, and
/// hours of traffic at thousands of events a second.
pub const RECENT_KEYS_CAPACITY: usize = 2_000_000;

/// The most recent live keys and the sequence numbers they were appended at.
#[derive(Debug)]
pub struct RecentKeys {
    seqs: HashMap<EventKey, u64>,
    order: VecDeque<EventKey>,
    capacity: usize,
}

impl RecentKeys {
    /// Empty, remembering at most `capacity` keys.
    pub fn new(capacity: usize) -> RecentKeys {
        RecentKeys { seqs: HashMap::new(), order: VecDeque::new(), capacity: capacity.max(1) }
    }

    /// The sequence number `key` was appended at, if it is remembered.
    pub fn get(&self, key: &EventKey) -> Option<u64> {
        self.seqs.get(key).copied()
    }

    /// Remembers `key`, forgetting the oldest key beyond the capacity.
    pub fn insert(&mut self, key: EventKey, seq: u64) {
        if self.seqs.insert(key, seq).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.seqs.remove(&oldest);
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgets_the_oldest_keys_beyond_capacity() {
        let key = |n: u8| EventKey([n; 16]);
        let mut recent = RecentKeys::new(2);
        recent.insert(key(1), 10);
        recent.insert(key(2), 11);
        recent.insert(key(2), 11);
        assert_eq!(recent.len(), 2, "a repeated insert is one key");
        recent.insert(key(3), 12);
        assert_eq!(recent.get(&key(1)), None);
        assert_eq!(recent.get(&key(2)), Some(11));
        assert_eq!(recent.get(&key(3)), Some(12));
    }
}
