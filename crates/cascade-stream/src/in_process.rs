//! The default feature store: the stream processor's [`FeatureState`] in
//! this process, behind a lock that readers share with the processor.
//!
//! The processor applies the log's events to it a page per lock hold, and
//! exactly once by the log offset its checkpoint keeps. Writers through
//! [`FeatureWrite`] (anything that is not the log: a library user, the
//! conformance suite) are de-duplicated by update id instead, over the last
//! [`REMEMBERED_UPDATE_IDS`] ids, which is the horizon within which a
//! re-delivery must arrive.

use std::collections::{HashSet, VecDeque};

use parking_lot::{Mutex, RwLock};

use cascade_store::online::{
    FeatureRead, FeatureUpdate, FeatureWrite, OnlineSettings, OnlineStoreError, Tally,
};

use crate::features::FeatureState;

/// How many of the latest [`FeatureWrite`] update ids are remembered: a
/// re-delivery older than this is applied again. Not a tuning knob: the
/// log path never uses it, and callers of `FeatureWrite` re-deliver within
/// seconds.
pub const REMEMBERED_UPDATE_IDS: usize = 100_000;

/// The latest update ids, oldest first, with a set for lookups.
#[derive(Debug, Default)]
struct RecentIds {
    order: VecDeque<String>,
    known: HashSet<String>,
}

impl RecentIds {
    /// Remembers `id`; `false` when it already was.
    fn insert(&mut self, id: &str) -> bool {
        if self.known.contains(id) {
            return false;
        }
        self.known.insert(id.to_owned());
        self.order.push_back(id.to_owned());
        if self.order.len() > REMEMBERED_UPDATE_IDS
            && let Some(oldest) = self.order.pop_front()
        {
            self.known.remove(&oldest);
        }
        true
    }
}

/// The stream's features, shared by the processor that writes them and the
/// server that reads them (`Arc<dyn FeatureRead>`).
#[derive(Debug)]
pub struct InProcessFeatures {
    /// A copy of the state's settings, so reads of them take no lock.
    settings: OnlineSettings,
    state: RwLock<FeatureState>,
    recent_ids: Mutex<RecentIds>,
}

impl InProcessFeatures {
    /// Shares `state`.
    pub fn new(state: FeatureState) -> InProcessFeatures {
        InProcessFeatures {
            settings: state.settings().features.clone(),
            state: RwLock::new(state),
            recent_ids: Mutex::default(),
        }
    }

    /// Reads the whole state under the lock.
    pub fn read<T>(&self, read: impl FnOnce(&FeatureState) -> T) -> T {
        read(&self.state.read())
    }

    /// Changes the state under the lock (the processor's pages).
    pub fn write<T>(&self, write: impl FnOnce(&mut FeatureState) -> T) -> T {
        write(&mut self.state.write())
    }
}

impl FeatureWrite for InProcessFeatures {
    fn apply_batch(&self, updates: &[FeatureUpdate]) -> Result<Vec<bool>, OnlineStoreError> {
        let mut state = self.state.write();
        let mut recent_ids = self.recent_ids.lock();
        Ok(updates
            .iter()
            .map(|update| {
                let new = recent_ids.insert(&update.id);
                if new {
                    state.apply_update(update);
                }
                new
            })
            .collect())
    }
}

impl FeatureRead for InProcessFeatures {
    fn settings(&self) -> &OnlineSettings {
        &self.settings
    }

    fn history(&self, user: &str) -> Result<Vec<String>, OnlineStoreError> {
        self.state.read().history(user)
    }

    fn global_tally(&self) -> Result<Tally, OnlineStoreError> {
        self.state.read().global_tally()
    }

    fn watermark_ms(&self) -> Result<Option<i64>, OnlineStoreError> {
        self.state.read().watermark_ms()
    }

    fn item_tallies(&self, item: &str, now_ms: i64) -> Result<Vec<Tally>, OnlineStoreError> {
        self.state.read().item_tallies(item, now_ms)
    }

    fn raw_affinities(&self, user: &str) -> Result<Vec<(String, f64, i64)>, OnlineStoreError> {
        self.state.read().raw_affinities(user)
    }

    fn trending_counts(&self, now_ms: i64) -> Result<Vec<(String, u64)>, OnlineStoreError> {
        self.state.read().trending_counts(now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StreamSettings;

    /// The default store under the suite every backend passes.
    mod conformance_suite {
        use super::*;

        fn fresh(_: &(), features: OnlineSettings) -> InProcessFeatures {
            let settings = StreamSettings { features, ..StreamSettings::default() };
            InProcessFeatures::new(FeatureState::new(settings))
        }

        cascade_store::conformance_tests!(setup: Some(()), fresh: fresh);
    }

    #[test]
    fn an_update_id_is_forgotten_only_after_the_remembered_many() {
        let mut ids = RecentIds::default();
        assert!(ids.insert("first"));
        assert!(!ids.insert("first"), "a re-delivery is recognised");
        for n in 0..REMEMBERED_UPDATE_IDS {
            ids.insert(&n.to_string());
        }
        assert_eq!(ids.known.len(), REMEMBERED_UPDATE_IDS, "memory is bounded");
        assert!(ids.insert("first"), "forgotten after the horizon");
    }
}
