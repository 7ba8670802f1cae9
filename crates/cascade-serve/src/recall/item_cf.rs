//! `recall/item_cf`: neighbours of the user's most recent items.

use std::collections::HashMap;

use cascade_models::tuning::ITEM_KNN_DEFAULT;
use cascade_models::{Interactions, ItemKnn};

use crate::recall::{CandidateSource, RecallContext};

/// Sums the item-item similarities of the last `recent` history items.
#[derive(Debug, Clone)]
pub struct ItemCfRecall {
    knn: ItemKnn,
    recent: usize,
}

/// History items the channel reads unless told otherwise.
pub const DEFAULT_RECENT: usize = 20;

impl ItemCfRecall {
    /// Neighbours from a fitted ItemKNN, reading the last `recent` items.
    pub fn new(knn: ItemKnn, recent: usize) -> ItemCfRecall {
        ItemCfRecall { knn, recent }
    }

    /// ItemKNN with RecBole's defaults fitted on `consumed`, reading the last
    /// `DEFAULT_RECENT` items: what `cascade serve` and its benchmark use.
    pub fn fit(consumed: &Interactions) -> ItemCfRecall {
        ItemCfRecall::new(ItemKnn::fit(consumed, ITEM_KNN_DEFAULT), DEFAULT_RECENT)
    }
}

impl CandidateSource for ItemCfRecall {
    fn name(&self) -> &'static str {
        "recall/item_cf"
    }

    fn recall(&self, context: &RecallContext<'_>, n: usize) -> Vec<(u32, f32)> {
        let history = context.history;
        let recent = &history[history.len().saturating_sub(self.recent)..];
        let mut scores: HashMap<u32, f32> = HashMap::new();
        for &item in recent {
            for &(neighbour, similarity) in self.knn.neighbours(item) {
                *scores.entry(neighbour).or_default() += similarity;
            }
        }
        let mut ranked: Vec<(u32, f32)> = scores.into_iter().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked.truncate(n);
        ranked
    }
}
