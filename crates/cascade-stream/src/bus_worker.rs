//! A stream worker for scale-out: reads the Redis event bus in a consumer
//! group and keeps the Redis online store up to date.
//!
//! Several workers in one group split the stream between them. Each entry
//! is applied and acked in one atomic step on the server
//! ([`RedisOnlineStore::apply_acking`]). A worker killed mid-batch leaves
//! the rest of its batch pending; another worker claims those entries once
//! they have been idle for `claim_idle_ms`, and any it finds acked already
//! change nothing. So no event is lost and none is counted twice.

use serde::Serialize;

use cascade_core::IngestConfig;
use cascade_core::timestamp::now_ms;

use cascade_store::online::{FeatureUpdate, OnlineStoreError, RedisOnlineStore};
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
    /// Events whose time is outside `[ingest]`'s bounds; acked, skipped.
    pub out_of_bounds: u64,
}

/// One consumer of the group.
pub struct BusWorker<'a> {
    bus: &'a RedisEventBus,
    store: &'a RedisOnlineStore,
    claim_idle_ms: u64,
    stats: WorkerStats,
    steps: u64,
    time_bounds: IngestConfig,
}

/// The stream is trimmed of acked entries once per this many steps.
const TRIM_EVERY_STEPS: u64 = 64;

impl<'a> BusWorker<'a> {
    /// Consumer `consumer` of `bus`'s group, writing to `store`; entries
    /// pending on other consumers for `claim_idle_ms` are taken over.
    pub fn new(
        bus: &'a RedisEventBus,
        store: &'a RedisOnlineStore,
        consumer: &str,
        claim_idle_ms: u64,
    ) -> BusWorker<'a> {
        let stats = WorkerStats { consumer: consumer.to_owned(), ..WorkerStats::default() };
        let time_bounds = IngestConfig::default();
        BusWorker { bus, store, claim_idle_ms, stats, steps: 0, time_bounds }
    }

    /// Skips events outside `bounds` and keeps the store's watermark within
    /// the clock plus its skew (default: `IngestConfig::default()`'s).
    pub fn with_event_time_bounds(mut self, bounds: IngestConfig) -> BusWorker<'a> {
        self.time_bounds = bounds;
        self
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
        let now = now_ms();
        if self.steps == 0
            && let Some(replaced) =
                self.store.repair_watermark(self.time_bounds.event_time_ceiling(now))?
        {
            eprintln!(
                "stream worker {consumer}: the watermark {replaced} was beyond the clock plus \
                 the allowed skew; repaired"
            );
        }
        let mut entries = self.bus.claim_stale(&consumer, self.claim_idle_ms, batch)?;
        self.stats.claimed += entries.len() as u64;
        if entries.is_empty() {
            entries = self.bus.read_new(&consumer, batch, block_ms)?;
            self.stats.read += entries.len() as u64;
        }
        let mut updates = Vec::with_capacity(entries.len());
        let mut malformed = Vec::new();
        let mut out_of_bounds = Vec::new();
        for BusEntry { id, event } in &entries {
            match event {
                Ok((event, _)) if self.time_bounds.check_event_time(event.ts_ms, now).is_err() => {
                    out_of_bounds.push(id.clone());
                }
                Ok((event, categories)) => {
                    updates.push(FeatureUpdate::from_event(id.clone(), event, categories.clone()))
                }
                Err(why) => {
                    eprintln!("stream worker {consumer}: skipping {why}");
                    malformed.push(id.clone());
                }
            }
        }
        for applied in self.store.apply_acking(&updates, self.bus.stream(), self.bus.group())? {
            match applied {
                true => self.stats.applied += 1,
                false => self.stats.duplicates += 1,
            }
        }
        self.bus.ack(&malformed)?;
        self.stats.malformed += malformed.len() as u64;
        self.bus.ack(&out_of_bounds)?;
        self.stats.out_of_bounds += out_of_bounds.len() as u64;
        self.steps += 1;
        if self.steps.is_multiple_of(TRIM_EVERY_STEPS) {
            self.bus.trim_acknowledged()?;
        }
        Ok(entries.len())
    }

    /// Whether the group has nothing left: every entry read and acked.
    pub fn drained(&self) -> Result<bool, OnlineStoreError> {
        Ok(self.bus.unread()? == 0 && self.bus.pending()? == 0)
    }
}

#[cfg(test)]
mod tests {
    use cascade_core::Event;
    use cascade_core::event::IMPRESSION;
    use cascade_store::online::test_server::RedisForTests;
    use cascade_store::online::{FeatureRead, FeatureWrite, RedisOnlineStore, Tally, conformance};

    use super::*;

    fn click(n: usize) -> Event {
        Event {
            user: format!("u{}", n % 7),
            item: format!("i{}", n % 11),
            event_type: if n.is_multiple_of(3) { "click".into() } else { IMPRESSION.into() },
            value: None,
            ts_ms: 1_700_000_000_000 + n as i64,
            served: None,
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
        // Another claims 50 of them, applies (and so acks) 30, and dies.
        let taken = bus.claim_stale("half", 0, 50).unwrap();
        let updates: Vec<FeatureUpdate> = taken
            .into_iter()
            .map(|e| {
                let (event, categories) = e.event.unwrap();
                FeatureUpdate::from_event(e.id, &event, categories)
            })
            .collect();
        store.apply_acking(&updates[..30], bus.stream(), bus.group()).unwrap();

        // The survivor claims both consumers' entries once they are idle.
        let mut survivor = BusWorker::new(&bus, &store, "survivor", 0);
        while !survivor.drained().unwrap() {
            survivor.step(64, 10).unwrap();
        }
        let stats = survivor.stats();
        assert_eq!(stats.claimed, 70, "what the two held unacked: {stats:?}");
        assert_eq!(stats.read, 200, "{stats:?}");
        assert_eq!(stats.applied, 270, "{stats:?}");
        // A slow worker that wakes up and applies what was claimed from it
        // changes nothing: the entries are acked.
        let again = store.apply_acking(&updates[30..], bus.stream(), bus.group()).unwrap();
        assert_eq!(again, [false; 20], "already applied by the survivor");
        // Acked entries leave the stream (in whole nodes of 100).
        assert_eq!(bus.length().unwrap(), 300);
        bus.trim_acknowledged().unwrap();
        assert!(bus.length().unwrap() <= 100, "trimmed to the last node");
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

    #[test]
    fn far_future_events_are_skipped_and_a_poisoned_watermark_is_repaired() {
        let Some(server) = RedisForTests::start() else { return };
        let prefix = server.fresh_prefix("bounds");
        let bus = RedisEventBus::open(&server.url, &prefix).unwrap();
        let store =
            RedisOnlineStore::open(&server.url, &prefix, conformance::suite_settings()).unwrap();
        let now = now_ms();
        let far = 99_999_999_999_999_999;
        let at = |item: &str, ts_ms: i64| Event {
            user: "u".into(),
            item: item.into(),
            event_type: "click".into(),
            value: None,
            ts_ms,
            served: None,
        };
        // A store an older worker let the far-future event reach.
        store.apply(&FeatureUpdate::from_event("old".into(), &at("x", far), vec![])).unwrap();
        assert_eq!(store.watermark_ms().unwrap(), Some(far));
        bus.publish(&[at("50", now), at("x", far), at("60", now)], &|_| Vec::new()).unwrap();
        let mut worker = BusWorker::new(&bus, &store, "w", 0);
        while !worker.drained().unwrap() {
            worker.step(64, 10).unwrap();
        }
        let stats = worker.stats();
        assert_eq!((stats.applied, stats.out_of_bounds), (2, 1), "{stats:?}");
        let watermark = store.watermark_ms().unwrap().unwrap();
        assert!(watermark >= now && watermark <= now_ms() + 300_000, "repaired: {watermark}");
        for item in ["50", "60"] {
            let tallies = store.item_tallies(item, watermark).unwrap();
            assert_eq!(tallies[0].interactions, 1, "{item} counts after the repair");
        }
    }
}
