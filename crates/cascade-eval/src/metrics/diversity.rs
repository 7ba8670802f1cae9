//! Intra-list diversity: the mean pairwise dissimilarity of the items in each
//! list, averaged over lists. The dissimilarity comes from the catalogue (for
//! example 1 − Jaccard of genre sets, or 1 − cosine of embeddings).

use super::{Catalog, ListMetric, Metric};

/// Intra-list diversity.
#[derive(Debug, Clone, Copy)]
pub struct IntraListDiversity;

impl Metric for IntraListDiversity {
    fn name(&self) -> String {
        "ild".into()
    }
}

impl ListMetric for IntraListDiversity {
    fn score(&self, lists: &[Vec<u32>], catalog: &Catalog<'_>) -> f64 {
        let per_list: Vec<f64> = lists
            .iter()
            .filter(|list| list.len() >= 2)
            .map(|list| {
                let mut sum = 0.0;
                let mut pairs = 0usize;
                for (i, &a) in list.iter().enumerate() {
                    for &b in &list[i + 1..] {
                        sum += (catalog.dissimilarity)(a, b);
                        pairs += 1;
                    }
                }
                sum / pairs as f64
            })
            .collect();
        if per_list.is_empty() { 0.0 } else { per_list.iter().sum::<f64>() / per_list.len() as f64 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed() {
        // Items 0 and 1 are alike (0), everything else differs (1).
        let dissimilarity = |a: u32, b: u32| if a.min(b) == 0 && a.max(b) == 1 { 0.0 } else { 1.0 };
        let catalog =
            Catalog { n_items: 3, popularity: &[1; 3], n_users: 1, dissimilarity: &dissimilarity };
        // List [0,1,2]: pairs 0, 1, 1 → 2/3. List [0,1]: 0. Mean 1/3.
        let v = IntraListDiversity.score(&[vec![0, 1, 2], vec![0, 1]], &catalog);
        assert!((v - 1.0 / 3.0).abs() < 1e-12);
    }
}
