//! `PUT/GET/DELETE /v1/users/{id}` and `PUT/GET /v1/items/{id}`: user and
//! item records in the store, validated against the features the config
//! declares, so what the API accepts is what the batch pipeline reads.
//! Records feed the models at the next reload; a hidden item (`DELETE
//! /v1/items/{id}`) is excluded at once and the hiding survives restarts.

use parking_lot::RwLock;
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use serde_json::Value;

use cascade_core::config::{FeatureType, TableConfig};
use cascade_core::{FeatureValue, Record};
use cascade_store::{EntityKind, Store};

use crate::recommender::ServeError;

/// Records of users and items.
pub struct Entities {
    store: Store,
    users: TableConfig,
    items: TableConfig,
    max_id_bytes: usize,
}

impl std::fmt::Debug for Entities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entities").field("store", &self.store).finish()
    }
}

fn kind_name(kind: EntityKind) -> &'static str {
    match kind {
        EntityKind::User => "user",
        EntityKind::Item => "item",
    }
}

fn unavailable(e: impl std::fmt::Display) -> ServeError {
    ServeError::Unavailable(format!("store: {e}"))
}

impl Entities {
    /// Records in `store`, typed by the users' and items' table configs.
    pub fn new(store: Store, users: TableConfig, items: TableConfig) -> Entities {
        let max_id_bytes = cascade_core::IngestConfig::default().max_id_bytes;
        Entities { store, users, items, max_id_bytes }
    }

    /// Refuses to store records under ids longer than `max_id_bytes`
    /// (`[ingest] max_id_bytes`).
    pub fn with_max_id_bytes(mut self, max_id_bytes: usize) -> Entities {
        self.max_id_bytes = max_id_bytes;
        self
    }

    fn table(&self, kind: EntityKind) -> &TableConfig {
        match kind {
            EntityKind::User => &self.users,
            EntityKind::Item => &self.items,
        }
    }

    /// Replaces the record of `id` with the JSON object `body` (feature →
    /// value); every feature must be declared and typed as declared.
    /// Returns whether it is new, and the record as stored.
    pub fn put(
        &self,
        kind: EntityKind,
        id: &str,
        body: &Value,
    ) -> Result<(bool, Record), ServeError> {
        let field = match kind {
            EntityKind::User => "user id",
            EntityKind::Item => "item id",
        };
        cascade_core::ingest::check_text(field, id, self.max_id_bytes)
            .map_err(ServeError::Invalid)?;
        let record = parse_record(self.table(kind), body)?;
        let existed = self.store.get(kind, id).map_err(unavailable)?.is_some();
        self.store.upsert(kind, &[(id.to_owned(), record.clone())]).map_err(unavailable)?;
        Ok((!existed, record))
    }

    /// The record of `id`.
    pub fn get(&self, kind: EntityKind, id: &str) -> Result<Record, ServeError> {
        self.store
            .get(kind, id)
            .map_err(unavailable)?
            .ok_or_else(|| ServeError::NotFound(format!("no {} with id {id:?}", kind_name(kind))))
    }

    /// Removes the record of `id`; 404 if there is none.
    pub fn delete(&self, kind: EntityKind, id: &str) -> Result<(), ServeError> {
        if self.store.delete(kind, id).map_err(unavailable)? {
            Ok(())
        } else {
            Err(ServeError::NotFound(format!("no {} with id {id:?}", kind_name(kind))))
        }
    }
}

/// A record from a JSON object, checked against the table's features.
fn parse_record(table: &TableConfig, body: &Value) -> Result<Record, ServeError> {
    let bad = |message: String| ServeError::Invalid(message);
    let Value::Object(fields) = body else {
        return Err(bad("the body must be a JSON object of feature → value".into()));
    };
    let mut record = BTreeMap::new();
    for (name, value) in fields {
        let spec = table.features.get(name).ok_or_else(|| {
            let known: Vec<&str> = table.features.keys().map(String::as_str).collect();
            bad(format!("unknown feature {name:?}; declared: {}", known.join(", ")))
        })?;
        let typed = match (spec.feature_type, value) {
            (_, Value::Null) => FeatureValue::Null,
            (FeatureType::Numeric | FeatureType::Timestamp, Value::Number(n)) => {
                FeatureValue::Number(n.as_f64().unwrap_or(f64::NAN))
            }
            (FeatureType::MultiCategorical, Value::Array(tokens)) => FeatureValue::List(
                tokens
                    .iter()
                    .map(|t| t.as_str().map(str::to_owned))
                    .collect::<Option<Vec<String>>>()
                    .ok_or_else(|| bad(format!("{name}: every token must be a string")))?,
            ),
            (FeatureType::Id | FeatureType::Categorical | FeatureType::Text, Value::String(s)) => {
                FeatureValue::Text(s.clone())
            }
            (expected, got) => {
                return Err(bad(format!("{name}: a {expected:?} feature cannot take {got}")));
            }
        };
        record.insert(name.clone(), typed);
    }
    Ok(record)
}

/// Hidden item ids, written through to a file so a hiding outlives the
/// process: "nothing already accepted is ever lost".
#[derive(Debug)]
pub struct HiddenItems {
    path: Option<PathBuf>,
    ids: RwLock<HashSet<String>>,
}

impl HiddenItems {
    /// In memory only.
    pub fn in_memory() -> HiddenItems {
        HiddenItems { path: None, ids: RwLock::new(HashSet::new()) }
    }

    /// Loads the ids in `path` (one JSON array), if the file exists.
    pub fn load(path: PathBuf) -> anyhow::Result<HiddenItems> {
        let ids: HashSet<String> = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashSet::new(),
            Err(e) => return Err(anyhow::anyhow!("{}: {e}", path.display())),
        };
        Ok(HiddenItems { path: Some(path), ids: RwLock::new(ids) })
    }

    /// Hides `id`; written (atomically: temp file, fsync, rename) before it returns.
    pub fn hide(&self, id: &str) -> Result<(), ServeError> {
        let mut ids = self.ids.write();
        if !ids.insert(id.to_owned()) {
            return Ok(());
        }
        if let Some(path) = &self.path {
            let mut sorted: Vec<&String> = ids.iter().collect();
            sorted.sort();
            let written = serde_json::to_vec(&sorted)
                .map_err(std::io::Error::other)
                .and_then(|bytes| write_atomically(path, &bytes));
            if let Err(e) = written {
                ids.remove(id);
                return Err(ServeError::Unavailable(format!("{}: {e}", path.display())));
            }
        }
        Ok(())
    }

    /// Whether `id` is hidden.
    pub fn contains(&self, id: &str) -> bool {
        self.ids.read().contains(id)
    }

    /// Calls `each` with every hidden id.
    pub fn for_each(&self, mut each: impl FnMut(&str)) {
        self.ids.read().iter().for_each(|id| each(id));
    }
}

fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_are_checked_against_the_declared_features() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store.redb")).unwrap();
        let config = cascade_core::Config::embedded_default();
        let entities = Entities::new(store, config.users.clone(), config.items.clone());
        let movie =
            json!({"title": "New Film (2026)", "genres": ["Drama", "War"], "release_date": 1.7e12});
        assert!(entities.put(EntityKind::Item, "5000", &movie).unwrap().0, "new");
        assert!(!entities.put(EntityKind::Item, "5000", &movie).unwrap().0, "replaced");
        let back = entities.get(EntityKind::Item, "5000").unwrap();
        assert_eq!(back["genres"], FeatureValue::List(vec!["Drama".into(), "War".into()]));
        for (body, expected) in [
            (json!({"colour": "red"}), "unknown feature \"colour\""),
            (json!({"genres": "Drama"}), "genres: a MultiCategorical feature cannot take"),
            (json!({"genres": [1]}), "every token must be a string"),
            (json!([1, 2]), "JSON object"),
        ] {
            let error = entities.put(EntityKind::Item, "5001", &body).unwrap_err().to_string();
            assert!(error.contains(expected), "{body} → {error}");
        }
        assert!(matches!(entities.get(EntityKind::User, "nobody"), Err(ServeError::NotFound(_))));
        entities.delete(EntityKind::Item, "5000").unwrap();
        assert!(matches!(entities.delete(EntityKind::Item, "5000"), Err(ServeError::NotFound(_))));
    }

    #[test]
    fn hidden_items_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hidden.json");
        let hidden = HiddenItems::load(path.clone()).unwrap();
        hidden.hide("7").unwrap();
        hidden.hide("9").unwrap();
        let reloaded = HiddenItems::load(path).unwrap();
        assert!(reloaded.contains("7") && reloaded.contains("9") && !reloaded.contains("8"));
    }
}
