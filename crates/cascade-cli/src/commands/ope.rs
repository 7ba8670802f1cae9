//! `cascade ope`: off-policy evaluation of the exploring traffic in the
//! workspace's store (`cascade_app::policy_evaluation`).

use anyhow::Result;
use clap::Args;

use cascade_app::Progress;
use cascade_app::policy_evaluation::{OpeSettings, describe, evaluate};

use crate::{Common, print_json};

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
        behaviour: args.behaviour,
        bootstrap: args.bootstrap,
        alpha: args.alpha,
        monte_carlo_samples: args.monte_carlo_samples,
        seed: args.seed,
    };
    let report = evaluate(&workspace, &settings, Progress { quiet: args.json })?;
    match args.json {
        true => print_json(&report),
        false => {
            print!("{}", describe(&report));
            Ok(())
        }
    }
}
