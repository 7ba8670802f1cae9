//! Protocol runners. A protocol fixes the split, what is masked and how ties
//! are broken (PROTOCOLS.md); the runner takes any model through a small
//! scoring trait and returns named metric values.

pub mod ctr;
pub mod loo_full;

pub use ctr::{CtrExample, CtrReport, CtrScorer, auc_bootstrap_interval, evaluate_ctr};
pub use loo_full::{
    EVAL_BATCH_USERS, FullRanker, LooReport, LooSplit, Query, Stage, evaluate_loo,
    evaluate_loo_to_depth, top_k,
};
