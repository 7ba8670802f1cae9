//! Novelty: the mean self-information −log2(p(i)) of recommended items, where
//! p(i) is the share of users who interacted with item i in training. Items
//! nobody has seen get the information of one interaction, so it stays finite.

use super::{Catalog, ListMetric, Metric};

/// Mean self-information of the served items, in bits.
#[derive(Debug, Clone, Copy)]
pub struct Novelty;

impl Metric for Novelty {
    fn name(&self) -> String {
        "novelty".into()
    }
}

impl ListMetric for Novelty {
    fn score(&self, lists: &[Vec<u32>], catalog: &Catalog<'_>) -> f64 {
        let n_users = catalog.n_users.max(1) as f64;
        let (mut sum, mut count) = (0.0, 0usize);
        for &item in lists.iter().flatten() {
            let popularity = catalog.popularity[item as usize].max(1) as f64;
            sum += -(popularity / n_users).log2();
            count += 1;
        }
        if count == 0 { 0.0 } else { sum / count as f64 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed() {
        // 8 users; item 0 seen by 4 (1 bit), item 1 by 1 (3 bits).
        let catalog =
            Catalog { n_items: 2, popularity: &[4, 1], n_users: 8, dissimilarity: &|_, _| 1.0 };
        assert_eq!(Novelty.score(&[vec![0, 1]], &catalog), 2.0);
    }
}
