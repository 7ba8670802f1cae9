//! Negative sampling for implicit-feedback training: items the user has not
//! interacted with in train, drawn uniformly or in proportion to popularity
//! (popular negatives are harder and correct the bias of uniform sampling
//! towards easy, obscure items).

use serde::{Deserialize, Serialize};

use crate::interactions::Interactions;
use crate::random::SeededRng;

/// How negatives are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NegativeSampling {
    /// Every item equally likely.
    #[default]
    Uniform,
    /// Items in proportion to their train count (plus one, so every item can appear).
    Popularity,
}

/// Draws items a user has not seen in train.
#[derive(Debug, Clone)]
pub struct NegativeSampler {
    sampling: NegativeSampling,
    n_items: usize,
    /// Cumulative (count + 1) per item, for popularity sampling.
    cumulative: Vec<u64>,
}

impl NegativeSampler {
    /// A sampler over the items of `data`.
    pub fn new(data: &Interactions, sampling: NegativeSampling) -> NegativeSampler {
        let mut total = 0u64;
        let cumulative = data
            .by_item
            .iter()
            .map(|users| {
                total += users.len() as u64 + 1;
                total
            })
            .collect();
        NegativeSampler { sampling, n_items: data.n_items, cumulative }
    }

    fn draw(&self, rng: &mut SeededRng) -> u32 {
        match self.sampling {
            NegativeSampling::Uniform => rng.below(self.n_items) as u32,
            NegativeSampling::Popularity => {
                // No items, nothing to draw: item 0 is as good as any.
                let Some(&total) = self.cumulative.last().filter(|&&t| t > 0) else { return 0 };
                let ticket = rng.next_u64() % total;
                self.cumulative.partition_point(|&c| c <= ticket) as u32
            }
        }
    }

    /// An item not in `seen` (ascending). A user who has seen every item gets
    /// a random one after a bounded number of tries.
    pub fn sample(&self, seen: &[u32], rng: &mut SeededRng) -> u32 {
        for _ in 0..1000 {
            let candidate = self.draw(rng);
            if seen.binary_search(&candidate).is_err() {
                return candidate;
            }
        }
        self.draw(rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negatives_avoid_seen_items_and_popularity_prefers_popular_items() {
        // Item 0 is seen by 50 users, items 1..10 by none.
        let per_user: Vec<Vec<u32>> = (0..50).map(|_| vec![0]).collect();
        let data = Interactions::new(10, &per_user);
        let mut rng = SeededRng::new(9);
        let uniform = NegativeSampler::new(&data, NegativeSampling::Uniform);
        assert!((0..500).all(|_| uniform.sample(&[0], &mut rng) != 0));
        let popular = NegativeSampler::new(&data, NegativeSampling::Popularity);
        let zeros = (0..1000).filter(|_| popular.sample(&[], &mut rng) == 0).count();
        // Item 0 holds 51 of 60 tickets.
        assert!((780..920).contains(&zeros), "item 0 drawn {zeros} of 1000 times");
        let uniform_zeros = (0..1000).filter(|_| uniform.sample(&[], &mut rng) == 0).count();
        assert!(uniform_zeros < 160, "uniform draws item 0 {uniform_zeros} of 1000 times");
    }
}
