//! ML100K-LOO-FULL: leave-one-out, full ranking over every item.
//!
//! For each user the model scores all items given the user's train history.
//! Validation masks the train items; test masks the train items and the
//! validation item. Items are ordered by score, descending, ties going to the
//! lower item index, so the target's rank is
//! `1 + #{unmasked j: s_j > s_t} + #{unmasked j ≠ t: s_j = s_t and j < t}`.

use std::collections::BTreeMap;

use rayon::prelude::*;

use crate::metrics::{
    Catalog, HitRate, ItemCoverage, ListMetric, MeanAveragePrecision, Mrr, Ndcg, Novelty,
    Precision, RankingMetric, Recall,
};

/// The leave-one-out split, with users and items as dense indices.
#[derive(Debug, Clone, Default)]
pub struct LooSplit {
    /// Number of items; item indices are `0..n_items` in ascending external id order.
    pub n_items: usize,
    /// Each user's train items, in protocol order (time, then log order).
    pub train: Vec<Vec<u32>>,
    /// Each user's second-last item.
    pub valid: Vec<u32>,
    /// Each user's last item.
    pub test: Vec<u32>,
}

impl LooSplit {
    /// Number of users.
    pub fn n_users(&self) -> usize {
        self.train.len()
    }

    /// Training interactions per item.
    pub fn train_popularity(&self) -> Vec<u64> {
        let mut counts = vec![0u64; self.n_items];
        for &item in self.train.iter().flatten() {
            counts[item as usize] += 1;
        }
        counts
    }
}

/// Which held-out item to evaluate against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The second-last item; for tuning and early stopping.
    Valid,
    /// The last item; read once, for the final number.
    Test,
}

/// A model that scores every item for a user.
pub trait FullRanker: Sync {
    /// Writes one score per item into `scores` (`scores.len()` is the number of
    /// items) for `user`, whose train history is `history`. Higher is better.
    fn score_user(&self, user: u32, history: &[u32], scores: &mut [f32]);

    /// Like [`score_user`](Self::score_user), for models that read the whole
    /// sequence before the target: `before_target` is the train items and, at
    /// the test stage, the validation item after them. Models fitted on the
    /// train part alone keep the default, which ignores it (as RecBole does).
    fn score_sequence(
        &self,
        user: u32,
        history: &[u32],
        before_target: &[u32],
        scores: &mut [f32],
    ) {
        let _ = before_target;
        self.score_user(user, history, scores);
    }
}

/// Results of one protocol run.
#[derive(Debug, Clone)]
pub struct LooReport {
    /// Metric name → value averaged over users.
    pub metrics: BTreeMap<String, f64>,
    /// Each user's top-10 list, best first.
    pub top_lists: Vec<Vec<u32>>,
}

/// The `k` best unmasked items, best first: score descending, ties to the
/// lower index, NaN last.
pub fn top_k(scores: &[f32], masked: &[bool], k: usize) -> Vec<u32> {
    let key = |s: f32| if s.is_nan() { f32::NEG_INFINITY } else { s };
    let mut candidates: Vec<(f32, u32)> = scores
        .iter()
        .enumerate()
        .filter(|(i, _)| !masked[*i])
        .map(|(i, &s)| (key(s), i as u32))
        .collect();
    let order = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
    if candidates.len() > k {
        candidates.select_nth_unstable_by(k, order);
        candidates.truncate(k);
    }
    candidates.sort_unstable_by(order);
    candidates.into_iter().map(|(_, item)| item).collect()
}

/// Runs the protocol for `model` on `split` at `stage`.
pub fn evaluate_loo(model: &dyn FullRanker, split: &LooSplit, stage: Stage) -> LooReport {
    let ranking_metrics: Vec<Box<dyn RankingMetric>> = vec![
        Box::new(HitRate { k: 10 }),
        Box::new(Ndcg { k: 10 }),
        Box::new(Mrr { k: 10 }),
        Box::new(Precision { k: 10 }),
        Box::new(MeanAveragePrecision { k: 10 }),
        Box::new(HitRate { k: 20 }),
        Box::new(Ndcg { k: 20 }),
        Box::new(Mrr { k: 20 }),
        Box::new(Recall { k: 20 }),
    ];
    let per_user: Vec<(Vec<f64>, Vec<u32>)> = (0..split.n_users())
        .into_par_iter()
        .map_init(
            || (vec![0f32; split.n_items], vec![false; split.n_items], Vec::new()),
            |(scores, masked, sequence), user| {
                let history = &split.train[user];
                let target = match stage {
                    Stage::Valid => split.valid[user],
                    Stage::Test => split.test[user],
                };
                masked.iter_mut().for_each(|m| *m = false);
                for &item in history {
                    masked[item as usize] = true;
                }
                if stage == Stage::Test {
                    masked[split.valid[user] as usize] = true;
                }
                // The target itself is never masked, even if the user saw it before.
                masked[target as usize] = false;
                sequence.clear();
                sequence.extend_from_slice(history);
                if stage == Stage::Test {
                    sequence.push(split.valid[user]);
                }
                model.score_sequence(user as u32, history, sequence, scores);
                let ranked = top_k(scores, masked, 20);
                let values = ranking_metrics.iter().map(|m| m.score(&ranked, &[target])).collect();
                (values, ranked.into_iter().take(10).collect())
            },
        )
        .collect();
    let n_users = per_user.len().max(1) as f64;
    let mut metrics = BTreeMap::new();
    for (i, metric) in ranking_metrics.iter().enumerate() {
        metrics.insert(metric.name(), per_user.iter().map(|(v, _)| v[i]).sum::<f64>() / n_users);
    }
    let top_lists: Vec<Vec<u32>> = per_user.into_iter().map(|(_, list)| list).collect();
    let popularity = split.train_popularity();
    let catalog = Catalog {
        n_items: split.n_items,
        popularity: &popularity,
        n_users: split.n_users() as u64,
        dissimilarity: &|_, _| 1.0,
    };
    metrics.insert("coverage@10".into(), ItemCoverage.score(&top_lists, &catalog));
    metrics.insert("novelty@10".into(), Novelty.score(&top_lists, &catalog));
    LooReport { metrics, top_lists }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scores every item by a fixed table, regardless of the user.
    struct Fixed(Vec<f32>);

    impl FullRanker for Fixed {
        fn score_user(&self, _user: u32, _history: &[u32], scores: &mut [f32]) {
            scores.copy_from_slice(&self.0);
        }
    }

    #[test]
    fn ties_go_to_the_lower_index_and_masks_apply() {
        let scores = [1.0, 3.0, 3.0, 2.0, f32::NAN];
        assert_eq!(top_k(&scores, &[false; 5], 5), vec![1, 2, 3, 0, 4]);
        assert_eq!(top_k(&scores, &[false, true, false, false, false], 2), vec![2, 3]);
    }

    #[test]
    fn hand_computed_ranks() {
        // 5 items, scores 4 > (3 = 3) > 1 > 0.
        let model = Fixed(vec![4.0, 3.0, 3.0, 1.0, 0.0]);
        let split = LooSplit {
            n_items: 5,
            // user 0 saw item 0; valid 1, test 2.   user 1 saw 4; valid 3, test 0.
            train: vec![vec![0], vec![4]],
            valid: vec![1, 3],
            test: vec![2, 0],
        };
        // Test, user 0: item 0 and 1 masked → 2 is first (rank 1).
        // Test, user 1: 4 and 3 masked → 0 first (rank 1).
        let test = evaluate_loo(&model, &split, Stage::Test);
        assert_eq!(test.metrics["hr@10"], 1.0);
        assert_eq!(test.metrics["mrr@10"], 1.0);
        // Valid, user 0: 0 masked → 1 ranks first. user 1: 4 masked → 0,1,2 above 3: rank 4.
        let valid = evaluate_loo(&model, &split, Stage::Valid);
        assert_eq!(valid.metrics["mrr@10"], (1.0 + 0.25) / 2.0);
        let ndcg = (1.0 + 1.0 / 5f64.log2()) / 2.0;
        assert!((valid.metrics["ndcg@10"] - ndcg).abs() < 1e-12);
        assert_eq!(valid.top_lists[1], vec![0, 1, 2, 3]);
    }

    /// Scores only the successor of the last item it is shown.
    struct NextOfLast;

    impl FullRanker for NextOfLast {
        fn score_user(&self, _user: u32, _history: &[u32], scores: &mut [f32]) {
            scores.iter_mut().for_each(|s| *s = 0.0);
        }

        fn score_sequence(&self, _: u32, _: &[u32], before_target: &[u32], scores: &mut [f32]) {
            scores.iter_mut().for_each(|s| *s = 0.0);
            let last = *before_target.last().expect("a history") as usize;
            scores[(last + 1) % scores.len()] = 1.0;
        }
    }

    #[test]
    fn sequence_models_see_the_validation_item_at_test_only() {
        // Train 0, 1; valid 2; test 3. At validation the last item shown is 1
        // (→ predicts 2, a hit); at test it must be 2 (→ predicts 3, a hit).
        let split = LooSplit { n_items: 6, train: vec![vec![0, 1]], valid: vec![2], test: vec![3] };
        for stage in [Stage::Valid, Stage::Test] {
            let metrics = evaluate_loo(&NextOfLast, &split, stage).metrics;
            assert_eq!(metrics["mrr@10"], 1.0, "{stage:?}: {metrics:?}");
        }
    }
}
