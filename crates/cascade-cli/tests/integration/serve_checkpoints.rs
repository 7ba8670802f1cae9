//! `cascade serve --models DIR`: the server answers from checkpoints that
//! `cascade train` wrote, swaps in new ones when a training job rewrites
//! them (without running the batch pipeline), and keeps serving the old
//! ones when a new one is broken. An experiment's variant serves its own
//! checkpoints (`models_dir`) beside the server's.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::serve::{post, response_version, start_with};
use crate::{cascade, movielens_dir, texts};

fn train(data: &Path, workspace: &Path, model: &str, seed: &str) {
    let output = cascade()
        .args(["train", "--model", model, "--seed", seed, "--data"])
        .arg(data)
        .arg("--workspace")
        .arg(workspace)
        .output()
        .unwrap();
    assert!(output.status.success(), "training {model}: {}", texts(&output).1);
}

/// Polls the server's model version until it differs from `old`, checking
/// every answer on the way is a 200.
fn wait_for_new_version(base: &str, old: &str, limit: Duration) -> Option<String> {
    let started = Instant::now();
    while started.elapsed() < limit {
        let (status, body) = post(base, "/v1/recommend", r#"{"user_id": "3", "n": 5}"#);
        assert_eq!(status, 200, "{body}");
        let version = response_version(base);
        if version != old {
            return Some(version);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    None
}

/// Copies a checkpoint directory, modification times kept.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        match entry.file_type().unwrap().is_dir() {
            true => copy_dir(&entry.path(), &target),
            false => {
                std::fs::copy(entry.path(), &target).unwrap();
                // A checkpoint's version is its manifest's modification
                // time: the copy keeps it, so it names the same models.
                let modified = entry.metadata().unwrap().modified().unwrap();
                let file = std::fs::File::options().write(true).open(&target).unwrap();
                file.set_modified(modified).unwrap();
            }
        }
    }
}

#[test]
fn serve_answers_from_checkpoints_and_swaps_when_they_change() {
    let Some(data) = movielens_dir() else { return };
    // Training runs in its own workspace, as a separate job would.
    let trainer = tempfile::tempdir().unwrap();
    train(&data, trainer.path(), "bpr-mf", "1");
    train(&data, trainer.path(), "lr", "1");
    let models = trainer.path().join("models");

    // A missing checkpoint is a clear error naming how to make it.
    let work = tempfile::tempdir().unwrap();
    let output = cascade()
        .args(["serve", "--addr", "127.0.0.1:0", "--ranker", "deepfm", "--data"])
        .arg(&data)
        .arg("--workspace")
        .arg(work.path())
        .arg("--models")
        .arg(&models)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = texts(&output).1;
    assert!(stderr.contains("cascade train --model deepfm"), "{stderr}");

    let server = start_with(&data, work.path(), &["--models".as_ref(), models.as_os_str()]);
    let base = server.base.clone();
    let first = response_version(&base);
    assert!(first.starts_with("checkpoints:bpr-mf@"), "{first}");
    assert!(models.join("bpr-mf/ids.json").exists(), "retrieval checkpoints keep their ids");
    // Serving from checkpoints reads the catalog from the event log: no
    // export and no batch pipeline, at start or on a reload.
    let batch_outputs = [work.path().join("offline"), work.path().join("pipeline")];
    let untouched = || batch_outputs.iter().all(|dir| !dir.exists());
    assert!(untouched(), "the start ran the batch pipeline");
    // The first models, kept aside for an experiment's variant below.
    let kept = trainer.path().join("models-first");
    copy_dir(&models, &kept);

    // A training job rewrites the ranker: the watcher swaps it in.
    train(&data, trainer.path(), "lr", "2");
    let second = wait_for_new_version(&base, &first, Duration::from_secs(60))
        .expect("the new checkpoint was not served within 60 s");
    assert!(second.contains("+lr@"), "{second}");
    assert!(untouched(), "the reload ran the batch pipeline");

    // A variant that serves the kept checkpoints: its users get the first
    // models while everyone else gets the second.
    let experiment = |name: &str, dir: &Path| {
        serde_json::json!({
            "name": name, "layer": name,
            "variants": [
                { "name": "current", "weight": 0.5 },
                { "name": "kept", "weight": 0.5, "models_dir": dir },
            ],
        })
        .to_string()
    };
    let missing = trainer.path().join("no-such-models");
    let (status, body) = post(&base, "/v1/experiments", &experiment("broken", &missing));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("variants[1].models_dir"), "{body}");
    let (status, body) = post(&base, "/v1/experiments", &experiment("retrained", &kept));
    assert_eq!(status, 201, "{body}");
    let mut served = std::collections::BTreeMap::new();
    for user in 1..=40 {
        let request = format!(r#"{{"user_id": "{user}", "n": 5}}"#);
        let (status, body) = post(&base, "/v1/recommend", &request);
        assert_eq!(status, 200, "{body}");
        let answer: Value = serde_json::from_str(&body).unwrap();
        let variant = answer["experiments"][0]["variant"].as_str().unwrap().to_owned();
        let version = answer["model_version"].as_str().unwrap().to_owned();
        served.entry(variant).or_insert_with(std::collections::BTreeSet::new).insert(version);
    }
    assert_eq!(served["current"], [second.clone()].into(), "{served:?}");
    assert_eq!(served["kept"], [first.clone()].into(), "{served:?}");
    let (status, body) = post(&base, "/v1/experiments/retrained/stop", "");
    assert_eq!(status, 200, "{body}");

    // A broken checkpoint: the old models keep answering.
    std::fs::write(models.join("lr/manifest.json"), "{ not json").unwrap();
    assert_eq!(wait_for_new_version(&base, &second, Duration::from_secs(8)), None);
    assert_eq!(response_version(&base), second);
}
