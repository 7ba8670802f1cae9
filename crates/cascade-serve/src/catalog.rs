//! What the server knows about users and items apart from the models: ids,
//! each user's consumed items, and each item's categories and publication
//! time (for category recall and filters, `recall/fresh` and the freshness
//! boost). Items created through the API after the models were built are
//! `AddedItems`: they take the dense indices after the catalog's.

use parking_lot::RwLock;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use cascade_core::ids::IdIndex;
use cascade_core::{FeatureValue, Record};

/// Item categories and publication times, by dense item index.
#[derive(Debug, Clone, Default)]
pub struct ItemFacts {
    /// Category name ↔ dense category index.
    pub categories: IdIndex,
    /// Each item's categories (dense indices), possibly none.
    pub item_categories: Vec<Vec<u32>>,
    /// Each item's publication time in unix seconds, where known.
    pub published: Vec<Option<i64>>,
    /// "Now" for ages, in unix seconds: the wall clock for live data; for a
    /// historical dataset, the time its data ends, so that its newest items
    /// count as new.
    pub clock: i64,
}

impl ItemFacts {
    /// Facts of `n_items` items with no categories or times.
    pub fn unknown(n_items: usize) -> ItemFacts {
        ItemFacts {
            categories: IdIndex::new(Vec::<String>::new()),
            item_categories: vec![Vec::new(); n_items],
            published: vec![None; n_items],
            clock: 0,
        }
    }

    /// Seconds since the item was published, if known (never negative).
    pub fn age_seconds(&self, item: u32) -> Option<f64> {
        let published = self.published.get(item as usize).copied().flatten()?;
        Some((self.clock - published).max(0) as f64)
    }

    /// Whether the item is in any of `categories` (dense indices).
    pub fn in_any(&self, item: u32, categories: &[u32]) -> bool {
        self.item_categories
            .get(item as usize)
            .is_some_and(|own| own.iter().any(|c| categories.contains(c)))
    }
}

/// An item record's categories under `feature`; none when it has no value.
pub fn category_names(record: &Record, feature: &str) -> Vec<String> {
    match record.get(feature) {
        Some(FeatureValue::List(tokens)) => tokens.clone(),
        Some(FeatureValue::Text(token)) => vec![token.clone()],
        _ => Vec::new(),
    }
}

/// Which item features hold categories and publication times.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemFactsReader {
    /// A multi-categorical (or categorical) feature.
    pub category_feature: Option<String>,
    /// A timestamp feature (milliseconds in records).
    pub time_feature: Option<String>,
}

impl ItemFactsReader {
    /// The record's category names.
    pub fn categories(&self, record: &Record) -> Vec<String> {
        self.category_feature.as_ref().map_or_else(Vec::new, |f| category_names(record, f))
    }

    /// The record's publication time in unix seconds, if it has one.
    pub fn published(&self, record: &Record) -> Option<i64> {
        match self.time_feature.as_ref().and_then(|f| record.get(f)) {
            Some(FeatureValue::Number(ms)) => Some((*ms / 1000.0) as i64),
            _ => None,
        }
    }

    /// Facts of the items whose records are `records`, in index order. The
    /// clock is the newest publication: the data may be historical.
    pub fn facts(&self, records: impl IntoIterator<Item = Record>) -> ItemFacts {
        let (names, published): (Vec<Vec<String>>, Vec<Option<i64>>) =
            records.into_iter().map(|r| (self.categories(&r), self.published(&r))).unzip();
        let categories = IdIndex::new(names.iter().flatten().cloned());
        let item_categories = names
            .iter()
            .map(|tokens| tokens.iter().filter_map(|t| categories.index(t)).collect())
            .collect();
        let clock = published.iter().flatten().copied().max().unwrap_or(0);
        ItemFacts { categories, item_categories, published, clock }
    }
}

/// Items added after the models were built, numbered from `base` on.
#[derive(Debug, Default)]
pub struct AddedItems {
    base: u32,
    inner: RwLock<Added>,
}

#[derive(Debug, Default)]
struct Added {
    ids: Vec<String>,
    index: HashMap<String, u32>,
    /// Dense indices into the catalog's categories; names it lacks are dropped.
    categories: Vec<Vec<u32>>,
    /// Unix seconds: the record's publication time, else when it was added.
    published: Vec<i64>,
    /// (time, item), newest first: `recall/fresh` reads its head on every
    /// request, so it is kept sorted as items come.
    by_time: Vec<(i64, u32)>,
}

impl AddedItems {
    /// None yet; the first will be item `base`.
    pub fn after(base: u32) -> AddedItems {
        AddedItems { base, inner: RwLock::default() }
    }

    fn read(&self) -> parking_lot::RwLockReadGuard<'_, Added> {
        self.inner.read()
    }

    /// How many were added.
    pub fn len(&self) -> usize {
        self.read().ids.len()
    }

    /// Whether none were.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The newest `n` by publication time, newest first, with the time.
    pub fn newest(&self, n: usize) -> Vec<(u32, i64)> {
        self.read().by_time.iter().take(n).map(|&(t, item)| (item, t)).collect()
    }
}

/// Ids, histories and item facts.
#[derive(Debug)]
pub struct Catalog {
    /// External user id ↔ dense index.
    pub users: IdIndex,
    /// External item id ↔ dense index, as the models were built.
    pub items: IdIndex,
    /// Each user's items, oldest first.
    pub histories: Vec<Vec<u32>>,
    /// Categories and publication times.
    pub facts: ItemFacts,
    /// Items added since (shared with `recall/fresh`).
    pub added: Arc<AddedItems>,
}

impl Catalog {
    /// A catalog with no added items yet.
    pub fn new(
        users: IdIndex,
        items: IdIndex,
        histories: Vec<Vec<u32>>,
        facts: ItemFacts,
    ) -> Catalog {
        let added = Arc::new(AddedItems::after(items.len() as u32));
        Catalog { users, items, histories, facts, added }
    }

    /// The item's dense index, added items included.
    pub fn item_index(&self, id: &str) -> Option<u32> {
        self.items.index(id).or_else(|| self.added.read().index.get(id).copied())
    }

    /// The item's external id. Panics for an index never handed out.
    pub fn item_id(&self, item: u32) -> Cow<'_, str> {
        match (item as usize) < self.items.len() {
            true => Cow::Borrowed(self.items.id(item)),
            false => Cow::Owned(self.added.read().ids[(item - self.added.base) as usize].clone()),
        }
    }

    /// Whether the item (a dense index) was added after the build.
    pub fn is_added(&self, item: u32) -> bool {
        item >= self.added.base
    }

    /// Seconds since the item was published, if known (never negative).
    pub fn age_seconds(&self, item: u32) -> Option<f64> {
        match self.is_added(item) {
            false => self.facts.age_seconds(item),
            true => {
                let published = self.added.read().published[(item - self.added.base) as usize];
                Some((self.facts.clock.max(published) - published) as f64)
            }
        }
    }

    /// Whether the item is in any of `categories` (dense indices).
    pub fn in_any(&self, item: u32, categories: &[u32]) -> bool {
        match self.is_added(item) {
            false => self.facts.in_any(item, categories),
            true => self.added.read().categories[(item - self.added.base) as usize]
                .iter()
                .any(|c| categories.contains(c)),
        }
    }

    /// Category names as the catalog's dense category indices; names it
    /// does not know are dropped.
    pub fn category_indices(&self, names: &[String]) -> Vec<u32> {
        names.iter().filter_map(|name| self.facts.categories.index(name)).collect()
    }

    /// Adds an item the catalog does not have, with its categories (dense
    /// indices) and publication time (unix seconds), and returns its dense
    /// index and whether it is new; for an item added before, refreshes
    /// its categories. `None` for an item the models were built with.
    ///
    /// `prepare(item, new)` runs first, under the catalog's write lock:
    /// whatever must know the item before any request can find it (the
    /// ranker's fields, the ANN index) learns it there. If it fails,
    /// nothing is added. It must not read the catalog.
    pub fn add_item(
        &self,
        id: &str,
        categories: Vec<u32>,
        published: i64,
        prepare: impl FnOnce(u32, bool) -> Result<(), String>,
    ) -> Result<Option<(u32, bool)>, String> {
        if self.items.index(id).is_some() {
            return Ok(None);
        }
        let mut added = self.added.inner.write();
        if let Some(&item) = added.index.get(id) {
            prepare(item, false)?;
            added.categories[(item - self.added.base) as usize] = categories;
            return Ok(Some((item, false)));
        }
        let item = self.added.base + added.ids.len() as u32;
        prepare(item, true)?;
        added.ids.push(id.to_owned());
        added.index.insert(id.to_owned(), item);
        added.categories.push(categories);
        added.published.push(published);
        // Newest first; among equal times, the lower index first.
        let at =
            added.by_time.partition_point(|&(t, i)| t > published || (t == published && i < item));
        added.by_time.insert(at, (published, item));
        Ok(Some((item, true)))
    }
}
