//! What the server knows about users and items apart from the models: ids,
//! each user's consumed items, and each item's categories and publication
//! time (for category recall and filters, `recall/fresh` and the freshness
//! boost). It outlives model swaps.

use cascade_core::ids::IdIndex;

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

/// Ids, histories and item facts.
#[derive(Debug)]
pub struct Catalog {
    /// External user id ↔ dense index.
    pub users: IdIndex,
    /// External item id ↔ dense index.
    pub items: IdIndex,
    /// Each user's items, oldest first.
    pub histories: Vec<Vec<u32>>,
    /// Categories and publication times.
    pub facts: ItemFacts,
}
