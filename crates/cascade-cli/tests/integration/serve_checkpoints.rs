//! `cascade serve --models DIR`: the server answers from checkpoints that
//! `cascade train` wrote, swaps in new ones when a training job rewrites
//! them (without running the batch pipeline), and keeps serving the old
//! ones when a new one is broken.

use std::path::Path;
use std::time::{Duration, Instant};

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

    // A training job rewrites the ranker: the watcher swaps it in.
    train(&data, trainer.path(), "lr", "2");
    let second = wait_for_new_version(&base, &first, Duration::from_secs(60))
        .expect("the new checkpoint was not served within 60 s");
    assert!(second.contains("+lr@"), "{second}");
    assert!(untouched(), "the reload ran the batch pipeline");

    // A broken checkpoint: the old models keep answering.
    std::fs::write(models.join("lr/manifest.json"), "{ not json").unwrap();
    assert_eq!(wait_for_new_version(&base, &second, Duration::from_secs(8)), None);
    assert_eq!(response_version(&base), second);
}
