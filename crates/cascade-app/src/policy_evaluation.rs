//! `cascade ope`: off-policy evaluation of exploring traffic in the store.
//!
//! The impressions of explored lists carry the policy that drew them, each
//! item's propensities, and (on the first impression) the candidates and
//! relevance it drew from. Clicks are joined to impressions by the stream
//! processor's own rule (`cascade_stream::join`: any interaction with the
//! item within `[stream] join_window_s` after it). Each target policy is
//! then asked for its propensities of the very lists that were served, and
//! every estimator of `cascade-policy` reports the target's click rate per
//! impression with a bootstrap interval and the effective sample size.

use std::collections::HashMap;

use anyhow::{Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use cascade_core::event::{IMPRESSION, Propensities};
use cascade_policy::exploration::{Explorer, parse_policy};
use cascade_policy::ope::{
    Estimator, LoggedSlate, PositionRewardModel, SlateEstimator, bootstrap_interval,
    effective_sample_size, estimate_slate, target_view,
};
use cascade_store::Store;
use cascade_stream::ImpressionJoin;

use crate::progress::Progress;
use crate::workspace::Workspace;

/// `cascade ope`'s knobs.
#[derive(Debug, Clone)]
pub struct OpeSettings {
    /// Target policies: `greedy`, `epsilon_greedy:ε`, `plackett_luce:T`.
    pub targets: Vec<String>,
    /// Only lists this policy drew (its logged label); all explored lists
    /// if `None`.
    pub behaviour: Option<String>,
    /// Bootstrap resamples per interval.
    pub bootstrap: usize,
    /// Two-sided level of the intervals.
    pub alpha: f64,
    /// Monte-Carlo draws for a Plackett-Luce target's slot probabilities.
    pub monte_carlo_samples: usize,
    pub seed: u64,
}

/// What was read from the log.
#[derive(Debug, Clone, Default, PartialEq)]
struct LogTotals {
    lists: usize,
    impressions: usize,
    clicks: usize,
    unexplored_impressions: usize,
    incomplete_lists: usize,
}

/// An explored list while the log is read.
#[derive(Debug, Default)]
struct OpenList {
    policy: String,
    candidates: Vec<(String, f64)>,
    /// (slot, item, propensities, impression seq)
    slots: Vec<(usize, String, Propensities, u64)>,
}

/// Every explored list in the store, with its slots' rewards.
fn logged_slates(
    store: &Store,
    join_window_ms: i64,
    behaviour: Option<&str>,
) -> Result<(Vec<LoggedSlate>, Vec<String>, LogTotals)> {
    let mut join = ImpressionJoin::new(join_window_ms);
    let mut lists: HashMap<String, OpenList> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut clicked: std::collections::HashSet<u64> = std::collections::HashSet::new();
    let mut totals = LogTotals::default();
    let mut from = 0;
    loop {
        let page = store.events_page(from, 10_000)?;
        let Some(last) = page.last() else { break };
        from = last.seq + 1;
        for stored in &page {
            let event = &stored.event;
            if event.event_type != IMPRESSION {
                if let Some(sample) = join.interaction(&event.user, &event.item, event.ts_ms) {
                    clicked.insert(sample.impression_seq);
                }
                continue;
            }
            join.impression(stored.seq, &event.user, &event.item, event.ts_ms);
            let Some(served) = event.served.as_ref() else { continue };
            let Some(policy) = served.policy.as_ref() else {
                totals.unexplored_impressions += 1;
                continue;
            };
            if behaviour.is_some_and(|b| b != policy) {
                continue;
            }
            let list = lists.entry(served.request_id.clone()).or_insert_with(|| {
                order.push(served.request_id.clone());
                OpenList { policy: policy.clone(), ..OpenList::default() }
            });
            if !served.candidates.is_empty() {
                list.candidates = served.candidates.clone();
            }
            let slot = event.value.map_or(0, |rank| (rank as usize).saturating_sub(1));
            list.slots.push((slot, event.item.clone(), served.propensities(), stored.seq));
        }
    }
    let mut slates = Vec::with_capacity(order.len());
    let mut policies = Vec::with_capacity(order.len());
    for id in order {
        let Some(mut list) = lists.remove(&id) else { continue };
        list.slots.sort_by_key(|s| s.0);
        let index: HashMap<&str, usize> =
            list.candidates.iter().enumerate().map(|(i, (item, _))| (item.as_str(), i)).collect();
        let served: Option<Vec<usize>> =
            list.slots.iter().map(|(_, item, ..)| index.get(item.as_str()).copied()).collect();
        let in_order = list.slots.iter().enumerate().all(|(k, s)| s.0 == k);
        let Some(served) = served.filter(|_| in_order && !list.candidates.is_empty()) else {
            totals.incomplete_lists += 1;
            continue;
        };
        let rewards: Vec<f64> =
            list.slots.iter().map(|s| if clicked.contains(&s.3) { 1.0 } else { 0.0 }).collect();
        totals.lists += 1;
        totals.impressions += rewards.len();
        totals.clicks += rewards.iter().filter(|&&r| r > 0.0).count();
        slates.push(LoggedSlate {
            relevance: list.candidates.iter().map(|(_, r)| *r).collect(),
            served,
            behavior: list.slots.iter().map(|s| s.2).collect(),
            rewards,
        });
        policies.push(list.policy);
    }
    Ok((slates, policies, totals))
}

/// Reads the workspace's log and estimates every target policy's click
/// rate per impression; the JSON report.
pub fn evaluate(
    workspace: &Workspace,
    settings: &OpeSettings,
    progress: Progress,
) -> Result<Value> {
    let targets: Vec<Box<dyn Explorer>> = settings
        .targets
        .iter()
        .map(|t| parse_policy(t, settings.monte_carlo_samples))
        .collect::<Result<_, String>>()
        .map_err(anyhow::Error::msg)?;
    if targets.is_empty() {
        bail!("no target policy: pass --target greedy, epsilon_greedy:EPSILON or plackett_luce:T");
    }
    let store = workspace.store()?;
    let join_window_ms = workspace.config.stream.join_window_s as i64 * 1000;
    let (slates, policies, totals) =
        logged_slates(&store, join_window_ms, settings.behaviour.as_deref())?;
    if slates.is_empty() {
        bail!(
            "the store holds no explored lists ({} impressions served without exploration): list \
             epsilon_greedy or plackett_luce last in [recommend] rerankers to log propensities",
            totals.unexplored_impressions
        );
    }
    let mut behaviours: Vec<String> = policies.clone();
    behaviours.sort();
    behaviours.dedup();
    let model = PositionRewardModel::fit(&slates);
    let bar = match progress.quiet {
        true => ProgressBar::hidden(),
        false => ProgressBar::new(targets.len() as u64),
    };
    bar.set_style(
        ProgressStyle::with_template("off-policy {bar:30} {pos}/{len} targets {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mean_slots = totals.impressions as f64 / totals.lists as f64;
    let mut reports = Vec::new();
    for (k, target) in targets.iter().enumerate() {
        bar.set_message(target.label());
        let (rounds, rows) =
            target_view(target.as_ref(), &slates, &model, settings.seed + k as u64);
        let mut estimates = Vec::new();
        for estimator in Estimator::defaults() {
            let value = estimator.estimate(&rounds)?;
            let interval = bootstrap_interval(
                estimator,
                &rounds,
                settings.bootstrap,
                settings.alpha,
                settings.seed,
            )?;
            estimates.push(json!({
                "estimator": estimator.label(),
                "ctr": value,
                "lower": interval.lower,
                "upper": interval.upper,
            }));
        }
        for estimator in SlateEstimator::ALL {
            let per_list = estimate_slate(estimator, &rows)?;
            estimates.push(json!({ "estimator": estimator.label(), "ctr": per_list / mean_slots }));
        }
        reports.push(json!({
            "policy": target.label(),
            "effective_sample_size": effective_sample_size(&rounds),
            "estimates": estimates,
        }));
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(json!({
        "logged": {
            "policies": behaviours,
            "lists": totals.lists,
            "impressions": totals.impressions,
            "clicks": totals.clicks,
            "ctr": totals.clicks as f64 / totals.impressions.max(1) as f64,
            "impressions_without_exploration": totals.unexplored_impressions,
            "lists_skipped_incomplete": totals.incomplete_lists,
        },
        "reward_model": model,
        "bootstrap": { "resamples": settings.bootstrap, "alpha": settings.alpha, "seed": settings.seed },
        "targets": reports,
    }))
}

/// The report as a table: one row per target and estimator.
pub fn describe(report: &Value) -> String {
    let logged = &report["logged"];
    let mut out = format!(
        "logged: {} explored lists, {} impressions, {} clicks (CTR {:.4}) by {}\n",
        logged["lists"],
        logged["impressions"],
        logged["clicks"],
        logged["ctr"].as_f64().unwrap_or(0.0),
        logged["policies"],
    );
    for target in report["targets"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "\n{} (effective sample size {:.0})\n",
            target["policy"].as_str().unwrap_or("?"),
            target["effective_sample_size"].as_f64().unwrap_or(0.0)
        ));
        for e in target["estimates"].as_array().into_iter().flatten() {
            let interval = match (e["lower"].as_f64(), e["upper"].as_f64()) {
                (Some(l), Some(u)) => format!("[{l:.4}, {u:.4}]"),
                _ => String::new(),
            };
            out.push_str(&format!(
                "  {:<22} {:.4} {interval}\n",
                e["estimator"].as_str().unwrap_or("?"),
                e["ctr"].as_f64().unwrap_or(f64::NAN)
            ));
        }
    }
    out
}
