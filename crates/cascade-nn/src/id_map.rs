//! A collisionless, growing map from 64-bit ids to table rows.
//!
//! Unlike hashing ids into a fixed number of buckets, two ids never share a
//! row. New ids get a fresh row (or one freed by eviction). Each row records
//! when its id was last seen, so ids idle longer than a horizon can be evicted
//! and their rows reused (Monolith's expirable embeddings).

use std::collections::HashMap;

/// Id → row map with last-seen times and a free list.
#[derive(Debug, Clone, Default)]
pub struct IdMap {
    rows: HashMap<u64, u32>,
    ids: Vec<Option<u64>>,
    last_seen: Vec<u64>,
    free: Vec<u32>,
}

/// Where an id landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// The id already had this row.
    Existing(u32),
    /// The id was given this row now (new, or reused after an eviction):
    /// the caller must initialise it.
    Fresh(u32),
}

impl Slot {
    /// The row either way.
    pub fn row(self) -> u32 {
        match self {
            Slot::Existing(row) | Slot::Fresh(row) => row,
        }
    }
}

impl IdMap {
    /// An empty map.
    pub fn new() -> IdMap {
        IdMap::default()
    }

    /// Number of live ids.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether no id is mapped.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Rows ever allocated (live plus free); the table's storage size.
    pub fn capacity_rows(&self) -> usize {
        self.ids.len()
    }

    /// The row of `id`, if mapped (does not touch its last-seen time).
    pub fn get(&self, id: u64) -> Option<u32> {
        self.rows.get(&id).copied()
    }

    /// The id stored in `row`, if live.
    pub fn id_of(&self, row: u32) -> Option<u64> {
        self.ids.get(row as usize).copied().flatten()
    }

    /// The row of `id`, allocating one if it is new; records `now` as last seen.
    pub fn get_or_insert(&mut self, id: u64, now: u64) -> Slot {
        if let Some(&row) = self.rows.get(&id) {
            self.last_seen[row as usize] = now;
            return Slot::Existing(row);
        }
        let row = match self.free.pop() {
            Some(row) => {
                self.ids[row as usize] = Some(id);
                self.last_seen[row as usize] = now;
                row
            }
            None => {
                self.ids.push(Some(id));
                self.last_seen.push(now);
                (self.ids.len() - 1) as u32
            }
        };
        self.rows.insert(id, row);
        Slot::Fresh(row)
    }

    /// Evicts every id last seen before `cutoff`; returns the freed rows.
    pub fn evict_unseen_since(&mut self, cutoff: u64) -> Vec<u32> {
        let mut freed = Vec::new();
        for (row, id) in self.ids.iter_mut().enumerate() {
            if let Some(live) = *id
                && self.last_seen[row] < cutoff
            {
                self.rows.remove(&live);
                *id = None;
                freed.push(row as u32);
            }
        }
        self.free.extend(freed.iter().copied());
        freed
    }

    /// Live (id, row) pairs, ordered by row.
    pub fn entries(&self) -> Vec<(u64, u32)> {
        self.ids.iter().enumerate().filter_map(|(row, id)| id.map(|id| (id, row as u32))).collect()
    }

    /// Rebuilds a map from (id, row) pairs, e.g. from a checkpoint; `rows` is
    /// the storage size, unused rows become free.
    pub fn from_entries(entries: &[(u64, u32)], rows: usize) -> IdMap {
        let mut map = IdMap { ids: vec![None; rows], last_seen: vec![0; rows], ..IdMap::default() };
        for &(id, row) in entries {
            map.ids[row as usize] = Some(id);
            map.rows.insert(id, row);
        }
        map.free = (0..rows as u32).rev().filter(|&r| map.ids[r as usize].is_none()).collect();
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_grow_the_map_and_evicted_rows_are_reused() {
        let mut map = IdMap::new();
        assert_eq!(map.get_or_insert(7, 1), Slot::Fresh(0));
        assert_eq!(map.get_or_insert(9, 1), Slot::Fresh(1));
        assert_eq!(map.get_or_insert(7, 5), Slot::Existing(0));
        assert_eq!(map.evict_unseen_since(3), vec![1]);
        assert_eq!(map.get(9), None);
        assert_eq!(map.get_or_insert(11, 6), Slot::Fresh(1), "the freed row is reused");
        assert_eq!((map.len(), map.capacity_rows()), (2, 2));
        let rebuilt = IdMap::from_entries(&map.entries(), map.capacity_rows());
        assert_eq!(rebuilt.get(11), Some(1));
        assert_eq!(rebuilt.id_of(0), Some(7));
    }
}
