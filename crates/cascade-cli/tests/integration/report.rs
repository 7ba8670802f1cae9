//! `cascade report` on MovieLens-100k through the real binary: its numbers
//! agree with `cascade eval` and with themselves, and the page is one
//! self-contained file a real Chromium renders with every plot.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::{cascade_on, movielens_dir, texts};

/// `cascade.toml` with a small `[report]`: popularity and BPR-MF (two
/// seeds, two epochs), and the two default click models (LR two epochs).
fn small_report_config() -> String {
    let shipped = include_str!("../../../../cascade.toml");
    let replaced = shipped
        .replacen(
            "models = [\"pop\", \"itemknn\", \"ease\", \"bpr-mf\"]",
            "models = [\"pop\", \"bpr-mf\"]",
            1,
        )
        .replacen("seeds = 3 ", "seeds = 2 ", 1);
    assert_ne!(replaced, shipped, "the [report] defaults moved: update this fixture");
    format!("{replaced}\n[training.bpr-mf]\nmax_epochs = 2\n\n[training.lr]\nmax_epochs = 2\n")
}

fn model<'a>(report: &'a Value, section: &str, name: &str) -> &'a Value {
    report[section].as_array().unwrap().iter().find(|m| m["model"] == name).unwrap()
}

/// Renders `page` in headless Chromium and returns the DOM it built, or
/// `None` (with a message) when no Chromium can start here. CI installs
/// one and sets `CASCADE_CHROMIUM`, where failing to start is an error.
pub fn rendered_dom(page: &Path) -> Option<String> {
    let required = std::env::var("CASCADE_CHROMIUM").ok();
    let binary = required.clone().unwrap_or_else(|| "chromium".into());
    let output = Command::new(&binary)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"])
        .arg(format!("file://{}", page.display()))
        .output();
    match output {
        Ok(output) if output.status.success() => {
            Some(String::from_utf8_lossy(&output.stdout).into_owned())
        }
        failed => {
            assert!(required.is_none(), "CASCADE_CHROMIUM={binary} did not start: {failed:?}");
            eprintln!("skipping the Chromium check: `{binary}` did not start ({failed:?})");
            None
        }
    }
}

#[test]
fn the_report_agrees_with_eval_and_renders_offline_in_chromium() {
    let Some(data) = movielens_dir() else { return };
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("report.toml");
    std::fs::write(&config, small_report_config()).unwrap();
    let (workspace, out) = (work.path().join("ws"), work.path().join("out"));
    let config_args = ["--config", config.to_str().unwrap()];
    let mut args = vec!["report", "--quiet", "--out", out.to_str().unwrap()];
    args.extend(config_args);
    let output = cascade_on(&data, &workspace, &args);
    let (stdout, stderr) = texts(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    for name in ["report.html", "report.json", "report.md"] {
        assert!(stdout.contains(&out.join(name).display().to_string()), "{stdout}");
    }
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();

    // The curves are the protocol's metrics at every K.
    let pop = model(&report, "item_ranking", "pop");
    let run = &pop["runs"][0];
    let metric = |name: &str| run["metrics"][name].as_f64().unwrap();
    let at = |curve: &str, k: usize| run[curve][k - 1].as_f64().unwrap();
    assert!((at("ndcg_at_k", 10) - metric("ndcg@10")).abs() < 1e-12, "{run}");
    assert!((at("ndcg_at_k", 20) - metric("ndcg@20")).abs() < 1e-12, "{run}");
    assert!((at("recall_at_k", 10) - metric("hr@10")).abs() < 1e-12, "{run}");
    assert!((at("recall_at_k", 20) - metric("recall@20")).abs() < 1e-12, "{run}");
    assert_eq!(run["ndcg_at_k"].as_array().unwrap().len(), 50);
    // … and `cascade eval`'s, on the same workspace.
    let mut eval_args = vec!["eval", "--protocol", "loo-full", "--model", "pop", "--json"];
    eval_args.extend(config_args);
    let eval = cascade_on(&data, &workspace, &eval_args);
    let (eval_out, eval_err) = texts(&eval);
    assert!(eval.status.success(), "{eval_err}");
    let eval: Value = serde_json::from_str(&eval_out).unwrap();
    assert_eq!(eval["metrics"]["ndcg@10"].as_f64(), Some(metric("ndcg@10")), "{eval}");

    // Trained models run per seed; their spread is over those runs.
    let bpr = model(&report, "item_ranking", "bpr-mf");
    let runs = bpr["runs"].as_array().unwrap();
    assert_eq!(runs.iter().map(|r| r["seed"].as_u64().unwrap()).collect::<Vec<_>>(), [2026, 2027]);
    assert_eq!(runs[0]["training"].as_array().unwrap().len(), 2, "two epochs, two points");
    let ndcg: Vec<f64> = runs.iter().map(|r| r["metrics"]["ndcg@10"].as_f64().unwrap()).collect();
    let mean = (ndcg[0] + ndcg[1]) / 2.0;
    assert!((bpr["summary"]["ndcg@10"]["mean"].as_f64().unwrap() - mean).abs() < 1e-12);
    assert_eq!(pop["summary"]["ndcg@10"]["runs"], 1, "a count model runs once");

    // Calibration bins and activity buckets partition the test rows.
    for name in ["bias-ctr", "lr"] {
        let run = &model(&report, "click_prediction", name)["runs"][0];
        let rows = run["test_rows"].as_u64().unwrap();
        let sum = |field: &str, key: &str| -> u64 {
            run[field].as_array().unwrap().iter().map(|b| b[key].as_u64().unwrap()).sum()
        };
        assert_eq!(sum("calibration", "rows"), rows, "{name}");
        assert_eq!(sum("auc_by_activity", "rows"), rows, "{name}");
        assert_eq!(run["auc_by_activity"].as_array().unwrap().len(), 4, "{name}");
    }
    assert!(report["off_policy"]["skipped"].as_str().unwrap().contains("no explored lists"));
    assert_eq!(report["data"]["events"], 100_000);

    // One file: every plot inline, nothing to fetch, no script.
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    let plots = std::fs::read_dir(out.join("plots")).unwrap().count();
    assert!(plots >= 9, "curves, qualities, training, calibration, activity: {plots}");
    assert_eq!(html.matches("<svg").count(), plots);
    for forbidden in ["<script", " src=", " href=", "<link"] {
        assert!(!html.contains(forbidden), "the page must open offline: found {forbidden}");
    }
    let markdown = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert_eq!(markdown.matches("](plots/").count(), plots);

    if let Some(dom) = rendered_dom(&out.join("report.html")) {
        assert_eq!(dom.matches("<figure").count(), plots, "{}", &dom[..dom.len().min(2000)]);
        assert!(dom.contains("<figure id=\"ndcg_at_k\"><svg"), "the plot is drawn inline");
        assert!(dom.contains("Cascade evaluation report"));
    }
}
