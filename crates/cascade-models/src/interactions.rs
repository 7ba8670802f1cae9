//! The binary user × item interaction matrix of the train split, in both
//! row (user → items) and column (item → users) form.

use cascade_eval::protocols::LooSplit;

/// Deduplicated train interactions.
#[derive(Debug, Clone)]
pub struct Interactions {
    /// Number of items.
    pub n_items: usize,
    /// Each user's distinct items, ascending.
    pub by_user: Vec<Vec<u32>>,
    /// Each item's distinct users, ascending.
    pub by_item: Vec<Vec<u32>>,
}

impl Interactions {
    /// Builds the matrix from per-user item lists (duplicates count once).
    pub fn new(n_items: usize, per_user: &[Vec<u32>]) -> Interactions {
        let mut by_user: Vec<Vec<u32>> = per_user.to_vec();
        let mut by_item = vec![Vec::new(); n_items];
        for (user, items) in by_user.iter_mut().enumerate() {
            items.sort_unstable();
            items.dedup();
            for &item in items.iter() {
                by_item[item as usize].push(user as u32);
            }
        }
        Interactions { n_items, by_user, by_item }
    }

    /// Every distinct (user, item) pair, user by user.
    pub fn pairs(&self) -> Vec<(u32, u32)> {
        self.by_user
            .iter()
            .enumerate()
            .flat_map(|(u, items)| items.iter().map(move |&i| (u as u32, i)))
            .collect()
    }

    /// The train part of a leave-one-out split.
    pub fn from_split(split: &LooSplit) -> Interactions {
        Interactions::new(split.n_items, &split.train)
    }
}

/// The distinct items of a history, ascending: a repeated item counts once,
/// as it does in the binary interaction matrix the models are fitted on.
pub fn distinct_items(history: &[u32]) -> Vec<u32> {
    let mut items = history.to_vec();
    items.sort_unstable();
    items.dedup();
    items
}
