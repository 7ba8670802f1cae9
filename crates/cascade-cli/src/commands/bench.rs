//! `cascade bench …`: each benchmark of `cascade_app::bench` with the
//! options parsed, its report printed as JSON.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Subcommand, ValueEnum};

use cascade_app::ModelKind;
use cascade_app::bench;
use cascade_serve::recall::AnnBackend;
use cascade_serve::synthetic::CatalogSpec;

use crate::{Common, model_parser, print_json};

/// `cascade bench …`'s subcommands.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// HNSW recall (`recall/ann`) against exact search on seeded synthetic
    /// embeddings (clustered, Zipf-skewed): build time, recall@10 and query
    /// latency of both, then 1,000 items inserted as the API adds them
    /// (insert and move time, found at once, recall after), as JSON.
    Ann {
        /// Catalog size.
        #[arg(long, default_value_t = 100_000)]
        items: usize,
        /// Embedding dimension.
        #[arg(long, default_value_t = 64)]
        dim: usize,
        /// Queries (users) to time.
        #[arg(long, default_value_t = 1000)]
        queries: usize,
        /// Candidates each HNSW search examines.
        #[arg(long, default_value_t = 200)]
        ef_search: usize,
        /// HNSW implementations to measure, each on the same data [default: all].
        #[arg(long = "backend", value_enum)]
        backends: Vec<AnnBackendArg>,
    },
    /// Load test of the whole online pipeline (ANN + item-CF + popular
    /// recall, DeepFM ranking, MMR) over real HTTP on loopback, on a seeded
    /// synthetic catalog: an open-loop generator offers each rate and reports
    /// latency percentiles and per-stage means as JSON (medians of --runs).
    Serve {
        /// Catalog size.
        #[arg(long, default_value_t = 100_000)]
        items: usize,
        /// Users with histories (requests pick among them).
        #[arg(long, default_value_t = 20_000)]
        users: usize,
        /// Embedding dimension of the retrieval vectors.
        #[arg(long, default_value_t = 64)]
        dim: usize,
        /// Item categories (taste clusters).
        #[arg(long, default_value_t = 64)]
        categories: usize,
        /// Offered request rate (req/s); repeat for several steps.
        #[arg(long = "rate")]
        rates: Vec<f64>,
        /// Seconds each rate is offered.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Runs per rate; medians are reported.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// After the fixed rates, raise the rate 25% at a time until p99
        /// exceeds this many milliseconds: the maximum sustainable throughput.
        #[arg(long)]
        find_max_p99_ms: Option<f64>,
        /// Load-generator client threads.
        #[arg(long, default_value_t = 32)]
        clients: usize,
        /// HNSW implementation of the ANN stage.
        #[arg(long, value_enum, default_value_t = AnnBackendArg::Usearch)]
        backend: AnnBackendArg,
        /// Candidates each ANN search examines, and the most it returns
        /// [default: the config's `[serve] ann_ef_search`, as `cascade serve`].
        #[arg(long)]
        ef_search: Option<usize>,
        /// Seed of the synthetic catalog.
        #[arg(long, default_value_t = 2026)]
        seed: u64,
        /// Also draw p50/p90/p99 against offered load into this SVG file.
        #[arg(long)]
        plot: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// Durable ingestion over real HTTP: closed-loop clients POST batches of
    /// client-identified events to `/v1/events` on a fresh store and count
    /// what is acknowledged (after the fsync); events/s and batch latency as
    /// JSON (median of --runs).
    Ingest {
        #[command(flatten)]
        bench: bench::ingest::IngestBench,
        #[command(flatten)]
        common: Common,
    },
    /// Freshness over real HTTP: a user clicks their top recommendation, and
    /// from the acknowledgement on `/v1/recommend` is asked until the item is
    /// excluded; p50/p99 of that time as JSON, under background ingest.
    Freshness {
        /// Probes, one user each.
        #[arg(long, default_value_t = 300)]
        probes: usize,
        /// Background events/s from other clients meanwhile (0 for none).
        #[arg(long, default_value_t = 10_000.0)]
        background_rate: f64,
        /// Seed of the synthetic catalog.
        #[arg(long, default_value_t = 2026)]
        seed: u64,
        /// Through Redis: a forwarder, a stream worker and the Redis online
        /// store (CASCADE_REDIS_URL, else a private redis-server).
        #[arg(long)]
        redis: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Experiment results' cost: a ledger takes N exposures (two variants,
    /// ten metrics), then the results are computed from its sums.
    Experiments {
        #[arg(long, default_value_t = 1_000_000)]
        exposures: usize,
        #[arg(long, default_value_t = 100_000)]
        users: usize,
        #[arg(long, default_value_t = 20)]
        repeats: usize,
        #[arg(long, default_value_t = 2026)]
        seed: u64,
    },
    /// Leave-one-out evaluation at scale: a model's fit, its full-ranking
    /// test evaluation (user batches, top-K by heap) and the process's peak
    /// RSS on a seeded synthetic log (Zipf items, 5+ items per user), as JSON.
    Eval {
        #[command(flatten)]
        options: bench::evaluation::EvalBench,
    },
    /// One stream-processor worker applying a synthetic log of sessions
    /// (impressions, then a click) from offset 0: events/s, labelled
    /// samples, and the checkpoint's size, as JSON.
    Stream {
        #[command(flatten)]
        log: bench::stream::SessionLogArgs,
        /// Events per processor page.
        #[arg(long, default_value_t = 10_000)]
        page: usize,
    },
    /// Stream workers on Redis: publish the synthetic session log of `bench
    /// stream` to a fresh Redis stream, drain it with 1, 2, … workers in one
    /// consumer group, and report events/s and bytes per kind of feature key
    /// as JSON (Redis from CASCADE_REDIS_URL, else a private redis-server).
    RedisWorkers {
        #[command(flatten)]
        log: bench::stream::SessionLogArgs,
        /// Worker counts to measure (repeat the flag), each on a fresh stream.
        #[arg(long = "workers", default_values_t = [1, 2])]
        workers: Vec<usize>,
    },
    /// Train a model for a fixed number of epochs on ML100K-LOO-FULL's train
    /// part; prints samples/s, seconds per epoch and peak RSS as JSON.
    Train {
        /// Model to train.
        #[arg(long, value_parser = model_parser())]
        model: ModelKind,
        /// Epochs to run (no early stopping).
        #[arg(long, default_value_t = 5)]
        epochs: usize,
        /// MovieLens-100k directory [default: $CASCADE_DATA_DIR, or the workspace's store].
        #[arg(long, env = "CASCADE_DATA_DIR")]
        data: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// Time import + export + pipeline + statistics on a fresh workspace per
    /// run; prints medians as JSON.
    Pipeline {
        /// Runs to take the median over.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Data directory [default: MovieLens-100k via $CASCADE_DATA_DIR or download].
        #[arg(long, env = "CASCADE_DATA_DIR")]
        data: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
}

/// HNSW implementations (`cascade_serve::recall::AnnBackend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AnnBackendArg {
    /// `instant-distance`: deterministic, single-threaded build.
    #[cfg(feature = "ann-peers")]
    InstantDistance,
    /// `hnsw_rs`: parallel build, SIMD distances.
    #[cfg(feature = "ann-peers")]
    HnswRs,
    /// `usearch`: parallel build, runtime-dispatched SIMD (C++).
    Usearch,
}

impl From<AnnBackendArg> for AnnBackend {
    fn from(arg: AnnBackendArg) -> AnnBackend {
        match arg {
            #[cfg(feature = "ann-peers")]
            AnnBackendArg::InstantDistance => AnnBackend::InstantDistance,
            #[cfg(feature = "ann-peers")]
            AnnBackendArg::HnswRs => AnnBackend::HnswRs,
            AnnBackendArg::Usearch => AnnBackend::Usearch,
        }
    }
}

pub fn run(command: BenchCommand) -> Result<()> {
    match command {
        BenchCommand::Pipeline { runs, data, common } => print_json(&bench::training::pipeline(
            &common.open_workspace()?,
            data.as_deref(),
            runs.max(1),
        )?),
        BenchCommand::Ann { items, dim, queries, ef_search, backends } => {
            let backends: Vec<AnnBackend> = if backends.is_empty() {
                AnnBackend::ALL.to_vec()
            } else {
                backends.into_iter().map(AnnBackend::from).collect()
            };
            print_json(&bench::serving::ann(items, dim, queries, ef_search, &backends)?)
        }
        BenchCommand::Serve {
            items,
            users,
            dim,
            categories,
            rates,
            duration,
            runs,
            find_max_p99_ms,
            clients,
            backend,
            ef_search,
            seed,
            plot,
            common,
        } => {
            let spec = CatalogSpec {
                items,
                users,
                dim,
                categories,
                mean_sessions: 3.0,
                mean_session_length: 8.0,
                seed,
            };
            let report = bench::serving::serve_bench(
                &common.open_workspace()?,
                &bench::serving::ServeBench {
                    spec,
                    backend: backend.into(),
                    ef_search,
                    rates,
                    duration: std::time::Duration::from_secs_f64(duration.max(0.1)),
                    runs,
                    find_max_p99_ms,
                    clients,
                    plot,
                },
            )?;
            print_json(&report)
        }
        BenchCommand::Ingest { bench, common } => {
            print_json(&bench::ingest::ingest_bench(&common.open_workspace()?, &bench)?)
        }
        BenchCommand::Freshness { probes, background_rate, seed, redis, common } => {
            let options = bench::freshness::FreshnessBench { probes, background_rate, seed, redis };
            print_json(&bench::freshness::freshness_bench(&common.open_workspace()?, &options)?)
        }
        BenchCommand::Experiments { exposures, users, repeats, seed } => {
            let options = bench::experiments::ExperimentsBench { exposures, users, repeats, seed };
            print_json(&bench::experiments::experiments_bench(&options)?)
        }
        BenchCommand::Eval { options } => print_json(&bench::evaluation::eval_bench(&options)?),
        BenchCommand::Stream { log, page } => {
            print_json(&bench::stream::stream_bench(&bench::stream::StreamBench { log, page })?)
        }
        BenchCommand::RedisWorkers { log, workers } => {
            let options = bench::redis_workers::RedisWorkersBench { log, workers };
            print_json(&bench::redis_workers::redis_workers_bench(&options)?)
        }
        BenchCommand::Train { model, epochs, data, common } => {
            let workspace = common.open_workspace()?;
            print_json(&bench::training::train(&workspace, model, data.as_deref(), epochs.max(1))?)
        }
    }
}
