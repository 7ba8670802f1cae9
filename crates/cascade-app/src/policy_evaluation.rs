//! `cascade ope`: off-policy evaluation of exploring traffic in the store.
//!
//! The impressions of explored lists carry the policy that drew them, each
//! item's propensities, and (on the first impression) the candidates and
//! relevance it drew from. A click (any interaction) answers the user's
//! most recent impression of the item, if it came within `[stream]
//! join_window_s` of it: the list it was clicked in. (The stream's join
//! for online learning credits the oldest open impression instead; a user
//! shown one item in several lists in a short while, as the simulator's
//! compressed visits are, would have every later click credited to the
//! first list, which for off-policy evaluation moves clicks between
//! lists that had different propensities.) Each target policy is
//! then asked for its propensities of the very lists that were served, and
//! every estimator of `cascade-policy` reports the target's click rate per
//! impression with a bootstrap interval and the effective sample size.
//!
//! On a simulated log the simulator's ground truth can say what each
//! target's click rate really is on the same requests (each candidate's
//! chance of each slot under the target, times the simulated user's
//! examination and click chances), and the log can be cut into consecutive
//! parts, each estimated and checked on its own, for the estimators'
//! errors and their intervals' coverage.

use std::collections::{BTreeSet, HashMap};

use anyhow::{Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use cascade_core::event::{IMPRESSION, Propensities};
use cascade_policy::exploration::{Explorer, parse_policy};
use cascade_policy::ope::{
    Estimator, LoggedSlate, PositionRewardModel, Round, SlateEstimator, bootstrap_interval,
    bootstrap_lift_interval, effective_sample_size, estimate_slate, slot_marginals, target_view,
};
use cascade_store::Store;

use crate::ab_testing::simulator::{GroundTruth, examination};
use crate::progress::Progress;
use crate::workspace::Workspace;

/// `cascade ope`'s knobs.
#[derive(Debug, Clone)]
pub struct OpeSettings {
    /// Target policies: `greedy`, `epsilon_greedy:ε`, `plackett_luce:T`.
    pub targets: Vec<String>,
    /// Which explored lists to read.
    pub lists: LogFilter,
    /// A target (one of `targets`) every other target's lift is estimated
    /// over, with a paired bootstrap interval: what an A/B test of the two
    /// would find on these requests.
    pub lift_over: Option<String>,
    /// Bootstrap resamples per interval.
    pub bootstrap: usize,
    /// Two-sided level of the intervals.
    pub alpha: f64,
    /// Monte-Carlo draws for a Plackett-Luce target's slot probabilities.
    pub monte_carlo_samples: usize,
    /// Consecutive parts of the log estimated separately (1: the whole).
    pub parts: usize,
    pub seed: u64,
}

/// Who a logged list was for and what its candidates were.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ListContext {
    pub(crate) user: String,
    pub(crate) candidates: Vec<String>,
}

/// What was read from the log.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct LogTotals {
    lists: usize,
    impressions: usize,
    clicks: usize,
    unexplored_impressions: usize,
    incomplete_lists: usize,
}

/// An explored list while the log is read.
#[derive(Debug, Default)]
struct OpenList {
    user: String,
    policy: String,
    candidates: Vec<(String, f64)>,
    /// (slot, item, propensities, impression seq)
    slots: Vec<(usize, String, Propensities, u64)>,
}

/// The explored lists of a log, in log order, side by side.
pub(crate) struct ExploredLog {
    pub(crate) slates: Vec<LoggedSlate>,
    pub(crate) contexts: Vec<ListContext>,
    /// The policies that drew them, each once, sorted.
    pub(crate) behaviours: BTreeSet<String>,
    pub(crate) totals: LogTotals,
}

/// Which of the store's explored lists an evaluation reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogFilter {
    /// Only lists this policy drew (its logged label).
    pub behaviour: Option<String>,
    /// Only lists served to this experiment's variant, `(experiment,
    /// variant)`.
    pub variant: Option<(String, String)>,
}

impl LogFilter {
    /// `EXPERIMENT/VARIANT` as a variant filter; an error naming the text
    /// otherwise.
    pub fn parse_variant(text: &str) -> Result<(String, String)> {
        match text.split_once('/') {
            Some((experiment, variant)) if !experiment.is_empty() && !variant.is_empty() => {
                Ok((experiment.to_owned(), variant.to_owned()))
            }
            _ => bail!("--variant {text:?}: expected EXPERIMENT/VARIANT, e.g. ope/logging"),
        }
    }

    fn admits(&self, policy: &str, variants: &[(String, String)]) -> bool {
        self.behaviour.as_deref().is_none_or(|b| b == policy)
            && self.variant.as_ref().is_none_or(|(e, v)| {
                variants.iter().any(|(experiment, variant)| experiment == e && variant == v)
            })
    }
}

/// Every explored list in the store that `filter` admits, with its slots'
/// rewards.
pub(crate) fn logged_slates(
    store: &Store,
    join_window_ms: i64,
    filter: &LogFilter,
) -> Result<ExploredLog> {
    // (user, item) → every impression's (shown at, seq), and every other
    // event's (user, item, time): joined once the whole log is read, by
    // time, because telemetry may be committed after a click it caused.
    let mut shown: HashMap<(String, String), Vec<(i64, u64)>> = HashMap::new();
    let mut interactions: Vec<(String, String, i64)> = Vec::new();
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
                interactions.push((event.user.clone(), event.item.clone(), event.ts_ms));
                continue;
            }
            let key = (event.user.clone(), event.item.clone());
            shown.entry(key).or_default().push((event.ts_ms, stored.seq));
            let Some(served) = event.served.as_ref() else { continue };
            let Some(policy) = served.policy.as_ref() else {
                totals.unexplored_impressions += 1;
                continue;
            };
            if !filter.admits(policy, &served.variants) {
                continue;
            }
            let list = lists.entry(served.request_id.clone()).or_insert_with(|| {
                order.push(served.request_id.clone());
                OpenList { user: event.user.clone(), policy: policy.clone(), ..OpenList::default() }
            });
            if !served.candidates.is_empty() {
                list.candidates = served.candidates.clone();
            }
            let slot = event.value.map_or(0, |rank| (rank as usize).saturating_sub(1));
            list.slots.push((slot, event.item.clone(), served.propensities(), stored.seq));
        }
    }
    for times in shown.values_mut() {
        times.sort_unstable();
    }
    for (user, item, at) in interactions {
        let Some(times) = shown.get(&(user, item)) else { continue };
        // The latest impression at or before the interaction.
        let before = times.partition_point(|&(t, _)| t <= at);
        if let Some(&(t, seq)) = before.checked_sub(1).map(|i| &times[i])
            && at - t <= join_window_ms
        {
            clicked.insert(seq);
        }
    }
    let mut slates = Vec::with_capacity(order.len());
    let mut contexts = Vec::with_capacity(order.len());
    let mut behaviours = BTreeSet::new();
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
        behaviours.insert(list.policy);
        let candidates = list.candidates.into_iter().map(|(item, _)| item).collect();
        contexts.push(ListContext { user: list.user, candidates });
    }
    Ok(ExploredLog { slates, contexts, behaviours, totals })
}

/// Whether the store holds any impression an exploring policy served.
pub fn has_explored_lists(store: &Store) -> Result<bool> {
    let mut from = 0;
    loop {
        let page = store.events_page(from, 10_000)?;
        let Some(last) = page.last() else { return Ok(false) };
        from = last.seq + 1;
        if page.iter().any(|s| s.event.served.as_ref().is_some_and(|v| v.policy.is_some())) {
            return Ok(true);
        }
    }
}

/// The simulated truth of `target`'s click rate per impression over
/// `slates`: Σ over lists, slots and candidates of P(candidate at slot) ×
/// examination(slot) × the user's click chance, over the impressions.
fn true_click_rate(
    marginals: &[Vec<Vec<f64>>],
    contexts: &[ListContext],
    truth: &GroundTruth,
) -> Result<f64> {
    let (mut clicks, mut impressions) = (0.0, 0usize);
    for (slots, context) in marginals.iter().zip(contexts) {
        clicks += expected_clicks(slots, context, truth)?;
        impressions += slots.len();
    }
    Ok(clicks / impressions.max(1) as f64)
}

/// The simulated users' expected clicks on one list, given the target's
/// probability of each candidate at each slot (`[slot][candidate]`).
pub(crate) fn expected_clicks(
    slots: &[Vec<f64>],
    context: &ListContext,
    truth: &GroundTruth,
) -> Result<f64> {
    let Some(chances) = truth.preferences(&context.user, &context.candidates) else {
        bail!("the ground truth does not know user {:?}: was this log simulated?", context.user)
    };
    Ok(slots
        .iter()
        .enumerate()
        .map(|(slot, row)| {
            examination(slot) * row.iter().zip(&chances).map(|(p, c)| p * c).sum::<f64>()
        })
        .sum())
}

/// Every estimator on one part of the log: estimates and intervals, and
/// against `truth` (if known) each one's relative error and coverage; the
/// effective sample size, and the rounds the target saw (for lifts).
fn estimate_part(
    target: &dyn Explorer,
    (slates, marginals): (&[LoggedSlate], &[Vec<Vec<f64>>]),
    model: &PositionRewardModel,
    settings: &OpeSettings,
    truth: Option<f64>,
    seed: u64,
) -> Result<(f64, Vec<Value>, Vec<Round>)> {
    let (rounds, rows) = target_view(target, slates, marginals, model, seed);
    let impressions = rounds.len() as f64;
    let judged = |value: f64, interval: Option<(f64, f64)>| -> Value {
        let Some(truth) = truth else { return Value::Null };
        json!({
            "relative_error": (value - truth) / truth,
            "covers": interval.map(|(l, u)| l <= truth && truth <= u),
        })
    };
    let mut estimates = Vec::new();
    for estimator in Estimator::defaults() {
        let value = estimator.estimate(&rounds)?;
        let interval =
            bootstrap_interval(estimator, &rounds, settings.bootstrap, settings.alpha, seed)?;
        estimates.push(json!({
            "estimator": estimator.label(),
            "ctr": value,
            "lower": interval.lower,
            "upper": interval.upper,
            "against_truth": judged(value, Some((interval.lower, interval.upper))),
        }));
    }
    for estimator in SlateEstimator::ALL {
        let value = estimate_slate(estimator, &rows)? * slates.len() as f64 / impressions;
        estimates.push(json!({
            "estimator": estimator.label(),
            "ctr": value,
            "against_truth": judged(value, None),
        }));
    }
    Ok((effective_sample_size(&rounds), estimates, rounds))
}

/// Each standard estimator's lift of `treatment` over `control` (the same
/// logged rounds seen from each), with a paired bootstrap interval.
fn lift_estimates(
    (treatment, control): (&[Round], &[Round]),
    settings: &OpeSettings,
) -> Result<Vec<Value>> {
    Estimator::defaults()
        .into_iter()
        .map(|estimator| {
            let lift = estimator.estimate(treatment)? / estimator.estimate(control)? - 1.0;
            let interval = bootstrap_lift_interval(
                estimator,
                (treatment, control),
                settings.bootstrap,
                settings.alpha,
                settings.seed,
            )?;
            Ok(json!({
                "estimator": estimator.label(),
                "lift": lift,
                "lower": interval.lower,
                "upper": interval.upper,
            }))
        })
        .collect()
}

/// Each estimator's mean absolute relative error and interval coverage
/// over the parts.
fn summarise_parts(parts: &[Vec<Value>]) -> Value {
    let Some(first) = parts.first() else { return Value::Null };
    let summary: Vec<Value> = (0..first.len())
        .map(|e| {
            let judged: Vec<&Value> = parts.iter().map(|p| &p[e]["against_truth"]).collect();
            let errors: Vec<f64> =
                judged.iter().filter_map(|j| j["relative_error"].as_f64()).map(f64::abs).collect();
            let covers: Vec<bool> = judged.iter().filter_map(|j| j["covers"].as_bool()).collect();
            let values: Vec<&Value> = parts.iter().map(|p| &p[e]["ctr"]).collect();
            json!({
                "estimator": first[e]["estimator"],
                "ctr_by_part": values,
                "mean_abs_relative_error": errors.iter().sum::<f64>() / errors.len().max(1) as f64,
                "coverage": (!covers.is_empty()).then(|| {
                    covers.iter().filter(|&&c| c).count() as f64 / covers.len() as f64
                }),
            })
        })
        .collect();
    Value::Array(summary)
}

/// Reads the workspace's log and estimates every target policy's click
/// rate per impression; with `truth`, holds each estimate to it. The JSON
/// report.
pub fn evaluate(
    workspace: &Workspace,
    settings: &OpeSettings,
    truth: Option<&GroundTruth>,
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
    let control = match &settings.lift_over {
        None => None,
        Some(spec) => match settings.targets.iter().position(|t| t == spec) {
            Some(index) => Some(index),
            None => bail!(
                "--lift-over {spec:?} is not one of the targets ({}): pass it as --target too",
                settings.targets.join(", ")
            ),
        },
    };
    let store = workspace.store()?;
    let join_window_ms = workspace.config.stream.join_window_s as i64 * 1000;
    let ExploredLog { slates, contexts, behaviours, totals } =
        logged_slates(&store, join_window_ms, &settings.lists)?;
    if slates.is_empty() {
        bail!(
            "the store holds no explored lists ({} impressions served without exploration): list \
             epsilon_greedy or plackett_luce last in [recommend] rerankers to log propensities",
            totals.unexplored_impressions
        );
    }
    let model = PositionRewardModel::fit(&slates);
    let parts = settings.parts.clamp(1, slates.len());
    let bar = match progress.quiet {
        true => ProgressBar::hidden(),
        false => ProgressBar::new((targets.len() * (1 + parts)) as u64),
    };
    bar.set_style(
        ProgressStyle::with_template("off-policy {bar:30} {pos}/{len} estimates {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let chunk = slates.len().div_ceil(parts);
    let mut reports = Vec::new();
    let mut rounds_by_target = Vec::new();
    for (k, target) in targets.iter().enumerate() {
        bar.set_message(target.label());
        let seed = settings.seed + k as u64;
        let marginals = slot_marginals(target.as_ref(), &slates, seed);
        let truth_of = |marginals: &[Vec<Vec<f64>>], contexts: &[ListContext]| {
            truth.map(|t| true_click_rate(marginals, contexts, t)).transpose()
        };
        let whole_truth = truth_of(&marginals, &contexts)?;
        let whole = (slates.as_slice(), marginals.as_slice());
        let (ess, estimates, rounds) =
            estimate_part(target.as_ref(), whole, &model, settings, whole_truth, seed)?;
        rounds_by_target.push(rounds);
        bar.inc(1);
        let mut part_estimates = Vec::new();
        let mut part_truths = Vec::new();
        if parts > 1 {
            let chunks =
                slates.chunks(chunk).zip(marginals.chunks(chunk)).zip(contexts.chunks(chunk));
            for ((part, part_marginals), context) in chunks {
                let part_truth = truth_of(part_marginals, context)?;
                part_truths.push(part_truth);
                let view = (part, part_marginals);
                let (_, estimates, _) =
                    estimate_part(target.as_ref(), view, &model, settings, part_truth, seed)?;
                part_estimates.push(estimates);
                bar.inc(1);
            }
        }
        reports.push(json!({
            "policy": target.label(),
            "truth": whole_truth,
            "effective_sample_size": ess,
            "estimates": estimates,
            "parts": (parts > 1).then(|| json!({
                "count": part_estimates.len(),
                "lists_each": chunk,
                "truth_by_part": part_truths,
                "by_estimator": summarise_parts(&part_estimates),
            })),
        }));
    }
    bar.finish_and_clear();
    if let Some(c) = control {
        for (k, report) in reports.iter_mut().enumerate().filter(|(k, _)| *k != c) {
            let pair = (rounds_by_target[k].as_slice(), rounds_by_target[c].as_slice());
            report["lift_over"] = json!({
                "control": targets[c].label(),
                "estimates": lift_estimates(pair, settings)?,
            });
        }
    }
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
        let truth = match target["truth"].as_f64() {
            Some(t) => format!(", simulated truth {t:.4}"),
            None => String::new(),
        };
        out.push_str(&format!(
            "\n{} (effective sample size {:.0}{truth})\n",
            target["policy"].as_str().unwrap_or("?"),
            target["effective_sample_size"].as_f64().unwrap_or(0.0)
        ));
        for e in target["estimates"].as_array().into_iter().flatten() {
            let interval = match (e["lower"].as_f64(), e["upper"].as_f64()) {
                (Some(l), Some(u)) => format!("[{l:.4}, {u:.4}]"),
                _ => String::new(),
            };
            let error = match e["against_truth"]["relative_error"].as_f64() {
                Some(r) => format!("  error {:+.1}%", 100.0 * r),
                None => String::new(),
            };
            out.push_str(&format!(
                "  {:<22} {:.4} {interval}{error}\n",
                e["estimator"].as_str().unwrap_or("?"),
                e["ctr"].as_f64().unwrap_or(f64::NAN)
            ));
        }
        if let Some(control) = target["lift_over"]["control"].as_str() {
            out.push_str(&format!("  lift over {control}:\n"));
            for e in target["lift_over"]["estimates"].as_array().into_iter().flatten() {
                let percent = |key: &str| 100.0 * e[key].as_f64().unwrap_or(f64::NAN);
                out.push_str(&format!(
                    "  {:<22} {:+.1}% [{:+.1}%, {:+.1}%]\n",
                    e["estimator"].as_str().unwrap_or("?"),
                    percent("lift"),
                    percent("lower"),
                    percent("upper")
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use cascade_core::event::{Event, Served};
    use cascade_store::{EventKey, KeyedEvent};

    fn impression(request: &str, item: &str, rank: usize, ts_ms: i64) -> Event {
        Event {
            user: "u".into(),
            item: item.into(),
            event_type: IMPRESSION.into(),
            value: Some(rank as f64),
            ts_ms,
            served: Some(Box::new(Served {
                request_id: request.into(),
                model_version: "v".into(),
                variants: Vec::new(),
                prior_consumption: 0,
                team: None,
                policy: Some("epsilon_greedy(epsilon=0.5)".into()),
                propensity: Some(Propensities { slate: 0.25, item_position: 0.5, cascade: 0.5 }),
                candidates: match rank {
                    1 => vec![("a".into(), 1.0), ("b".into(), 0.5), ("c".into(), 0.0)],
                    _ => Vec::new(),
                },
            })),
        }
    }

    /// A click answers the user's latest impression of the item before it
    /// in time, even when the log holds it first (telemetry is committed
    /// after the client's events), and none once the window has passed.
    #[test]
    fn clicks_answer_the_latest_impression_before_them_in_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store.redb")).unwrap();
        let click = |ts_ms| Event {
            user: "u".into(),
            item: "a".into(),
            event_type: "click".into(),
            value: None,
            ts_ms,
            served: None,
        };
        let events = [
            impression("r1", "a", 1, 1_000),
            impression("r1", "b", 2, 1_000),
            click(2_500), // logged before the impression it answers
            impression("r2", "a", 1, 2_000),
            impression("r2", "c", 2, 2_000),
            impression("r3", "a", 1, 10_000),
            impression("r3", "b", 2, 10_000),
            click(20_000), // 10 s after r3: past a 5 s window
        ];
        let keyed: Vec<KeyedEvent> = events
            .iter()
            .enumerate()
            .map(|(k, event)| KeyedEvent {
                key: EventKey::from_client_id(&k.to_string()),
                event: event.clone(),
            })
            .collect();
        store.append(&keyed).unwrap();
        let log = logged_slates(&store, 5_000, &LogFilter::default()).unwrap();
        let rewards: Vec<&Vec<f64>> = log.slates.iter().map(|s| &s.rewards).collect();
        assert_eq!(rewards, [&vec![0.0, 0.0], &vec![1.0, 0.0], &vec![0.0, 0.0]]);
        assert_eq!(log.slates[1].served, vec![0, 2], "candidates a, b, c; r2 served a then c");
        assert_eq!(log.totals.clicks, 1);
        assert_eq!(log.contexts[1].user, "u");
    }
}
