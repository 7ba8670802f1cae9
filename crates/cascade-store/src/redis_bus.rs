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
    forwarded_offset_key: String,
}

impl RedisEventBus {
    /// Connects to `url`; the stream is `{prefix}:events`, read by group
    /// `{prefix}:features`, created (from the stream's start) if missing.
    pub fn open(url: &str, prefix: &str) -> Result<RedisEventBus, OnlineStoreError> {
        let connection = RedisConnection::open(url)?;
        let bus = RedisEventBus {
            connection,
            stream: format!("{prefix}:events"),
            group: format!("{prefix}:features"),
            forwarded_offset_key: format!("{prefix}:events:forwarded"),
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
            Err(e) if e.to_string().contains("BUSYGROUP") => Ok(bus),
            other => other.map(|()| bus),
        }
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
    /// their entry ids.
    pub fn publish(
        &self,
        events: &[Event],
        categories: &dyn Fn(&str) -> Vec<String>,
    ) -> Result<Vec<String>, OnlineStoreError> {
        let mut pipeline = redis::pipe();
        for event in events {
            self.add_entry(&mut pipeline, event, categories)?;
        }
        self.connection.with(|c| pipeline.query(c))
    }

    fn add_entry(
        &self,
        pipeline: &mut redis::Pipeline,
        event: &Event,
        categories: &dyn Fn(&str) -> Vec<String>,
    ) -> Result<(), OnlineStoreError> {
        let json = serde_json::to_string(event).map_err(|e| self.connection.error(e))?;
        let names = serde_json::to_string(&categories(&event.item))
            .map_err(|e| self.connection.error(e))?;
        pipeline
            .cmd("XADD")
            .arg(&self.stream)
            .arg("*")
            .arg(EVENT_FIELD)
            .arg(json)
            .arg(CATEGORIES_FIELD)
            .arg(names);
        Ok(())
    }

    /// Forwards up to `limit` events of the embedded log that the stream
    /// does not have yet, exactly once: the entries and the new forwarded
    /// offset are written in one `MULTI`/`EXEC`, so a forwarder killed at
    /// any moment resumes where the stream ends. Returns how many it sent.
    pub fn forward_from_log(
        &self,
        log: &Store,
        limit: usize,
        categories: &dyn Fn(&str) -> Vec<String>,
    ) -> Result<usize, ForwardError> {
        let offset: Option<u64> =
            self.connection.with(|c| redis::cmd("GET").arg(&self.forwarded_offset_key).query(c))?;
        let page = log.events_page(offset.unwrap_or(0), limit)?;
        let Some(last) = page.last() else { return Ok(0) };
        let mut transaction = redis::pipe();
        transaction.atomic();
        for StoredEvent { event, .. } in &page {
            self.add_entry(&mut transaction, event, categories)?;
            transaction.ignore();
        }
        transaction.cmd("SET").arg(&self.forwarded_offset_key).arg(last.seq + 1).ignore();
        self.connection.with(|c| transaction.exec(c))?;
        Ok(page.len())
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
            redis::cmd("XTRIM").arg(&self.stream).arg("MINID").arg("~").arg(&keep_from).query(c)
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
