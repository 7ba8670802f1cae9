//! The online store on Redis: a list per user history, a hash per (window,
//! item, bucket) of counters with a TTL, a hash of affinities per user, and
//! a sorted set per trending bucket. One Lua script applies an event: it
//! runs atomically on the server, so a worker killed mid-update leaves
//! either all of an event's updates or none. Its first command makes a
//! re-delivery change nothing:
//! - for an entry of the event stream (`apply_acking`), `XACK` of the entry
//!   itself: applying and acknowledging are one atomic step, so an entry is
//!   applied if and only if it is acked, and a second worker that claimed
//!   it finds it acked and skips it. Nothing extra is stored per event.
//! - for any other update (`apply_batch`), `SET … NX` on its id, kept a day.
//!
//! Keys (under a configurable prefix `p`):
//! - `p:applied:{id}`: ids of updates applied through `apply_batch`;
//! - `p:global`: hash `i`, `c` (impressions, interactions ever), `w` (the
//!   latest event time);
//! - `p:hist:{user}`: list of item ids, oldest first;
//! - `p:aff:{user}`: hash category → `score|as_of_ms`;
//! - `p:trend:{bucket}`: sorted set item → interactions;
//! - `p:ib:{window}:{item}:{bucket}`: hash `i`, `c`.
//!
//! Bucket keys expire one window after their last write (wall clock), so
//! memory stays bounded without a sweeper.

use std::collections::HashMap;

use super::{
    DEDUP_TTL_MS, FeatureRead, FeatureUpdate, FeatureWrite, OnlineSettings, OnlineStoreError,
    RedisConnection, Tally,
};

/// KEYS: the applied-id key or the event stream, global, history,
/// affinities, trending bucket, then one item bucket per window. ARGV:
/// impression flag, item, ts, history length, half-life, `ttl` or `ack`,
/// the dedup TTL or the consumer group, the entry id, window count W, W
/// bucket TTLs, trending TTL, then the categories. The affinity rule is
/// `affinity_after_interaction`'s.
const APPLY_SCRIPT: &str = r#"
if ARGV[6] == 'ack' then
  if redis.call('XACK', KEYS[1], ARGV[7], ARGV[8]) == 0 then return 0 end
elseif not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[7]) then
  return 0
end
local field = 'c'
if ARGV[1] == '1' then field = 'i' end
redis.call('HINCRBY', KEYS[2], field, 1)
local watermark = redis.call('HGET', KEYS[2], 'w')
if (not watermark) or tonumber(ARGV[3]) > tonumber(watermark) then
  redis.call('HSET', KEYS[2], 'w', ARGV[3])
end
local windows = tonumber(ARGV[9])
for w = 1, windows do
  redis.call('HINCRBY', KEYS[5 + w], field, 1)
  redis.call('PEXPIRE', KEYS[5 + w], ARGV[9 + w])
end
if field == 'i' then return 1 end
local item = ARGV[2]
local ts = tonumber(ARGV[3])
redis.call('RPUSH', KEYS[3], item)
redis.call('LTRIM', KEYS[3], -tonumber(ARGV[4]), -1)
redis.call('ZINCRBY', KEYS[5], 1, item)
redis.call('PEXPIRE', KEYS[5], ARGV[10 + windows])
local half_life = tonumber(ARGV[5])
if half_life < 1 then half_life = 1 end
for c = 11 + windows, #ARGV do
  local score, as_of = 0, ts
  local current = redis.call('HGET', KEYS[4], ARGV[c])
  if current then
    local bar = string.find(current, '|', 1, true)
    score = tonumber(string.sub(current, 1, bar - 1))
    as_of = tonumber(string.sub(current, bar + 1))
  end
  local elapsed = ts - as_of
  if elapsed < 0 then elapsed = 0 end
  score = score * math.pow(0.5, elapsed / half_life) + 1
  if ts > as_of then as_of = ts end
  redis.call('HSET', KEYS[4], ARGV[c], string.format('%.17g', score) .. '|' .. string.format('%d', as_of))
end
return 1
"#;

/// The online store on a Redis server.
pub struct RedisOnlineStore {
    connection: RedisConnection,
    prefix: String,
    settings: OnlineSettings,
    apply_script: redis::Script,
}

impl RedisOnlineStore {
    /// Connects to `url` and keeps every key under `prefix`.
    pub fn open(
        url: &str,
        prefix: &str,
        settings: OnlineSettings,
    ) -> Result<RedisOnlineStore, OnlineStoreError> {
        let connection = RedisConnection::open(url)?;
        let apply_script = redis::Script::new(APPLY_SCRIPT);
        connection.with(|c| apply_script.load(c))?;
        Ok(RedisOnlineStore { connection, prefix: prefix.to_owned(), settings, apply_script })
    }

    /// Brings a watermark beyond `ceiling_ms` (the clock plus the allowed
    /// skew) back to it, atomically, for a store an event from the far
    /// future reached before event times were bounded; returns the
    /// watermark it replaced. Counters are read by bucket from the
    /// watermark back, so the far-future buckets are no longer read, and
    /// they expire by TTL.
    pub fn repair_watermark(&self, ceiling_ms: i64) -> Result<Option<i64>, OnlineStoreError> {
        let script = redis::Script::new(
            r"local w = redis.call('HGET', KEYS[1], 'w')
if w and tonumber(w) > tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'w', ARGV[1])
  return w
end
return false",
        );
        let key = format!("{}:global", self.prefix);
        let replaced: Option<String> =
            self.connection.with(|c| script.key(&key).arg(ceiling_ms).invoke(c))?;
        Ok(replaced.and_then(|w| w.parse().ok()))
    }

    fn item_bucket_key(&self, w: usize, item: &str, bucket: i64) -> String {
        format!("{}:ib:{w}:{item}:{bucket}", self.prefix)
    }

    fn apply_invocation(&self, update: &FeatureUpdate, once: Once<'_>) -> redis::Cmd {
        let p = &self.prefix;
        let settings = &self.settings;
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(self.apply_script.get_hash()).arg(5 + settings.windows.len());
        match once {
            Once::ById => cmd.arg(format!("{p}:applied:{}", update.id)),
            Once::ByAck { stream, .. } => cmd.arg(stream),
        };
        cmd.arg(format!("{p}:global"))
            .arg(format!("{p}:hist:{}", update.user))
            .arg(format!("{p}:aff:{}", update.user))
            .arg(format!("{p}:trend:{}", settings.bucket_of(0, update.ts_ms)));
        for w in 0..settings.windows.len() {
            cmd.arg(self.item_bucket_key(w, &update.item, settings.bucket_of(w, update.ts_ms)));
        }
        cmd.arg(if update.impression { "1" } else { "0" })
            .arg(&update.item)
            .arg(update.ts_ms)
            .arg(settings.history_length.max(1))
            .arg(settings.affinity_half_life_ms);
        match once {
            Once::ById => cmd.arg("ttl").arg(DEDUP_TTL_MS),
            Once::ByAck { group, .. } => cmd.arg("ack").arg(group),
        };
        cmd.arg(&update.id).arg(settings.windows.len());
        for w in 0..settings.windows.len() {
            cmd.arg(settings.windows[w].0 + settings.bucket_ms(w));
        }
        cmd.arg(settings.windows[0].0 + settings.bucket_ms(0));
        for category in &update.categories {
            cmd.arg(category);
        }
        cmd
    }

    /// Applies entries of the event stream, each acked for `group` in the
    /// same atomic step; `false` for an entry already acked (applied by
    /// another worker, or before a crash), which changes nothing.
    pub fn apply_acking(
        &self,
        updates: &[FeatureUpdate],
        stream: &str,
        group: &str,
    ) -> Result<Vec<bool>, OnlineStoreError> {
        self.run_applies(updates, Once::ByAck { stream, group })
    }

    fn run_applies(
        &self,
        updates: &[FeatureUpdate],
        once: Once<'_>,
    ) -> Result<Vec<bool>, OnlineStoreError> {
        if updates.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipeline = redis::pipe();
        for update in updates {
            pipeline.add_command(self.apply_invocation(update, once));
        }
        let applied: Vec<i64> = self.connection.with(|c| match pipeline.query(c) {
            // The server lost its script cache (a restart): load it and run
            // the batch again; what did run is recognised by its ids.
            Err(e) if e.code() == Some("NOSCRIPT") => {
                self.apply_script.load(c)?;
                pipeline.query(c)
            }
            other => other,
        })?;
        Ok(applied.into_iter().map(|a| a == 1).collect())
    }
}

/// What makes applying an update happen once.
#[derive(Clone, Copy)]
enum Once<'a> {
    /// The update's id, remembered for [`DEDUP_TTL_MS`].
    ById,
    /// Acking the update's stream entry (its id) for the consumer group.
    ByAck { stream: &'a str, group: &'a str },
}

impl FeatureWrite for RedisOnlineStore {
    fn apply_batch(&self, updates: &[FeatureUpdate]) -> Result<Vec<bool>, OnlineStoreError> {
        self.run_applies(updates, Once::ById)
    }
}

impl FeatureRead for RedisOnlineStore {
    fn settings(&self) -> &OnlineSettings {
        &self.settings
    }

    fn history(&self, user: &str) -> Result<Vec<String>, OnlineStoreError> {
        let key = format!("{}:hist:{user}", self.prefix);
        self.connection.with(|c| redis::cmd("LRANGE").arg(&key).arg(0).arg(-1).query(c))
    }

    fn global_tally(&self) -> Result<Tally, OnlineStoreError> {
        let key = format!("{}:global", self.prefix);
        let (i, c): (Option<u64>, Option<u64>) = self
            .connection
            .with(|conn| redis::cmd("HMGET").arg(&key).arg("i").arg("c").query(conn))?;
        Ok(Tally { impressions: i.unwrap_or(0), interactions: c.unwrap_or(0) })
    }

    fn watermark_ms(&self) -> Result<Option<i64>, OnlineStoreError> {
        let key = format!("{}:global", self.prefix);
        self.connection.with(|c| redis::cmd("HGET").arg(&key).arg("w").query(c))
    }

    fn item_tallies(&self, item: &str, now_ms: i64) -> Result<Vec<Tally>, OnlineStoreError> {
        let mut pipeline = redis::pipe();
        let mut per_window = Vec::new();
        for w in 0..self.settings.windows.len() {
            let starts = self.settings.buckets_in_window(w, now_ms);
            per_window.push(starts.len());
            for start in starts {
                pipeline.cmd("HMGET").arg(self.item_bucket_key(w, item, start)).arg("i").arg("c");
            }
        }
        let counts: Vec<(Option<u64>, Option<u64>)> =
            self.connection.with(|c| pipeline.query(c))?;
        let mut counts = counts.into_iter();
        Ok(per_window
            .into_iter()
            .map(|buckets| {
                counts.by_ref().take(buckets).fold(Tally::default(), |sum, (i, c)| {
                    sum.plus(Tally { impressions: i.unwrap_or(0), interactions: c.unwrap_or(0) })
                })
            })
            .collect())
    }

    fn raw_affinities(&self, user: &str) -> Result<Vec<(String, f64, i64)>, OnlineStoreError> {
        let key = format!("{}:aff:{user}", self.prefix);
        let fields: HashMap<String, String> =
            self.connection.with(|c| redis::cmd("HGETALL").arg(&key).query(c))?;
        fields
            .into_iter()
            .map(|(category, value)| {
                let parsed = value.split_once('|').and_then(|(score, as_of)| {
                    Some((score.parse::<f64>().ok()?, as_of.parse::<i64>().ok()?))
                });
                let (score, as_of) = parsed.ok_or_else(|| {
                    self.connection.error(format!("{key} field {category}: not score|ms: {value}"))
                })?;
                Ok((category, score, as_of))
            })
            .collect()
    }

    fn trending_counts(&self, now_ms: i64) -> Result<Vec<(String, u64)>, OnlineStoreError> {
        let keys: Vec<String> = (self.settings.buckets_in_window(0, now_ms).into_iter())
            .map(|start| format!("{}:trend:{start}", self.prefix))
            .collect();
        let union: Vec<(String, f64)> = self
            .connection
            .with(|c| redis::cmd("ZUNION").arg(keys.len()).arg(&keys).arg("WITHSCORES").query(c))?;
        Ok(union.into_iter().map(|(item, count)| (item, count.round() as u64)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::online::conformance;
    use crate::online::test_server::RedisForTests;

    mod conformance_suite {
        use super::*;

        crate::conformance_tests!(
            setup: RedisForTests::start(),
            fresh: |server: &RedisForTests, settings| {
                let prefix = server.fresh_prefix("conformance");
                RedisOnlineStore::open(&server.url, &prefix, settings).unwrap()
            }
        );
    }

    #[test]
    fn an_unreachable_server_is_an_error_naming_it() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = format!("redis://127.0.0.1:{port}");
        let settings = conformance::suite_settings();
        let error = RedisOnlineStore::open(&url, "x", settings).err().expect("nothing listens");
        assert!(error.to_string().contains(&url), "{error}");
    }
}
