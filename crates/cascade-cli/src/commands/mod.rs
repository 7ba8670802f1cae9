//! One module per subcommand.

pub mod append;
pub mod bench;
pub mod dataset;
pub mod eval;
pub mod experiment;
pub mod import;
pub mod ipinyou;
pub mod learn_policy;
pub mod ope;
pub mod pipeline;
pub mod quickstart;
pub mod replay;
pub mod report;
pub mod serve;
pub mod stream_worker;
pub mod train;
pub mod tune;
