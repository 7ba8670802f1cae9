//! Online experiments through a real `cascade serve`: a declared A/B test
//! routes users to two pipelines, impressions and clicks come back as
//! results with their statistics, bad experiments are refused naming the
//! field, and everything survives a restart.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::movielens_dir;
use crate::serve::{get, item_ids, post, start_with};

const USERS: usize = 120;

/// `cascade.toml` with one declared experiment: the full pipeline against
/// popularity alone (no ranker, no re-ranking).
fn config_with_experiment() -> String {
    let shipped = include_str!("../../../../cascade.toml");
    format!(
        "{shipped}\n[[experiments]]\nname = \"ranker-vs-popular\"\nlayer = \"ranking\"\n\
         [[experiments.variants]]\nname = \"full\"\nweight = 0.5\n\
         [[experiments.variants]]\nname = \"popular\"\nweight = 0.5\n\
         recommend = {{ use_ranker = false, channels = [\"popular\"], rerankers = [] }}\n"
    )
    .replace("checkpoint_interval_ms = 1000", "checkpoint_interval_ms = 100")
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Polls the results until `done` holds (impressions are telemetry, made
/// durable within a second).
fn results_when(base: &str, name: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = get(base, &format!("/v1/experiments/{name}/results"));
        assert_eq!(status, 200, "{body}");
        let results = json(&body);
        if done(&results) || Instant::now() > deadline {
            return results;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A metric's sum of `x` (its value) or `y` (CUPED's covariate, or a
/// ratio's denominator) over the variants of `results`.
fn summed_over_variants(results: &Value, metric: &str, side: &str) -> f64 {
    let variants = results["variants"].as_array().unwrap();
    variants.iter().map(|v| v["metrics"][metric]["totals"][side]["sum"].as_f64().unwrap()).sum()
}

/// Clicks of a simulator summary's traffic, over its variants.
fn clicks_in(traffic: &Value) -> f64 {
    traffic.as_object().unwrap().values().map(|v| v["clicks"].as_f64().unwrap()).sum()
}

fn users_in(results: &Value) -> u64 {
    results["sample_ratio"]["users"].as_array().unwrap().iter().map(|u| u.as_u64().unwrap()).sum()
}

#[test]
fn a_declared_experiment_routes_users_counts_clicks_and_survives_a_restart() {
    let Some(data) = movielens_dir() else { return };
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("experiment.toml");
    std::fs::write(&config, config_with_experiment()).unwrap();
    let workspace = work.path().join("ws");
    let args = ["--config".as_ref(), config.as_os_str()];
    let mut server = start_with(&data, &workspace, &args);
    let base = server.base.clone();

    // Each user is routed to one variant; the popular variant is not ranked.
    let mut clicks = 0;
    for user in 1..=USERS {
        let (status, body) = get(&base, &format!("/v1/users/{user}/recommend?n=10"));
        assert_eq!(status, 200, "{body}");
        let answer = json(&body);
        let experiments = answer["experiments"].as_array().unwrap();
        assert_eq!(experiments.len(), 1, "{body}");
        assert_eq!(experiments[0]["experiment"], "ranker-vs-popular");
        let variant = experiments[0]["variant"].as_str().unwrap().to_owned();
        assert_eq!(answer["variant"], format!("ranker-vs-popular/{variant}"));
        assert_eq!(answer["ranker"].is_null(), variant == "popular", "{body}");
        // Every third user rates the first item shown.
        if user % 3 == 0 {
            let item = &item_ids(&answer)[0];
            let event = format!(
                r#"{{"events": [{{"user_id": "{user}", "item_id": "{item}", "event_type": "rating", "value": 5}}]}}"#
            );
            assert_eq!(post(&base, "/v1/events", &event).0, 200);
            clicks += 1;
        }
    }
    let results = results_when(&base, "ranker-vs-popular", |r| {
        let clicked: f64 = r["variants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["metrics"]["ctr"]["totals"]["x"]["sum"].as_f64().unwrap_or(0.0))
            .sum();
        users_in(r) == USERS as u64 && clicked == f64::from(clicks)
    });
    assert_eq!(users_in(&results), USERS as u64, "{results}");
    assert!(!results["sample_ratio"]["mismatch"].as_bool().unwrap(), "{results}");
    assert!(results["decision_test"].as_str().unwrap().contains("always-valid"));
    let impressions = summed_over_variants(&results, "ctr", "y");
    assert_eq!(impressions, (USERS * 10) as f64, "every shown item is an impression");
    let comparison = results["comparisons"].as_array().unwrap();
    assert!(comparison.iter().any(|c| c["metric"] == "clicks_per_user"), "{results}");
    let guardrails = results["guardrails"].as_object().unwrap();
    assert_eq!(guardrails.len(), 2, "{results}");
    assert!(guardrails.values().all(|g| g["requests"].as_u64().unwrap() > 0 && g["errors"] == 0));

    // The simulator drives the same server: its users land in both
    // variants, and the server's results come back in its summary.
    let output = crate::cascade()
        .args(["simulate", "--server", &base, "--users", "40", "--visits-per-user", "2"])
        .args(["--activity", "uniform", "--experiment", "ranker-vs-popular", "--json", "--data"])
        .arg(&data)
        .args(["--planted-variant", "ranker-vs-popular/full", "--planted-lift", "0.03"])
        .args(["--new-items", "3", "--per-user-out"])
        .arg(work.path().join("users.jsonl"))
        .output()
        .unwrap();
    let (stdout, stderr) = crate::texts(&output);
    assert!(output.status.success(), "{stderr}");
    let summary = json(&stdout);
    let simulated: u64 = summary["variants"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v["users"].as_u64().unwrap())
        .sum();
    assert_eq!(simulated, 40, "{stdout}");
    // Three items were added through the API as new, and each variant
    // says what it did with them.
    for traffic in summary["variants"].as_object().unwrap().values() {
        let new_items = &traffic["new_items"];
        assert_eq!(new_items["added"], 3, "{stdout}");
        let (shown, clicked) = (new_items["shown"].as_u64(), new_items["clicked"].as_u64());
        assert!(shown.unwrap() <= 3 && clicked.unwrap() <= shown.unwrap(), "{stdout}");
    }
    // Each user's traffic, for paired comparisons: it adds up to the
    // variants', and a run compared with itself differs by nothing.
    let users = work.path().join("users.jsonl");
    let lines: Vec<Value> = std::fs::read_to_string(&users)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 40);
    let per_user_clicks: f64 = lines.iter().map(|l| l["clicks"].as_f64().unwrap()).sum();
    assert_eq!(per_user_clicks, clicks_in(&summary["variants"]), "{stdout}");
    let paired = crate::cascade()
        .args(["experiment", "paired", "--control"])
        .arg(&users)
        .arg("--treatment")
        .arg(&users)
        .output()
        .unwrap();
    let (paired_out, paired_err) = crate::texts(&paired);
    assert!(paired.status.success(), "{paired_err}");
    let paired = json(&paired_out);
    assert_eq!(paired["users"], 40, "{paired}");
    let expected = &paired["expected_clicks_per_user"];
    assert_eq!(expected["control_mean"], expected["treatment_mean"], "{paired}");
    assert!(expected["difference"].is_null(), "no variance, no test: {paired}");
    let results = &summary["server_results"]["ranker-vs-popular"];
    assert!(results["comparisons"].is_array(), "{stdout}");
    let power = &summary["power"]["ranker-vs-popular"];
    assert!(power["users_per_variant_for_80pct_power"].as_f64().unwrap() > 0.0, "{stdout}");

    let earlier_clicks = f64::from(clicks) + clicks_in(&summary["variants"]);

    // A pre-period, then an experiment created through the API: the
    // clicks users made before their first exposure are their covariate.
    // The covariate window (14 days) keeps MovieLens' 1998 ratings out.
    let body = work.path().join("pre-cuped.json");
    std::fs::write(
        &body,
        r#"{"name": "pre-cuped", "layer": "cuped", "planned_users": 40, "planned_looks": 4,
            "variants": [{"name": "a", "weight": 0.5}, {"name": "b", "weight": 0.5}]}"#,
    )
    .unwrap();
    let output = crate::cascade()
        .args(["simulate", "--server", &base, "--users", "40", "--visits-per-user", "2"])
        .args(["--pre-visits-per-user", "6", "--create-experiment"])
        .arg(&body)
        .args(["--activity", "uniform", "--experiment", "pre-cuped", "--seed", "7", "--json"])
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    let (stdout, stderr) = crate::texts(&output);
    assert!(output.status.success(), "{stderr}");
    let summary = json(&stdout);
    let pre_period_clicks = clicks_in(&summary["pre_period"]);
    assert!(pre_period_clicks > 0.0, "{stdout}");
    let results = results_when(&base, "pre-cuped", |r| users_in(r) == 40);
    let covariates = summed_over_variants(&results, "clicks_per_user", "y");
    assert!(
        covariates >= pre_period_clicks && covariates <= pre_period_clicks + earlier_clicks,
        "covariates {covariates}, pre-period clicks {pre_period_clicks}, earlier {earlier_clicks}: {results}"
    );
    // With a plan, the verdict is group-sequential, at looks the server
    // took as the planned users arrived.
    let results = results_when(&base, "pre-cuped", |r| {
        r["comparisons"][0]["group_sequential"]["looks"].as_u64().is_some_and(|looks| looks >= 1)
    });
    assert!(results["decision_test"].as_str().unwrap().contains("group-sequential"), "{results}");
    let verdict = &results["comparisons"][0]["group_sequential"];
    assert_eq!(verdict["planned_looks"], 4, "{results}");
    let boundaries = verdict["boundaries"].as_array().unwrap().len() as u64;
    assert_eq!(Some(boundaries), verdict["looks"].as_u64(), "one boundary per look: {results}");
    assert_eq!(post(&base, "/v1/experiments/pre-cuped/stop", "").0, 200);

    // Bad experiments are refused, naming what is wrong.
    let variant = |name: &str, weight: f64, recommend: &str| {
        format!(r#"{{"name": "{name}", "weight": {weight}, "recommend": {recommend}}}"#)
    };
    let experiment = |name: &str, layer: &str, variants: &[String]| {
        format!(r#"{{"name": "{name}", "layer": "{layer}", "variants": [{}]}}"#, variants.join(","))
    };
    let refused = |body: String, expected: &str| {
        let (status, answer) = post(&base, "/v1/experiments", &body);
        assert_eq!(status, 400, "{answer}");
        assert!(answer.contains(expected), "expected {expected:?} in {answer}");
    };
    let control = variant("a", 0.5, "{}");
    refused(
        experiment("x", "other", &[control.clone(), variant("b", 0.5, r#"{"mmr_lamda": 0.3}"#)]),
        "variants[1].recommend",
    );
    refused(
        experiment("x", "other", &[control.clone(), variant("b", 0.6, "{}")]),
        "variants.weight",
    );
    refused(experiment("x", "ranking", &[control.clone(), variant("b", 0.5, "{}")]), "overlap");
    refused(
        experiment("ranker-vs-popular", "other", &[control.clone(), variant("b", 0.5, "{}")]),
        "name",
    );
    refused(r#"{"name": "x"}"#.into(), "variants");
    let planned = experiment("x", "other", &[control.clone(), variant("b", 0.5, "{}")]);
    refused(planned.replacen('{', r#"{"planned_users": 0, "#, 1), "planned_users");
    refused(
        experiment(
            "x",
            "other",
            &[control.clone(), variant("b", 0.5, "{}").replace("weight", "wieght")],
        ),
        "wieght",
    );
    assert_eq!(get(&base, "/v1/experiments/nope/results").0, 404);
    assert_eq!(post(&base, "/v1/experiments/nope/stop", "").0, 404);

    // One on another layer runs at once; users are in both.
    let diverse = experiment(
        "diversity",
        "rerank",
        &[control, variant("more", 0.5, r#"{"mmr_lambda": 0.3}"#)],
    );
    let (status, body) = post(&base, "/v1/experiments", &diverse);
    assert_eq!(status, 201, "{body}");
    let (_, body) = get(&base, "/v1/users/7/recommend");
    assert_eq!(json(&body)["experiments"].as_array().unwrap().len(), 2, "{body}");

    // An interleaving experiment drafts one list from its two variants.
    let interleaved = r#"{"name": "mmr-interleaved", "layer": "il", "interleave": true, "variants": [
        {"name": "a", "weight": 0.5}, {"name": "b", "weight": 0.5, "recommend": {"mmr_lambda": 0.3}}]}"#;
    let (status, body) = post(&base, "/v1/experiments", interleaved);
    assert_eq!(status, 201, "{body}");
    let (_, body) = get(&base, "/v1/users/9/recommend");
    let answer = json(&body);
    assert!(answer["variant"].as_str().unwrap().contains("mmr-interleaved/interleaved"), "{body}");
    let teams: Vec<&str> =
        answer["items"].as_array().unwrap().iter().map(|i| i["team"].as_str().unwrap()).collect();
    assert!(teams.contains(&"a") && teams.contains(&"b"), "{body}");
    let results = results_when(&base, "mmr-interleaved", |r| r["interleaving"]["users"] == 1);
    assert_eq!(results["interleaving"]["teams"], serde_json::json!(["a", "b"]), "{results}");
    let three = r#"{"name": "x", "layer": "il2", "interleave": true, "variants": [
        {"name": "a", "weight": 0.4}, {"name": "b", "weight": 0.3}, {"name": "c", "weight": 0.3}]}"#;
    refused(three.into(), "interleave");

    // A restart keeps both experiments and the counted results (user 7's
    // impressions are telemetry: give them their second to become durable).
    std::thread::sleep(Duration::from_millis(1_500));
    let before = results_when(&base, "ranker-vs-popular", |_| true);
    server.kill_hard();
    let server = start_with(&data, &workspace, &args);
    let base = server.base.clone();
    let (_, body) = get(&base, "/v1/experiments");
    let names: Vec<String> = json(&body)["experiments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["diversity", "mmr-interleaved", "pre-cuped", "ranker-vs-popular"], "{body}");
    let after = results_when(&base, "ranker-vs-popular", |r| users_in(r) >= USERS as u64);
    assert_eq!(after["variants"], before["variants"], "the same totals after a restart");

    // Stopped: users get the default pipeline again; results stay.
    let (status, body) = post(&base, "/v1/experiments/ranker-vs-popular/stop", "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["status"], "stopped");
    let (_, body) = get(&base, "/v1/users/3/recommend");
    let experiments = json(&body)["experiments"].as_array().unwrap().clone();
    assert!(experiments.iter().all(|e| e["experiment"] != "ranker-vs-popular"), "{body}");
    assert_eq!(get(&base, "/v1/experiments/ranker-vs-popular/results").0, 200);
}
