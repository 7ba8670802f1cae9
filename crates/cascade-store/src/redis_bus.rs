//! The event bus on Redis Streams, for scale-out: servers append events to
//! one stream, and stream workers in one consumer group split them. An
//! entry stays pending on the worker that read it until that worker acks
//! it; a worker that dies leaves its pending entries to be claimed by
//! another (`XAUTOCLAIM`) once they have been idle long enough.

use std::collections::HashMap;

use cascade_core::{Event, StoredEvent};
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};

use crate::online::{OnlineStoreError, RedisConnection};
use crate::{Store, StoreError};

/// One entry of the stream: its id and the event it carries, or why the
/// entry is not an event (it is acked and reported, never retried forever).
#[derive(Debug, Clone, PartialEq)]
pub struct BusEntry {
    /// The stream entry id, `ms-seq`.
    pub id: String,
    /// The event and its item's categories, or what is wrong with the entry.
    pub event: Result<(Event, Vec<String>), String>,
}

/// The field each stream entry holds its event in, as JSON.
const EVENT_FIELD: &str = "event";
/// The field with the item's categories, a JSON array: the writer knows the
/// catalog, so workers on other machines need no copy of it.
const CATEGORIES_FIELD: &str = "categories";

/// A stream, and the consumer group stream workers read it in.
pub struct RedisEventBus {
    connection: RedisConnection,
    stream: String,
    group: String,
    forward_script: redis::Script,
}

/// KEYS: the stream, the source's forwarded offset. ARGV: the offset the
/// caller read, the new one, then (event JSON, categories JSON) pairs,
/// written under `EVENT_FIELD` and `CATEGORIES_FIELD`.
/// Appends nothing, returning -1, when the offset moved meanwhile.
const FORWARD_SCRIPT: &str = r#"
if (redis.call('GET', KEYS[2]) or '0') ~= ARGV[1] then return -1 end
for i = 3, #ARGV, 2 do
  redis.call('XADD', KEYS[1], '*', 'event', ARGV[i], 'categories', ARGV[i + 1])
end
redis.call('SET', KEYS[2], ARGV[2])
return (#ARGV - 2) / 2
"#;

impl RedisEventBus {
    /// Connects to `url`; the stream is `{prefix}:events`, read by group
    /// `{prefix}:features`, created (from the stream's start) if missing.
    pub fn open(url: &str, prefix: &str) -> Result<RedisEventBus, OnlineStoreError> {
        let connection = RedisConnection::open(url)?;
        let bus = RedisEventBus {
            connection,
            stream: format!("{prefix}:events"),
            group: format!("{prefix}:features"),
            forward_script: redis::Script::new(FORWARD_SCRIPT),
        };
        let created = bus.connection.with(|c| {
            redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(&bus.stream)
                .arg(&bus.group)
                .arg("0")
                .arg("MKSTREAM")
                .exec(c)
        });
        match created {
            Err(e) if e.to_string().contains("BUSYGROUP") => {}
            other => other?,
        }
        bus.connection.with(|c| bus.forward_script.load(c))?;
        Ok(bus)
    }

    /// The stream's key.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// The consumer group stream workers read in.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// Appends `events` with their items' categories, in order; returns
    /// their entry ids. At least once: should the connection drop after
    /// the server appended, the retry appends again. Servers forward with
    /// [`RedisEventBus::forward_from_log`], which is exactly once.
    pub fn publish(
        &self,
        events: &[Event],
        categories: &dyn Fn(&str) -> Vec<String>,
    ) -> Result<Vec<String>, OnlineStoreError> {
        let mut pipeline = redis::pipe();
        for event in events {
            let (json, names) = self.entry_fields(event, categories)?;
            pipeline.cmd("XADD").arg(&self.stream).arg("*");
            pipeline.arg(EVENT_FIELD).arg(json).arg(CATEGORIES_FIELD).arg(names);
        }
        self.connection.with(|c| pipeline.query(c))
    }

    /// An entry's two fields: the event and its item's categories, as JSON.
    fn entry_fields(
        &self,
        event: &Event,
        categories: &dyn Fn(&str) -> Vec<String>,
    ) -> Result<(String, String), OnlineStoreError> {
        let json = serde_json::to_string(event).map_err(|e| self.connection.error(e))?;
        let names = serde_json::to_string(&categories(&event.item))
            .map_err(|e| self.connection.error(e))?;
        Ok((json, names))
    }

    /// Forwards up to `limit` events of the embedded log of `source` (one
    /// name per server) that the stream does not have yet, exactly once:
    /// one script checks the source's forwarded offset, appends the
    /// entries and moves the offset, atomically. A forwarder killed at any
    /// moment resumes where the stream ends, and a retried call whose first
    /// attempt did land finds the offset moved and sends nothing. Returns
    /// how many it sent.
    ///
    /// While the group has `max_unread` entries or more still unread, it
    /// sends nothing (`Throttled`): the events wait, durable, in the
    /// server's log rather than in Redis' memory.
    pub fn forward_from_log(
        &self,
        log: &Store,
        source: &str,
        limit: usize,
        max_unread: u64,
        categories: &dyn Fn(&str) -> Vec<String>,
    ) -> Result<Forwarded, ForwardError> {
        let offset_key = format!("{}:forwarded:{source}", self.stream);
        let offset: Option<u64> =
            self.connection.with(|c| redis::cmd("GET").arg(&offset_key).query(c))?;
        let offset = offset.unwrap_or(0);
        let page = log.events_page(offset, limit)?;
        let Some(last) = page.last() else { return Ok(Forwarded::CaughtUp) };
        let unread = self.unread()?;
        if unread >= max_unread {
            return Ok(Forwarded::Throttled { unread });
        }
        let mut forward = redis::cmd("EVALSHA");
        forward.arg(self.forward_script.get_hash()).arg(2).arg(&self.stream).arg(&offset_key);
        forward.arg(offset).arg(last.seq + 1);
        for StoredEvent { event, .. } in &page {
            let (json, names) = self.entry_fields(event, categories)?;
            forward.arg(json).arg(names);
        }
        let sent: i64 = self.connection.with(|c| match forward.query(c) {
            Err(e) if e.code() == Some("NOSCRIPT") => {
                self.forward_script.load(c)?;
                forward.query(c)
            }
            other => other,
        })?;
        Ok(Forwarded::Sent(sent.max(0) as usize))
    }

    /// Up to `count` entries no consumer of the group has read yet, now
    /// pending on `consumer`; waits up to `block_ms` for the first (0: does
    /// not wait).
    pub fn read_new(
        &self,
        consumer: &str,
        count: usize,
        block_ms: u64,
    ) -> Result<Vec<BusEntry>, OnlineStoreError> {
        let mut read = redis::cmd("XREADGROUP");
        read.arg("GROUP").arg(&self.group).arg(consumer).arg("COUNT").arg(count);
        // BLOCK 0 would wait forever: no wait means no BLOCK at all.
        if block_ms > 0 {
            read.arg("BLOCK").arg(block_ms);
        }
        read.arg("STREAMS").arg(&self.stream).arg(">");
        let reply: Option<StreamReadReply> = self.connection.with(|c| read.query(c))?;
        let entries = reply.into_iter().flat_map(|r| r.keys).flat_map(|key| key.ids);
        Ok(entries.map(decode).collect())
    }

    /// Up to `count` entries pending on other consumers for at least
    /// `min_idle_ms` (their reader died, or stalls), now pending on
    /// `consumer`.
    pub fn claim_stale(
        &self,
        consumer: &str,
        min_idle_ms: u64,
        count: usize,
    ) -> Result<Vec<BusEntry>, OnlineStoreError> {
        let reply: StreamAutoClaimReply = self.connection.with(|c| {
            redis::cmd("XAUTOCLAIM")
                .arg(&self.stream)
                .arg(&self.group)
                .arg(consumer)
                .arg(min_idle_ms)
                .arg("0-0")
                .arg("COUNT")
                .arg(count)
                .query(c)
        })?;
        Ok(reply.claimed.into_iter().map(decode).collect())
    }

    /// Marks entries done for the group.
    pub fn ack(&self, ids: &[String]) -> Result<(), OnlineStoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.connection
            .with(|c| redis::cmd("XACK").arg(&self.stream).arg(&self.group).arg(ids).exec(c))
    }

    /// Entries read by some consumer and not acked yet.
    pub fn pending(&self) -> Result<u64, OnlineStoreError> {
        Ok(self.pending_by_consumer()?.values().sum())
    }

    /// Entries read and not acked yet, per consumer that holds any.
    pub fn pending_by_consumer(&self) -> Result<HashMap<String, u64>, OnlineStoreError> {
        type Summary = (u64, Option<String>, Option<String>, Option<Vec<(String, String)>>);
        let (_, _, _, consumers): Summary = self
            .connection
            .with(|c| redis::cmd("XPENDING").arg(&self.stream).arg(&self.group).query(c))?;
        consumers
            .unwrap_or_default()
            .into_iter()
            .map(|(consumer, count)| match count.parse::<u64>() {
                Ok(count) => Ok((consumer, count)),
                Err(_) => Err(self.connection.error(format!("XPENDING count {count:?}"))),
            })
            .collect()
    }

    /// Entries the stream holds (the backlog, plus acked entries not
    /// trimmed yet).
    pub fn length(&self) -> Result<u64, OnlineStoreError> {
        self.connection.with(|c| redis::cmd("XLEN").arg(&self.stream).query(c))
    }

    /// Drops the entries the group is done with (read and acked), so the
    /// stream holds only the backlog: everything before the oldest pending
    /// entry, or before the last one delivered when none is pending.
    /// Approximate (`~`), as Redis trims whole nodes; returns the count
    /// dropped.
    pub fn trim_acknowledged(&self) -> Result<u64, OnlineStoreError> {
        type Summary = (u64, Option<String>, Option<String>, redis::Value);
        let (_, oldest_pending, _, _): Summary = self
            .connection
            .with(|c| redis::cmd("XPENDING").arg(&self.stream).arg(&self.group).query(c))?;
        let keep_from = match oldest_pending {
            Some(id) => id,
            None => match self.group_field("last-delivered-id")? {
                Some(value) => redis::from_redis_value::<String>(value)
                    .map_err(|e| self.connection.error(e))?,
                None => return Ok(0),
            },
        };
        self.connection.with(|c| {
            // LIMIT 0: an approximate trim otherwise stops after 100 nodes,
            // and the stream would grow faster than it is trimmed.
            let mut trim = redis::cmd("XTRIM");
            trim.arg(&self.stream).arg("MINID").arg("~").arg(&keep_from).arg("LIMIT").arg(0);
            trim.query(c)
        })
    }

    /// A field of `XINFO GROUPS` for this group.
    fn group_field(&self, field: &str) -> Result<Option<redis::Value>, OnlineStoreError> {
        let mut groups: Vec<HashMap<String, redis::Value>> = self
            .connection
            .with(|c| redis::cmd("XINFO").arg("GROUPS").arg(&self.stream).query(c))?;
        let ours = groups.iter_mut().find(|g| {
            g.get("name").is_some_and(|n| {
                redis::from_redis_value_ref::<String>(n).is_ok_and(|n| n == self.group)
            })
        });
        Ok(ours.and_then(|g| g.remove(field)))
    }

    /// Entries in the stream no consumer of the group has read yet.
    pub fn unread(&self) -> Result<u64, OnlineStoreError> {
        let lag = self.group_field("lag")?.and_then(|v| redis::from_redis_value::<u64>(v).ok());
        lag.ok_or_else(|| {
            self.connection.error(format!("no lag reported for group {}", self.group))
        })
    }
}

fn decode(entry: StreamId) -> BusEntry {
    let field = |name: &str| match entry.map.get(name) {
        Some(value) => redis::from_redis_value_ref::<String>(value).map_err(|e| e.to_string()),
        None => Err(format!("no `{name}` field")),
    };
    let event = field(EVENT_FIELD).and_then(|json| {
        let event =
            serde_json::from_str::<Event>(&json).map_err(|e| format!("{EVENT_FIELD}: {e}"))?;
        // Entries written without categories (other producers) still count.
        let categories = match field(CATEGORIES_FIELD) {
            Ok(json) => {
                serde_json::from_str(&json).map_err(|e| format!("{CATEGORIES_FIELD}: {e}"))?
            }
            Err(_) => Vec::new(),
        };
        Ok((event, categories))
    });
    let event = event.map_err(|why| format!("stream entry {}: {why}", entry.id));
    BusEntry { id: entry.id, event }
}

/// What one call of [`RedisEventBus::forward_from_log`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forwarded {
    /// Sent this many events (0 when another forwarder of the same source
    /// sent the page first).
    Sent(usize),
    /// The stream has every event of the log.
    CaughtUp,
    /// The workers are this many entries behind, at or past the bound.
    Throttled {
        /// Entries of the group not read yet.
        unread: u64,
    },
}

/// Forwarding from the embedded log failed on one side or the other.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// Reading the embedded log.
    #[error(transparent)]
    Log(#[from] StoreError),
    /// Writing to Redis.
    #[error(transparent)]
    Redis(#[from] OnlineStoreError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::online::test_server::RedisForTests;
    use crate::{EventKey, KeyedEvent};

    #[test]
    fn concurrent_forwarders_of_one_log_send_each_event_once() {
        let Some(server) = RedisForTests::start() else { return };
        let prefix = server.fresh_prefix("forward");
        let dir = tempfile::tempdir().unwrap();
        let log = Store::open(&dir.path().join("store.redb")).unwrap();
        let events: Vec<KeyedEvent> = (0..2_500)
            .map(|n| KeyedEvent {
                key: EventKey::from_client_id(&format!("f{n}")),
                event: Event {
                    user: format!("u{}", n % 10),
                    item: format!("i{n}"),
                    event_type: "click".into(),
                    value: None,
                    ts_ms: n,
                    served: None,
                },
            })
            .collect();
        log.append(&events).unwrap();
        let categories = |item: &str| vec![format!("c-{item}")];

        // Two forwarders of the same source race; the offset check in the
        // script lets only one of them send each page.
        let sent: usize = std::thread::scope(|scope| {
            let forwarders: Vec<_> = (0..2)
                .map(|_| {
                    scope.spawn(|| {
                        let bus = RedisEventBus::open(&server.url, &prefix).unwrap();
                        let mut sent = 0;
                        loop {
                            match bus.forward_from_log(&log, "node-a", 100, u64::MAX, &categories) {
                                Ok(Forwarded::Sent(n)) => sent += n,
                                Ok(Forwarded::CaughtUp) => return sent,
                                other => panic!("{other:?}"),
                            }
                        }
                    })
                })
                .collect();
            forwarders.into_iter().map(|f| f.join().unwrap()).sum()
        });
        let bus = RedisEventBus::open(&server.url, &prefix).unwrap();
        assert_eq!((sent, bus.length().unwrap()), (2_500, 2_500), "each event once");

        // Another server's log has its own offset; past the bound on unread
        // entries it waits.
        let forward = |bound| bus.forward_from_log(&log, "node-b", 1_000, bound, &categories);
        assert_eq!(forward(2_500).unwrap(), Forwarded::Throttled { unread: 2_500 });
        assert_eq!(forward(u64::MAX).unwrap(), Forwarded::Sent(1_000));
        let entries = bus.read_new("reader", 3, 0).unwrap();
        let (event, names) = entries[0].event.clone().unwrap();
        assert_eq!((event.item.as_str(), names), ("i0", vec!["c-i0".to_owned()]));
    }
}
