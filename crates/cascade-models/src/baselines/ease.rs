//! EASE (Steck, WWW 2019): a closed-form item–item linear model.
//! With G = XᵀX + λI and P = G⁻¹, the weights are B_ij = −P_ij / P_jj for
//! i ≠ j and B_jj = 0; a user's scores are x_u B, the sum of the B rows of the
//! items in their history.
//!
//! Shapes: X is users × items (binary); G, P, B are items × items.

use rayon::prelude::*;

use cascade_eval::protocols::FullRanker;

use crate::interactions::{Interactions, distinct_items};
use crate::linalg::{NotPositiveDefinite, invert_spd_in_place};

/// EASE hyperparameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EaseConfig {
    /// L2 regularisation λ on the diagonal of the Gram matrix.
    pub lambda: f64,
}

/// A fitted EASE model.
#[derive(Debug, Clone)]
pub struct Ease {
    n_items: usize,
    weights: Vec<f32>,
}

/// The Gram matrix XᵀX of the binary interactions, row-major f32 (counts,
/// exact below 2²⁴ co-occurrences).
pub fn gram_matrix(data: &Interactions) -> Vec<f32> {
    let n = data.n_items;
    let mut gram = vec![0f32; n * n];
    gram.par_chunks_mut(n.max(1)).enumerate().for_each(|(i, row)| {
        for &user in &data.by_item[i] {
            for &j in &data.by_user[user as usize] {
                row[j as usize] += 1.0;
            }
        }
    });
    gram
}

impl Ease {
    /// Fits EASE from a precomputed Gram matrix (so a λ sweep computes it once).
    pub fn fit_from_gram(
        gram: &[f32],
        n_items: usize,
        config: EaseConfig,
    ) -> Result<Ease, NotPositiveDefinite> {
        Ease::fit_consuming_gram(gram.to_vec(), n_items, config)
    }

    /// Fits EASE over the Gram matrix's own storage: one fit at 50k items
    /// needs two n × n f32 matrices (20 GB), not three.
    pub fn fit_consuming_gram(
        gram: Vec<f32>,
        n_items: usize,
        config: EaseConfig,
    ) -> Result<Ease, NotPositiveDefinite> {
        let mut p = gram;
        for i in 0..n_items {
            p[i * n_items + i] += config.lambda as f32;
        }
        invert_spd_in_place(&mut p, n_items)?;
        let diagonal: Vec<f32> = (0..n_items).map(|j| p[j * n_items + j]).collect();
        // B_ij = −P_ij / P_jj over P's own storage: no third n × n matrix.
        p.par_chunks_mut(n_items.max(1)).enumerate().for_each(|(i, row)| {
            for (j, value) in row.iter_mut().enumerate() {
                *value = if i == j { 0.0 } else { -*value / diagonal[j] };
            }
        });
        Ok(Ease { n_items, weights: p })
    }

    /// Fits EASE on the interactions.
    pub fn fit(data: &Interactions, config: EaseConfig) -> Result<Ease, NotPositiveDefinite> {
        Ease::fit_consuming_gram(gram_matrix(data), data.n_items, config)
    }
}

impl FullRanker for Ease {
    fn score_user(&self, _user: u32, history: &[u32], scores: &mut [f32]) {
        scores.iter_mut().for_each(|s| *s = 0.0);
        for &i in &distinct_items(history) {
            let row = &self.weights[i as usize * self.n_items..(i as usize + 1) * self.n_items];
            for (score, &w) in scores.iter_mut().zip(row) {
                *score += w;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_solve_the_ridge_problem() {
        // For EASE, B minimises ||X − XB||² + λ||B||² subject to diag(B) = 0, so
        // for every column j: (G + λI) b_j = G e_j − μ e_j for some μ, i.e. the
        // residual of the normal equations is zero off the diagonal.
        let data =
            Interactions::new(4, &[vec![0, 1], vec![1, 2, 3], vec![0, 2], vec![0, 1, 3], vec![3]]);
        let gram = gram_matrix(&data);
        let lambda = 0.7;
        let model = Ease::fit_from_gram(&gram, 4, EaseConfig { lambda }).unwrap();
        let n = 4;
        for j in 0..n {
            for i in 0..n {
                if i == j {
                    assert_eq!(model.weights[i * n + j], 0.0);
                    continue;
                }
                let mut lhs = lambda * model.weights[i * n + j] as f64;
                for k in 0..n {
                    lhs += f64::from(gram[i * n + k]) * model.weights[k * n + j] as f64;
                }
                assert!(
                    (lhs - f64::from(gram[i * n + j])).abs() < 1e-5,
                    "normal equation ({i},{j}): {lhs} vs {}",
                    gram[i * n + j]
                );
            }
        }
    }

    #[test]
    fn co_consumed_items_score_higher() {
        let data = Interactions::new(3, &[vec![0, 1], vec![0, 1], vec![0, 1], vec![2]]);
        let model = Ease::fit(&data, EaseConfig { lambda: 1.0 }).unwrap();
        let mut scores = [0.0; 3];
        model.score_user(0, &[0], &mut scores);
        assert!(scores[1] > scores[2]);
    }
}
