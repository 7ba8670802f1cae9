//! `cascade experiment results|calibrate` and `cascade simulate`: online
//! experiments from the command line (`cascade_app::ab_testing`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use cascade_app::Progress;
use cascade_app::ab_testing::simulator::{Activity, SimulationSettings, simulate};
use cascade_app::ab_testing::{calibration_report, describe_results, experiment_results};

use crate::{Common, print_json};

#[derive(Debug, Subcommand)]
pub enum ExperimentCommand {
    /// An experiment's results from the workspace's store (stop the server
    /// first, or ask it: GET /v1/experiments/{name}/results).
    Results {
        /// The experiment's name.
        name: String,
        /// Print the full results as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        common: Common,
    },
    /// A/A calibration of the statistics: false-positive rates of the
    /// fixed-horizon and always-valid tests over 1,000 experiments with 20
    /// looks each, and the SRM checks under continuous monitoring.
    Calibrate {
        #[arg(long, default_value_t = 2026)]
        seed: u64,
    },
    /// Two simulations of the same users (`cascade simulate --per-user-out`
    /// with the same --users and --seed) against servers serving A and B,
    /// compared user by user: the paired lift of B over A in clicks and in
    /// the truth's expected clicks per user, with t intervals (JSON).
    Paired {
        /// A's per-user file.
        #[arg(long)]
        control: PathBuf,
        /// B's per-user file.
        #[arg(long)]
        treatment: PathBuf,
        /// Two-sided level of the intervals.
        #[arg(long, default_value_t = 0.05)]
        alpha: f64,
    },
}

/// `cascade simulate`'s options.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// The running server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
    /// Sent as a bearer token with every request (an admin token passes
    /// every route).
    #[arg(long, env = "CASCADE_SIMULATE_TOKEN")]
    token: Option<String>,
    /// The data the server was built from, for the ground truth
    /// [default: $CASCADE_DATA_DIR].
    #[arg(long, env = "CASCADE_DATA_DIR")]
    data: Option<PathBuf>,
    /// Where the ground truth imports the data (not the server's workspace,
    /// whose store the server holds) [default: a temporary directory].
    #[arg(long)]
    truth_workspace: Option<PathBuf>,
    #[arg(long, default_value_t = 500)]
    users: usize,
    #[arg(long, default_value_t = 4)]
    visits_per_user: usize,
    #[arg(long, default_value_t = 10)]
    list_length: usize,
    /// The truth's click rate on its own top 10.
    #[arg(long, default_value_t = 0.1)]
    target_ctr: f64,
    #[arg(long, default_value_t = 250.0)]
    truth_lambda: f64,
    /// Event type a click is posted as.
    #[arg(long, default_value = "rating")]
    click_event: String,
    /// The click's value (a rating the config labels positive).
    #[arg(long, default_value_t = 5.0)]
    click_value: f64,
    /// `experiment/variant` whose users click `1 + planted_lift` as often
    /// (in an interleaving experiment: items that variant's team placed);
    /// repeat for several.
    #[arg(long)]
    planted_variant: Vec<String>,
    #[arg(long, default_value_t = 0.0)]
    planted_lift: f64,
    /// Fetch this experiment's results from the server at the end (repeat
    /// for several).
    #[arg(long)]
    experiment: Vec<String>,
    /// How visits spread over users: in proportion to each user's
    /// interactions in the data, or the same for all.
    #[arg(long, value_enum, default_value_t = Activity::Data)]
    activity: Activity,
    /// σ of each user's lifelong engagement factor on click chances
    /// (log-normal, mean 1; 0: every user alike).
    #[arg(long, default_value_t = 0.0)]
    engagement_spread: f64,
    /// Mean visits per user before the experiments start (their users'
    /// clicks then are CUPED's covariate); needs --create-experiment.
    #[arg(long, default_value_t = 0)]
    pre_visits_per_user: usize,
    /// A JSON file holding a `POST /v1/experiments` body, created after the
    /// pre-period (repeat for several).
    #[arg(long)]
    create_experiment: Vec<PathBuf>,
    /// Add this many new items (copies of random catalogue items under new
    /// ids, published at the catalogue's clock) through `PUT
    /// /v1/items/{id}` before the experiment's visits, and report per
    /// variant how soon each was shown and first clicked.
    #[arg(long, default_value_t = 0)]
    new_items: usize,
    /// Write each user's experiment-period clicks and expected clicks here,
    /// one JSON line each, for `cascade experiment paired`.
    #[arg(long)]
    per_user_out: Option<PathBuf>,
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// Print only the JSON summary.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    common: Common,
}

pub fn run(command: ExperimentCommand) -> Result<()> {
    match command {
        ExperimentCommand::Results { name, json, common } => {
            let results = experiment_results(&common.open_workspace()?, &name)?;
            match json {
                true => print_json(&results),
                false => {
                    println!("{}", describe_results(&results));
                    Ok(())
                }
            }
        }
        ExperimentCommand::Calibrate { seed } => print_json(&calibration_report(seed)),
        ExperimentCommand::Paired { control, treatment, alpha } => print_json(
            &cascade_app::ab_testing::paired::paired_comparison(&control, &treatment, alpha)?,
        ),
    }
}

pub fn run_simulation(args: SimulateArgs) -> Result<()> {
    let workspace = args.common.open_workspace()?;
    let scratch = tempfile::tempdir()?;
    let truth_dir = args.truth_workspace.clone().unwrap_or_else(|| scratch.path().join("truth"));
    let mut create_experiments = Vec::new();
    for path in &args.create_experiment {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading experiment {}", path.display()))?;
        let body: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("experiment {}: not JSON", path.display()))?;
        create_experiments.push(body);
    }
    let settings = SimulationSettings {
        server: args.server.trim_end_matches('/').to_owned(),
        token: args.token,
        users: args.users,
        visits_per_user: args.visits_per_user,
        list_length: args.list_length,
        target_ctr: args.target_ctr,
        truth_lambda: args.truth_lambda,
        click_event: args.click_event,
        click_value: Some(args.click_value),
        planted_variants: args.planted_variant,
        planted_lift: args.planted_lift,
        experiments: args.experiment,
        activity: args.activity,
        engagement_spread: args.engagement_spread,
        pre_visits_per_user: args.pre_visits_per_user,
        create_experiments,
        new_items: args.new_items,
        per_user_out: args.per_user_out,
        seed: args.seed,
    };
    let progress = Progress { quiet: args.json };
    let summary =
        simulate(truth_dir, workspace.config.clone(), args.data.as_deref(), &settings, progress)?;
    print_json(&summary)
}
