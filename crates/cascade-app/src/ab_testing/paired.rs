//! `cascade experiment paired`: two simulations of the same users against
//! two servers, compared user by user.
//!
//! In a simulator the same users can meet both policies: `cascade simulate
//! --per-user-out FILE` with the same seed and users against a server
//! serving A and one serving B gives each user's clicks and the truth's
//! expected clicks under each. The difference per user removes the
//! between-user variance that makes an A/B test of a few hundred users
//! blind to a few percent (common random numbers), while each run still
//! includes what serving its policy does to the requests that follow. The
//! lift is the mean per-user difference with the experiments' one-sample t
//! interval, relative to A's mean.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use cascade_experiments::statistics::{Estimate, Lift, Moments, one_sample};

use super::simulator::UserTraffic;

fn read(path: &Path) -> Result<BTreeMap<String, UserTraffic>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut users = BTreeMap::new();
    for (line, row) in text.lines().enumerate().filter(|(_, row)| !row.trim().is_empty()) {
        let traffic: UserTraffic = serde_json::from_str(row).with_context(|| {
            format!("{} line {}: not a per-user line", path.display(), line + 1)
        })?;
        users.insert(traffic.user.clone(), traffic);
    }
    Ok(users)
}

/// The mean of per-user differences B − A with the one-sample t interval,
/// and the same relative to A's mean per user, `base` (`null` when it is
/// 0 or the differences have no spread).
pub(crate) fn paired_lift(differences: &[f64], base: f64, alpha: f64) -> (Option<Lift>, Value) {
    let lift = one_sample(&Estimate::mean_of(&Moments::of(differences)), alpha);
    let relative = lift.filter(|_| base != 0.0).map(|l| {
        json!({
            "estimate": l.estimate / base,
            "lower": l.lower / base,
            "upper": l.upper / base,
            "p_value": l.p_value,
        })
    });
    (lift, json!(relative))
}

/// B against A over the users both files hold, for clicks and for the
/// truth's expected clicks per user.
pub fn paired_comparison(control: &Path, treatment: &Path, alpha: f64) -> Result<Value> {
    let (a, b) = (read(control)?, read(treatment)?);
    if let Some(user) = a.keys().find(|u| !b.contains_key(*u)) {
        bail!(
            "user {user} is in {} but not in {}: simulate the same users (--users, --seed) \
             against both servers",
            control.display(),
            treatment.display()
        );
    }
    if a.len() != b.len() {
        bail!("{} holds users {} does not", treatment.display(), control.display());
    }
    let metric = |value: fn(&UserTraffic) -> f64| -> Value {
        let differences: Vec<f64> = a.iter().map(|(u, x)| value(&b[u]) - value(x)).collect();
        let base = a.values().map(value).sum::<f64>() / a.len().max(1) as f64;
        let (lift, relative) = paired_lift(&differences, base, alpha);
        json!({
            "control_mean": base,
            "treatment_mean": b.values().map(value).sum::<f64>() / b.len().max(1) as f64,
            "difference": lift,
            "relative": relative,
        })
    };
    Ok(json!({
        "users": a.len(),
        "alpha": alpha,
        "expected_clicks_per_user": metric(|t| t.expected_clicks),
        "clicks_per_user": metric(|t| t.clicks as f64),
        "impressions_per_user": metric(|t| t.impressions as f64),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, rows: &[(&str, usize, f64)]) -> std::path::PathBuf {
        let lines: Vec<String> = rows
            .iter()
            .map(|&(user, clicks, expected)| {
                let traffic = UserTraffic {
                    user: user.into(),
                    clicks,
                    expected_clicks: expected,
                    ..UserTraffic::default()
                };
                serde_json::to_string(&traffic).unwrap()
            })
            .collect();
        let path = dir.join(name);
        std::fs::write(&path, lines.join("\n")).unwrap();
        path
    }

    /// Users who differ a lot among themselves but gain the same under B:
    /// the paired interval is tight around the gain.
    #[test]
    fn pairing_removes_the_spread_between_users() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(dir.path(), "a", &[("1", 1, 1.0), ("2", 10, 10.0), ("3", 5, 5.0)]);
        let b = write(dir.path(), "b", &[("1", 2, 1.5), ("2", 11, 10.6), ("3", 6, 5.4)]);
        let report = paired_comparison(&a, &b, 0.05).unwrap();
        let expected = &report["expected_clicks_per_user"];
        let difference = expected["difference"]["estimate"].as_f64().unwrap();
        assert!((difference - 0.5).abs() < 1e-12, "{report}");
        let relative = expected["relative"]["estimate"].as_f64().unwrap();
        assert!((relative - 0.5 / (16.0 / 3.0)).abs() < 1e-12);
        assert!(expected["difference"]["lower"].as_f64().unwrap() > 0.0, "{report}");
        let missing = write(dir.path(), "c", &[("1", 2, 1.5)]);
        let error = paired_comparison(&a, &missing, 0.05).unwrap_err().to_string();
        assert!(error.starts_with("user 2 is in"), "{error}");
    }
}
