//! The embedded online store: the features in one redb file, each batch of
//! updates in one fsynced transaction together with the ids it applied.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{
    DEDUP_TTL_MS, FeatureUpdate, OnlineSettings, OnlineStore, OnlineStoreError, Tally,
    affinity_after_interaction,
};

/// user → JSON array of item ids, oldest first.
const HISTORIES: TableDefinition<&str, &[u8]> = TableDefinition::new("online_histories");
/// (window index, item, bucket start) → (impressions, interactions).
const ITEM_BUCKETS: TableDefinition<(u32, &str, i64), (u64, u64)> =
    TableDefinition::new("online_item_buckets");
/// "all" → (impressions, interactions) ever.
const GLOBAL: TableDefinition<&str, (u64, u64)> = TableDefinition::new("online_global");
/// "latest" → the latest event time applied.
const WATERMARK: TableDefinition<&str, i64> = TableDefinition::new("online_watermark");
/// (user, category) → (score, as of ms).
const AFFINITIES: TableDefinition<(&str, &str), (f64, i64)> =
    TableDefinition::new("online_affinities");
/// (first window's bucket start, item) → interactions.
const TRENDING: TableDefinition<(i64, &str), u64> = TableDefinition::new("online_trending");
/// update id → wall-clock ms it was applied at.
const APPLIED: TableDefinition<&str, i64> = TableDefinition::new("online_applied");

/// Expired buckets and remembered ids are pruned once per this many batches.
const PRUNE_EVERY_BATCHES: u64 = 256;

/// The online store in a redb file on local disk.
pub struct EmbeddedOnlineStore {
    db: Database,
    path: PathBuf,
    settings: OnlineSettings,
    batches: AtomicU64,
}

impl EmbeddedOnlineStore {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path, settings: OnlineSettings) -> Result<Self, OnlineStoreError> {
        let fail = |e: &dyn std::fmt::Display| OnlineStoreError::Embedded {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let db = Database::create(path).map_err(|e| fail(&e))?;
        let txn = db.begin_write().map_err(|e| fail(&e))?;
        {
            txn.open_table(HISTORIES).map_err(|e| fail(&e))?;
            txn.open_table(ITEM_BUCKETS).map_err(|e| fail(&e))?;
            txn.open_table(GLOBAL).map_err(|e| fail(&e))?;
            txn.open_table(WATERMARK).map_err(|e| fail(&e))?;
            txn.open_table(AFFINITIES).map_err(|e| fail(&e))?;
            txn.open_table(TRENDING).map_err(|e| fail(&e))?;
            txn.open_table(APPLIED).map_err(|e| fail(&e))?;
        }
        txn.commit().map_err(|e| fail(&e))?;
        Ok(EmbeddedOnlineStore { db, path: path.to_owned(), settings, batches: AtomicU64::new(0) })
    }

    fn fail(&self, e: impl std::fmt::Display) -> OnlineStoreError {
        OnlineStoreError::Embedded { path: self.path.display().to_string(), message: e.to_string() }
    }

    fn write_update(
        &self,
        txn: &redb::WriteTransaction,
        update: &FeatureUpdate,
        now_wall_ms: i64,
    ) -> Result<bool, OnlineStoreError> {
        let mut applied = txn.open_table(APPLIED).map_err(|e| self.fail(e))?;
        if applied.get(update.id.as_str()).map_err(|e| self.fail(e))?.is_some() {
            return Ok(false);
        }
        applied.insert(update.id.as_str(), now_wall_ms).map_err(|e| self.fail(e))?;
        let count = |tally: (u64, u64)| match update.impression {
            true => (tally.0 + 1, tally.1),
            false => (tally.0, tally.1 + 1),
        };
        let mut global = txn.open_table(GLOBAL).map_err(|e| self.fail(e))?;
        let all = global.get("all").map_err(|e| self.fail(e))?.map_or((0, 0), |v| v.value());
        global.insert("all", count(all)).map_err(|e| self.fail(e))?;
        let mut watermark = txn.open_table(WATERMARK).map_err(|e| self.fail(e))?;
        let latest = watermark.get("latest").map_err(|e| self.fail(e))?.map(|v| v.value());
        if latest.is_none_or(|w| w < update.ts_ms) {
            watermark.insert("latest", update.ts_ms).map_err(|e| self.fail(e))?;
        }
        let mut buckets = txn.open_table(ITEM_BUCKETS).map_err(|e| self.fail(e))?;
        for w in 0..self.settings.windows.len() {
            let key = (w as u32, update.item.as_str(), self.settings.bucket_of(w, update.ts_ms));
            let tally = buckets.get(key).map_err(|e| self.fail(e))?.map_or((0, 0), |v| v.value());
            buckets.insert(key, count(tally)).map_err(|e| self.fail(e))?;
        }
        if update.impression {
            return Ok(true);
        }
        let mut histories = txn.open_table(HISTORIES).map_err(|e| self.fail(e))?;
        let mut history: Vec<String> = match histories.get(update.user.as_str()) {
            Ok(Some(bytes)) => serde_json::from_slice(bytes.value()).map_err(|e| self.fail(e))?,
            Ok(None) => Vec::new(),
            Err(e) => return Err(self.fail(e)),
        };
        history.push(update.item.clone());
        let excess = history.len().saturating_sub(self.settings.history_length);
        history.drain(..excess);
        let bytes = serde_json::to_vec(&history).map_err(|e| self.fail(e))?;
        histories.insert(update.user.as_str(), bytes.as_slice()).map_err(|e| self.fail(e))?;
        let mut trending = txn.open_table(TRENDING).map_err(|e| self.fail(e))?;
        let key = (self.settings.bucket_of(0, update.ts_ms), update.item.as_str());
        let count = trending.get(key).map_err(|e| self.fail(e))?.map_or(0, |v| v.value());
        trending.insert(key, count + 1).map_err(|e| self.fail(e))?;
        let mut affinities = txn.open_table(AFFINITIES).map_err(|e| self.fail(e))?;
        let half_life = self.settings.affinity_half_life_ms;
        for category in &update.categories {
            let key = (update.user.as_str(), category.as_str());
            let (score, as_of) = affinities
                .get(key)
                .map_err(|e| self.fail(e))?
                .map_or((0.0, update.ts_ms), |v| v.value());
            let next = affinity_after_interaction(score, as_of, update.ts_ms, half_life);
            affinities.insert(key, next).map_err(|e| self.fail(e))?;
        }
        Ok(true)
    }

    /// Drops buckets that left every window as of the newest event in the
    /// batch, and ids remembered longer than [`DEDUP_TTL_MS`].
    fn prune(
        &self,
        txn: &redb::WriteTransaction,
        newest_ts_ms: i64,
        now_wall_ms: i64,
    ) -> Result<(), OnlineStoreError> {
        let oldest: Vec<i64> = (0..self.settings.windows.len())
            .map(|w| self.settings.buckets_in_window(w, newest_ts_ms)[0])
            .collect();
        let mut buckets = txn.open_table(ITEM_BUCKETS).map_err(|e| self.fail(e))?;
        buckets.retain(|(w, _, start), _| start >= oldest[w as usize]).map_err(|e| self.fail(e))?;
        let mut trending = txn.open_table(TRENDING).map_err(|e| self.fail(e))?;
        trending.retain(|(start, _), _| start >= oldest[0]).map_err(|e| self.fail(e))?;
        let mut applied = txn.open_table(APPLIED).map_err(|e| self.fail(e))?;
        applied.retain(|_, at| now_wall_ms - at < DEDUP_TTL_MS).map_err(|e| self.fail(e))?;
        Ok(())
    }
}

fn wall_clock_ms() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.map_or(0, |d| d.as_millis() as i64)
}

impl OnlineStore for EmbeddedOnlineStore {
    fn settings(&self) -> &OnlineSettings {
        &self.settings
    }

    fn apply_batch(&self, updates: &[FeatureUpdate]) -> Result<Vec<bool>, OnlineStoreError> {
        let now = wall_clock_ms();
        let txn = self.db.begin_write().map_err(|e| self.fail(e))?;
        let applied = updates
            .iter()
            .map(|update| self.write_update(&txn, update, now))
            .collect::<Result<Vec<bool>, _>>()?;
        if self.batches.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY_BATCHES
            == PRUNE_EVERY_BATCHES - 1
            && let Some(newest) = updates.iter().map(|u| u.ts_ms).max()
        {
            self.prune(&txn, newest, now)?;
        }
        txn.commit().map_err(|e| self.fail(e))?;
        Ok(applied)
    }

    fn history(&self, user: &str) -> Result<Vec<String>, OnlineStoreError> {
        let txn = self.db.begin_read().map_err(|e| self.fail(e))?;
        let table = txn.open_table(HISTORIES).map_err(|e| self.fail(e))?;
        match table.get(user).map_err(|e| self.fail(e))? {
            Some(bytes) => serde_json::from_slice(bytes.value()).map_err(|e| self.fail(e)),
            None => Ok(Vec::new()),
        }
    }

    fn global_tally(&self) -> Result<Tally, OnlineStoreError> {
        let txn = self.db.begin_read().map_err(|e| self.fail(e))?;
        let table = txn.open_table(GLOBAL).map_err(|e| self.fail(e))?;
        let (impressions, interactions) =
            table.get("all").map_err(|e| self.fail(e))?.map_or((0, 0), |v| v.value());
        Ok(Tally { impressions, interactions })
    }

    fn watermark_ms(&self) -> Result<Option<i64>, OnlineStoreError> {
        let txn = self.db.begin_read().map_err(|e| self.fail(e))?;
        let table = txn.open_table(WATERMARK).map_err(|e| self.fail(e))?;
        let latest = table.get("latest").map_err(|e| self.fail(e))?;
        Ok(latest.map(|v| v.value()))
    }

    fn item_tallies(&self, item: &str, now_ms: i64) -> Result<Vec<Tally>, OnlineStoreError> {
        let txn = self.db.begin_read().map_err(|e| self.fail(e))?;
        let table = txn.open_table(ITEM_BUCKETS).map_err(|e| self.fail(e))?;
        let mut tallies = Vec::with_capacity(self.settings.windows.len());
        for w in 0..self.settings.windows.len() {
            let starts = self.settings.buckets_in_window(w, now_ms);
            let (first, last) = (starts[0], starts[starts.len() - 1]);
            let mut tally = Tally::default();
            let range = (w as u32, item, first)..=(w as u32, item, last);
            for entry in table.range(range).map_err(|e| self.fail(e))? {
                let (impressions, interactions) = entry.map_err(|e| self.fail(e))?.1.value();
                tally = tally.plus(Tally { impressions, interactions });
            }
            tallies.push(tally);
        }
        Ok(tallies)
    }

    fn raw_affinities(&self, user: &str) -> Result<Vec<(String, f64, i64)>, OnlineStoreError> {
        let txn = self.db.begin_read().map_err(|e| self.fail(e))?;
        let table = txn.open_table(AFFINITIES).map_err(|e| self.fail(e))?;
        let mut out = Vec::new();
        // Every category of `user`: the keys from (user, "") up to the next user.
        for entry in table.range((user, "")..).map_err(|e| self.fail(e))? {
            let (key, value) = entry.map_err(|e| self.fail(e))?;
            let (owner, category) = key.value();
            if owner != user {
                break;
            }
            let (score, as_of) = value.value();
            out.push((category.to_owned(), score, as_of));
        }
        Ok(out)
    }

    fn trending_counts(&self, now_ms: i64) -> Result<Vec<(String, u64)>, OnlineStoreError> {
        let txn = self.db.begin_read().map_err(|e| self.fail(e))?;
        let table = txn.open_table(TRENDING).map_err(|e| self.fail(e))?;
        let starts = self.settings.buckets_in_window(0, now_ms);
        let (first, last) = (starts[0], starts[starts.len() - 1]);
        let mut counts: HashMap<String, u64> = HashMap::new();
        for entry in table.range((first, "")..(last + 1, "")).map_err(|e| self.fail(e))? {
            let (key, count) = entry.map_err(|e| self.fail(e))?;
            *counts.entry(key.value().1.to_owned()).or_default() += count.value();
        }
        Ok(counts.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::online::conformance;

    #[test]
    fn the_embedded_store_passes_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let mut opened = 0;
        conformance::run_all(|settings| {
            opened += 1;
            let path = dir.path().join(format!("online-{opened}.redb"));
            EmbeddedOnlineStore::open(&path, settings).unwrap()
        });
    }
}
