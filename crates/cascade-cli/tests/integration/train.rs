//! Trained models end to end: `cascade train` on MovieLens-100k leaves a
//! checkpoint that loads only as the same model, and training curves; the
//! iPinYou protocol reports AUC with its bootstrap interval.

use cascade_models::ranking::inputs::SparseInputs;
use cascade_models::registry::ModelKind;

use crate::{cascade, cascade_on, movielens_dir, texts};

#[test]
fn train_writes_a_checkpoint_and_curves_and_reports_test_metrics() {
    let Some(data) = movielens_dir() else { return };
    let work = tempfile::tempdir().unwrap();
    let output = cascade_on(&data, work.path(), &["train", "--model", "lr"]);
    let (stdout, stderr) = texts(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(stdout.contains("test auc"), "{stdout}");
    let dir = work.path().join("models/lr");
    let manifest = cascade_nn::checkpoint::read_manifest(&dir).unwrap();
    assert_eq!(manifest.model, "lr");
    assert_eq!(manifest.tables.len(), 2, "first-order and embedding tables");
    let auc = manifest.metrics["test auc"];
    assert!(auc > 0.75 && auc < 0.85, "LR test AUC {auc}");
    let fingerprint = &manifest.schema_fingerprint;
    let mut loaded = ModelKind::Lr.load_checkpoint(&dir, fingerprint).unwrap();
    let embedding = loaded.take_table(SparseInputs::EMBEDDING_TABLE).unwrap();
    assert!(embedding.len() > 2000, "every user, item and feature value has a row");
    assert!(loaded.take_table("no-such-table").is_err(), "tables are found by name");
    let refused = ModelKind::Deepfm.load_checkpoint(&dir, fingerprint).unwrap_err().to_string();
    assert!(refused.contains("holds model `lr`"), "{refused}");
    let svg = std::fs::read_to_string(dir.join("curves.svg")).unwrap();
    assert!(svg.contains("valid AUC") && svg.contains("train loss"));
}

#[test]
fn training_a_model_without_a_training_loop_says_so() {
    let output = cascade().args(["train", "--model", "ease"]).output().unwrap();
    let (_, stderr) = texts(&output);
    assert!(!output.status.success());
    assert!(stderr.contains("`ease`") && stderr.contains("cascade eval"), "{stderr}");
}

#[test]
fn ipinyou_reports_auc_with_a_bootstrap_interval() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/ipinyou-deepctr-sample");
    if !dir.join("train.fm.txt").exists() {
        eprintln!("SKIPPED: {} not found", dir.display());
        return;
    }
    let output = cascade()
        .args(["eval", "--protocol", "ipinyou", "--model", "lr", "--json", "--ipinyou-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    let (stdout, stderr) = texts(&output);
    assert!(output.status.success(), "{stderr}");
    let value: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let metric = |key: &str| value["metrics"][key].as_f64().unwrap();
    let (auc, low, high) = (metric("auc"), metric("auc_95_low"), metric("auc_95_high"));
    assert!(low <= auc && auc <= high && high - low > 0.02, "{low} ≤ {auc} ≤ {high}");
    assert!(metric("logloss") < 0.1, "clicks are rare; a calibrated model's LogLoss is small");

    let refused = cascade()
        .args(["eval", "--protocol", "ipinyou", "--model", "din", "--ipinyou-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    let (_, stderr) = texts(&refused);
    assert!(!refused.status.success());
    assert!(stderr.contains("`din`") && stderr.contains("history"), "{stderr}");
}

#[test]
fn training_settings_come_from_the_config_and_typos_are_refused() {
    let Some(data) = movielens_dir() else { return };
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("cascade.toml");
    let settings = "\n[training.bpr-mf]\nbatch_size = 512\nseed = 7\n";
    std::fs::write(&config, format!("{}{settings}", cascade_core::Config::default_toml())).unwrap();
    let bench = |config: &std::path::Path| {
        cascade()
            .args(["bench", "train", "--model", "bpr-mf", "--epochs", "1", "--data"])
            .arg(&data)
            .arg("--workspace")
            .arg(work.path().join("ws"))
            .arg("--config")
            .arg(config)
            .output()
            .unwrap()
    };
    let output = bench(&config);
    let (stdout, stderr) = texts(&output);
    assert!(output.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["settings"]["training"]["batch_size"], 512, "{stdout}");
    assert_eq!(report["settings"]["training"]["seed"], 7, "{stdout}");

    let typo = work.path().join("typo.toml");
    let settings = "\n[training.bpr_mf]\nbatch_size = 512\n";
    std::fs::write(&typo, format!("{}{settings}", cascade_core::Config::default_toml())).unwrap();
    let output = bench(&typo);
    let (_, stderr) = texts(&output);
    assert!(!output.status.success());
    assert!(stderr.contains("[training.bpr_mf]") && stderr.contains("bpr-mf"), "{stderr}");
}

#[test]
fn replay_scores_every_later_row_with_each_arm_and_picks_online_settings_on_validation() {
    let Some(data) = movielens_dir() else { return };
    let work = tempfile::tempdir().unwrap();
    let output = cascade_on(&data, work.path(), &["replay", "--model", "lr", "--skip-retrain"]);
    let (stdout, stderr) = texts(&output);
    assert!(output.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["initial_rows"], 80_000);
    assert_eq!(report["replayed_rows"], 20_000);
    for arm in ["frozen", "online"] {
        let auc = report["arms"][arm]["auc"].as_f64().unwrap();
        assert!((0.6..0.8).contains(&auc), "{arm}: AUC {auc}");
    }
    assert!(report["arms"].get("daily_retrain").is_none(), "--skip-retrain");
    let grid = report["validation_replay"].as_array().unwrap();
    let best = grid.iter().map(|c| c["valid_auc"].as_f64().unwrap()).fold(f64::MIN, f64::max);
    let chosen = &report["online_settings_chosen_on_validation"];
    let step = chosen["step_scale"].as_f64().unwrap();
    assert!(chosen["sparse_optimizer"]["training"].is_object(), "the default: {report}");
    let chosen_auc = grid
        .iter()
        .find(|c| {
            c["batch_size"] == chosen["batch_size"]
                && (c["step_scale"].as_f64().unwrap() - step).abs() < 1e-6
        })
        .map(|c| c["valid_auc"].as_f64().unwrap());
    assert_eq!(chosen_auc, Some(best), "the best validation setting is the one used: {report}");
}

#[test]
fn replay_new_items_scores_both_arms_on_held_out_items_chosen_on_validation() {
    let Some(data) = movielens_dir() else { return };
    let work = tempfile::tempdir().unwrap();
    let args = ["replay-new-items", "--items", "30", "--k", "20"];
    let output = cascade_on(&data, work.path(), &args);
    let (stdout, stderr) = texts(&output);
    assert!(output.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["built_items"], 1682 - 60, "both sets held out of the build");
    let replayed = report["test_interactions"].as_u64().unwrap();
    assert!(replayed >= 30 * 10, "at least 10 interactions per item: {replayed}");
    for arm in ["cold_start", "online"] {
        let new_items = &report["arms"][arm]["new_items"];
        assert_eq!(new_items["all"]["interactions"], replayed, "{arm}");
        let by_ordinal: u64 = new_items["by_interaction_ordinal"]
            .as_object()
            .unwrap()
            .values()
            .map(|range| range["interactions"].as_u64().unwrap())
            .sum();
        assert_eq!(by_ordinal, replayed, "{arm}: the ordinal ranges cover every interaction");
        let hr = new_items["all"]["hr@20"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&hr) && new_items["all"]["hr@10"].as_f64().unwrap() <= hr);
        assert_eq!(report["arms"][arm]["protocol_test_items"]["interactions"], 943);
    }
    // The chosen rates are the grid's best new-item hit rate among those
    // that keep the built items within the tolerance.
    let validation = &report["validation"];
    let floor = validation["cold_start_protocol_valid_items_hr"].as_f64().unwrap()
        - validation["tolerated_loss"].as_f64().unwrap();
    let grid = validation["grid"].as_array().unwrap();
    let admissible =
        |g: &&serde_json::Value| g["protocol_valid_items_hr"].as_f64().unwrap() >= floor;
    let best = grid.iter().filter(admissible).map(|g| g["new_items_hr"].as_f64().unwrap());
    if let Some(best) = best.reduce(f64::max) {
        let chosen = grid.iter().find(|g| {
            g["learning_rate"] == report["chosen"]["learning_rate"]
                && g["built_user_learning_rate"] == report["chosen"]["built_user_learning_rate"]
        });
        let chosen = chosen.expect("the chosen rates are in the grid");
        assert!(admissible(&chosen), "{report}");
        assert_eq!(chosen["new_items_hr"].as_f64(), Some(best), "{report}");
    }
}

#[test]
fn replay_serving_scores_every_arm_for_users_known_by_one_two_or_more_interactions() {
    let Some(data) = movielens_dir() else { return };
    let work = tempfile::tempdir().unwrap();
    let output = cascade_on(&data, work.path(), &["replay-serving", "--ranker", "lr"]);
    let (stdout, stderr) = texts(&output);
    assert!(output.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(report["build_events"].as_u64().unwrap() < 100_000, "the last weeks are held out");
    for group in ["1", "2", "3+"] {
        let users = report["groups"][group]["users"].as_u64().unwrap();
        assert!(users > 20, "group {group}: {users} users");
        let arms = report["groups"][group]["arms"].as_object().unwrap();
        assert_eq!(arms.len(), 4, "{report}");
        for (arm, outcome) in arms {
            let hits = outcome["hits"].as_u64().unwrap();
            assert!(hits <= users, "{group}/{arm}: {hits} of {users}");
            let hr = outcome["hr"].as_f64().unwrap();
            assert!((hr - hits as f64 / users as f64).abs() < 1e-12, "{group}/{arm}");
        }
    }
    // Users the split build did not know get its cold-start list, which is
    // not what the all-data build gives them.
    let cold = &report["groups"]["1"]["arms"];
    assert_ne!(cold["protocol_splits"]["hits"], cold["all_data"]["hits"], "{report}");
}
