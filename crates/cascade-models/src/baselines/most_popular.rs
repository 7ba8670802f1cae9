//! Most-popular: every user gets the items with the most train interactions.
//! This is the reference model of PROTOCOLS.md that proves the split and tie
//! rule: its score is the raw train count (repeats included).

use cascade_eval::protocols::{FullRanker, LooSplit};

/// Scores each item by its number of train interactions.
#[derive(Debug, Clone)]
pub struct MostPopular {
    counts: Vec<f32>,
}

impl MostPopular {
    /// Counts the train interactions of each item.
    pub fn fit(split: &LooSplit) -> MostPopular {
        MostPopular { counts: split.train_popularity().into_iter().map(|c| c as f32).collect() }
    }

    /// The train count of every item.
    pub fn counts(&self) -> &[f32] {
        &self.counts
    }
}

impl FullRanker for MostPopular {
    fn score_user(&self, _user: u32, _history: &[u32], scores: &mut [f32]) {
        scores.copy_from_slice(&self.counts);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_train_interactions() {
        let split = LooSplit {
            n_items: 3,
            train: vec![vec![0, 2], vec![2, 2]],
            valid: vec![1, 1],
            test: vec![1, 0],
        };
        let model = MostPopular::fit(&split);
        assert_eq!(model.counts(), &[1.0, 0.0, 3.0]);
    }
}
