//! ML100K-LOO-FULL: leave-one-out, full ranking over every item.
//!
//! For each user the model scores all items given the user's train history.
//! Validation masks the train items; test masks the train items and the
//! validation item. Items are ordered by score, descending, ties going to the
//! lower item index, so the target's rank is
//! `1 + #{unmasked j: s_j > s_t} + #{unmasked j ≠ t: s_j = s_t and j < t}`.

use std::collections::{BTreeMap, BinaryHeap};

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

/// One user's scoring request: who, their train history, and the sequence
/// before the target (the train items, then the validation item at test).
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    /// Dense user index.
    pub user: u32,
    /// The user's train items, in protocol order.
    pub history: &'a [u32],
    /// What a sequence model reads before the target.
    pub before_target: &'a [u32],
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

    /// Scores a batch of users into `scores`, one row of `n_items` per
    /// query, in order. The default scores them one at a time; a model whose
    /// scores are a product of user and item matrices overrides it to make
    /// one product per batch.
    fn score_batch(&self, queries: &[Query<'_>], scores: &mut [f32]) {
        let n_items = scores.len() / queries.len().max(1);
        for (query, row) in queries.iter().zip(scores.chunks_mut(n_items.max(1))) {
            self.score_sequence(query.user, query.history, query.before_target, row);
        }
    }
}

/// Users scored together: evaluation holds `EVAL_BATCH_USERS × n_items`
/// scores per thread (2 × 256 × 24k items × 4 bytes = 50 MB), never a
/// users × items matrix.
pub const EVAL_BATCH_USERS: usize = 256;

/// Results of one protocol run.
#[derive(Debug, Clone)]
pub struct LooReport {
    /// Metric name → value averaged over users.
    pub metrics: BTreeMap<String, f64>,
    /// Each user's top-10 list, best first.
    pub top_lists: Vec<Vec<u32>>,
    /// Each user's 0-based rank of the held-out item, if within the depth
    /// ranked ([`evaluate_loo_to_depth`]; 20 otherwise): what NDCG@K and
    /// Recall@K curves read.
    pub target_ranks: Vec<Option<u32>>,
}

/// A kept candidate, ordered so that the heap's greatest is the worst kept:
/// lower score, then higher index.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Kept {
    score: f32,
    item: u32,
}

impl Eq for Kept {}

impl Ord for Kept {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.score.total_cmp(&self.score).then(self.item.cmp(&other.item))
    }
}

impl PartialOrd for Kept {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// The `k` best unmasked items, best first: score descending, ties to the
/// lower index, NaN last. One pass with a `k`-element heap, so memory is
/// O(k) whatever the catalogue.
pub fn top_k(scores: &[f32], masked: &[bool], k: usize) -> Vec<u32> {
    if k == 0 {
        return Vec::new();
    }
    let mut heap: BinaryHeap<Kept> = BinaryHeap::with_capacity(k + 1);
    // Once the heap is full, an item scoring below the worst kept cannot
    // enter (a tie loses too: items come in index order), so most of a
    // large catalogue is passed over by one float comparison.
    let mut worst_kept = f32::NEG_INFINITY;
    for (index, (&score, &is_masked)) in scores.iter().zip(masked).enumerate() {
        if score < worst_kept || is_masked {
            continue;
        }
        let candidate = Kept {
            score: if score.is_nan() { f32::NEG_INFINITY } else { score },
            item: index as u32,
        };
        if heap.len() < k {
            heap.push(candidate);
        } else if let Some(mut worst) = heap.peek_mut()
            && candidate < *worst
        {
            *worst = candidate;
        }
        if heap.len() == k {
            worst_kept = heap.peek().map_or(f32::NEG_INFINITY, |worst| worst.score);
        }
    }
    heap.into_sorted_vec().into_iter().map(|kept| kept.item).collect()
}

fn ranking_metrics() -> Vec<Box<dyn RankingMetric>> {
    vec![
        Box::new(HitRate { k: 10 }),
        Box::new(Ndcg { k: 10 }),
        Box::new(Mrr { k: 10 }),
        Box::new(Precision { k: 10 }),
        Box::new(MeanAveragePrecision { k: 10 }),
        Box::new(HitRate { k: 20 }),
        Box::new(Ndcg { k: 20 }),
        Box::new(Mrr { k: 20 }),
        Box::new(Recall { k: 20 }),
    ]
}

/// One user's metric values, top-10 list and the target's rank.
type UserResult = (Vec<f64>, Vec<u32>, Option<u32>);

/// Scores `users` as one batch and ranks each against its target.
fn evaluate_batch(
    model: &dyn FullRanker,
    split: &LooSplit,
    stage: Stage,
    users: &[usize],
    metrics: &[Box<dyn RankingMetric>],
    depth: usize,
) -> Vec<UserResult> {
    let n_items = split.n_items;
    // At test a sequence model also reads the validation item; at
    // validation what it reads is the train history itself, not a copy.
    let with_valid: Vec<Vec<u32>> = match stage {
        Stage::Valid => Vec::new(),
        Stage::Test => users
            .iter()
            .map(|&user| {
                let mut sequence = split.train[user].clone();
                sequence.push(split.valid[user]);
                sequence
            })
            .collect(),
    };
    let queries: Vec<Query<'_>> = users
        .iter()
        .enumerate()
        .map(|(k, &user)| Query {
            user: user as u32,
            history: &split.train[user],
            before_target: with_valid.get(k).map_or(&split.train[user], Vec::as_slice),
        })
        .collect();
    let mut scores = vec![0f32; queries.len() * n_items];
    model.score_batch(&queries, &mut scores);
    let mut masked = vec![false; n_items];
    users
        .iter()
        .zip(scores.chunks(n_items.max(1)))
        .map(|(&user, row)| {
            let target = match stage {
                Stage::Valid => split.valid[user],
                Stage::Test => split.test[user],
            };
            masked.iter_mut().for_each(|m| *m = false);
            for &item in &split.train[user] {
                masked[item as usize] = true;
            }
            if stage == Stage::Test {
                masked[split.valid[user] as usize] = true;
            }
            // The target itself is never masked, even if the user saw it before.
            masked[target as usize] = false;
            let ranked = top_k(row, &masked, depth.max(20));
            let values =
                metrics.iter().map(|m| m.score(&ranked[..ranked.len().min(20)], &[target]));
            let rank = ranked.iter().position(|&item| item == target).map(|r| r as u32);
            (values.collect(), ranked.into_iter().take(10).collect(), rank)
        })
        .collect()
}

/// Runs the protocol for `model` on `split` at `stage`, in batches of
/// [`EVAL_BATCH_USERS`] users over the rayon pool.
pub fn evaluate_loo(model: &dyn FullRanker, split: &LooSplit, stage: Stage) -> LooReport {
    evaluate_loo_to_depth(model, split, stage, 20)
}

/// [`evaluate_loo`], with each user's target ranked down to `depth` (at
/// least 20) for [`LooReport::target_ranks`].
pub fn evaluate_loo_to_depth(
    model: &dyn FullRanker,
    split: &LooSplit,
    stage: Stage,
    depth: usize,
) -> LooReport {
    let ranking_metrics = ranking_metrics();
    // Batched by history length, so a sequence model's batch is padded to
    // about its own users' length; results go back in user order.
    let mut order: Vec<usize> = (0..split.n_users()).collect();
    order.sort_by_key(|&user| split.train[user].len());
    let batched: Vec<(usize, UserResult)> = order
        .par_chunks(EVAL_BATCH_USERS)
        .flat_map_iter(|users| {
            let results = evaluate_batch(model, split, stage, users, &ranking_metrics, depth);
            users.iter().copied().zip(results).collect::<Vec<_>>()
        })
        .collect();
    let mut per_user: Vec<Option<UserResult>> = vec![None; split.n_users()];
    for (user, result) in batched {
        per_user[user] = Some(result);
    }
    let per_user: Vec<UserResult> = per_user.into_iter().flatten().collect();
    let n_users = per_user.len().max(1) as f64;
    let mut metrics = BTreeMap::new();
    for (i, metric) in ranking_metrics.iter().enumerate() {
        metrics.insert(metric.name(), per_user.iter().map(|(v, ..)| v[i]).sum::<f64>() / n_users);
    }
    let target_ranks = per_user.iter().map(|(.., rank)| *rank).collect();
    let top_lists: Vec<Vec<u32>> = per_user.into_iter().map(|(_, list, _)| list).collect();
    let popularity = split.train_popularity();
    let catalog = Catalog {
        n_items: split.n_items,
        popularity: &popularity,
        n_users: split.n_users() as u64,
        dissimilarity: &|_, _| 1.0,
    };
    metrics.insert("coverage@10".into(), ItemCoverage.score(&top_lists, &catalog));
    metrics.insert("novelty@10".into(), Novelty.score(&top_lists, &catalog));
    LooReport { metrics, top_lists, target_ranks }
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
    fn the_heap_agrees_with_a_full_sort_on_ties_nan_and_masks() {
        let mut state = 7u64;
        let mut next = || {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (state >> 33) as u32
        };
        for trial in 0..200 {
            let n = 1 + (next() % 300) as usize;
            // Few distinct values, so ties are common; some NaN.
            let scores: Vec<f32> = (0..n)
                .map(|_| match next() % 10 {
                    0 => f32::NAN,
                    v => (v % 4) as f32,
                })
                .collect();
            let masked: Vec<bool> = (0..n).map(|_| next() % 5 == 0).collect();
            let k = (next() % 25) as usize;
            let key = |s: f32| if s.is_nan() { f32::NEG_INFINITY } else { s };
            let mut expected: Vec<u32> = (0..n as u32).filter(|&i| !masked[i as usize]).collect();
            expected.sort_by(|&a, &b| {
                key(scores[b as usize]).total_cmp(&key(scores[a as usize])).then(a.cmp(&b))
            });
            expected.truncate(k);
            assert_eq!(top_k(&scores, &masked, k), expected, "trial {trial}");
        }
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
