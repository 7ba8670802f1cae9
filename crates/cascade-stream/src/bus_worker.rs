//! A stream worker for scale-out: reads the Redis event bus in a consumer
//! group and keeps an [`OnlineStore`] up to date.
//!
//! Several workers in one group split the stream between them. Each batch
//! is applied, then acked; a worker killed between the two leaves its batch
//! pending, another worker claims it once it has been idle for
//! `claim_idle_ms`, and applying it again changes nothing, because every
//! update is named by its stream entry id. So no event is lost and none is
//! counted twice.

use serde::Serialize;

use cascade_core::event::IMPRESSION;
use cascade_store::online::{FeatureUpdate, OnlineStore, OnlineStoreError};
use cascade_store::{BusEntry, RedisEventBus};

/// What one worker has done so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WorkerStats {
    /// The worker's consumer name in the group.
    pub consumer: String,
    /// Entries it read that no consumer had read before.
    pub read: u64,
    /// Entries it took over from stalled or dead consumers.
    pub claimed: u64,
    /// Updates that changed the store.
    pub applied: u64,
    /// Updates the store had already applied (a re-delivery).
    pub duplicates: u64,
    /// Entries that were not events; acked and reported, not retried.
    pub malformed: u64,
}

/// One consumer of the group.
pub struct BusWorker<'a> {
    bus: &'a RedisEventBus,
    store: &'a dyn OnlineStore,
    claim_idle_ms: u64,
    stats: WorkerStats,
}

impl<'a> BusWorker<'a> {
    /// Consumer `consumer` of `bus`'s group, writing to `store`; entries
    /// pending on other consumers for `claim_idle_ms` are taken over.
    pub fn new(
        bus: &'a RedisEventBus,
        store: &'a dyn OnlineStore,
        consumer: &str,
        claim_idle_ms: u64,
    ) -> BusWorker<'a> {
        let stats = WorkerStats { consumer: consumer.to_owned(), ..WorkerStats::default() };
        BusWorker { bus, store, claim_idle_ms, stats }
    }

    /// What it has done so far.
    pub fn stats(&self) -> &WorkerStats {
        &self.stats
    }

    /// Takes over up to `batch` stale entries, or else reads up to `batch`
    /// new ones (waiting up to `block_ms`), applies and acks them. Returns
    /// how many entries it handled.
    pub fn step(&mut self, batch: usize, block_ms: u64) -> Result<usize, OnlineStoreError> {
        let consumer = self.stats.consumer.clone();
        let mut entries = self.bus.claim_stale(&consumer, self.claim_idle_ms, batch)?;
        self.stats.claimed += entries.len() as u64;
        if entries.is_empty() {
            entries = self.bus.read_new(&consumer, batch, block_ms)?;
            self.stats.read += entries.len() as u64;
        }
        let mut updates = Vec::with_capacity(entries.len());
        for BusEntry { id, event } in &entries {
            match event {
                Ok((event, categories)) => updates.push(FeatureUpdate {
                    id: id.clone(),
                    user: event.user.clone(),
                    item: event.item.clone(),
                    impression: event.event_type == IMPRESSION,
                    ts_ms: event.ts_ms,
                    categories: categories.clone(),
                }),
                Err(why) => {
                    eprintln!("stream worker {consumer}: skipping {why}");
                    self.stats.malformed += 1;
                }
            }
        }
        for applied in self.store.apply_batch(&updates)? {
            match applied {
                true => self.stats.applied += 1,
                false => self.stats.duplicates += 1,
            }
        }
        let ids: Vec<String> = entries.into_iter().map(|e| e.id).collect();
        self.bus.ack(&ids)?;
        Ok(ids.len())
    }

    /// Whether the group has nothing left: every entry read and acked.
    pub fn drained(&self) -> Result<bool, OnlineStoreError> {
        Ok(self.bus.unread()? == 0 && self.bus.pending()? == 0)
    }
}

#[cfg(test)]
mod tests {
    use cascade_core::Event;
    use cascade_store::online::test_server::RedisForTests;
    use cascade_store::online::{RedisOnlineStore, Tally, conformance};

    use super::*;

    fn click(n: usize) -> Event {
        Event {
            user: format!("u{}", n % 7),
            item: format!("i{}", n % 11),
            event_type: if n.is_multiple_of(3) { "click".into() } else { IMPRESSION.into() },
            value: None,
            ts_ms: 1_700_000_000_000 + n as i64,
        }
    }

    #[test]
    fn a_dead_consumers_pending_entries_are_claimed_and_counted_once() {
        let Some(server) = RedisForTests::start() else { return };
        let prefix = server.fresh_prefix("claim");
        let bus = RedisEventBus::open(&server.url, &prefix).unwrap();
        let store =
            RedisOnlineStore::open(&server.url, &prefix, conformance::suite_settings()).unwrap();
        let events: Vec<Event> = (0..300).map(click).collect();
        bus.publish(&events, &|_| vec!["Drama".to_owned()]).unwrap();

        // A consumer reads 100 entries and dies before acking them.
        let lost = bus.read_new("dead", 100, 0).unwrap();
        assert_eq!(lost.len(), 100);
        // Another claims 50 of them, applies them, and dies before acking.
        let mut taken = bus.claim_stale("half", 0, 50).unwrap();
        let updates: Vec<FeatureUpdate> = taken
            .drain(..)
            .map(|e| {
                let (event, categories) = e.event.unwrap();
                FeatureUpdate {
                    id: e.id,
                    user: event.user,
                    item: event.item,
                    impression: event.event_type == IMPRESSION,
                    ts_ms: event.ts_ms,
                    categories,
                }
            })
            .collect();
        store.apply_batch(&updates).unwrap();

        // The survivor claims both consumers' entries once they are idle.
        let mut survivor = BusWorker::new(&bus, &store, "survivor", 0);
        while !survivor.drained().unwrap() {
            survivor.step(64, 10).unwrap();
        }
        let stats = survivor.stats();
        assert_eq!(stats.claimed, 100, "{stats:?}");
        assert_eq!(stats.read, 200, "{stats:?}");
        assert_eq!(stats.duplicates, 50, "the half-applied batch is recognised: {stats:?}");
        assert_eq!(stats.applied, 250, "{stats:?}");
        let expected = Tally { impressions: 200, interactions: 100 };
        assert_eq!(store.global_tally().unwrap(), expected, "every event counted once");
        // u0 clicked at n = 0, 21, 42, …, 294: 15 interactions, all Drama.
        let affinity = store.category_affinities("u0", 1_700_000_000_300).unwrap();
        assert_eq!(affinity[0].0, "Drama");
        assert!(
            (affinity[0].1 - 15.0).abs() < 1e-3,
            "categories travel with the entries: {affinity:?}"
        );
    }
}
