//! `recall/category_popular`: the most popular items of the categories the
//! user consumed most recently, so a user's tastes reach recall even where
//! the embeddings are weak (new or rarely seen items).

use crate::recall::{CandidateSource, RecallContext};

/// History items read to find the user's categories.
const RECENT: usize = 50;
/// Categories the channel draws from.
const TOP_CATEGORIES: usize = 3;

/// Per-category popularity lists.
#[derive(Debug, Clone)]
pub struct CategoryPopularRecall {
    item_categories: Vec<Vec<u32>>,
    /// Category → (item, count), most consumed first.
    by_category: Vec<Vec<(u32, f32)>>,
}

impl CategoryPopularRecall {
    /// From each item's categories and count, by dense item index.
    pub fn new(item_categories: &[Vec<u32>], counts: &[f32]) -> CategoryPopularRecall {
        let n_categories =
            item_categories.iter().flatten().map(|&c| c as usize + 1).max().unwrap_or(0);
        let mut by_category: Vec<Vec<(u32, f32)>> = vec![Vec::new(); n_categories];
        for (item, categories) in item_categories.iter().enumerate() {
            for &c in categories {
                by_category[c as usize]
                    .push((item as u32, counts.get(item).copied().unwrap_or(0.0)));
            }
        }
        for list in &mut by_category {
            list.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        }
        CategoryPopularRecall { item_categories: item_categories.to_vec(), by_category }
    }

    /// The user's most frequent categories among recent items, with their shares.
    fn favourite_categories(&self, history: &[u32]) -> Vec<(u32, f32)> {
        let recent = &history[history.len().saturating_sub(RECENT)..];
        let mut counts: Vec<(u32, f32)> = Vec::new();
        for &item in recent {
            for &c in self.item_categories.get(item as usize).map_or(&[][..], Vec::as_slice) {
                match counts.iter_mut().find(|(k, _)| *k == c) {
                    Some((_, n)) => *n += 1.0,
                    None => counts.push((c, 1.0)),
                }
            }
        }
        counts.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        counts.truncate(TOP_CATEGORIES);
        let total: f32 = counts.iter().map(|c| c.1).sum();
        counts.into_iter().map(|(c, n)| (c, n / total)).collect()
    }
}

impl CandidateSource for CategoryPopularRecall {
    fn name(&self) -> &'static str {
        "recall/category_popular"
    }

    /// Each favourite category fills a share of `n` in proportion to how
    /// often it occurs; the channel's score is that share times the item's
    /// rank-discounted popularity, so the lists interleave.
    fn recall(&self, context: &RecallContext<'_>, n: usize) -> Vec<(u32, f32)> {
        let mut found: Vec<(u32, f32)> = Vec::new();
        for (category, share) in self.favourite_categories(context.history) {
            let take = ((n as f32 * share).ceil() as usize).max(1);
            for (rank, &(item, _)) in
                self.by_category[category as usize].iter().take(take).enumerate()
            {
                let score = share / (1.0 + rank as f32);
                match found.iter_mut().find(|(i, _)| *i == item) {
                    Some((_, s)) => *s = s.max(score),
                    None => found.push((item, score)),
                }
            }
        }
        found.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        found.truncate(n);
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn popular_items_of_the_users_categories_in_proportion() {
        // Items 0..4 in category 0, 4..8 in category 1, 8..10 in category 2.
        let categories: Vec<Vec<u32>> = (0..10).map(|i| vec![(i / 4) as u32]).collect();
        let counts: Vec<f32> = (0..10).map(|i| (10 - i) as f32).collect();
        let recall = CategoryPopularRecall::new(&categories, &counts);
        // Three items of category 1, one of category 0: shares 3/4 and 1/4.
        let context = RecallContext { user_id: "u", user: None, history: &[5, 6, 7, 1] };
        let found: Vec<u32> = recall.recall(&context, 4).iter().map(|c| c.0).collect();
        assert_eq!(found, vec![4, 5, 0, 6], "category 1 first and more of it");
        assert!(
            recall.recall(&RecallContext { user_id: "u", user: None, history: &[] }, 4).is_empty()
        );
    }
}
