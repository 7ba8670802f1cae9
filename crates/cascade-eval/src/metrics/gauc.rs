//! GAUC: per-group AUC averaged over the groups that hold both labels,
//! weighted by each group's number of predictions (PROTOCOLS.md, ML100K-CTR).

use std::collections::BTreeMap;

use super::{Auc, Metric, Prediction, PredictionMetric};

/// Group (user) AUC.
#[derive(Debug, Clone, Copy)]
pub struct Gauc;

impl Gauc {
    /// The number of groups that hold both labels, i.e. that GAUC averages over.
    pub fn groups_counted(predictions: &[Prediction]) -> usize {
        by_group(predictions).values().filter(|rows| Auc.score(rows).is_some()).count()
    }
}

fn by_group(predictions: &[Prediction]) -> BTreeMap<u32, Vec<Prediction>> {
    let mut groups: BTreeMap<u32, Vec<Prediction>> = BTreeMap::new();
    for p in predictions {
        groups.entry(p.group).or_default().push(*p);
    }
    groups
}

impl Metric for Gauc {
    fn name(&self) -> String {
        "gauc".into()
    }
}

impl PredictionMetric for Gauc {
    fn score(&self, predictions: &[Prediction]) -> Option<f64> {
        let (mut weighted, mut weight) = (0.0, 0.0);
        for rows in by_group(predictions).values() {
            if let Some(auc) = Auc.score(rows) {
                weighted += auc * rows.len() as f64;
                weight += rows.len() as f64;
            }
        }
        (weight > 0.0).then(|| weighted / weight)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(group: u32, probability: f64, label: bool) -> Prediction {
        Prediction { group, probability, label }
    }

    #[test]
    fn hand_computed() {
        let predictions = [
            // group 1: AUC 1, 2 rows
            p(1, 0.9, true),
            p(1, 0.1, false),
            // group 2: AUC 0, 4 rows (ties none)
            p(2, 0.1, true),
            p(2, 0.9, false),
            p(2, 0.8, false),
            p(2, 0.7, false),
            // group 3: one label only, skipped
            p(3, 0.5, true),
        ];
        assert_eq!(Gauc.score(&predictions), Some(2.0 / 6.0));
        assert_eq!(Gauc::groups_counted(&predictions), 2);
    }
}
