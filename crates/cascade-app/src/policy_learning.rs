//! `cascade learn-policy`: a ranking policy learned from the explored
//! lists in the log (`cascade_policy::learning`), judged on lists it did
//! not learn from.
//!
//! The explored lists are cut in log order: the oldest `train_share`
//! teach, the rest judge. Every arm starts from the supervised ranker: the
//! configured REINFORCE with off-policy and top-K correction, the same
//! objective uncorrected, and one-at-a-time sweeps of K and of the weight
//! cap. Each arm serves the greedy list of its logits on the judging
//! requests, and is reported two ways:
//! - off-policy: SNIPS, DR and SNDR of its click rate from the judging
//!   lists' clicks and propensities, with bootstrap intervals;
//! - on a simulated log, the truth: the simulated users' expected clicks
//!   on each judging request under the arm (the same truth `cascade ope`
//!   holds estimates to), and the lift over the supervised ranker as a
//!   paired test over users (per-user click differences, the experiments'
//!   one-sample t interval), since both arms answer the same requests.
//!
//! The configured and the uncorrected arm are saved to
//! `<workspace>/policies/` for the `learned_policy` serving step, so that
//! they can be served to live (or simulated) users in an experiment.

use std::collections::HashMap;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use cascade_core::policy_config::PolicyLearningConfig;
use cascade_experiments::calibration::SplitMix;
use cascade_policy::exploration::{EpsilonGreedy, Explorer, greedy_order};
use cascade_policy::learning::{
    ReinforceSettings, SavedPolicy, SoftmaxPolicy, TrainingList, TrainingTrace, reinforce,
};
use cascade_policy::ope::{
    Estimator, LoggedSlate, PositionRewardModel, bootstrap_interval, effective_sample_size,
    target_view_scored,
};

use crate::ab_testing::paired::paired_lift;
use crate::ab_testing::simulator::GroundTruth;
use crate::policy_evaluation::{ListContext, LogFilter, expected_clicks, logged_slates};
use crate::progress::Progress;
use crate::workspace::Workspace;

/// `cascade learn-policy`'s knobs beyond `[policy_learning]`.
#[derive(Debug, Clone)]
pub struct LearningSettings {
    pub config: PolicyLearningConfig,
    /// Only lists this logged policy drew; every explored list if `None`.
    pub behaviour: Option<String>,
    /// K values tried at the configured cap.
    pub top_k_sweep: Vec<usize>,
    /// Caps tried at the configured K.
    pub cap_sweep: Vec<f64>,
    /// Bootstrap resamples per off-policy interval.
    pub bootstrap: usize,
    /// Two-sided level of every interval.
    pub alpha: f64,
    pub seed: u64,
}

/// One way of learning, and what it learned.
struct Arm {
    label: String,
    /// What the arm is among the others: `supervised`, `configured`,
    /// `uncorrected`, `top_k_sweep` or `cap_sweep`.
    role: &'static str,
    settings: Option<ReinforceSettings>,
    policy: SoftmaxPolicy,
    trace: Option<TrainingTrace>,
}

fn cap_label(cap: f64) -> String {
    match cap.is_finite() {
        true => format!("{cap:.3}"),
        false => "inf".into(),
    }
}

/// The arms: supervised, configured, uncorrected, then the sweeps.
fn train_arms(
    lists: &[TrainingList<'_>],
    items: usize,
    settings: &LearningSettings,
    progress: Progress,
) -> Vec<Arm> {
    let config = &settings.config;
    let base = ReinforceSettings {
        top_k: config.top_k,
        weight_cap: config.weight_cap,
        off_policy_correction: true,
        learning_rate: config.learning_rate,
        steps: config.steps,
        l2: config.l2,
        initial_temperature: config.initial_temperature,
    };
    let mut plans: Vec<(&'static str, ReinforceSettings)> = vec![
        ("configured", base.clone()),
        ("uncorrected", ReinforceSettings { off_policy_correction: false, ..base.clone() }),
    ];
    plans.extend(
        settings
            .top_k_sweep
            .iter()
            .map(|&top_k| ("top_k_sweep", ReinforceSettings { top_k, ..base.clone() })),
    );
    plans.extend(
        settings
            .cap_sweep
            .iter()
            .map(|&weight_cap| ("cap_sweep", ReinforceSettings { weight_cap, ..base.clone() })),
    );
    let bar = progress.bar(plans.len() as u64, "learning", "policies");
    let mut arms = vec![Arm {
        label: "supervised".into(),
        role: "supervised",
        settings: None,
        policy: SoftmaxPolicy::supervised(items, config.initial_temperature),
        trace: None,
    }];
    for (role, plan) in plans {
        let (policy, trace) = reinforce(lists, items, &plan);
        let label = match plan.off_policy_correction {
            true => format!("reinforce(top_k={}, cap={})", plan.top_k, cap_label(plan.weight_cap)),
            false => format!("reinforce(top_k={}, uncorrected)", plan.top_k),
        };
        arms.push(Arm { label, role, settings: Some(plan), policy, trace: Some(trace) });
        bar.inc(1);
    }
    bar.finish_and_clear();
    arms
}

/// The configured and the uncorrected arm's policies as files the
/// `learned_policy` serving step reads: `<workspace>/policies/<role>.json`.
fn save_policies(
    workspace: &Workspace,
    arms: &[Arm],
    catalogue: &HashMap<&str, u32>,
) -> Result<serde_json::Map<String, Value>> {
    let mut ids = vec![""; catalogue.len()];
    for (&id, &index) in catalogue {
        ids[index as usize] = id;
    }
    let dir = workspace.dir.join("policies");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut saved = serde_json::Map::new();
    for arm in arms.iter().filter(|a| matches!(a.role, "configured" | "uncorrected")) {
        let path = dir.join(format!("{}.json", arm.role));
        let policy = SavedPolicy::of(arm.label.clone(), &arm.policy, &ids);
        std::fs::write(&path, serde_json::to_string_pretty(&policy)?)
            .with_context(|| format!("writing {}", path.display()))?;
        saved.insert(arm.role.to_owned(), json!(path.display().to_string()));
    }
    Ok(saved)
}

/// Per user, the expected clicks of each judging list under `marginals`.
fn clicks_by_user(
    marginals: &[Vec<Vec<f64>>],
    contexts: &[ListContext],
    truth: &GroundTruth,
) -> Result<HashMap<String, f64>> {
    let mut by_user: HashMap<String, f64> = HashMap::new();
    for (slots, context) in marginals.iter().zip(contexts) {
        *by_user.entry(context.user.clone()).or_default() +=
            expected_clicks(slots, context, truth)?;
    }
    Ok(by_user)
}

/// The arm against the truth: its click rate, and its lift in clicks per
/// user over the supervised ranker's, paired over users.
fn judged_by_truth(
    arm: &HashMap<String, f64>,
    supervised: &HashMap<String, f64>,
    impressions: usize,
    alpha: f64,
) -> Value {
    let total: f64 = arm.values().sum();
    let baseline: f64 = supervised.values().sum();
    let differences: Vec<f64> = supervised
        .iter()
        .map(|(user, base)| arm.get(user).copied().unwrap_or(0.0) - base)
        .collect();
    let per_user = baseline / supervised.len().max(1) as f64;
    let (lift, relative) = paired_lift(&differences, per_user, alpha);
    json!({
        "ctr": total / impressions.max(1) as f64,
        "users": differences.len(),
        "clicks_per_user_lift": lift,
        "relative_lift": relative,
    })
}

/// The arm's click rate estimated off-policy from the judging lists.
fn judged_off_policy(
    slates: &[LoggedSlate],
    scores: &[Vec<f64>],
    marginals: &[Vec<Vec<f64>>],
    model: &PositionRewardModel,
    settings: &LearningSettings,
    truth: Option<f64>,
) -> Result<Value> {
    let greedy = EpsilonGreedy { epsilon: 0.0 };
    let (rounds, _) = target_view_scored(&greedy, slates, scores, marginals, model, settings.seed);
    let mut estimates = Vec::new();
    for estimator in [Estimator::Snips, Estimator::Dr { clip: None }, Estimator::Sndr] {
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
            "relative_error": truth.map(|t| (value - t) / t),
            "covers": truth.map(|t| interval.lower <= t && t <= interval.upper),
        }));
    }
    Ok(json!({ "effective_sample_size": effective_sample_size(&rounds), "estimates": estimates }))
}

/// Learns every arm from the older explored lists in the workspace's log
/// and judges each on the newer ones; with `truth`, against the simulated
/// users too. The JSON report.
pub fn learn(
    workspace: &Workspace,
    settings: &LearningSettings,
    truth: Option<&GroundTruth>,
    progress: Progress,
) -> Result<Value> {
    let store = workspace.store()?;
    let join_window_ms = workspace.config.stream.join_window_s as i64 * 1000;
    let filter = LogFilter { behaviour: settings.behaviour.clone(), variant: None };
    let log = logged_slates(&store, join_window_ms, &filter)?;
    if log.slates.len() < 2 {
        bail!(
            "the store holds {} explored lists: learning needs some to learn from and some to \
             judge by (list epsilon_greedy or plackett_luce last in [recommend] rerankers)",
            log.slates.len()
        );
    }
    let mut catalogue: HashMap<&str, u32> = HashMap::new();
    let items: Vec<Vec<u32>> = log
        .contexts
        .iter()
        .map(|context| {
            context
                .candidates
                .iter()
                .map(|id| {
                    let next = catalogue.len() as u32;
                    *catalogue.entry(id.as_str()).or_insert(next)
                })
                .collect()
        })
        .collect();
    let cut = ((log.slates.len() as f64 * settings.config.train_share).round() as usize)
        .clamp(1, log.slates.len() - 1);
    let lists: Vec<TrainingList<'_>> = log.slates[..cut]
        .iter()
        .zip(&items)
        .map(|(slate, items)| TrainingList { slate, items })
        .collect();
    let arms = train_arms(&lists, catalogue.len(), settings, progress);
    let saved = save_policies(workspace, &arms, &catalogue)?;

    let (judging, judging_items) = (&log.slates[cut..], &items[cut..]);
    let contexts = &log.contexts[cut..];
    let impressions: usize = judging.iter().map(|s| s.served.len()).sum();
    let model = PositionRewardModel::fit(judging);
    let greedy = EpsilonGreedy { epsilon: 0.0 };
    // What the supervised ranker serves: an arm reorders a list when its
    // greedy list differs from this.
    let ranker_lists: Vec<Vec<usize>> =
        judging.iter().map(|s| greedy_order(&s.relevance, s.served.len())).collect();
    let bar = progress.bar(arms.len() as u64, "judging", "policies");
    let mut supervised_clicks: Option<HashMap<String, f64>> = None;
    // The configured arm's and the uncorrected arm's clicks per user.
    let mut compared: HashMap<&str, HashMap<String, f64>> = HashMap::new();
    let mut reports = Vec::new();
    for arm in &arms {
        let scores: Vec<Vec<f64>> = judging
            .iter()
            .zip(judging_items)
            .map(|(slate, items)| arm.policy.logits(&slate.relevance, items))
            .collect();
        let mut rng = SplitMix::new(settings.seed);
        let marginals: Vec<Vec<Vec<f64>>> = judging
            .iter()
            .zip(&scores)
            .map(|(slate, scores)| greedy.slot_marginals(scores, slate.served.len(), &mut rng))
            .collect();
        let online = match truth {
            Some(truth) => {
                let clicks = clicks_by_user(&marginals, contexts, truth)?;
                let baseline = supervised_clicks.get_or_insert_with(|| clicks.clone());
                let judged = judged_by_truth(&clicks, baseline, impressions, settings.alpha);
                if matches!(arm.role, "configured" | "uncorrected") {
                    compared.entry(arm.role).or_insert(clicks);
                }
                Some(judged)
            }
            None => None,
        };
        let true_ctr = online.as_ref().and_then(|o| o["ctr"].as_f64());
        let off_policy =
            judged_off_policy(judging, &scores, &marginals, &model, settings, true_ctr)?;
        let changed = ranker_lists
            .iter()
            .zip(&scores)
            .filter(|(ranked, scores)| greedy_order(scores, ranked.len()) != **ranked)
            .count();
        let trace = arm.trace.as_ref().map(|t| {
            let every = (t.objective.len() / 50).max(1);
            json!({
                "objective_every": every,
                "objective": t.objective.iter().step_by(every).collect::<Vec<_>>(),
                "rewarded_slots": t.rewarded_slots,
                "slots": t.slots,
                "mean_weight": t.mean_weight,
                "capped_share": t.capped_share,
            })
        });
        reports.push(json!({
            "policy": arm.label,
            "role": arm.role,
            "top_k": arm.settings.as_ref().map(|s| s.top_k),
            "weight_cap": arm.settings.as_ref().map(|s| cap_label(s.weight_cap)),
            "corrected": arm.settings.as_ref().map(|s| s.off_policy_correction),
            "relevance_weight": arm.policy.relevance_weight,
            "lists_reordered": changed as f64 / judging.len() as f64,
            "training": trace,
            "simulated_truth": online,
            "off_policy": off_policy,
        }));
        bar.inc(1);
    }
    bar.finish_and_clear();
    // The off-policy correction's own effect: the same objective, with and
    // without importance weights, on the same requests.
    let correction = match (compared.get("configured"), compared.get("uncorrected")) {
        (Some(corrected), Some(uncorrected)) => {
            judged_by_truth(corrected, uncorrected, impressions, settings.alpha)
        }
        _ => Value::Null,
    };
    let clicks = |slates: &[LoggedSlate]| -> f64 { slates.iter().flat_map(|s| &s.rewards).sum() };
    Ok(json!({
        "logged": {
            "policies": log.behaviours,
            "learning_lists": cut,
            "learning_clicks": clicks(&log.slates[..cut]),
            "judging_lists": judging.len(),
            "judging_impressions": impressions,
            "judging_clicks": clicks(judging),
            "catalogue_items_seen": catalogue.len(),
        },
        "config": {
            "top_k": settings.config.top_k,
            "weight_cap": cap_label(settings.config.weight_cap),
            "learning_rate": settings.config.learning_rate,
            "steps": settings.config.steps,
            "l2": settings.config.l2,
            "initial_temperature": settings.config.initial_temperature,
            "train_share": settings.config.train_share,
        },
        "arms": reports,
        "corrected_over_uncorrected": correction,
        "saved": saved,
    }))
}

/// The report as a table: one row per arm.
pub fn describe(report: &Value) -> String {
    let logged = &report["logged"];
    let mut out = format!(
        "learned from {} lists ({} clicks); judged on {} lists, {} impressions, {} clicks\n\n",
        logged["learning_lists"],
        logged["learning_clicks"],
        logged["judging_lists"],
        logged["judging_impressions"],
        logged["judging_clicks"],
    );
    out.push_str(&format!(
        "{:<38} {:>9} {:>22} {:>9} {:>9} {:>9}\n",
        "policy", "true CTR", "lift (CI)", "SNIPS", "DR", "SNDR"
    ));
    for arm in report["arms"].as_array().into_iter().flatten() {
        let truth = &arm["simulated_truth"];
        let ctr = truth["ctr"].as_f64().map_or("-".into(), |c| format!("{c:.5}"));
        let lift = match &truth["relative_lift"] {
            Value::Object(l) => format!(
                "{:+.1}% [{:+.1}, {:+.1}]",
                100.0 * l["estimate"].as_f64().unwrap_or(0.0),
                100.0 * l["lower"].as_f64().unwrap_or(0.0),
                100.0 * l["upper"].as_f64().unwrap_or(0.0)
            ),
            _ => "-".into(),
        };
        let estimates: Vec<String> = arm["off_policy"]["estimates"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| format!("{:.5}", e["ctr"].as_f64().unwrap_or(f64::NAN)))
            .collect();
        out.push_str(&format!(
            "{:<38} {ctr:>9} {lift:>22} {:>9} {:>9} {:>9}\n",
            arm["policy"].as_str().unwrap_or("?"),
            estimates.first().map_or("-", String::as_str),
            estimates.get(1).map_or("-", String::as_str),
            estimates.get(2).map_or("-", String::as_str),
        ));
    }
    if let Value::Object(l) = &report["corrected_over_uncorrected"]["relative_lift"] {
        out.push_str(&format!(
            "\ncorrected over uncorrected (same K, same requests): {:+.2}% [{:+.2}, {:+.2}], p = {:.3}\n",
            100.0 * l["estimate"].as_f64().unwrap_or(0.0),
            100.0 * l["lower"].as_f64().unwrap_or(0.0),
            100.0 * l["upper"].as_f64().unwrap_or(0.0),
            l["p_value"].as_f64().unwrap_or(1.0),
        ));
    }
    out
}
