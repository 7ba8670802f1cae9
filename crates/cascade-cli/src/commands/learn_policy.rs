//! `cascade learn-policy`: a ranking policy learned from the explored
//! lists in the workspace's store (`cascade_app::policy_learning`).

use anyhow::Result;
use clap::Args;

use cascade_app::Progress;
use cascade_app::policy_learning::{LearningSettings, describe, learn};

use super::ope::SimulatedTruthArgs;
use crate::{Common, print_json};

/// `cascade learn-policy`'s options; the learning itself is configured in
/// `[policy_learning]`.
#[derive(Debug, Args)]
pub struct LearnPolicyArgs {
    /// Only lists this logged policy drew, e.g. `plackett_luce(temperature=0.1)`
    /// [default: every explored list].
    #[arg(long)]
    behaviour: Option<String>,
    /// K values of the top-K correction tried at the configured cap.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16,32")]
    sweep_top_k: Vec<usize>,
    /// Importance-weight caps tried at the configured K (`inf`: uncapped).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1,2.718281828459045,7.38905609893065,20.085536923187668,inf"
    )]
    sweep_cap: Vec<f64>,
    /// Bootstrap resamples per off-policy interval.
    #[arg(long, default_value_t = 500)]
    bootstrap: usize,
    /// Two-sided level of every interval.
    #[arg(long, default_value_t = 0.05)]
    alpha: f64,
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    #[command(flatten)]
    truth: SimulatedTruthArgs,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    common: Common,
}

pub fn run(args: LearnPolicyArgs) -> Result<()> {
    let workspace = args.common.open_workspace()?;
    if let Some(k) = args.sweep_top_k.iter().find(|&&k| k == 0) {
        anyhow::bail!("--sweep-top-k: K = {k} must be at least 1");
    }
    if let Some(cap) = args.sweep_cap.iter().find(|&&c| c.is_nan() || c < 1.0) {
        anyhow::bail!("--sweep-cap: a cap of {cap} must be 1 or more (inf: uncapped)");
    }
    let settings = LearningSettings {
        config: workspace.config.policy_learning.clone(),
        behaviour: args.behaviour,
        top_k_sweep: args.sweep_top_k,
        cap_sweep: args.sweep_cap,
        bootstrap: args.bootstrap,
        alpha: args.alpha,
        seed: args.seed,
    };
    let progress = Progress { quiet: args.json };
    let truth = args.truth.fit(&workspace, progress)?;
    let report = learn(&workspace, &settings, truth.as_ref(), progress)?;
    match args.json {
        true => print_json(&report),
        false => {
            print!("{}", describe(&report));
            Ok(())
        }
    }
}
