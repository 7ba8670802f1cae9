//! Popularity bias of served lists: how much of what is recommended is what
//! everyone already consumes.
//!
//! - [`AveragePopularity`]: the mean share of users who consumed each
//!   recommended item (Abdollahpouri et al.'s ARP, as a share so that
//!   catalogues of different sizes compare).
//! - [`LongTailShare`]: the share of recommended slots given to items
//!   outside the most popular `head` share of the catalogue.
//! - [`ExposureGini`]: the Gini coefficient of how often each catalogue
//!   item is recommended (0: every item equally, 1: one item everywhere).

use super::{Catalog, ListMetric, Metric};

/// Mean popularity of recommended items, as a share of users.
#[derive(Debug, Clone, Copy)]
pub struct AveragePopularity;

impl Metric for AveragePopularity {
    fn name(&self) -> String {
        "average_popularity".into()
    }
}

impl ListMetric for AveragePopularity {
    fn score(&self, lists: &[Vec<u32>], catalog: &Catalog<'_>) -> f64 {
        let slots: Vec<f64> = lists
            .iter()
            .flatten()
            .map(|&i| catalog.popularity[i as usize] as f64 / catalog.n_users.max(1) as f64)
            .collect();
        slots.iter().sum::<f64>() / slots.len().max(1) as f64
    }
}

/// Share of recommended slots outside the popular head.
#[derive(Debug, Clone, Copy)]
pub struct LongTailShare {
    /// The share of the catalogue, most popular first, that is the head.
    pub head: f64,
}

impl Metric for LongTailShare {
    fn name(&self) -> String {
        "long_tail_share".into()
    }
}

impl ListMetric for LongTailShare {
    fn score(&self, lists: &[Vec<u32>], catalog: &Catalog<'_>) -> f64 {
        let mut by_popularity: Vec<usize> = (0..catalog.n_items).collect();
        by_popularity
            .sort_by(|&a, &b| catalog.popularity[b].cmp(&catalog.popularity[a]).then(a.cmp(&b)));
        let head_size = (self.head * catalog.n_items as f64).ceil() as usize;
        let mut in_head = vec![false; catalog.n_items];
        for &item in &by_popularity[..head_size.min(catalog.n_items)] {
            in_head[item] = true;
        }
        let (tail, slots) = lists
            .iter()
            .flatten()
            .fold((0usize, 0usize), |(t, s), &i| (t + usize::from(!in_head[i as usize]), s + 1));
        tail as f64 / slots.max(1) as f64
    }
}

/// Gini coefficient of recommendation counts over the catalogue.
#[derive(Debug, Clone, Copy)]
pub struct ExposureGini;

impl Metric for ExposureGini {
    fn name(&self) -> String {
        "exposure_gini".into()
    }
}

impl ListMetric for ExposureGini {
    fn score(&self, lists: &[Vec<u32>], catalog: &Catalog<'_>) -> f64 {
        let mut counts = vec![0f64; catalog.n_items];
        for &item in lists.iter().flatten() {
            counts[item as usize] += 1.0;
        }
        counts.sort_by(f64::total_cmp);
        let n = counts.len() as f64;
        let total: f64 = counts.iter().sum();
        if total == 0.0 || n < 2.0 {
            return 0.0;
        }
        // G = Σ (2i − n − 1) x_i / (n Σ x), over ascending x, i from 1.
        let weighted: f64 =
            counts.iter().enumerate().map(|(i, x)| (2.0 * (i as f64 + 1.0) - n - 1.0) * x).sum();
        weighted / (n * total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog(popularity: &[u64]) -> Catalog<'_> {
        Catalog { n_items: popularity.len(), popularity, n_users: 10, dissimilarity: &|_, _| 1.0 }
    }

    #[test]
    fn popular_lists_score_as_popular_and_spread_lists_as_even() {
        let popularity = [10, 5, 1, 0];
        let catalog = catalog(&popularity);
        let popular = vec![vec![0, 1]; 3];
        assert!((AveragePopularity.score(&popular, &catalog) - 0.75).abs() < 1e-12);
        // The head is the top quarter: item 0 only.
        assert!((LongTailShare { head: 0.25 }.score(&popular, &catalog) - 0.5).abs() < 1e-12);
        let even = vec![vec![0, 1], vec![2, 3]];
        assert!(ExposureGini.score(&even, &catalog).abs() < 1e-12);
        let one = vec![vec![0], vec![0]];
        // All exposure on one of 4 items: (n − 1) / n.
        assert!((ExposureGini.score(&one, &catalog) - 0.75).abs() < 1e-12);
    }
}
