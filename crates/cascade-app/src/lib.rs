//! The composition root of Cascade: a workspace (config, store, datasets),
//! the model registry, the protocol runs, and the wiring that turns them
//! into a serving system. The `cascade` binary parses arguments and calls
//! this crate; so can anyone embedding the engine.

pub mod ab_testing;
pub mod bench;
pub mod evaluation;
pub mod experiments;
pub mod model_selection;
pub mod policy_evaluation;
pub mod policy_learning;
pub mod progress;
pub mod ranking;
pub mod registry;
pub mod report;
pub mod serving;
pub mod training;
pub mod workspace;

pub use progress::Progress;
pub use registry::{ModelKind, Protocol};
pub use workspace::Workspace;
