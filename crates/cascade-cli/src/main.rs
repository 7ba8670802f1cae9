//! `cascade`: the command-line entry point. Thin: it parses arguments, shows
//! progress, and calls the library crates.

mod commands;

/// The server allocates per candidate (features, sources, vectors) on many
/// threads; glibc's malloc took ~15% of its CPU in a profile of `cascade
/// bench serve` (docs/benchmarks.md), mimalloc far less. It is built
/// without transparent huge pages (`no_thp` in Cargo.toml): with them, each
/// fault on freshly returned memory zeroed 2 MB, and the p99 at 1,000 req/s
/// was about twice as high in an alternating A/B (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};

use cascade_app::experiments::new_items_replay::NewItemsReplay;
use cascade_app::experiments::online_replay::{OnlineOptimizer, Replay};
use cascade_app::experiments::serving_replay::ServingReplay;
use cascade_app::ranking::ContextFeatures;
use cascade_app::{ModelKind, Protocol, Workspace};

/// Cascade — a recommender engine from raw events to a ranked list.
///
/// Start with `cascade quickstart`: it fetches MovieLens-100k (or takes
/// `--from DIR`), imports it, runs the batch pipeline, trains the baselines and
/// prints honest leave-one-out metrics and a sample top-10 list.
#[derive(Debug, Parser)]
#[command(name = "cascade", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Options every data command shares.
#[derive(Debug, Clone, Args)]
struct Common {
    /// Config file declaring tables, columns, feature types and labels
    /// [default: the built-in MovieLens-100k config, see cascade.toml].
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Workspace directory for the store, offline Parquet files and outputs
    /// [default: the config's workspace.dir, `cascade-workspace`].
    #[arg(long, global = true)]
    workspace: Option<PathBuf>,
}

/// Settings of trained models a user may override.
#[derive(Debug, Clone, Copy, Args)]
struct TrainingFlags {
    /// Seed of trained models (initialisation, shuffling, negative sampling)
    /// [default: `[training.<model>] seed` of the config, else 2026].
    #[arg(long)]
    seed: Option<u64>,
    /// Learning rate of the sparse tables (SASRec: of its dense layers)
    /// [default: `[training.<model>] learning_rate` of the config, else the model's own].
    #[arg(long)]
    lr: Option<f32>,
    /// Examples (pairs, windows) per training step
    /// [default: `[training.<model>] batch_size` of the config, else the model's own].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Upper bound on training epochs
    /// [default: `[training.<model>] max_epochs`, else the model's own].
    #[arg(long)]
    max_epochs: Option<usize>,
    /// Epochs without a better validation metric before stopping
    /// [default: `[training.<model>] patience`, else the model's own].
    #[arg(long)]
    patience: Option<usize>,
    /// Seconds of training after which the run stops at the end of the
    /// epoch, keeping its best epoch [default: `[training.<model>] time_budget_s`, else none].
    #[arg(long)]
    time_budget_s: Option<f64>,
}

impl From<TrainingFlags> for cascade_models::training::Overrides {
    fn from(flags: TrainingFlags) -> Self {
        cascade_models::training::Overrides {
            seed: flags.seed,
            learning_rate: flags.lr,
            batch_size: flags.batch_size,
            max_epochs: flags.max_epochs,
            patience: flags.patience,
            time_budget_s: flags.time_budget_s,
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Fetch MovieLens-100k, import, run the pipeline, train and evaluate the
    /// baselines, and show a sample user's top 10. The fastest way to see Cascade work.
    Quickstart {
        /// Use this already-downloaded MovieLens-100k directory instead of the internet.
        #[arg(long, env = "CASCADE_DATA_DIR")]
        from: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// Download or locate public datasets and verify their checksums.
    Dataset {
        #[command(subcommand)]
        command: DatasetCommand,
    },
    /// Import users, items and events from the files the config names.
    Import {
        /// Directory the config's source paths are relative to.
        #[arg(long, env = "CASCADE_DATA_DIR")]
        from: PathBuf,
        /// Report bad rows (count and first examples) and import the rest,
        /// instead of stopping at the first.
        #[arg(long)]
        skip_bad_rows: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Append events to the log from standard input (one JSON object per line,
    /// as `POST /v1/events` takes them: user_id, item_id, event_type and
    /// optionally event_id, value, ts_ms). Each event is acknowledged on
    /// standard output only once it is durable on disk; fails if every line
    /// was rejected.
    Append {
        /// Most events written per commit.
        #[arg(long, default_value_t = 1000)]
        max_batch: usize,
        #[command(flatten)]
        common: Common,
    },
    /// Append a JSON-lines file of events to the log (the format `append`
    /// reads) with group commit; prints counts as JSON, and fails naming the
    /// file and line of any rejected or unreadable line once the others are
    /// durable.
    Ingest {
        /// The events, one JSON object per line.
        file: PathBuf,
        /// Most events written per commit.
        #[arg(long, default_value_t = 10_000)]
        max_batch: usize,
        #[command(flatten)]
        common: Common,
    },
    /// Consume the Redis event stream as one worker of its consumer group and
    /// keep the Redis online store's features up to date (needs
    /// `[online_store] backend = "redis"`). Entries a dead worker left
    /// pending are claimed once idle for --claim-idle-ms.
    StreamWorker {
        /// This worker's name in the consumer group; give each worker its own.
        #[arg(long, default_value = "worker-1")]
        consumer: String,
        /// Take over entries pending on another consumer this long.
        #[arg(long, default_value_t = 5_000)]
        claim_idle_ms: u64,
        /// Most entries read, applied and acked at once.
        #[arg(long, default_value_t = 1_000)]
        batch: usize,
        /// Exit (printing what it did as JSON) once the group has had
        /// nothing to do for this long, instead of running until killed.
        #[arg(long)]
        exit_when_drained_ms: Option<u64>,
        #[command(flatten)]
        common: Common,
    },
    /// Copy the workspace's event log into the Redis event stream, exactly
    /// once (the forwarded offset is stored with the entries); prints the
    /// count as JSON.
    ForwardEvents {
        /// Keep tailing the log instead of exiting when caught up.
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Replay MovieLens-100k's ratings in time order: train on the first 80%,
    /// then score each later day before learning from it with a frozen model,
    /// an online-updated one and one retrained daily; AUC and LogLoss of
    /// each as JSON (an experiment outside PROTOCOLS.md's splits).
    Replay {
        /// Ranking model.
        #[arg(long, value_parser = model_parser(), default_value = "deepfm")]
        model: ModelKind,
        /// Share of rows, in time order, the initial model trains on.
        #[arg(long, default_value_t = 0.8)]
        initial_share: f64,
        /// How often the online arm scores, then learns, in minutes.
        #[arg(long, default_value_t = 60)]
        online_chunk_minutes: u64,
        /// Leave out the daily-retrain arm (one training per replayed day).
        #[arg(long)]
        skip_retrain: bool,
        /// Also draw each arm's AUC per replayed week into this SVG file.
        #[arg(long)]
        plot: Option<PathBuf>,
        /// The online arm's sparse optimizer: training's (lazy Adam, step
        /// scaled) or row-wise Adagrad.
        #[arg(long, value_parser = online_optimizer_parser(), default_value = "training")]
        online_optimizer: OnlineOptimizer,
        /// MovieLens-100k directory [default: $CASCADE_DATA_DIR, or the workspace's store].
        #[arg(long, env = "CASCADE_DATA_DIR")]
        data: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// Hold items out of BPR-MF's training, then replay their interactions in
    /// time order against the serving models: each item joins at its first
    /// interaction as `PUT /v1/items/{id}` adds it; how often ANN recall finds
    /// it, with and without online learning (JSON).
    ReplayNewItems {
        /// Items in each of the validation and test sets.
        #[arg(long, default_value_t = 100)]
        items: usize,
        /// A hit is the item in the user's top K of `recall/ann`.
        #[arg(long, default_value_t = 50)]
        k: usize,
        /// Seed of the draw of items.
        #[arg(long, default_value_t = 2026)]
        seed: u64,
        /// MovieLens-100k directory [default: $CASCADE_DATA_DIR, or the workspace's store].
        #[arg(long, env = "CASCADE_DATA_DIR")]
        data: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// Build a server from the log up to the last --test-weeks weeks (users
    /// new in those weeks join with their first one or two interactions),
    /// then ask it for each user's top K: HR@K of their next item, by their
    /// interactions in the build, for the all-data build `serve` uses, the
    /// protocol-split build it replaced, and popularity (JSON).
    ReplayServing {
        /// Ranking model of both builds.
        #[arg(long, value_parser = model_parser(), default_value = "deepfm")]
        ranker: ModelKind,
        /// Weeks at the end of the log that are replayed, not built from.
        #[arg(long, default_value_t = 4)]
        test_weeks: u32,
        /// A hit is the next item in the user's top K.
        #[arg(long, default_value_t = 10)]
        k: usize,
        /// MovieLens-100k directory [default: $CASCADE_DATA_DIR, or the workspace's store].
        #[arg(long, env = "CASCADE_DATA_DIR")]
        data: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// Export the store to Parquet and run the batch pipeline: protocol splits,
    /// point-in-time training samples, serving features and statistics.
    Pipeline {
        #[command(flatten)]
        common: Common,
    },
    /// Train one model with early stopping on validation; writes its best
    /// epoch as a checkpoint and its training curves (SVG) under
    /// `<workspace>/models/<model>/`, and prints test metrics once.
    Train {
        /// Model (a trained one: bpr-mf, neumf, two-tower, sasrec, lr, fm,
        /// wide-deep, deepfm, dcnv2, din, dien).
        #[arg(long, value_parser = model_parser())]
        model: ModelKind,
        /// MovieLens-100k directory to import first (idempotent) [default: $CASCADE_DATA_DIR].
        #[arg(long, env = "CASCADE_DATA_DIR")]
        data: Option<PathBuf>,
        #[command(flatten)]
        overrides: TrainingFlags,
        #[command(flatten)]
        common: Common,
    },
    /// Serve recommendations over HTTP: trains the retrieval model (ANN
    /// recall), item-CF, popularity and a ranking model on the workspace's
    /// data, then answers `POST /v1/recommend` and the rest of the API.
    Serve {
        /// Address to listen on (port 0 picks a free port; the bound address
        /// is printed on the first line of stdout).
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: std::net::SocketAddr,
        /// Ranking model: a CTR architecture (lr, fm, wide-deep, deepfm, dcnv2, din, dien).
        #[arg(long, value_parser = model_parser(), default_value = "deepfm")]
        ranker: ModelKind,
        /// MovieLens-100k directory to import first (idempotent) [default: $CASCADE_DATA_DIR].
        #[arg(long, env = "CASCADE_DATA_DIR")]
        data: Option<PathBuf>,
        /// Serve the checkpoints `cascade train` wrote here (`bpr-mf/` and
        /// the ranker's), and reload when they change; without it, train at start.
        #[arg(long)]
        models: Option<PathBuf>,
        /// Learn as events come: the ranker from the stream's labelled
        /// samples (changed rows published every 5 s, the model checkpointed
        /// to <workspace>/online/<ranker>/ every 10 min), and the retrieval
        /// vectors of new items and new users from each consumption. Off by
        /// default: docs/results.md finds no gain for the ranker yet, and a
        /// small cost to the built items for the new items' gain.
        #[arg(long)]
        online_learning: bool,
        #[command(flatten)]
        common: Common,
    },
    /// System benchmarks (results go in docs/benchmarks.md).
    Bench {
        #[command(subcommand)]
        command: commands::bench::BenchCommand,
    },
    /// Evaluate a model under a protocol of PROTOCOLS.md.
    Eval {
        /// Protocol.
        #[arg(long, value_parser = protocol_parser(), default_value = "loo-full")]
        protocol: Protocol,
        /// Model, or `auto`.
        #[arg(long, value_parser = model_choice_parser())]
        model: ModelChoice,
        /// MovieLens-100k directory to import first (idempotent) [default: $CASCADE_DATA_DIR].
        #[arg(long, env = "CASCADE_DATA_DIR")]
        data: Option<PathBuf>,
        /// IPINYOU-SAMPLE directory (train.fm.txt, test.fm.txt, featindex.fm.txt).
        #[arg(long, env = "CASCADE_IPINYOU_DIR")]
        ipinyou_dir: Option<PathBuf>,
        /// Choose ItemKNN's k and shrinkage on the validation item instead of
        /// using RecBole's defaults (k=100, shrink=0). EASE is always tuned.
        #[arg(long)]
        tune: bool,
        /// Off-protocol: ranking models also read the config's `[context]`
        /// features (hour of day, day of week), derived from each event's
        /// time. ML100K-CTR excludes the timestamp, so results with this flag
        /// are not comparable to the protocol's reference numbers.
        #[arg(long)]
        with_context: bool,
        #[command(flatten)]
        overrides: TrainingFlags,
        /// Print one JSON object on stdout and nothing else.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Search a leave-one-out model's hyperparameters on the validation item
    /// only (EASE λ; ItemKNN k and shrinkage; embedding size, dropout,
    /// learning rate, max length and negatives of the deep models): the
    /// defaults, then seeded random draws from the model's grid. Every trial
    /// goes to `<workspace>/tuning/<model>.jsonl`; the best to
    /// `<model>.best.json`, which `cascade eval` (`--model auto` too) uses.
    /// Online experiments: results from the store, A/A calibration.
    Experiment {
        #[command(subcommand)]
        command: commands::experiment::ExperimentCommand,
    },
    /// Simulated users drive a running `cascade serve` over HTTP: lists
    /// asked for, examined with position bias, clicked by a ground truth
    /// fitted on all the data, clicks posted back; prints a JSON summary.
    Simulate(commands::experiment::SimulateArgs),
    /// Off-policy evaluation: each target policy's click rate per
    /// impression estimated from the explored lists in the store (DM, IPS,
    /// SNIPS, DR, SNDR, Switch-DR, DR-OS; SIPS, IIPS, RIPS), with bootstrap
    /// intervals; stop the server first.
    Ope(commands::ope::OpeArgs),
    /// Policy learning: a softmax ranking policy learned from the older
    /// explored lists by REINFORCE with capped importance weights and the
    /// top-K correction (`[policy_learning]`), swept over K and the cap,
    /// and judged on the newer lists off-policy (and, on a simulated log,
    /// against the simulated users); stop the server first.
    LearnPolicy(commands::learn_policy::LearnPolicyArgs),
    /// The evaluation report: every model `[report]` names under its
    /// protocol (mean ± sd over seeds), NDCG@K and Recall@K curves, list
    /// coverage, diversity, novelty and popularity bias, calibration and
    /// AUC by user activity, training curves and costs, off-policy
    /// estimates; one self-contained HTML page plus JSON and Markdown.
    Report(commands::report::ReportArgs),
    Tune {
        /// Model (loo-full).
        #[arg(long, value_parser = model_parser())]
        model: ModelKind,
        /// Settings to try, the defaults included.
        #[arg(long, default_value_t = 8)]
        budget: usize,
        /// Event data directory to import first (idempotent) [default: $CASCADE_DATA_DIR].
        #[arg(long, env = "CASCADE_DATA_DIR")]
        data: Option<PathBuf>,
        #[command(flatten)]
        overrides: TrainingFlags,
        /// Print one JSON object on stdout and nothing else.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        common: Common,
    },
}

/// What `cascade eval --model` names.
#[derive(Debug, Clone, Copy)]
enum ModelChoice {
    Auto,
    Model(ModelKind),
}

#[derive(Debug, Subcommand)]
enum DatasetCommand {
    /// Download the dataset (or verify `--from DIR`) and print its directory.
    Fetch {
        /// Dataset name.
        #[arg(value_enum)]
        dataset: DatasetName,
        /// Take this already-downloaded copy instead of downloading.
        #[arg(long, env = "CASCADE_DATA_DIR")]
        from: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DatasetName {
    /// MovieLens-100k from GroupLens (943 users, 1,682 movies, 100,000 ratings).
    #[value(name = "movielens-100k")]
    MovieLens100k,
}

/// Prints a command's report as pretty JSON on stdout.
pub fn print_json(report: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(report)?);
    Ok(())
}

/// The online optimizers `cascade replay` offers, parsed into the experiment's type.
fn online_optimizer_parser() -> impl TypedValueParser<Value = OnlineOptimizer> {
    let names = OnlineOptimizer::ALL.map(|optimizer| PossibleValue::new(optimizer.name()));
    PossibleValuesParser::new(names).try_map(|name| name.parse::<OnlineOptimizer>())
}

/// The models users may name, with their help lines, parsed into the registry's type.
/// `--model` of `cascade eval`: a model, or `auto`.
fn model_choice_parser() -> impl TypedValueParser<Value = ModelChoice> {
    let auto = PossibleValue::new("auto").help(
        "The leave-one-out model (pop, itemknn, ease, bpr-mf, sasrec) with the best validation NDCG@10 at its tuned setting, scored on test once (loo-full)",
    );
    let names = std::iter::once(auto)
        .chain(ModelKind::ALL.map(|model| PossibleValue::new(model.name()).help(model.about())));
    PossibleValuesParser::new(names).try_map(|name| match name.as_str() {
        "auto" => Ok(ModelChoice::Auto),
        _ => name.parse::<ModelKind>().map(ModelChoice::Model),
    })
}

fn model_parser() -> impl TypedValueParser<Value = ModelKind> {
    let names = ModelKind::ALL.map(|model| PossibleValue::new(model.name()).help(model.about()));
    PossibleValuesParser::new(names).try_map(|name| name.parse::<ModelKind>())
}

/// The protocols of PROTOCOLS.md, parsed into the registry's type.
fn protocol_parser() -> impl TypedValueParser<Value = Protocol> {
    let names =
        Protocol::ALL.map(|protocol| PossibleValue::new(protocol.name()).help(protocol.about()));
    PossibleValuesParser::new(names).try_map(|name| name.parse::<Protocol>())
}

impl Common {
    /// The workspace these options name.
    fn open_workspace(&self) -> anyhow::Result<Workspace> {
        Workspace::open(self.config.as_deref(), self.workspace.as_deref())
    }
}

/// Cascade's own parallel work (evaluation, data preparation, gradient
/// shards) runs on rayon's global pool, sized by `RAYON_NUM_THREADS` or the
/// cores. candle's kernels run on the calling thread:
/// - elementwise ops go to a spin-waiting barrier pool sized by
///   `CANDLE_NUM_THREADS`; with our small per-step tensors its hand-offs cost
///   more than they save (FM: 0.37 s/epoch on one candle thread, 0.91 s on
///   two; docs/benchmarks.md), so it defaults to 1;
/// - matmul reads `RAYON_NUM_THREADS` on every call (re-reading the CPU list
///   from /proc when it is unset) and splits gemm across that many rayon
///   threads, which gained nothing (SASRec 12.9 vs 12.0 s/epoch, DIN 17.6 vs
///   18.5, DCNv2 0.78 vs 0.80) and fights the gradient shards for the cores;
///   the pool gets its size explicitly and the variable is set to 1 for
///   candle alone.
///
/// A `CANDLE_NUM_THREADS` the user set wins.
#[allow(unsafe_code)]
fn configure_threads() {
    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    // SAFETY: called first thing in `main`, before any other thread exists
    // (the pool below starts after, and is told its size, so it reads no
    // environment).
    unsafe {
        std::env::set_var("RAYON_NUM_THREADS", "1");
        if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
            std::env::set_var("CANDLE_NUM_THREADS", "1");
        }
    }
    // Only fails if the pool already exists, in which case it keeps its size.
    let _ = rayon::ThreadPoolBuilder::new().num_threads(threads).build_global();
}

fn main() -> ExitCode {
    configure_threads();
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Quickstart { from, common } => commands::quickstart::run(&common, from.as_deref()),
        Command::Dataset {
            command: DatasetCommand::Fetch { dataset: DatasetName::MovieLens100k, from, common },
        } => commands::dataset::fetch_movielens(&common, from.as_deref()),
        Command::Import { from, skip_bad_rows, common } => {
            commands::import::run(&common, &from, skip_bad_rows)
        }
        Command::Append { max_batch, common } => {
            commands::append::run(&common, max_batch, commands::append::Input::Stdin)
        }
        Command::ReplayNewItems { items, k, seed, data, common } => {
            let options = NewItemsReplay { items, k, seed };
            commands::replay::new_items(&common, data.as_deref(), options)
        }
        Command::Replay {
            model,
            initial_share,
            online_chunk_minutes,
            skip_retrain,
            plot,
            online_optimizer,
            data,
            common,
        } => commands::replay::online(
            &common,
            data.as_deref(),
            &Replay {
                model,
                initial_share,
                online_chunk_minutes,
                skip_retrain,
                plot,
                online_optimizer,
            },
        ),
        Command::Ingest { file, max_batch, common } => {
            commands::append::run(&common, max_batch, commands::append::Input::File(file))
        }
        Command::Pipeline { common } => commands::pipeline::run(&common),
        Command::ReplayServing { ranker, test_weeks, k, data, common } => {
            let replay = ServingReplay { ranker, test_weeks, k };
            commands::replay::serving(&common, data.as_deref(), &replay)
        }
        Command::StreamWorker { consumer, claim_idle_ms, batch, exit_when_drained_ms, common } => {
            let options = commands::stream_worker::WorkerOptions {
                consumer,
                claim_idle_ms,
                batch,
                exit_when_drained_ms,
            };
            commands::stream_worker::run_worker(&common, &options)
        }
        Command::ForwardEvents { follow, common } => {
            commands::stream_worker::run_forwarder(&common, follow)
        }
        Command::Bench { command } => commands::bench::run(command),
        Command::Experiment { command } => commands::experiment::run(command),
        Command::Simulate(args) => commands::experiment::run_simulation(args),
        Command::Ope(args) => commands::ope::run(args),
        Command::LearnPolicy(args) => commands::learn_policy::run(args),
        Command::Report(args) => commands::report::run(args),
        Command::Serve { addr, ranker, data, models, online_learning, common } => {
            let options = cascade_app::serving::server::ServeOptions {
                ranker,
                online_learning,
                data,
                models_dir: models,
            };
            commands::serve::run(&common, addr, &options)
        }
        Command::Train { model, data, overrides, common } => {
            commands::train::run(&common, model, data.as_deref(), overrides.into())
        }
        Command::Tune { model, budget, data, overrides, json, common } => {
            commands::tune::run(&common, model, budget, data.as_deref(), overrides.into(), json)
        }
        Command::Eval {
            protocol,
            model,
            data,
            ipinyou_dir,
            tune,
            with_context,
            overrides,
            json,
            common,
        } => {
            let context = match with_context {
                true => ContextFeatures::Declared,
                false => ContextFeatures::Excluded,
            };
            let options =
                commands::eval::EvalOptions { tune, overrides: overrides.into(), json, context };
            match (protocol, model) {
                (_, ModelChoice::Model(model)) => match (protocol, model.ctr_arch()) {
                    (Protocol::Ipinyou, Some(arch)) => commands::ipinyou::run(
                        arch,
                        ipinyou_dir.as_deref(),
                        options.overrides,
                        json,
                    ),
                    _ => commands::eval::run(&common, protocol, model, data.as_deref(), options),
                },
                (_, ModelChoice::Auto) => {
                    commands::eval::run_auto(&common, protocol, data.as_deref(), options)
                }
            }
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
