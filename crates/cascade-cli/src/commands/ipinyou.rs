//! `cascade eval --protocol ipinyou`: a ranking model on the iPinYou click
//! log sample (16 one-hot fields; no users or histories), AUC with a 95%
//! bootstrap interval and LogLoss on test, early stopping on validation AUC.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::json;

use cascade_batch::ipinyou::{self, IpinyouRow};
use cascade_eval::protocols::{CtrExample, auc_bootstrap_interval, evaluate_ctr};
use cascade_models::ranking::{CtrArch, CtrFeatures, CtrModelConfig};
use cascade_models::training::Overrides;

use cascade_app::Progress;
use cascade_app::ranking::{self, CtrInputs};

const RESAMPLES: usize = 1000;

fn examples(rows: &[IpinyouRow]) -> Vec<CtrExample<CtrFeatures>> {
    rows.iter()
        .map(|(label, ids)| CtrExample {
            user: 0,
            label: *label,
            features: CtrFeatures {
                fields: ids.iter().map(|&id| vec![id]).collect(),
                history: Vec::new(),
            },
        })
        .collect()
}

/// Trains `arch` on the sample in `dir` and prints the test metrics.
pub fn run(arch: CtrArch, dir: Option<&Path>, overrides: Overrides, json: bool) -> Result<()> {
    if matches!(arch, CtrArch::Din | CtrArch::Dien) {
        bail!(
            "model `{}` reads a user's history, which IPINYOU-SAMPLE does not have; use lr, fm, wide-deep, deepfm or dcnv2",
            arch.name()
        );
    }
    let dir = dir.context(
        "IPINYOU-SAMPLE needs its directory: pass --ipinyou-dir DIR or set CASCADE_IPINYOU_DIR",
    )?;
    let sample = ipinyou::load(dir)?;
    let inputs = CtrInputs {
        train: examples(&sample.train),
        valid: examples(&sample.valid),
        test: examples(&sample.test),
        field_names: sample.field_names,
        item_field: 0,
    };
    let mut config = CtrModelConfig::default_for(arch);
    config.training.apply(&overrides);
    let (model, epochs) = ranking::train(&inputs, &config, Progress { quiet: json })?;
    let report = evaluate_ctr(&model, &inputs.test);
    let (low, high) = auc_bootstrap_interval(&model, &inputs.test, RESAMPLES, config.training.seed);
    let positives = inputs.test.iter().filter(|e| e.label).count();
    if json {
        let output = json!({
            "protocol": "ipinyou",
            "model": arch.name(),
            "metrics": { "auc": report.auc, "auc_95_low": low, "auc_95_high": high, "logloss": report.logloss },
        });
        println!("{output}");
    } else {
        println!(
            "{} on ipinyou ({}), test ({} rows, {positives} clicks):",
            arch.name(),
            ranking::describe(&inputs, &config, &epochs),
            inputs.test.len()
        );
        println!(
            "  auc            {:.4}  (95% bootstrap interval {low:.4} – {high:.4})",
            report.auc
        );
        println!("  logloss        {:.4}", report.logloss);
    }
    Ok(())
}
