//! The redb file: tables, appends and reads.

use parking_lot::Mutex;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use cascade_core::{Event, Record, StoredEvent};

use crate::event_key::EventKey;
use crate::recent_keys::{RECENT_KEYS_CAPACITY, RecentKeys};

mod documents;
pub use documents::Collection;

const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
const EVENT_KEYS: TableDefinition<&[u8], u64> = TableDefinition::new("event_keys");
/// Live-ingested keys by sequence number (see `recent_keys`).
const RECENT_EVENT_KEYS: TableDefinition<u64, &[u8]> = TableDefinition::new("recent_event_keys");
const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
const ITEMS: TableDefinition<&str, &[u8]> = TableDefinition::new("items");

/// A store failure, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// redb failed (I/O, corruption, a lock held by another process).
    #[error("store {path}: {source}")]
    Database {
        /// The redb file.
        path: PathBuf,
        /// redb's error.
        source: redb::Error,
    },
    /// A stored value did not decode (the file was written by an incompatible version).
    #[error("store {path}: cannot decode {what}: {message}")]
    Decode {
        /// The redb file.
        path: PathBuf,
        /// What was being read.
        what: String,
        /// The decoder's message.
        message: String,
    },
    /// The group-commit writer thread has stopped (it panicked): nothing
    /// more can be made durable until a restart.
    #[error("the event log's writer thread has stopped; restart the server")]
    WriterStopped,
}

/// Which record table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityKind {
    /// The user table.
    User,
    /// The item table.
    Item,
}

impl EntityKind {
    fn table(self) -> TableDefinition<'static, &'static str, &'static [u8]> {
        match self {
            EntityKind::User => USERS,
            EntityKind::Item => ITEMS,
        }
    }
}

/// An event with the key that deduplicates it.
#[derive(Debug, Clone)]
pub struct KeyedEvent {
    /// Deduplication key.
    pub key: EventKey,
    /// The event.
    pub event: Event,
}

/// What happened to one event of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendStatus {
    /// Newly appended at this sequence number.
    Appended(u64),
    /// Already in the log at this sequence number; nothing was written.
    Duplicate(u64),
}

impl AppendStatus {
    /// The event's sequence number, new or existing.
    pub fn seq(self) -> u64 {
        match self {
            AppendStatus::Appended(seq) | AppendStatus::Duplicate(seq) => seq,
        }
    }
}

/// One event to append.
#[derive(Debug, Clone)]
pub enum LogEntry {
    /// A client's event, deduplicated by its key.
    Keyed(KeyedEvent),
    /// Telemetry the server records itself, such as an impression: unique by
    /// construction and never retried, so it skips the key table, whose random
    /// inserts are most of an append's cost.
    Telemetry(Event),
}

impl LogEntry {
    fn as_ref(&self) -> LogEntryRef<'_> {
        match self {
            LogEntry::Keyed(keyed) => LogEntryRef::Keyed(keyed),
            LogEntry::Telemetry(event) => LogEntryRef::Telemetry(event),
        }
    }
}

enum LogEntryRef<'a> {
    Keyed(&'a KeyedEvent),
    Telemetry(&'a Event),
}

/// Where an append records the keys of new events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyIndex {
    /// The permanent key table: bulk imports, deduplicated forever.
    Permanent,
    /// The live-ingestion window (`recent_keys`).
    Recent,
}

/// What one transaction appended.
struct Appended {
    /// One per keyed event, in order.
    statuses: Vec<AppendStatus>,
    /// New live keys, to remember once the transaction has committed.
    recent_keys: Vec<(EventKey, u64)>,
}

/// `value` as the JSON the tables hold. Events and records are strings,
/// numbers and string-keyed maps, which always encode; were one not to, the
/// transaction fails naming `what`, and nothing of it is written.
fn encode<T: serde::Serialize>(value: &T, what: &str) -> Result<Vec<u8>, redb::Error> {
    serde_json::to_vec(value)
        .map_err(|e| std::io::Error::other(format!("cannot encode {what}: {e}")).into())
}

/// Appends `entries` in `txn`.
fn append_entries<'a>(
    txn: &redb::WriteTransaction,
    entries: impl Iterator<Item = LogEntryRef<'a>>,
    recent: &RecentKeys,
    index: KeyIndex,
) -> Result<Appended, redb::Error> {
    let mut log = txn.open_table(EVENTS)?;
    let mut keys = txn.open_table(EVENT_KEYS)?;
    let mut recent_table = txn.open_table(RECENT_EVENT_KEYS)?;
    let mut next_seq = match log.last()? {
        Some((seq, _)) => seq.value() + 1,
        None => 0,
    };
    let mut statuses = Vec::new();
    let mut this_round: std::collections::HashMap<EventKey, u64> = Default::default();
    for entry in entries {
        let event = match entry {
            LogEntryRef::Keyed(keyed) => {
                let key = keyed.key;
                let existing = match this_round.get(&key).copied().or_else(|| recent.get(&key)) {
                    Some(seq) => Some(seq),
                    None => keys.get(key.0.as_slice())?.map(|seq| seq.value()),
                };
                if let Some(seq) = existing {
                    statuses.push(AppendStatus::Duplicate(seq));
                    continue;
                }
                match index {
                    KeyIndex::Permanent => {
                        keys.insert(key.0.as_slice(), next_seq)?;
                    }
                    KeyIndex::Recent => {
                        recent_table.insert(next_seq, key.0.as_slice())?;
                    }
                }
                this_round.insert(key, next_seq);
                statuses.push(AppendStatus::Appended(next_seq));
                &keyed.event
            }
            LogEntryRef::Telemetry(event) => event,
        };
        let bytes = encode(event, "an event")?;
        log.insert(next_seq, bytes.as_slice())?;
        next_seq += 1;
    }
    let recent_keys = match index {
        KeyIndex::Permanent => Vec::new(),
        KeyIndex::Recent => this_round.into_iter().collect(),
    };
    Ok(Appended { statuses, recent_keys })
}

/// Appends wait while this lives ([`Store::pause_appends`]).
#[must_use = "appends resume when the guard is dropped"]
pub struct AppendsPaused<'a> {
    _guard: parking_lot::MutexGuard<'a, RecentKeys>,
}

/// Whether a commit waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitDurability {
    /// Durable when the commit returns (fsync): what acknowledged events need.
    Fsync,
    /// Visible to readers at once, durable with the next `Fsync` commit; a
    /// crash before that loses it. Only for telemetry nobody was promised.
    Deferred,
}

/// The embedded store. Cheap to clone; clones share one open database.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
    path: PathBuf,
    /// Also serialises appends, so that a key is remembered before the next
    /// append looks for it.
    recent: Arc<Mutex<RecentKeys>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (or creates) the store file at `path`.
    /// A file another process holds is waited for up to [`LOCK_WAIT`].
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let fail = |source: redb::Error| StoreError::Database { path: path.to_owned(), source };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| fail(e.into()))?;
        }
        let db = create_waiting_for_lock(path, LOCK_WAIT).map_err(|e| fail(e.into()))?;
        let recent = Arc::new(Mutex::new(RecentKeys::new(RECENT_KEYS_CAPACITY)));
        let store = Store { db: Arc::new(db), path: path.to_owned(), recent };
        // Create every table up front so read transactions never meet a missing one.
        store.write(|txn| {
            txn.open_table(EVENTS)?;
            txn.open_table(EVENT_KEYS)?;
            txn.open_table(RECENT_EVENT_KEYS)?;
            txn.open_table(USERS)?;
            txn.open_table(ITEMS)?;
            Store::create_document_tables(txn)?;
            Ok(())
        })?;
        store.load_recent_keys()?;
        Ok(store)
    }

    fn load_recent_keys(&self) -> Result<(), StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.fail(e))?;
        let table = txn.open_table(RECENT_EVENT_KEYS).map_err(|e| self.fail(e))?;
        let mut newest_first = Vec::new();
        for entry in table.iter().map_err(|e| self.fail(e))?.rev().take(RECENT_KEYS_CAPACITY) {
            let (seq, key) = entry.map_err(|e| self.fail(e))?;
            let key: [u8; 16] = key.value().try_into().map_err(|_| StoreError::Decode {
                path: self.path.clone(),
                what: format!("the key of event {}", seq.value()),
                message: format!("{} bytes, expected 16", key.value().len()),
            })?;
            newest_first.push((EventKey(key), seq.value()));
        }
        let mut recent = self.recent.lock();
        for (key, seq) in newest_first.into_iter().rev() {
            recent.insert(key, seq);
        }
        Ok(())
    }

    /// Holds back every append until the guard is dropped, e.g. to copy the
    /// file consistently; reads go on. Appends that wait count against
    /// the group committer's bound, as behind a slow disk.
    pub fn pause_appends(&self) -> AppendsPaused<'_> {
        AppendsPaused { _guard: self.recent.lock() }
    }

    /// The redb file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn fail(&self, source: impl Into<redb::Error>) -> StoreError {
        StoreError::Database { path: self.path.clone(), source: source.into() }
    }

    fn write<T>(
        &self,
        body: impl FnOnce(&redb::WriteTransaction) -> Result<T, redb::Error>,
    ) -> Result<T, StoreError> {
        self.write_with(CommitDurability::Fsync, body)
    }

    fn write_with<T>(
        &self,
        durability: CommitDurability,
        body: impl FnOnce(&redb::WriteTransaction) -> Result<T, redb::Error>,
    ) -> Result<T, StoreError> {
        let mut txn = self.db.begin_write().map_err(|e| self.fail(e))?;
        if durability == CommitDurability::Deferred {
            txn.set_durability(redb::Durability::None).map_err(|e| self.fail(e))?;
        }
        let value = body(&txn).map_err(|e| self.fail(e))?;
        txn.commit().map_err(|e| self.fail(e))?;
        Ok(value)
    }

    /// Appends events in one durable transaction. Events whose key is already
    /// in the log (or earlier in this batch) are reported as duplicates.
    ///
    /// For bulk imports: every new key is kept forever, so re-importing a
    /// source adds nothing however old it is.
    pub fn append(&self, events: &[KeyedEvent]) -> Result<Vec<AppendStatus>, StoreError> {
        let recent = self.recent.lock();
        let entries = events.iter().map(LogEntryRef::Keyed);
        let appended =
            self.write(|txn| append_entries(txn, entries, &recent, KeyIndex::Permanent))?;
        Ok(appended.statuses)
    }

    /// Appends `entries` in order in one transaction, returning the keyed
    /// events' statuses.
    ///
    /// For live ingestion: an event is a duplicate if its key is among the
    /// most recent [`RECENT_KEYS_CAPACITY`] live keys or in the permanent
    /// table, and new keys join the recent window only (see `recent_keys`).
    pub fn append_round(
        &self,
        entries: &[LogEntry],
        durability: CommitDurability,
    ) -> Result<Vec<AppendStatus>, StoreError> {
        let mut recent = self.recent.lock();
        let entries = entries.iter().map(LogEntry::as_ref);
        let appended = self.write_with(durability, |txn| {
            append_entries(txn, entries, &recent, KeyIndex::Recent)
        })?;
        for (key, seq) in appended.recent_keys {
            recent.insert(key, seq);
        }
        Ok(appended.statuses)
    }

    /// Makes every earlier [`CommitDurability::Deferred`] commit durable.
    pub fn sync(&self) -> Result<(), StoreError> {
        self.write(|_| Ok(()))
    }

    /// The sequence number of the event with this key, if the log has it
    /// among its permanent keys or its recent live ones.
    pub fn find_key(&self, key: &EventKey) -> Result<Option<u64>, StoreError> {
        if let Some(seq) = self.recent.lock().get(key) {
            return Ok(Some(seq));
        }
        let txn = self.db.begin_read().map_err(|e| self.fail(e))?;
        let keys = txn.open_table(EVENT_KEYS).map_err(|e| self.fail(e))?;
        let found = keys.get(key.0.as_slice()).map_err(|e| self.fail(e))?;
        Ok(found.map(|seq| seq.value()))
    }

    /// Number of events in the log.
    pub fn event_count(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.fail(e))?;
        let log = txn.open_table(EVENTS).map_err(|e| self.fail(e))?;
        log.len().map_err(|e| self.fail(e))
    }

    /// Replays the log from `from_seq` (inclusive), in sequence order, calling
    /// `visit` for each event. Reads one consistent snapshot.
    pub fn replay(
        &self,
        from_seq: u64,
        mut visit: impl FnMut(StoredEvent),
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.fail(e))?;
        let log = txn.open_table(EVENTS).map_err(|e| self.fail(e))?;
        for entry in log.range(from_seq..).map_err(|e| self.fail(e))? {
            let (seq, bytes) = entry.map_err(|e| self.fail(e))?;
            let seq = seq.value();
            visit(StoredEvent { seq, event: self.decode_event(seq, bytes.value())? });
        }
        Ok(())
    }

    /// Up to `limit` events from `from_seq` on, in sequence order: a page of
    /// the log for a consumer that tails it.
    pub fn events_page(&self, from_seq: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.fail(e))?;
        let log = txn.open_table(EVENTS).map_err(|e| self.fail(e))?;
        let mut page = Vec::with_capacity(limit.min(4096));
        for entry in log.range(from_seq..).map_err(|e| self.fail(e))?.take(limit) {
            let (seq, bytes) = entry.map_err(|e| self.fail(e))?;
            page.push(StoredEvent {
                seq: seq.value(),
                event: self.decode_event(seq.value(), bytes.value())?,
            });
        }
        Ok(page)
    }

    fn decode_event(&self, seq: u64, bytes: &[u8]) -> Result<Event, StoreError> {
        serde_json::from_slice(bytes).map_err(|e| StoreError::Decode {
            path: self.path.clone(),
            what: format!("event {seq}"),
            message: e.to_string(),
        })
    }

    /// All events from `from_seq` on, in sequence order.
    pub fn events(&self, from_seq: u64) -> Result<Vec<StoredEvent>, StoreError> {
        let mut events = Vec::new();
        self.replay(from_seq, |event| events.push(event))?;
        Ok(events)
    }

    /// Inserts or replaces records by id in one durable transaction; returns how
    /// many were new or changed.
    pub fn upsert(
        &self,
        kind: EntityKind,
        records: &[(String, Record)],
    ) -> Result<usize, StoreError> {
        self.write(|txn| {
            let mut table = txn.open_table(kind.table())?;
            let mut changed = 0;
            for (id, record) in records {
                let bytes = encode(record, "a record")?;
                let previous = table.insert(id.as_str(), bytes.as_slice())?;
                if previous.is_none_or(|old| old.value() != bytes.as_slice()) {
                    changed += 1;
                }
            }
            Ok(changed)
        })
    }

    /// Removes a record; returns whether it existed.
    pub fn delete(&self, kind: EntityKind, id: &str) -> Result<bool, StoreError> {
        self.write(|txn| Ok(txn.open_table(kind.table())?.remove(id)?.is_some()))
    }

    /// One record by id.
    pub fn get(&self, kind: EntityKind, id: &str) -> Result<Option<Record>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.fail(e))?;
        let table = txn.open_table(kind.table()).map_err(|e| self.fail(e))?;
        let Some(bytes) = table.get(id).map_err(|e| self.fail(e))? else { return Ok(None) };
        self.decode_record(id, bytes.value()).map(Some)
    }

    /// Every record of a table, ordered by id.
    pub fn records(&self, kind: EntityKind) -> Result<Vec<(String, Record)>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.fail(e))?;
        let table = txn.open_table(kind.table()).map_err(|e| self.fail(e))?;
        let mut records = Vec::new();
        for entry in table.iter().map_err(|e| self.fail(e))? {
            let (id, bytes) = entry.map_err(|e| self.fail(e))?;
            records.push((id.value().to_owned(), self.decode_record(id.value(), bytes.value())?));
        }
        Ok(records)
    }

    fn decode_record(&self, id: &str, bytes: &[u8]) -> Result<Record, StoreError> {
        serde_json::from_slice(bytes).map_err(|e| StoreError::Decode {
            path: self.path.clone(),
            what: format!("record {id:?}"),
            message: e.to_string(),
        })
    }
}

/// How long [`Store::open`] waits for a file another process holds. A
/// process killed with SIGKILL releases its lock only once the kernel has
/// torn it down, so a restart right after `kill -9` can find it still held.
pub const LOCK_WAIT: Duration = Duration::from_secs(5);

/// Opens (or creates) the redb file, retrying while another handle holds
/// it, for at most `wait`.
fn create_waiting_for_lock(path: &Path, wait: Duration) -> Result<Database, redb::DatabaseError> {
    let started = Instant::now();
    loop {
        match Database::create(path) {
            Err(redb::DatabaseError::DatabaseAlreadyOpen) if started.elapsed() < wait => {
                std::thread::sleep(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use cascade_core::FeatureValue;

    use super::*;

    #[test]
    fn opening_waits_for_a_lock_that_is_released_and_names_one_that_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let holder = Store::open(&path).unwrap();
        let held = create_waiting_for_lock(&path, Duration::from_millis(200));
        assert!(matches!(held, Err(redb::DatabaseError::DatabaseAlreadyOpen)), "{held:?}");
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(holder);
        });
        let reopened = Store::open(&path);
        release.join().unwrap();
        assert!(reopened.is_ok(), "{:?}", reopened.err());
    }

    fn keyed(id: &str, ts_ms: i64) -> KeyedEvent {
        let event = Event {
            user: "u1".into(),
            item: id.into(),
            event_type: "click".into(),
            value: Some(1.0),
            ts_ms,
            served: None,
        };
        KeyedEvent { key: EventKey::from_client_id(id), event }
    }

    #[test]
    fn appends_in_order_and_deduplicates_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store.redb")).unwrap();
        let first = store.append(&[keyed("a", 1), keyed("b", 2)]).unwrap();
        assert_eq!(first, vec![AppendStatus::Appended(0), AppendStatus::Appended(1)]);
        let second = store.append(&[keyed("b", 2), keyed("c", 3), keyed("c", 3)]).unwrap();
        assert_eq!(
            second,
            vec![AppendStatus::Duplicate(1), AppendStatus::Appended(2), AppendStatus::Duplicate(2)]
        );
        let items: Vec<_> =
            store.events(0).unwrap().into_iter().map(|e| (e.seq, e.event.item)).collect();
        assert_eq!(items, vec![(0, "a".into()), (1, "b".into()), (2, "c".into())]);
        assert_eq!(store.events(2).unwrap().len(), 1);
        assert_eq!(store.find_key(&EventKey::from_client_id("c")).unwrap(), Some(2));
    }

    #[test]
    fn telemetry_skips_deduplication_and_deferred_commits_persist_after_sync() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        {
            let store = Store::open(&path).unwrap();
            let impression = LogEntry::Telemetry(keyed("shown", 5).event);
            let statuses = store
                .append_round(
                    &[LogEntry::Keyed(keyed("a", 1)), impression.clone(), impression],
                    CommitDurability::Deferred,
                )
                .unwrap();
            assert_eq!(statuses, vec![AppendStatus::Appended(0)]);
            let items: Vec<_> =
                store.events(0).unwrap().into_iter().map(|e| (e.seq, e.event.item)).collect();
            assert_eq!(items, vec![(0, "a".into()), (1, "shown".into()), (2, "shown".into())]);
            assert_eq!(store.find_key(&EventKey::from_client_id("shown")).unwrap(), None);
            store.sync().unwrap();
        }
        assert_eq!(Store::open(&path).unwrap().event_count().unwrap(), 3);
    }

    #[test]
    fn live_keys_are_recognised_after_reopen_and_by_bulk_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let live = |id: &str| LogEntry::Keyed(keyed(id, 1));
        {
            let store = Store::open(&path).unwrap();
            store.append(&[keyed("imported", 0)]).unwrap();
            let statuses = store
                .append_round(&[live("a"), live("imported"), live("a")], CommitDurability::Fsync)
                .unwrap();
            assert_eq!(
                statuses,
                vec![
                    AppendStatus::Appended(1),
                    AppendStatus::Duplicate(0),
                    AppendStatus::Duplicate(1)
                ]
            );
            assert_eq!(store.append(&[keyed("a", 1)]).unwrap(), vec![AppendStatus::Duplicate(1)]);
        }
        let store = Store::open(&path).unwrap();
        let again = store.append_round(&[live("a"), live("b")], CommitDurability::Fsync).unwrap();
        assert_eq!(again, vec![AppendStatus::Duplicate(1), AppendStatus::Appended(2)]);
        assert_eq!(store.find_key(&EventKey::from_client_id("b")).unwrap(), Some(2));
        assert_eq!(store.event_count().unwrap(), 3);
    }

    #[test]
    fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        {
            let store = Store::open(&path).unwrap();
            store.append(&[keyed("a", 1)]).unwrap();
            let record = Record::from([("age".to_owned(), FeatureValue::Text("25".into()))]);
            store.upsert(EntityKind::User, &[("u1".into(), record)]).unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.event_count().unwrap(), 1);
        let user = store.get(EntityKind::User, "u1").unwrap().unwrap();
        assert_eq!(user["age"], FeatureValue::Text("25".into()));
    }

    #[test]
    fn upsert_counts_only_changes_and_delete_removes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let record = |v: f64| Record::from([("x".to_owned(), FeatureValue::Number(v))]);
        assert_eq!(store.upsert(EntityKind::Item, &[("i".into(), record(1.0))]).unwrap(), 1);
        assert_eq!(store.upsert(EntityKind::Item, &[("i".into(), record(1.0))]).unwrap(), 0);
        assert_eq!(store.upsert(EntityKind::Item, &[("i".into(), record(2.0))]).unwrap(), 1);
        assert!(store.delete(EntityKind::Item, "i").unwrap());
        assert!(store.get(EntityKind::Item, "i").unwrap().is_none());
        assert!(store.records(EntityKind::Item).unwrap().is_empty());
    }
}
