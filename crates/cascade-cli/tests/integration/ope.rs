//! Exploration and off-policy evaluation through a real `cascade serve`:
//! one variant of an experiment explores (ε-greedy), its impressions log
//! propensities into the store, and `cascade ope` reads them back. The
//! behaviour policy evaluated as its own target must give every weight 1,
//! so IPS and SNIPS equal the logged click rate exactly.

use serde_json::Value;

use crate::serve::{get, item_ids, post, start_with};
use crate::{cascade, movielens_dir, texts};

/// `cascade.toml` with an experiment whose `explore` variant lists
/// `epsilon_greedy` last, at ε = 0.3.
fn config_with_exploration() -> String {
    let shipped = include_str!("../../../../cascade.toml");
    format!(
        "{shipped}\n[[experiments]]\nname = \"exploration\"\nlayer = \"explore\"\n\
         [[experiments.variants]]\nname = \"greedy\"\nweight = 0.5\n\
         [[experiments.variants]]\nname = \"explore\"\nweight = 0.5\n\
         recommend = {{ rerankers = [\"freshness\", \"popularity\", \"diversity\", \"epsilon_greedy\"], \
         exploration = {{ epsilon = 0.3, candidates = 50 }} }}\n"
    )
}

#[test]
fn explored_lists_log_propensities_that_off_policy_evaluation_reads_back() {
    let Some(data) = movielens_dir() else { return };
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("explore.toml");
    std::fs::write(&config, config_with_exploration()).unwrap();
    let workspace = work.path().join("ws");
    let args = ["--config".as_ref(), config.as_os_str()];
    let mut server = start_with(&data, &workspace, &args);
    let base = server.base.clone();
    let mut explored = 0;
    for user in 1..=120 {
        let (status, body) = get(&base, &format!("/v1/users/{user}/recommend?n=10"));
        assert_eq!(status, 200, "{body}");
        let answer: Value = serde_json::from_str(&body).unwrap();
        let items = answer["items"].as_array().unwrap();
        if answer["variant"] == "exploration/explore" {
            explored += 1;
            assert_eq!(answer["policy"], "epsilon_greedy(epsilon=0.3)", "{body}");
            let slate = items[0]["propensity"]["slate"].as_f64().unwrap();
            for item in items {
                let p = &item["propensity"];
                assert_eq!(p["slate"].as_f64(), Some(slate), "{body}");
                let at = p["item_position"].as_f64().unwrap();
                assert!(at > 0.0 && at <= 1.0, "{body}");
            }
        } else {
            assert!(answer.get("policy").is_none(), "the greedy variant explores nothing: {body}");
            assert!(items.iter().all(|i| i.get("propensity").is_none()), "{body}");
        }
        // Every other user rates the third item shown.
        if user % 2 == 0 {
            let item = &item_ids(&answer)[2];
            let event = format!(
                r#"{{"events": [{{"user_id": "{user}", "item_id": "{item}", "event_type": "rating", "value": 5}}]}}"#
            );
            assert_eq!(post(&base, "/v1/events", &event).0, 200);
        }
    }
    assert!(explored > 30, "about half the users explore: {explored}");
    // Impressions are telemetry, durable within a second.
    std::thread::sleep(std::time::Duration::from_millis(2_500));
    server.kill_hard();

    // A command on the stopped server's workspace, with its config.
    let on_workspace = |args: &[&str]| {
        cascade()
            .args(args)
            .arg("--config")
            .arg(&config)
            .arg("--workspace")
            .arg(&workspace)
            .output()
            .unwrap()
    };
    // ε-greedy (the logging policy) and greedy on the explored lists.
    let ope = |filters: &[&str]| -> Value {
        let mut args = vec!["ope", "--target", "epsilon_greedy:0.3", "--target", "greedy"];
        args.extend_from_slice(&["--bootstrap", "200", "--json"]);
        args.extend_from_slice(filters);
        let output = on_workspace(&args);
        assert!(output.status.success(), "{:?}", texts(&output));
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let report = ope(&[]);
    let logged = &report["logged"];
    assert_eq!(logged["lists"].as_u64(), Some(explored), "{report}");
    assert_eq!(logged["impressions"].as_u64(), Some(explored * 10));
    assert_eq!(logged["policies"][0], "epsilon_greedy(epsilon=0.3)");
    assert!(logged["impressions_without_exploration"].as_u64().unwrap() > 0);
    let ctr = logged["ctr"].as_f64().unwrap();
    assert!(ctr > 0.0, "the ratings answered impressions: {report}");
    let estimate = |target: usize, name: &str| -> f64 {
        let estimates = report["targets"][target]["estimates"].as_array().unwrap();
        let found = estimates.iter().find(|e| e["estimator"] == name).unwrap();
        found["ctr"].as_f64().unwrap()
    };
    // On-policy: every weight is 1.
    for name in ["IPS", "SNIPS"] {
        assert!((estimate(0, name) - ctr).abs() < 1e-12, "{name}: {report}");
    }
    let ess = report["targets"][0]["effective_sample_size"].as_f64().unwrap();
    assert!((ess - (explored * 10) as f64).abs() < 1e-6, "{report}");
    // Greedy differs from the logged lists where a slot explored: fewer
    // effective rounds.
    let greedy_ess = report["targets"][1]["effective_sample_size"].as_f64().unwrap();
    assert!(greedy_ess < ess, "{report}");
    assert!(estimate(1, "DR").is_finite());

    // The exploring variant's lists alone (here: every explored list), and
    // ε-greedy's lift over greedy on the same rounds.
    let lifted = ope(&["--variant", "exploration/explore", "--lift-over", "greedy"]);
    assert_eq!(lifted["logged"]["lists"].as_u64(), Some(explored), "{lifted}");
    assert!(lifted["targets"][1]["lift_over"].is_null(), "no lift of the control over itself");
    let lift = &lifted["targets"][0]["lift_over"];
    assert_eq!(lift["control"], "greedy", "{lift}");
    let ips = lift["estimates"].as_array().unwrap().iter().find(|e| e["estimator"] == "IPS");
    let ips = ips.unwrap();
    let expected = estimate(0, "IPS") / estimate(1, "IPS") - 1.0;
    assert!((ips["lift"].as_f64().unwrap() - expected).abs() < 1e-12, "{ips}");
    assert!(ips["lower"].as_f64().unwrap() < ips["upper"].as_f64().unwrap(), "{ips}");
    // The greedy variant explored nothing; bad filters name themselves.
    let refused = |args: &[&str], expected: &str| {
        let output = on_workspace(args);
        assert!(!output.status.success(), "{args:?} should fail");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    };
    refused(&["ope", "--target", "greedy", "--variant", "exploration/greedy"], "no explored lists");
    refused(&["ope", "--target", "greedy", "--variant", "exploration"], "EXPERIMENT/VARIANT");
    refused(&["ope", "--target", "greedy", "--lift-over", "epsilon_greedy:0.3"], "--lift-over");

    // Policy learning reads the same lists: the older half teaches, the
    // newer half judges, and the supervised arm serves the ranker's lists.
    let output = on_workspace(&[
        "learn-policy",
        "--json",
        "--sweep-top-k",
        "1",
        "--sweep-cap",
        "inf",
        "--bootstrap",
        "50",
    ]);
    assert!(output.status.success(), "{:?}", texts(&output));
    let learned: Value = serde_json::from_slice(&output.stdout).unwrap();
    let split = &learned["logged"];
    let lists =
        split["learning_lists"].as_u64().unwrap() + split["judging_lists"].as_u64().unwrap();
    assert_eq!(lists, explored, "{split}");
    let arms = learned["arms"].as_array().unwrap();
    let roles: Vec<&str> = arms.iter().map(|a| a["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["supervised", "configured", "uncorrected", "top_k_sweep", "cap_sweep"]);
    assert_eq!(arms[0]["lists_reordered"], 0.0, "the supervised arm is the ranker");
    assert_eq!(arms[1]["top_k"], 16, "[policy_learning] top_k");
    assert_eq!(arms[3]["top_k"], 1);
    assert_eq!(arms[4]["weight_cap"], "inf");
    for arm in &arms[1..] {
        let objective = arm["training"]["objective"].as_array().unwrap();
        assert!(objective.len() > 1, "{arm}");
    }
    assert!(arms[0]["simulated_truth"].is_null(), "no --simulated-truth: no truth");
    // The configured and the uncorrected policy are saved for serving.
    for role in ["configured", "uncorrected"] {
        let path = learned["saved"][role].as_str().unwrap();
        let saved: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert!(saved["relevance_weight"].as_f64().unwrap() > 0.0, "{saved}");
        assert!(saved["label"].as_str().unwrap().starts_with("reinforce(top_k=16"), "{saved}");
    }

    // The report estimates its configured policies on the same lists, as
    // `cascade ope` does.
    let out = workspace.join("report");
    let output = cascade()
        .args(["report", "--quiet", "--config"])
        .arg(&config)
        .arg("--workspace")
        .arg(&workspace)
        .env("CASCADE__REPORT__MODELS", "[\"pop\"]")
        .env("CASCADE__REPORT__CTR_MODELS", "[]")
        .output()
        .unwrap();
    assert!(output.status.success(), "{:?}", texts(&output));
    let page: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let targets = page["off_policy"]["targets"].as_array().unwrap();
    let greedy = targets.iter().find(|t| t["policy"] == "greedy").unwrap();
    let ips = greedy["estimates"].as_array().unwrap().iter().find(|e| e["estimator"] == "IPS");
    assert_eq!(ips.unwrap()["ctr"].as_f64(), Some(estimate(1, "IPS")), "{page}");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<figure id=\"off_policy\"><svg"), "the estimates are drawn");
}
