//! Metrics, one file each, grouped by what they read:
//!
//! - [`RankingMetric`]: one user's ranked list against that user's relevant items
//!   (HR, Recall, NDCG, MRR, Precision, MAP); callers average over users.
//! - [`PredictionMetric`]: predicted probabilities against binary labels (AUC, GAUC, LogLoss).
//! - [`ListMetric`]: beyond-accuracy properties of all served lists together
//!   (item coverage, intra-list diversity, novelty, popularity bias).

mod auc;
mod coverage;
mod diversity;
mod gauc;
mod hit_rate;
mod logloss;
mod map;
mod mrr;
mod ndcg;
mod novelty;
mod popularity_bias;
mod precision;
mod recall;

pub use auc::Auc;
pub use coverage::ItemCoverage;
pub use diversity::IntraListDiversity;
pub use gauc::Gauc;
pub use hit_rate::HitRate;
pub use logloss::LogLoss;
pub use map::MeanAveragePrecision;
pub use mrr::Mrr;
pub use ndcg::Ndcg;
pub use novelty::Novelty;
pub use popularity_bias::{AveragePopularity, ExposureGini, LongTailShare};
pub use precision::Precision;
pub use recall::Recall;

/// Every metric has a stable, lower-case name such as `ndcg@10`, used as the key
/// in reports and JSON output.
pub trait Metric {
    /// The metric's report name.
    fn name(&self) -> String;
}

/// A per-user metric of a ranked list (best first) against the relevant items.
pub trait RankingMetric: Metric + Sync {
    /// The value for one user, in `[0, 1]`.
    fn score(&self, ranked: &[u32], relevant: &[u32]) -> f64;
}

/// One prediction: the group it belongs to (the user, for GAUC), the predicted
/// probability of a positive label, and the true label.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    /// Group id (user).
    pub group: u32,
    /// Predicted probability of label 1.
    pub probability: f64,
    /// The true label.
    pub label: bool,
}

/// A metric over predicted probabilities and labels.
pub trait PredictionMetric: Metric {
    /// The value over all predictions; `None` when undefined (e.g. AUC with one class).
    fn score(&self, predictions: &[Prediction]) -> Option<f64>;
}

/// What list metrics need to know about the catalogue.
pub struct Catalog<'a> {
    /// Number of items; item indices are `0..n_items`.
    pub n_items: usize,
    /// Training interactions per item (popularity), for novelty.
    pub popularity: &'a [u64],
    /// Number of users the popularity was counted over.
    pub n_users: u64,
    /// Dissimilarity of two items in `[0, 1]`, for diversity.
    pub dissimilarity: &'a (dyn Fn(u32, u32) -> f64 + Sync),
}

impl std::fmt::Debug for Catalog<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog").field("n_items", &self.n_items).finish_non_exhaustive()
    }
}

/// A metric of all served lists together.
pub trait ListMetric: Metric {
    /// The value over every user's list.
    fn score(&self, lists: &[Vec<u32>], catalog: &Catalog<'_>) -> f64;
}

/// Number of the first `k` ranked items that are relevant.
fn hits_at(k: usize, ranked: &[u32], relevant: &[u32]) -> usize {
    ranked.iter().take(k).filter(|item| relevant.contains(item)).count()
}

#[cfg(test)]
mod invariants {
    //! Properties every ranking metric must have, checked on random lists.
    use proptest::prelude::*;

    use super::*;

    fn all(k: usize) -> Vec<Box<dyn RankingMetric>> {
        vec![
            Box::new(HitRate { k }),
            Box::new(Recall { k }),
            Box::new(Ndcg { k }),
            Box::new(Mrr { k }),
            Box::new(Precision { k }),
            Box::new(MeanAveragePrecision { k }),
        ]
    }

    fn list_and_relevant() -> impl Strategy<Value = (Vec<u32>, Vec<u32>, usize)> {
        (prop::collection::hash_set(0u32..200, 1..40), 1usize..25).prop_flat_map(|(items, k)| {
            let items: Vec<u32> = items.into_iter().collect();
            let n = items.len();
            (Just(items.clone()), prop::sample::subsequence(items, 1..=n), Just(k))
        })
    }

    proptest! {
        #[test]
        fn ranking_metrics_stay_in_unit_interval((ranked, relevant, k) in list_and_relevant()) {
            for metric in all(k) {
                let v = metric.score(&ranked, &relevant);
                prop_assert!((0.0..=1.0).contains(&v), "{} = {v}", metric.name());
            }
        }

        #[test]
        fn perfect_ranking_scores_one((ranked, relevant, k) in list_and_relevant()) {
            // Put every relevant item first.
            let mut perfect = relevant.clone();
            perfect.extend(ranked.iter().filter(|i| !relevant.contains(i)));
            for metric in all(k) {
                let v = metric.score(&perfect, &relevant);
                let full_marks = match metric.name() {
                    // Precision and Recall can reach 1 only when K and |relevant| agree.
                    n if n.starts_with("precision") => relevant.len() >= k,
                    n if n.starts_with("recall") => relevant.len() <= k,
                    _ => true,
                };
                if full_marks {
                    prop_assert!((v - 1.0).abs() < 1e-12, "{} = {v}", metric.name());
                }
            }
        }

        #[test]
        fn a_list_without_relevant_items_scores_zero((ranked, _relevant, k) in list_and_relevant()) {
            for metric in all(k) {
                prop_assert_eq!(metric.score(&ranked, &[10_000]), 0.0);
            }
        }

        #[test]
        fn auc_is_a_probability_and_one_when_separated(
            scores in prop::collection::vec((0.0f64..1.0, any::<bool>()), 2..60)
        ) {
            let predictions: Vec<Prediction> = scores.iter().map(|&(p, label)| Prediction { group: 0, probability: p, label }).collect();
            if let Some(auc) = Auc.score(&predictions) {
                prop_assert!((0.0..=1.0).contains(&auc));
            }
            let separated: Vec<Prediction> = scores.iter().map(|&(p, label)| Prediction { group: 0, probability: if label { 1.0 + p } else { p }, label }).collect();
            if let Some(auc) = Auc.score(&separated) {
                prop_assert!((auc - 1.0).abs() < 1e-12);
            }
        }
    }
}
