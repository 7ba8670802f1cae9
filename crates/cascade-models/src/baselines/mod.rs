//! Non-neural baselines. Each is fitted on train interactions only and scores
//! every item for a user through [`cascade_eval::protocols::FullRanker`].

mod bias_ctr;
pub mod ease;
mod item_knn;
mod most_popular;

pub use bias_ctr::BiasCtr;
pub use ease::{Ease, EaseConfig};
pub use item_knn::{ItemKnn, ItemKnnConfig};
pub use most_popular::MostPopular;
