//! Commands as a user runs them: machine-readable evaluation, clear errors.

use crate::{cascade, cascade_on, movielens_dir, texts};

#[test]
fn eval_json_prints_exactly_one_object_with_the_reference_pop_numbers() {
    let Some(data) = movielens_dir() else { return };
    let work = tempfile::tempdir().unwrap();
    let eval = ["eval", "--protocol", "loo-full", "--model", "pop", "--json"];
    let output = cascade_on(&data, work.path(), &eval);
    let (stdout, stderr) = texts(&output);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(stdout.lines().count(), 1, "stdout must hold one JSON line only: {stdout}");
    let value: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(value["protocol"], "loo-full");
    assert_eq!(value["model"], "pop");
    let metrics = &value["metrics"];
    for key in ["hr@10", "ndcg@10", "mrr@10", "recall@20"] {
        assert!(metrics[key].is_f64(), "missing {key}: {stdout}");
    }
    assert!((metrics["hr@10"].as_f64().unwrap() - 0.0859).abs() < 5e-5);
    assert!((metrics["ndcg@10"].as_f64().unwrap() - 0.0449).abs() < 5e-5);

    // The store is reused: a second run imports nothing new and agrees.
    let again = cascade()
        .args(["eval", "--protocol", "ctr", "--model", "bias-ctr", "--json", "--workspace"])
        .arg(work.path())
        .output()
        .unwrap();
    let (stdout, stderr) = texts(&again);
    assert!(again.status.success(), "{stderr}");
    let value: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let auc = value["metrics"]["auc"].as_f64().unwrap();
    assert!(auc > 0.7 && auc < 1.0, "bias-ctr AUC {auc}");
}

#[test]
fn a_model_that_does_not_fit_the_protocol_is_refused_by_name() {
    let output =
        cascade().args(["eval", "--protocol", "ctr", "--model", "pop", "--json"]).output().unwrap();
    let (stdout, stderr) = texts(&output);
    assert!(!output.status.success());
    assert!(stdout.is_empty(), "nothing on stdout on error: {stdout}");
    assert!(stderr.contains("`pop`") && stderr.contains("bias-ctr"), "{stderr}");
}

#[test]
fn unknown_model_lists_the_valid_ones() {
    let output = cascade().args(["eval", "--model", "deepfm-xl"]).output().unwrap();
    let (_, stderr) = texts(&output);
    assert!(!output.status.success());
    assert!(stderr.contains("deepfm-xl") && stderr.contains("itemknn"), "{stderr}");
}

#[test]
fn config_errors_name_the_file_and_key() {
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("bad.toml");
    let text =
        cascade_core::Config::default_toml().replace("history_length = 10", "history_length = 0");
    std::fs::write(&config, text).unwrap();
    let output = cascade()
        .args(["import", "--from", "/nonexistent", "--config"])
        .arg(&config)
        .arg("--workspace")
        .arg(work.path())
        .output()
        .unwrap();
    let (_, stderr) = texts(&output);
    assert!(!output.status.success());
    assert!(stderr.contains("bad.toml") && stderr.contains("pipeline.history_length"), "{stderr}");
}

#[test]
fn import_with_skip_bad_rows_reports_and_continues() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("log.csv"), "who,what,when\nu1,i1,100\nu2,i2,soon\nu3,i3,300\n")
        .unwrap();
    let config = work.path().join("clicks.toml");
    std::fs::write(
        &config,
        r#"
[events]
user = "who"
item = "what"
timestamp = "when"
timestamp_format = "unix"
constant_event_type = "click"
[events.source]
path = "log.csv"
format = "csv"
[labels]
positive_event_types = ["click"]
[users]
id = "who"
[items]
id = "what"
"#,
    )
    .unwrap();
    let run = |extra: &[&str]| {
        cascade()
            .args(["import", "--config"])
            .arg(&config)
            .arg("--from")
            .arg(&data)
            .arg("--workspace")
            .arg(work.path().join("ws"))
            .args(extra)
            .output()
            .unwrap()
    };
    let strict = run(&[]);
    let (_, stderr) = texts(&strict);
    assert!(!strict.status.success());
    assert!(stderr.contains("log.csv:3: column `when`: expected Unix seconds"), "{stderr}");

    let lenient = run(&["--skip-bad-rows"]);
    let (stdout, stderr) = texts(&lenient);
    assert!(lenient.status.success(), "{stderr}");
    assert!(stdout.contains("2 written") && stdout.contains("1 bad rows skipped"), "{stdout}");
    assert!(stdout.contains("log.csv:3"), "{stdout}");
    assert!(stdout.contains("holds 2 events"), "{stdout}");

    // A file of which no row can be read is a failed import, skipping or not.
    std::fs::write(data.join("log.csv"), "who,what,when\nu1,i1,soon\nu2,i2,later\n").unwrap();
    let nothing = run(&["--skip-bad-rows"]);
    let (_, stderr) = texts(&nothing);
    assert!(!nothing.status.success(), "{stderr}");
    assert!(stderr.contains("nothing imported from") && stderr.contains("all 2 rows were bad"));
    assert!(stderr.contains("log.csv:2: column `when`"), "{stderr}");
}

#[test]
fn help_explains_the_commands() {
    let output = cascade().arg("--help").output().unwrap();
    let (stdout, _) = texts(&output);
    for command in ["quickstart", "dataset", "import", "append", "pipeline", "eval"] {
        assert!(stdout.contains(command), "--help lacks {command}: {stdout}");
    }
}

#[test]
fn ingest_file_logs_good_lines_counts_retries_and_names_bad_and_unreadable_lines() {
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("events.jsonl");
    let good = r#"{"event_id":"a","user_id":"u1","item_id":"i1","event_type":"click","ts_ms":1}"#;
    let lines: [&[u8]; 7] = [
        good.as_bytes(),
        br#"{"user":"u1","item_id":"i2","event_type":"click"}"#,
        good.as_bytes(),
        b"",
        br#"{"user_id":"u2","item_id":"i3","event_type":"view","ts_ms":5}"#,
        b"{\"user_id\":\"u\xff\",\"item_id\":\"i3\",\"event_type\":\"view\"}",
        // The HTTP format: a missing time is the receiver's clock.
        br#"{"event_id":"b","user_id":"u3","item_id":"i4","event_type":"click"}"#,
    ];
    std::fs::write(&file, lines.join(&b'\n')).unwrap();
    let ingest = || {
        cascade()
            .arg("ingest")
            .arg(&file)
            .arg("--workspace")
            .arg(work.path().join("w"))
            .output()
            .unwrap()
    };
    let output = ingest();
    let (stdout, stderr) = texts(&output);
    assert!(!output.status.success(), "a rejected line fails the command");
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(summary["appended"], 3, "{stdout}");
    assert_eq!(summary["duplicate"], 1, "the repeated event id");
    assert_eq!(summary["rejected"], 2, "{stdout}");
    assert!(stderr.contains("events.jsonl") && stderr.contains("line 2"), "{stderr}");
    assert!(stderr.contains("unknown field `user`"), "{stderr}");
    assert!(stderr.contains("line 6: not UTF-8"), "the unreadable line is named: {stderr}");

    // Running the file again adds nothing: the good lines are durable already.
    let (again, _) = texts(&ingest());
    let summary: serde_json::Value = serde_json::from_str(again.trim()).unwrap();
    assert_eq!((summary["appended"].as_u64(), summary["duplicate"].as_u64()), (Some(0), Some(4)));
}

#[test]
fn append_fails_when_every_line_is_rejected() {
    use std::io::Write;
    let work = tempfile::tempdir().unwrap();
    let run = |input: &str| {
        let mut child = cascade()
            .args(["append", "--workspace"])
            .arg(work.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    let far_future =
        r#"{"user_id":"u1","item_id":"i1","event_type":"click","ts_ms":99999999999999999}"#;
    let output = run(&format!("{far_future}\n{{}}\n"));
    let (stdout, stderr) = texts(&output);
    assert!(!output.status.success(), "{stdout}");
    assert!(stderr.contains("all 2 line(s) rejected"), "{stderr}");
    assert!(stdout.contains("max_future_skew_s"), "each line is acknowledged: {stdout}");
    let good = r#"{"user_id":"u1","item_id":"i1","event_type":"click","ts_ms":7}"#;
    let output = run(&format!("{good}\n{far_future}\n"));
    assert!(output.status.success(), "one line accepted: {}", texts(&output).1);
}

#[test]
fn serve_refuses_a_public_address_without_keys_and_says_how_to_set_them() {
    let work = tempfile::tempdir().unwrap();
    let output = cascade()
        .args(["serve", "--addr", "0.0.0.0:0", "--workspace"])
        .arg(work.path())
        .env_remove("CASCADE__SERVE__ADMIN_TOKEN")
        .output()
        .unwrap();
    let (_, stderr) = texts(&output);
    assert!(!output.status.success());
    assert!(stderr.contains("without access keys"), "{stderr}");
    assert!(stderr.contains("CASCADE__SERVE__ADMIN_TOKEN"), "{stderr}");
    assert!(stderr.contains("[serve]"), "{stderr}");
}

/// A sequences log of 80 users walking a 30-item cycle, with a config that
/// keeps every trained model to two epochs.
fn cycle_log(work: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let data = work.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let lines: Vec<String> = (0..80u32)
        .map(|u| {
            let items: Vec<String> = (0..8).map(|k| ((u + k) % 30 + 1).to_string()).collect();
            format!("{} {}", u + 1, items.join(" "))
        })
        .collect();
    std::fs::write(data.join("seq.txt"), lines.join("\n")).unwrap();
    let config = work.join("seq.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[events]
user = "user_id"
item = "item_id"
constant_event_type = "buy"
[events.source]
path = "seq.txt"
format = "sequences"
[labels]
positive_event_types = ["buy"]
[users]
id = "user_id"
[items]
id = "item_id"
[training.bpr-mf]
max_epochs = 2
[training.neumf]
max_epochs = 2
[training.sasrec]
max_epochs = 2
{extra}
"#
        ),
    )
    .unwrap();
    let output = cascade()
        .args(["import", "--config"])
        .arg(&config)
        .arg("--from")
        .arg(&data)
        .arg("--workspace")
        .arg(work.join("ws"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", texts(&output).1);
    config
}

#[test]
fn tune_logs_its_trials_and_auto_reports_its_choice_by_validation() {
    let work = tempfile::tempdir().unwrap();
    let config = cycle_log(work.path(), "");
    let run = |args: &[&str]| {
        let output = cascade()
            .args(args)
            .arg("--config")
            .arg(&config)
            .arg("--workspace")
            .arg(work.path().join("ws"))
            .arg("--json")
            .output()
            .unwrap();
        let (stdout, stderr) = texts(&output);
        assert!(output.status.success(), "{stderr}");
        serde_json::from_str::<serde_json::Value>(&stdout).unwrap()
    };
    let tuned = run(&["tune", "--model", "ease", "--budget", "3"]);
    let trials = tuned["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 3);
    assert_eq!(trials[0]["hyperparameters"], serde_json::json!({}), "defaults come first");
    let best = trials.iter().map(|t| t["valid_ndcg10"].as_f64().unwrap()).fold(0.0, f64::max);
    assert_eq!(tuned["best"]["valid_ndcg10"].as_f64().unwrap(), best);
    let log = std::fs::read_to_string(work.path().join("ws/tuning/ease.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 3);

    // `eval` runs EASE at the kept λ and says so.
    let ease = run(&["eval", "--model", "ease"]);
    let kept = tuned["best"]["hyperparameters"]["lambda"].as_f64();
    if let Some(lambda) = kept {
        assert!(ease["setting"].as_str().unwrap().contains(&format!("lambda={lambda}")), "{ease}");
    }

    let auto = run(&["eval", "--model", "auto"]);
    let candidates = auto["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 5, "{auto}");
    let (best_model, best_valid) = candidates
        .iter()
        .map(|c| (c["model"].as_str().unwrap(), c["valid_ndcg10"].as_f64().unwrap()))
        .fold(("", -1.0), |b, c| if c.1 > b.1 { c } else { b });
    assert_eq!(auto["chosen"], best_model);
    assert_eq!(auto["valid_ndcg10"].as_f64().unwrap(), best_valid);
    let sasrec = candidates.iter().find(|c| c["model"] == "sasrec").unwrap();
    assert_eq!(sasrec["epochs"]["trained"], 2, "{sasrec}");
    let setting = sasrec["setting"].as_str().unwrap();
    assert!(setting.contains("dropout chosen on validation from [0.2, 0.5]"), "{setting}");
    assert!(auto["metrics"]["ndcg@10"].is_f64());
}

#[test]
fn a_training_key_the_model_does_not_read_is_refused_by_name() {
    let work = tempfile::tempdir().unwrap();
    let config = cycle_log(work.path(), "[training.ease]\ndim = 8");
    let output = cascade()
        .args(["eval", "--model", "ease", "--config"])
        .arg(&config)
        .arg("--workspace")
        .arg(work.path().join("ws"))
        .output()
        .unwrap();
    let (_, stderr) = texts(&output);
    assert!(!output.status.success());
    assert!(stderr.contains("[training.ease] dim") && stderr.contains("lambda"), "{stderr}");
}
