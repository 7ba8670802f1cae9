//! What the report computes beyond a protocol's own metrics: accuracy at
//! every K, the lists' beyond-accuracy qualities, and a click model's
//! calibration and AUC per user-activity bucket.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use cascade_eval::metrics::{
    Auc, AveragePopularity, Catalog, ExposureGini, IntraListDiversity, ItemCoverage, ListMetric,
    LongTailShare, Novelty, Prediction, PredictionMetric,
};

/// NDCG@K and Recall@K for K = 1..=`max_k`, from each user's 0-based rank
/// of the one held-out item (none when it ranked below the depth). With
/// one relevant item Recall@K is the hit rate and NDCG@K is
/// 1/log2(rank + 2) within K.
pub fn accuracy_curves(ranks: &[Option<u32>], max_k: usize) -> (Vec<f64>, Vec<f64>) {
    let users = ranks.len().max(1) as f64;
    (1..=max_k)
        .map(|k| {
            let within = ranks.iter().flatten().filter(|&&r| (r as usize) < k);
            let (hits, gain) = within
                .fold((0.0, 0.0), |(h, g), &r| (h + 1.0, g + 1.0 / (f64::from(r) + 2.0).log2()));
            (gain / users, hits / users)
        })
        .unzip()
}

/// The served lists' beyond-accuracy qualities.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListQuality {
    /// Share of the catalogue in some list.
    pub coverage: f64,
    /// Mean pairwise category dissimilarity (1 − Jaccard) within a list.
    pub diversity: f64,
    /// Mean self-information of recommended items, in bits.
    pub novelty: f64,
    /// Mean share of users who consumed a recommended item.
    pub average_popularity: f64,
    /// Share of slots outside the 20% most popular items.
    pub long_tail_share: f64,
    /// Gini coefficient of exposure over the catalogue.
    pub exposure_gini: f64,
}

/// Qualities of `lists` (item indices) over a catalogue whose items have
/// `categories` (none: every pair counts as dissimilar).
pub fn list_quality(
    lists: &[Vec<u32>],
    popularity: &[u64],
    n_users: u64,
    categories: &[Vec<String>],
) -> ListQuality {
    let jaccard_distance = |a: u32, b: u32| -> f64 {
        let (a, b) = (&categories[a as usize], &categories[b as usize]);
        if a.is_empty() && b.is_empty() {
            return 1.0;
        }
        let shared = a.iter().filter(|c| b.contains(c)).count();
        1.0 - shared as f64 / (a.len() + b.len() - shared) as f64
    };
    let catalog = Catalog {
        n_items: popularity.len(),
        popularity,
        n_users,
        dissimilarity: &jaccard_distance,
    };
    ListQuality {
        coverage: ItemCoverage.score(lists, &catalog),
        diversity: IntraListDiversity.score(lists, &catalog),
        novelty: Novelty.score(lists, &catalog),
        average_popularity: AveragePopularity.score(lists, &catalog),
        long_tail_share: LongTailShare { head: 0.2 }.score(lists, &catalog),
        exposure_gini: ExposureGini.score(lists, &catalog),
    }
}

/// One bin of a calibration plot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CalibrationBin {
    /// Mean predicted probability of the bin's rows.
    pub predicted: f64,
    /// Their share of positive labels.
    pub observed: f64,
    pub rows: usize,
}

/// Rows binned by predicted probability into `bins` equal-width bins of
/// [0, 1]; empty bins are left out.
pub fn calibration(predictions: &[Prediction], bins: usize) -> Vec<CalibrationBin> {
    let mut sums = vec![(0.0, 0.0, 0usize); bins];
    for p in predictions {
        let bin = ((p.probability * bins as f64) as usize).min(bins - 1);
        sums[bin].0 += p.probability;
        sums[bin].1 += f64::from(u8::from(p.label));
        sums[bin].2 += 1;
    }
    sums.into_iter()
        .filter(|&(_, _, rows)| rows > 0)
        .map(|(predicted, positives, rows)| CalibrationBin {
            predicted: predicted / rows as f64,
            observed: positives / rows as f64,
            rows,
        })
        .collect()
}

/// AUC over the rows of one activity bucket of users.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActivityBucket {
    /// The fewest and most training interactions of the bucket's users.
    pub min_activity: usize,
    pub max_activity: usize,
    pub users: usize,
    pub rows: usize,
    /// `None` when the bucket's rows hold one label only.
    pub auc: Option<f64>,
}

/// Test users split by `activity` (training interactions per user index)
/// into `buckets` groups of about equal size, least active first, and the
/// AUC of each group's rows.
pub fn auc_by_activity(
    predictions: &[Prediction],
    activity: &[usize],
    buckets: usize,
) -> Vec<ActivityBucket> {
    let mut rows_by_user: BTreeMap<u32, Vec<Prediction>> = BTreeMap::new();
    for p in predictions {
        rows_by_user.entry(p.group).or_default().push(*p);
    }
    let mut users: Vec<u32> = rows_by_user.keys().copied().collect();
    let active = |u: u32| activity.get(u as usize).copied().unwrap_or(0);
    users.sort_by_key(|&u| (active(u), u));
    let per_bucket = users.len().div_ceil(buckets.max(1)).max(1);
    users
        .chunks(per_bucket)
        .map(|group| {
            let rows: Vec<Prediction> =
                group.iter().flat_map(|u| rows_by_user[u].iter().copied()).collect();
            ActivityBucket {
                min_activity: group.first().map_or(0, |&u| active(u)),
                max_activity: group.last().map_or(0, |&u| active(u)),
                users: group.len(),
                rows: rows.len(),
                auc: Auc.score(&rows),
            }
        })
        .collect()
}

/// Mean and sample standard deviation of each named value over runs.
pub fn mean_and_sd(runs: &[BTreeMap<String, f64>]) -> BTreeMap<String, (f64, f64)> {
    let mut by_name: HashMap<&str, Vec<f64>> = HashMap::new();
    for run in runs {
        for (name, &value) in run {
            by_name.entry(name).or_default().push(value);
        }
    }
    by_name
        .into_iter()
        .map(|(name, values)| {
            let n = values.len() as f64;
            let mean = values.iter().sum::<f64>() / n;
            let sd = match values.len() {
                0 | 1 => 0.0,
                _ => (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt(),
            };
            (name.to_owned(), (mean, sd))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curves_count_hits_within_k_and_discount_by_rank() {
        let ranks = [Some(0), Some(2), None, Some(9)];
        let (ndcg, recall) = accuracy_curves(&ranks, 10);
        assert_eq!(recall[0], 0.25);
        assert_eq!(recall[2], 0.5);
        assert_eq!(recall[9], 0.75);
        let expected = (1.0 + 1.0 / 4f64.log2() + 1.0 / 11f64.log2()) / 4.0;
        assert!((ndcg[9] - expected).abs() < 1e-12);
        assert!(ndcg.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn calibration_bins_average_what_falls_in_them() {
        let row = |probability, label| Prediction { group: 0, probability, label };
        let bins = calibration(&[row(0.05, false), row(0.15, true), row(0.12, false)], 10);
        assert_eq!(bins.len(), 2);
        assert!((bins[1].predicted - 0.135).abs() < 1e-12);
        assert_eq!((bins[1].observed, bins[1].rows), (0.5, 2));
    }

    #[test]
    fn activity_buckets_split_users_least_active_first() {
        let row = |group, probability, label| Prediction { group, probability, label };
        let rows = [row(0, 0.9, true), row(0, 0.1, false), row(1, 0.2, true), row(1, 0.8, false)];
        let buckets = auc_by_activity(&rows, &[5, 1], 2);
        assert_eq!((buckets[0].min_activity, buckets[0].auc), (1, Some(0.0)));
        assert_eq!((buckets[1].max_activity, buckets[1].auc), (5, Some(1.0)));
    }

    #[test]
    fn genres_make_lists_more_or_less_diverse() {
        let categories: Vec<Vec<String>> = [vec!["a"], vec!["a"], vec!["b"]]
            .into_iter()
            .map(|c| c.into_iter().map(String::from).collect())
            .collect();
        let same = list_quality(&[vec![0, 1]], &[1, 1, 1], 3, &categories);
        let apart = list_quality(&[vec![0, 2]], &[1, 1, 1], 3, &categories);
        assert_eq!((same.diversity, apart.diversity), (0.0, 1.0));
    }

    #[test]
    fn the_spread_of_one_run_is_zero_and_of_two_is_their_sample_sd() {
        let run = |v: f64| BTreeMap::from([("ndcg@10".to_owned(), v)]);
        assert_eq!(mean_and_sd(&[run(0.3)])["ndcg@10"], (0.3, 0.0));
        let (mean, sd) = mean_and_sd(&[run(0.1), run(0.3)])["ndcg@10"];
        assert!((mean - 0.2).abs() < 1e-12 && (sd - 0.02f64.sqrt()).abs() < 1e-12);
    }
}
