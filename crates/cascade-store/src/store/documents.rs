//! Small named documents the server keeps beside the log, in the same redb
//! file so one copy of the file holds everything: experiments as declared,
//! and their analysis' progress (totals, per-user tallies, the last event
//! counted).

use redb::{ReadableDatabase, TableDefinition};

use super::{Store, StoreError};

const EXPERIMENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("experiments");
const EXPERIMENT_TOTALS: TableDefinition<&str, &[u8]> = TableDefinition::new("experiment_totals");
const EXPERIMENT_USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("experiment_users");

/// Which documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collection {
    /// Experiment definitions and status, by name.
    Experiments,
    /// Per-experiment variant totals and the log position they include.
    ExperimentTotals,
    /// Per-(experiment, user) tallies, keyed `experiment\u{1f}user`.
    ExperimentUsers,
}

impl Collection {
    fn table(self) -> TableDefinition<'static, &'static str, &'static [u8]> {
        match self {
            Collection::Experiments => EXPERIMENTS,
            Collection::ExperimentTotals => EXPERIMENT_TOTALS,
            Collection::ExperimentUsers => EXPERIMENT_USERS,
        }
    }

    pub(super) const ALL: [Collection; 3] =
        [Collection::Experiments, Collection::ExperimentTotals, Collection::ExperimentUsers];
}

impl Store {
    pub(super) fn create_document_tables(txn: &redb::WriteTransaction) -> Result<(), redb::Error> {
        for collection in Collection::ALL {
            txn.open_table(collection.table())?;
        }
        Ok(())
    }

    /// Writes documents, in any collections, in one durable transaction:
    /// either all of them are stored or none.
    pub fn put_documents(
        &self,
        writes: &[(Collection, String, Vec<u8>)],
    ) -> Result<(), StoreError> {
        self.write(|txn| {
            for collection in Collection::ALL {
                let mut table = txn.open_table(collection.table())?;
                for (_, key, bytes) in writes.iter().filter(|(c, _, _)| *c == collection) {
                    table.insert(key.as_str(), bytes.as_slice())?;
                }
            }
            Ok(())
        })
    }

    /// One document.
    pub fn document(
        &self,
        collection: Collection,
        key: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.fail(e))?;
        let table = txn.open_table(collection.table()).map_err(|e| self.fail(e))?;
        Ok(table.get(key).map_err(|e| self.fail(e))?.map(|bytes| bytes.value().to_vec()))
    }

    /// Every document whose key starts with `prefix`, ordered by key.
    pub fn documents(
        &self,
        collection: Collection,
        prefix: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.fail(e))?;
        let table = txn.open_table(collection.table()).map_err(|e| self.fail(e))?;
        let mut found = Vec::new();
        for entry in table.range(prefix..).map_err(|e| self.fail(e))? {
            let (key, bytes) = entry.map_err(|e| self.fail(e))?;
            if !key.value().starts_with(prefix) {
                break;
            }
            found.push((key.value().to_owned(), bytes.value().to_vec()));
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_survive_a_reopen_and_list_by_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        {
            let store = Store::open(&path).unwrap();
            store
                .put_documents(&[
                    (Collection::Experiments, "a".into(), b"{1}".to_vec()),
                    (Collection::ExperimentUsers, "a\u{1f}u1".into(), b"x".to_vec()),
                    (Collection::ExperimentUsers, "a\u{1f}u2".into(), b"y".to_vec()),
                    (Collection::ExperimentUsers, "ab\u{1f}u1".into(), b"z".to_vec()),
                ])
                .unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.document(Collection::Experiments, "a").unwrap(), Some(b"{1}".to_vec()));
        assert_eq!(store.document(Collection::ExperimentTotals, "a").unwrap(), None);
        let users = store.documents(Collection::ExperimentUsers, "a\u{1f}").unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(users[1].0, "a\u{1f}u2");
    }
}
