//! A smoothed-rate click model for the CTR protocol: the log-odds of a
//! positive label are the global log-odds plus a user and an item offset, each
//! estimated from the train rows with Beta-prior smoothing so that rare users
//! and items fall back to the global rate. It needs no training loop and is
//! the floor every learned CTR model must clear.

use cascade_eval::protocols::{CtrExample, CtrScorer};

/// Features the model reads: dense user and item indices.
pub type UserItem = (u32, u32);

/// Fitted offsets.
#[derive(Debug, Clone)]
pub struct BiasCtr {
    global_logit: f64,
    user_offset: Vec<f64>,
    item_offset: Vec<f64>,
}

fn logit(p: f64) -> f64 {
    let p = p.clamp(1e-6, 1.0 - 1e-6);
    (p / (1.0 - p)).ln()
}

impl BiasCtr {
    /// Fits on train rows; `prior_strength` is the pseudo-count of the Beta prior.
    pub fn fit(
        train: &[CtrExample<UserItem>],
        n_users: usize,
        n_items: usize,
        prior_strength: f64,
    ) -> BiasCtr {
        let positives = train.iter().filter(|e| e.label).count() as f64;
        let global = positives / train.len().max(1) as f64;
        let offsets = |n: usize, key: &dyn Fn(&CtrExample<UserItem>) -> usize| {
            let mut counts = vec![(0.0f64, 0.0f64); n];
            for e in train {
                let c = &mut counts[key(e)];
                c.0 += e.label as u8 as f64;
                c.1 += 1.0;
            }
            counts
                .into_iter()
                .map(|(pos, total)| {
                    logit((pos + prior_strength * global) / (total + prior_strength))
                        - logit(global)
                })
                .collect::<Vec<f64>>()
        };
        BiasCtr {
            global_logit: logit(global),
            user_offset: offsets(n_users, &|e| e.features.0 as usize),
            item_offset: offsets(n_items, &|e| e.features.1 as usize),
        }
    }
}

impl CtrScorer<UserItem> for BiasCtr {
    fn predict(&self, examples: &[CtrExample<UserItem>]) -> Vec<f64> {
        examples
            .iter()
            .map(|e| {
                let user = self.user_offset.get(e.features.0 as usize).copied().unwrap_or(0.0);
                let item = self.item_offset.get(e.features.1 as usize).copied().unwrap_or(0.0);
                1.0 / (1.0 + (-(self.global_logit + user + item)).exp())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liked_items_and_generous_users_score_higher() {
        let row = |user, item, label| CtrExample { user, label, features: (user, item) };
        let train = vec![
            row(0, 0, true),
            row(0, 1, false),
            row(1, 0, true),
            row(1, 1, true),
            row(2, 0, true),
            row(2, 1, false),
        ];
        let model = BiasCtr::fit(&train, 3, 2, 1.0);
        let p = model.predict(&[row(0, 0, true), row(0, 1, true), row(1, 1, true)]);
        assert!(p[0] > p[1], "item 0 is liked more than item 1");
        assert!(p[2] > p[1], "user 1 likes more than user 0");
        assert!(p.iter().all(|q| (0.0..=1.0).contains(q)));
    }
}
