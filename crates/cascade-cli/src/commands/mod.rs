//! One module per subcommand.

pub mod append;
pub mod bench;
pub mod bench_freshness;
pub mod bench_ingest;
pub mod bench_redis;
pub mod bench_serving;
pub mod bench_stream;
pub mod dataset;
pub mod eval;
pub mod import;
pub mod ipinyou;
pub mod load;
pub mod pipeline;
pub mod quickstart;
pub mod replay;
pub mod replay_new_items;
pub mod replay_serving;
pub mod serve;
pub mod stream_worker;
pub mod train;
