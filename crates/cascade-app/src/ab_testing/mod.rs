//! A/B testing from the command line: an experiment's results read from
//! the workspace's store (`cascade experiment results`), the A/A
//! calibration of the statistics (`cascade experiment calibrate`) and the
//! user simulator that drives a running server (`cascade simulate`).

pub mod new_items;
pub mod paired;
pub mod simulator;

use std::sync::Arc;

use anyhow::{Result, anyhow};
use serde_json::{Value, json};

use cascade_experiments::calibration::{CalibrationSettings, calibrate, srm_monitoring};
use cascade_serve::experiments::ResultsResponse;
use cascade_serve::metrics::Metrics;

use crate::serving::server::{open_experiment_analysis, open_experiments};
use crate::workspace::Workspace;

/// An experiment's results from the workspace's store, every logged event
/// counted. The store is one process's at a time: while `cascade serve`
/// runs, ask it (`GET /v1/experiments/{name}/results`).
pub fn experiment_results(workspace: &Workspace, name: &str) -> Result<ResultsResponse> {
    let metrics = Arc::new(Metrics::default());
    let analysis =
        open_experiment_analysis(workspace, open_experiments(workspace, None)?, metrics)?;
    analysis.results(name).map_err(|e| anyhow!("{e}"))
}

/// The results as a person reads them: one line per treatment and metric.
pub fn describe_results(results: &ResultsResponse) -> String {
    let mut lines = Vec::new();
    let ratio = &results.results.sample_ratio;
    let names: Vec<&str> = results.results.variants.iter().map(|v| v.name.as_str()).collect();
    lines.push(format!(
        "{} ({:?}): users {:?} in {names:?}; SRM χ² p = {:.4}, sequential p = {:.4}{}",
        results.experiment.config.name,
        results.experiment.status,
        ratio.users,
        ratio.chi_square.p_value,
        ratio.sequential_p_value,
        if ratio.mismatch { " — SAMPLE RATIO MISMATCH: no verdict" } else { "" }
    ));
    lines.push(format!("decision: {}", results.results.decision_test));
    for comparison in &results.results.comparisons {
        let relative = &comparison.relative;
        let verdict = match comparison.significant {
            Some(true) => "significant",
            Some(false) => "not significant",
            None => "withheld",
        };
        let cuped = comparison.cuped.map_or(String::new(), |c| {
            format!(", CUPED variance −{:.0}%", 100.0 * c.variance_reduction)
        });
        lines.push(format!(
            "  {} vs control, {}: {:+.2}% [{:+.2}%, {:+.2}%] (Welch p = {:.4}), decision p = {:.4}: {verdict}{cuped}",
            comparison.variant,
            comparison.metric,
            100.0 * relative.estimate,
            100.0 * relative.lower,
            100.0 * relative.upper,
            relative.p_value,
            comparison.decision_p_value,
        ));
    }
    for (variant, guardrail) in &results.guardrails {
        lines.push(format!(
            "  guardrail {variant}: {} requests, error rate {:.4}, p99 ≤ {} ms",
            guardrail.requests,
            guardrail.error_rate,
            guardrail.p99_ms.map_or("∞".into(), |ms| format!("{ms}"))
        ));
    }
    lines.join("\n")
}

/// The A/A calibration at the setting (1,000 experiments × 20
/// looks) and the SRM checks under monitoring (500 experiments × 100
/// looks of 1,000 users, balanced and with a planted 49/51 split).
pub fn calibration_report(seed: u64) -> Value {
    let settings = CalibrationSettings { seed, ..Default::default() };
    let srm_settings = CalibrationSettings {
        experiments: 500,
        looks: 100,
        users_per_look: 1_000,
        seed,
        ..settings
    };
    json!({
        "aa": calibrate(&settings),
        "srm_balanced": srm_monitoring(&srm_settings, 0.5, settings_concentration()),
        "srm_49_51": srm_monitoring(&srm_settings, 0.51, settings_concentration()),
    })
}

/// The sequential SRM test's prior concentration as the shipped config
/// sets it.
fn settings_concentration() -> f64 {
    cascade_core::config::ExperimentSettings::default().srm_concentration
}
