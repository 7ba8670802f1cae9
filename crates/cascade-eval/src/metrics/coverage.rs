//! Item coverage: the share of the catalogue that appears in at least one list.

use super::{Catalog, ListMetric, Metric};

/// Catalogue coverage of the served lists.
#[derive(Debug, Clone, Copy)]
pub struct ItemCoverage;

impl Metric for ItemCoverage {
    fn name(&self) -> String {
        "coverage".into()
    }
}

impl ListMetric for ItemCoverage {
    fn score(&self, lists: &[Vec<u32>], catalog: &Catalog<'_>) -> f64 {
        if catalog.n_items == 0 {
            return 0.0;
        }
        let mut seen = vec![false; catalog.n_items];
        for &item in lists.iter().flatten() {
            seen[item as usize] = true;
        }
        seen.iter().filter(|s| **s).count() as f64 / catalog.n_items as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed() {
        let catalog =
            Catalog { n_items: 4, popularity: &[1; 4], n_users: 2, dissimilarity: &|_, _| 1.0 };
        assert_eq!(ItemCoverage.score(&[vec![0, 1], vec![1, 2]], &catalog), 0.75);
    }
}
