//! `cascade bench …`: each benchmark of `cascade_app::bench` with the
//! options parsed, its report printed as JSON.

use anyhow::Result;

use cascade_app::bench;
use cascade_serve::recall::AnnBackend;
use cascade_serve::synthetic::CatalogSpec;

use crate::{BenchCommand, print_json};

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
