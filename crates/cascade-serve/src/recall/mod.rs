//! Recall: channels that each propose candidates for a request, and the
//! merge that applies quotas, removes duplicates and excluded items, and
//! remembers which channels produced each candidate.

pub mod ann;
pub mod category;
pub mod fresh;
pub mod item_cf;
pub mod popular;
pub mod trending;

pub use ann::{AnnBackend, AnnIndex, AnnRecall, AnnSettings, EXACT_ADDED_SCAN};
pub use category::CategoryPopularRecall;
pub use fresh::FreshRecall;
pub use item_cf::ItemCfRecall;
pub use popular::{PopularRecall, decayed_counts};
pub use trending::TrendingRecall;

/// What a channel knows about the request.
#[derive(Debug, Clone, Copy)]
pub struct RecallContext<'a> {
    /// The user's external id (online-learned vectors are kept by it).
    pub user_id: &'a str,
    /// The user's dense index, if the user is known to the models.
    pub user: Option<u32>,
    /// The user's items, oldest first.
    pub history: &'a [u32],
}

/// One recall channel.
pub trait CandidateSource: Send + Sync {
    /// Stable name, reported with every candidate it produced (`recall/…`).
    fn name(&self) -> &'static str;
    /// Up to `n` items, best first, with the channel's own score.
    fn recall(&self, context: &RecallContext<'_>, n: usize) -> Vec<(u32, f32)>;
}

/// A merged candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Dense item index.
    pub item: u32,
    /// Every channel that proposed it, in channel order.
    pub sources: Vec<&'static str>,
}

/// Runs each channel for its quota of new candidates, in order, skipping
/// items `excluded` rejects and merging duplicates (a later channel that
/// proposes a known item adds its name but does not use up its quota).
pub fn merge(
    channels: &[(&dyn CandidateSource, usize)],
    context: &RecallContext<'_>,
    excluded: &dyn Fn(u32) -> bool,
) -> Vec<Candidate> {
    let mut merged: Vec<Candidate> = Vec::new();
    let mut position: std::collections::HashMap<u32, usize> = std::collections::HashMap::new();
    for &(channel, quota) in channels {
        // Over-fetch: consumed items are excluded and duplicates do not
        // count. Not more: for ANN a larger ask is a wider, slower search.
        let proposed = channel.recall(context, quota + quota / 2 + context.history.len());
        let mut added = 0;
        for (item, _) in proposed {
            if added == quota {
                break;
            }
            if excluded(item) {
                continue;
            }
            match position.get(&item) {
                Some(&at) => {
                    let sources = &mut merged[at].sources;
                    if !sources.contains(&channel.name()) {
                        sources.push(channel.name());
                    }
                }
                None => {
                    position.insert(item, merged.len());
                    merged.push(Candidate { item, sources: vec![channel.name()] });
                    added += 1;
                }
            }
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(&'static str, Vec<u32>);
    impl CandidateSource for Fixed {
        fn name(&self) -> &'static str {
            self.0
        }
        fn recall(&self, _: &RecallContext<'_>, n: usize) -> Vec<(u32, f32)> {
            self.1.iter().take(n).map(|&i| (i, 1.0)).collect()
        }
    }

    #[test]
    fn quotas_count_new_items_and_duplicates_keep_every_source() {
        let a = Fixed("recall/a", vec![1, 2, 3, 4]);
        let b = Fixed("recall/b", vec![2, 9, 3, 8, 7]);
        let context = RecallContext { user_id: "u", user: None, history: &[] };
        let merged = merge(&[(&a, 2), (&b, 2)], &context, &|item| item == 1);
        let items: Vec<u32> = merged.iter().map(|c| c.item).collect();
        // Each channel is asked for its quota plus half (3 here): a's 1 is
        // excluded; of b's 2, 9, 3 only 9 is new, and 8 was never asked for.
        assert_eq!(items, vec![2, 3, 9], "1 excluded; b's 2 and 3 are duplicates");
        assert_eq!(merged[0].sources, vec!["recall/a", "recall/b"]);
        assert_eq!(merged[2].sources, vec!["recall/b"]);
    }
}
