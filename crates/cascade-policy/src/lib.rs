//! The reinforcement-learning part of the model: exploring what the ranker
//! is unsure of, logging what makes that feedback usable, and evaluating
//! other policies on the log without shipping them.
//!
//! - [`exploration`]: policies that turn a ranked candidate list into a
//!   served list with some randomness (ε-greedy slots, Plackett-Luce
//!   sampling), and the probability each served item had of being where it
//!   is ([`Propensities`]): the whole slate's, the item at its position's,
//!   and the prefix's up to it. Exact in closed form where one exists,
//!   Monte-Carlo with its stated error where not; exactly 1 for a list
//!   served without exploration.
//! - [`ope`]: off-policy estimators over logged rounds (DM, IPS, SNIPS, DR,
//!   SNDR, Switch-DR, DR with optimistic shrinkage) and over logged slates
//!   (standard, independent and reward-interaction IPS), effective sample
//!   size, and bootstrap intervals. The formulas are Open Bandit
//!   Pipeline's and are held to it by a committed fixture
//!   (`tests/fixtures/`).
//! - [`learning`]: a softmax ranking policy learned from the log by
//!   REINFORCE with capped importance weights and the top-K correction,
//!   starting from the supervised ranker.
//!
//! Nothing here knows about HTTP or the store: the serving crate asks an
//! explorer for a list and logs its propensities, and `cascade ope` feeds a
//! log's rounds to the estimators.

mod cholesky;
pub mod exploration;
pub mod learning;
pub mod ope;

pub use exploration::{Explored, Propensities};
