//! ItemKNN: item–item cosine similarity over the binary interaction matrix,
//! `sim(i, j) = |U_i ∩ U_j| / (sqrt(|U_i|·|U_j|) + shrink)`, keeping each
//! item's `k` most similar neighbours. A user's score for a target item t is
//! the sum of `sim(j, t)` over the history items j that are among t's `k`
//! neighbours (the RecBole formulation: the neighbourhood is the target's, not
//! the history item's; the other way round scores markedly worse here).

use rayon::prelude::*;

use cascade_eval::protocols::FullRanker;

use crate::interactions::{Interactions, distinct_items};

/// ItemKNN hyperparameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ItemKnnConfig {
    /// Neighbours kept per item.
    pub k: usize,
    /// Shrinkage added to the cosine denominator; damps similarities built on few users.
    pub shrink: f32,
}

/// A fitted ItemKNN model: each item's neighbours with their similarity.
#[derive(Debug, Clone)]
pub struct ItemKnn {
    /// Each item's top-k neighbours, most similar first.
    neighbours: Vec<Vec<(u32, f32)>>,
    /// The transpose: for history item j, the targets t that have j among
    /// their neighbours, with sim(j, t). Scoring walks this.
    contributions: Vec<Vec<(u32, f32)>>,
}

impl ItemKnn {
    /// Computes the top-k neighbour lists. Memory is O(items × k); co-counts
    /// are accumulated one item at a time in a scratch row, so the full
    /// item × item matrix is never held.
    pub fn fit(data: &Interactions, config: ItemKnnConfig) -> ItemKnn {
        let norms: Vec<f32> =
            data.by_item.iter().map(|users| (users.len() as f32).sqrt()).collect();
        let neighbours = (0..data.n_items)
            .into_par_iter()
            .map_init(
                || vec![0u32; data.n_items],
                |co_counts, i| {
                    let mut touched = Vec::new();
                    for &user in &data.by_item[i] {
                        for &j in &data.by_user[user as usize] {
                            if j as usize != i {
                                if co_counts[j as usize] == 0 {
                                    touched.push(j);
                                }
                                co_counts[j as usize] += 1;
                            }
                        }
                    }
                    let mut sims: Vec<(u32, f32)> = touched
                        .iter()
                        .map(|&j| {
                            let c = co_counts[j as usize] as f32;
                            co_counts[j as usize] = 0;
                            (j, c / (norms[i] * norms[j as usize] + config.shrink))
                        })
                        .collect();
                    let order =
                        |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
                    if sims.len() > config.k {
                        sims.select_nth_unstable_by(config.k, order);
                        sims.truncate(config.k);
                    }
                    sims.sort_unstable_by(order);
                    sims
                },
            )
            .collect::<Vec<Vec<(u32, f32)>>>();
        let mut contributions = vec![Vec::new(); data.n_items];
        for (target, list) in neighbours.iter().enumerate() {
            for &(j, sim) in list {
                contributions[j as usize].push((target as u32, sim));
            }
        }
        ItemKnn { neighbours, contributions }
    }

    /// The neighbours of `item`, most similar first; none for an item the
    /// fit did not see (e.g. one added to a live catalog since).
    pub fn neighbours(&self, item: u32) -> &[(u32, f32)] {
        self.neighbours.get(item as usize).map_or(&[], Vec::as_slice)
    }
}

impl FullRanker for ItemKnn {
    fn score_user(&self, _user: u32, history: &[u32], scores: &mut [f32]) {
        scores.iter_mut().for_each(|s| *s = 0.0);
        for &j in &distinct_items(history) {
            for &(target, sim) in &self.contributions[j as usize] {
                scores[target as usize] += sim;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_cosine() {
        // users: {0,1}, {0,1}, {0,2}. |U0|=3, |U1|=2, |U2|=1.
        let data = Interactions::new(3, &[vec![0, 1], vec![0, 1], vec![0, 2]]);
        let model = ItemKnn::fit(&data, ItemKnnConfig { k: 5, shrink: 0.0 });
        let sim01 = 2.0 / (3f32.sqrt() * 2f32.sqrt());
        let sim02 = 1.0 / 3f32.sqrt();
        assert_eq!(model.neighbours(0)[0].0, 1);
        assert!((model.neighbours(0)[0].1 - sim01).abs() < 1e-6);
        assert!((model.neighbours(0)[1].1 - sim02).abs() < 1e-6);
        assert!(model.neighbours(1).iter().all(|&(j, _)| j == 0), "1 and 2 share no user");
        let mut scores = [0.0; 3];
        model.score_user(0, &[1], &mut scores);
        assert!((scores[0] - sim01).abs() < 1e-6 && scores[2] == 0.0);
    }

    #[test]
    fn the_target_neighbourhood_decides_who_contributes() {
        // Item 0 is everyone's nearest neighbour, but with k = 1 item 0's own
        // single neighbour is item 1, so a history of {2} contributes to 0 only
        // if 2 is 0's neighbour — it is not.
        let data = Interactions::new(3, &[vec![0, 1], vec![0, 1], vec![0, 2]]);
        let model = ItemKnn::fit(&data, ItemKnnConfig { k: 1, shrink: 0.0 });
        assert_eq!(model.neighbours(0), &[(1, 2.0 / (3f32.sqrt() * 2f32.sqrt()))]);
        assert_eq!(model.neighbours(2)[0].0, 0);
        let mut scores = [0.0; 3];
        model.score_user(0, &[2], &mut scores);
        assert_eq!(scores[0], 0.0, "2 is not among 0's neighbours");
        model.score_user(0, &[0], &mut scores);
        assert!(scores[2] > 0.0, "0 is 2's neighbour, so it contributes to 2");
    }

    #[test]
    fn keeps_only_k_neighbours_and_shrink_lowers_similarity() {
        let data = Interactions::new(4, &[vec![0, 1, 2, 3], vec![0, 1], vec![0, 2]]);
        let narrow = ItemKnn::fit(&data, ItemKnnConfig { k: 1, shrink: 0.0 });
        assert_eq!(narrow.neighbours(0).len(), 1);
        let shrunk = ItemKnn::fit(&data, ItemKnnConfig { k: 1, shrink: 10.0 });
        assert!(shrunk.neighbours(0)[0].1 < narrow.neighbours(0)[0].1);
    }
}
