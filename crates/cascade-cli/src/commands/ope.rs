//! `cascade ope`: off-policy evaluation of the exploring traffic in the
//! workspace's store (`cascade_app::policy_evaluation`).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use cascade_app::Progress;
use cascade_app::Workspace;
use cascade_app::ab_testing::simulator::GroundTruth;
use cascade_app::policy_evaluation::{LogFilter, OpeSettings, describe, evaluate};

use crate::{Common, print_json};

/// For a log `cascade simulate` made: its ground truth, fitted again.
#[derive(Debug, Args)]
pub struct SimulatedTruthArgs {
    /// For a log `cascade simulate` made: the data its ground truth was
    /// fitted on; each policy's true click rate on the logged requests is
    /// then reported beside the estimates.
    #[arg(long)]
    simulated_truth: Option<PathBuf>,
    /// The simulation's `--truth-lambda`.
    #[arg(long, default_value_t = 250.0)]
    truth_lambda: f64,
    /// The simulation's `--target-ctr`.
    #[arg(long, default_value_t = 0.1)]
    target_ctr: f64,
}

impl SimulatedTruthArgs {
    /// The simulator's ground truth, if asked for (fitted in a scratch
    /// workspace of its own).
    pub fn fit(&self, workspace: &Workspace, progress: Progress) -> Result<Option<GroundTruth>> {
        let Some(data) = &self.simulated_truth else { return Ok(None) };
        let scratch = tempfile::tempdir()?;
        let truth = GroundTruth::fit(
            scratch.path().join("truth"),
            workspace.config.clone(),
            Some(data),
            (self.truth_lambda, self.target_ctr),
            progress,
        )?;
        Ok(Some(truth))
    }
}

/// `cascade ope`'s options.
#[derive(Debug, Args)]
pub struct OpeArgs {
    /// A policy to evaluate on the logged lists, repeated: `greedy`,
    /// `epsilon_greedy:EPSILON` or `plackett_luce:TEMPERATURE`.
    #[arg(long = "target", required = true)]
    targets: Vec<String>,
    /// Only lists this logged policy drew, e.g. `plackett_luce(temperature=0.1)`
    /// [default: every explored list].
    #[arg(long)]
    behaviour: Option<String>,
    /// Only lists served to this experiment's variant, `EXPERIMENT/VARIANT`
    /// (the arm that logged with exploration) [default: every variant].
    #[arg(long)]
    variant: Option<String>,
    /// Also estimate every other target's lift over this one (pass it as a
    /// --target too), with a paired bootstrap interval.
    #[arg(long)]
    lift_over: Option<String>,
    /// Bootstrap resamples per interval.
    #[arg(long, default_value_t = 1000)]
    bootstrap: usize,
    /// Two-sided level of the intervals.
    #[arg(long, default_value_t = 0.05)]
    alpha: f64,
    /// Lists drawn per request to estimate a Plackett-Luce target's
    /// probability of each candidate at each slot.
    #[arg(long, default_value_t = 200)]
    monte_carlo_samples: usize,
    /// Also estimate on this many consecutive parts of the log, each held
    /// to its own truth (with --simulated-truth): errors and coverage.
    #[arg(long, default_value_t = 1)]
    parts: usize,
    #[command(flatten)]
    truth: SimulatedTruthArgs,
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    common: Common,
}

pub fn run(args: OpeArgs) -> Result<()> {
    let workspace = args.common.open_workspace()?;
    let settings = OpeSettings {
        targets: args.targets,
        lists: LogFilter {
            behaviour: args.behaviour,
            variant: args.variant.as_deref().map(LogFilter::parse_variant).transpose()?,
        },
        lift_over: args.lift_over,
        bootstrap: args.bootstrap,
        alpha: args.alpha,
        monte_carlo_samples: args.monte_carlo_samples,
        parts: args.parts,
        seed: args.seed,
    };
    let progress = Progress { quiet: args.json };
    let truth = args.truth.fit(&workspace, progress)?;
    let report = evaluate(&workspace, &settings, truth.as_ref(), progress)?;
    match args.json {
        true => print_json(&report),
        false => {
            print!("{}", describe(&report));
            Ok(())
        }
    }
}
