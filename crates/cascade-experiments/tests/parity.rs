//! Every statistic against the numbers scipy, statsmodels, gbstats,
//! spotify-confidence and GrowthBook's SDK computed on the same data
//! (`fixtures/make_statistics.py` wrote `fixtures/statistics.json`).
#![allow(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

use cascade_experiments::assignment::position;
use cascade_experiments::statistics::{
    Estimate, Lift, Moments, PairedMoments, Scale, SequentialSrm, chi_square_srm, cuped_theta,
    holm, normal_quantile, sequential, srm_log_bayes_factor, student_t_quantile, users_per_variant,
    welch, welch_dof,
};
use serde_json::Value;

const TOLERANCE: f64 = 1e-9;

fn fixture() -> Value {
    serde_json::from_str(include_str!("fixtures/statistics.json")).unwrap()
}

fn number(value: &Value) -> f64 {
    value.as_f64().unwrap_or_else(|| panic!("not a number: {value}"))
}

fn moments(value: &Value) -> Moments {
    serde_json::from_value(value.clone()).unwrap()
}

fn paired(value: &Value) -> PairedMoments {
    serde_json::from_value(value.clone()).unwrap()
}

fn close(label: &str, actual: f64, expected: f64) {
    let scale = expected.abs().max(1.0);
    assert!(
        (actual - expected).abs() <= TOLERANCE * scale,
        "{label}: {actual} against {expected} (difference {:e})",
        actual - expected
    );
}

fn same_lift(label: &str, lift: &Lift, expected: &Value) {
    close(&format!("{label} estimate"), lift.estimate, number(&expected["estimate"]));
    close(&format!("{label} lower"), lift.lower, number(&expected["lower"]));
    close(&format!("{label} upper"), lift.upper, number(&expected["upper"]));
    close(&format!("{label} p-value"), lift.p_value, number(&expected["p_value"]));
}

#[test]
fn welch_matches_scipy_spotify_and_gbstats() {
    let fixture = fixture();
    let case = &fixture["mean"];
    let alpha = number(&fixture["alpha"]);
    let control = Estimate::mean_of(&moments(&case["control"]));
    let treatment = Estimate::mean_of(&moments(&case["treatment"]));
    let absolute = welch(&control, &treatment, Scale::Absolute, alpha).unwrap();
    close("dof", welch_dof(&control, &treatment), number(&case["scipy_welch"]["dof"]));
    same_lift("scipy", &absolute, &case["scipy_welch"]);
    same_lift("spotify", &absolute, &case["spotify_welch"]);
    same_lift("gbstats", &absolute, &case["gbstats_absolute"]);
    let relative = welch(&control, &treatment, Scale::Relative, alpha).unwrap();
    same_lift("gbstats relative", &relative, &case["gbstats_relative"]);
}

#[test]
fn sequential_interval_matches_gbstats() {
    let fixture = fixture();
    let case = &fixture["mean"];
    let alpha = number(&fixture["alpha"]);
    let tuning = number(&case["sequential_tuning"]);
    let control = Estimate::mean_of(&moments(&case["control"]));
    let treatment = Estimate::mean_of(&moments(&case["treatment"]));
    for (scale, key) in [
        (Scale::Absolute, "gbstats_sequential_absolute"),
        (Scale::Relative, "gbstats_sequential_relative"),
    ] {
        let lift = sequential(&control, &treatment, scale, alpha, tuning).unwrap();
        same_lift(key, &lift, &case[key]);
        let fixed = welch(&control, &treatment, scale, alpha).unwrap();
        assert!(
            lift.upper - lift.lower > fixed.upper - fixed.lower,
            "{key}: always-valid is wider"
        );
    }
}

#[test]
fn ratio_delta_method_matches_gbstats() {
    let fixture = fixture();
    let case = &fixture["ratio"];
    let alpha = number(&fixture["alpha"]);
    let control = Estimate::ratio_of(&paired(&case["control"]));
    let treatment = Estimate::ratio_of(&paired(&case["treatment"]));
    close("ratio mean", control.mean, number(&case["control_mean"]));
    close("control variance", control.variance, number(&case["control_variance"]));
    close("treatment variance", treatment.variance, number(&case["treatment_variance"]));
    same_lift(
        "ratio absolute",
        &welch(&control, &treatment, Scale::Absolute, alpha).unwrap(),
        &case["gbstats_absolute"],
    );
    same_lift(
        "ratio relative",
        &welch(&control, &treatment, Scale::Relative, alpha).unwrap(),
        &case["gbstats_relative"],
    );
}

#[test]
fn cuped_matches_gbstats() {
    let fixture = fixture();
    let case = &fixture["cuped"];
    let alpha = number(&fixture["alpha"]);
    let (control, treatment) = (paired(&case["control"]), paired(&case["treatment"]));
    let theta = cuped_theta(&control, &treatment);
    close("theta", theta, number(&case["theta"]));
    let (control, treatment) =
        (Estimate::cuped(&control, theta), Estimate::cuped(&treatment, theta));
    close(
        "adjusted difference",
        treatment.mean - control.mean,
        number(&case["adjusted_difference"]),
    );
    close(
        "adjusted variance",
        control.variance / control.n as f64 + treatment.variance / treatment.n as f64,
        number(&case["adjusted_variance_of_difference"]),
    );
    same_lift(
        "cuped absolute",
        &welch(&control, &treatment, Scale::Absolute, alpha).unwrap(),
        &case["gbstats_absolute"],
    );
    same_lift(
        "cuped relative",
        &welch(&control, &treatment, Scale::Relative, alpha).unwrap(),
        &case["gbstats_relative"],
    );
}

#[test]
fn srm_matches_scipy_gbstats_and_spotify() {
    for case in fixture()["srm"].as_array().unwrap() {
        let users: Vec<u64> = serde_json::from_value(case["users"].clone()).unwrap();
        let weights: Vec<f64> = serde_json::from_value(case["weights"].clone()).unwrap();
        let check = chi_square_srm(&users, &weights, 0.001);
        close("χ²", check.statistic, number(&case["scipy_statistic"]));
        close("scipy p", check.p_value, number(&case["scipy_p_value"]));
        close("gbstats p", check.p_value, number(&case["gbstats_p_value"]));
        close("spotify p", check.p_value, number(&case["spotify_p_value"]));
        let concentration = number(&case["concentration"]);
        close(
            "log Bayes factor",
            srm_log_bayes_factor(&users, &weights, concentration),
            number(&case["log_bayes_factor"]),
        );
    }
}

#[test]
fn holm_matches_statsmodels() {
    let fixture = fixture();
    let p_values: Vec<f64> = serde_json::from_value(fixture["holm"]["p_values"].clone()).unwrap();
    let expected: Vec<f64> =
        serde_json::from_value(fixture["holm"]["statsmodels"].clone()).unwrap();
    for (actual, expected) in holm(&p_values).iter().zip(&expected) {
        close("holm", *actual, *expected);
    }
}

#[test]
fn quantiles_and_power_match_scipy() {
    let fixture = fixture();
    for case in fixture["quantiles"].as_array().unwrap() {
        let (p, dof) = (number(&case["p"]), number(&case["dof"]));
        close(&format!("t({p}, {dof})"), student_t_quantile(p, dof), number(&case["t"]));
        close(&format!("z({p})"), normal_quantile(p), number(&case["normal"]));
    }
    let power = &fixture["power"];
    close(
        "users per variant",
        users_per_variant(
            number(&power["variance"]),
            number(&power["effect"]),
            number(&power["alpha"]),
            number(&power["power"]),
        ),
        number(&power["users_per_variant"]),
    );
}

#[test]
fn positions_match_growthbook_sdk() {
    for case in fixture()["hash"].as_array().unwrap() {
        let (seed, id) = (case["seed"].as_str().unwrap(), case["id"].as_str().unwrap());
        assert_eq!(position(seed, id), number(&case["position"]), "seed {seed:?} id {id:?}");
    }
}

#[test]
fn sequential_srm_only_falls() {
    let mut monitor = SequentialSrm::new(1000.0);
    let weights = [0.5, 0.5];
    let early = monitor.observe(&[490, 510], &weights);
    let skewed = monitor.observe(&[4900, 5100], &weights);
    let recovered = monitor.observe(&[5000, 5000], &weights);
    assert!(skewed <= early);
    assert_eq!(recovered, skewed, "a later balanced look does not undo what was seen");
}
