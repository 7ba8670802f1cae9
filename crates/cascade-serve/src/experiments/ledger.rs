//! Every experiment's per-variant totals, kept incrementally from the event
//! log: an impression the server logged names the experiments' variants
//! that served it, and the user's later positive events count for those
//! variants. Per user it keeps the running values; per variant the sums
//! the statistics need (`VariantTotals`), so reading results never scans
//! the log.
//!
//! Metrics, per exposed user (the randomisation unit):
//! - `clicks_per_user`: positive events (`[labels]`) after the first
//!   exposure;
//! - `ctr`: positive events on an item shown to the user within `[stream]
//!   join_window_s` before, per impression (a ratio: delta method);
//! - `events_per_user:<type>` for each `[experiment_settings]
//!   event_metrics` type.
//!
//! The means' CUPED covariate is the user's pre-exposure value of the
//! metric: their positive events in the `[experiment_settings]
//! covariate_window_s` before their first exposure. The ledger follows the
//! log whether or not an experiment runs, keeping each user's positive
//! events of the last window, so an experiment created later finds its
//! users' pre-periods. A server that starts with no experiment skips the
//! log up to its end, so a pre-period reaches back to that start at most;
//! so does one after a restart (the recent events are not checkpointed).
//! A short covariate costs CUPED variance reduction, never bias: it is
//! taken before exposure either way.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use serde::{Deserialize, Serialize};

use cascade_core::config::LabelConfig;
use cascade_core::event::{IMPRESSION, StoredEvent};
use cascade_experiments::planned::{Look, look_due, take_look};
use cascade_experiments::results::{
    AnalysisSettings, MetricKind, MetricTotals, VariantTotals, analyse,
};
use cascade_experiments::statistics::{PairedMoments, SequentialSrm};

use super::registry::ExperimentRecord;

/// Clicks (positive events) per exposed user.
pub const CLICKS_PER_USER: &str = "clicks_per_user";
/// Clicks on shown items per impression.
pub const CTR: &str = "ctr";
/// Interleaving: clicks credited to the second variant minus the first's,
/// per user.
pub const PREFERENCE: &str = "interleaving_preference";
/// Items one user's tally remembers as shown, awaiting a click.
const SHOWN_PER_USER: usize = 200;

/// One exposed user's running values in one experiment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserTally {
    /// Index of the user's variant.
    pub variant: usize,
    /// Positive events in the covariate window before the first exposure
    /// (CUPED's covariate).
    pub covariate: f64,
    /// Positive events since the first exposure.
    pub clicks: f64,
    /// Positive events on an item shown within the join window.
    pub ctr_clicks: f64,
    /// Items shown to the user.
    pub impressions: f64,
    /// Counts of `event_metrics` types since the first exposure.
    pub events: BTreeMap<String, f64>,
    /// Items shown, when (ms) and, in an interleaved list, by which team;
    /// oldest first.
    pub shown: VecDeque<(String, i64, Option<String>)>,
    /// Interleaving: clicks credited to each team (variant).
    pub credits: BTreeMap<String, f64>,
}

impl UserTally {
    /// The user's value of every metric: (name, kind, x, y).
    fn values(
        &self,
        event_metrics: &[String],
        teams: Option<&[String; 2]>,
    ) -> Vec<(String, MetricKind, f64, f64)> {
        let mut values = vec![
            (CLICKS_PER_USER.to_owned(), MetricKind::Mean, self.clicks, self.covariate),
            (CTR.to_owned(), MetricKind::Ratio, self.ctr_clicks, self.impressions),
        ];
        if let Some([a, b]) = teams {
            let credit = |team: &String| self.credits.get(team).copied().unwrap_or(0.0);
            values.push((format!("credits:{a}"), MetricKind::Mean, credit(a), 0.0));
            values.push((format!("credits:{b}"), MetricKind::Mean, credit(b), 0.0));
            values.push((PREFERENCE.to_owned(), MetricKind::Mean, credit(b) - credit(a), 0.0));
        }
        for event_type in event_metrics {
            let count = self.events.get(event_type).copied().unwrap_or(0.0);
            values.push((
                format!("events_per_user:{event_type}"),
                MetricKind::Mean,
                count,
                self.covariate,
            ));
        }
        values
    }
}

/// An experiment's name, progress, and the users whose tallies changed.
pub type ExperimentChanges = (String, ExperimentProgress, Vec<(String, UserTally)>);

/// One experiment's durable progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentProgress {
    /// Each variant's totals, the control first.
    pub variants: Vec<VariantTotals>,
    /// The always-valid SRM test's memory across looks.
    pub srm: SequentialSrm,
    /// An interleaving experiment's two variants (its users are all in one
    /// `interleaved` variant); `None` for an A/B test.
    #[serde(default)]
    pub teams: Option<[String; 2]>,
    /// The group-sequential test's looks, for an experiment with a plan.
    #[serde(default)]
    pub looks: Vec<Look>,
}

#[derive(Debug)]
struct ExperimentLedger {
    progress: ExperimentProgress,
    /// Planned users and looks, if the experiment has a plan.
    plan: Option<(u64, usize)>,
    users: HashMap<String, UserTally>,
    /// Users changed since the last checkpoint.
    dirty: HashSet<String>,
}

/// The ledger: every experiment's totals and users, and the next log
/// position to read.
#[derive(Debug)]
pub struct Ledger {
    experiments: HashMap<String, ExperimentLedger>,
    /// The next log position to read.
    pub next_seq: u64,
    labels: LabelConfig,
    event_metrics: Vec<String>,
    join_window_ms: i64,
    analysis: AnalysisSettings,
    pre_period: PrePeriods,
}

/// Every user's positive events of the last covariate window (their
/// times, ms), for the covariate of users not exposed yet.
#[derive(Debug)]
struct PrePeriods {
    window_ms: i64,
    positives: HashMap<String, VecDeque<i64>>,
    /// Positive events recorded since users whose window emptied were last
    /// dropped.
    since_sweep: usize,
}

/// Positive events recorded between sweeps of users with no recent one.
const SWEEP_EVERY: usize = 100_000;

impl PrePeriods {
    fn record(&mut self, user: &str, ts_ms: i64) {
        let times = self.positives.entry(user.to_owned()).or_default();
        times.push_back(ts_ms);
        while times.front().is_some_and(|&t| t < ts_ms - self.window_ms) {
            times.pop_front();
        }
        self.since_sweep += 1;
        if self.since_sweep >= SWEEP_EVERY {
            self.since_sweep = 0;
            let cutoff = ts_ms - self.window_ms;
            self.positives.retain(|_, times| times.back().is_some_and(|&t| t >= cutoff));
        }
    }

    /// The user's positive events in the window before `ts_ms`.
    fn count_before(&self, user: &str, ts_ms: i64) -> f64 {
        let Some(times) = self.positives.get(user) else { return 0.0 };
        let from = ts_ms - self.window_ms;
        times.iter().filter(|&&t| t >= from && t <= ts_ms).count() as f64
    }
}

impl Ledger {
    /// An empty ledger: `labels` decide what a click is; a user's positive
    /// events in the `covariate_window_ms` before their first exposure are
    /// the covariate.
    pub fn new(
        labels: LabelConfig,
        event_metrics: Vec<String>,
        join_window_ms: i64,
        analysis: AnalysisSettings,
        covariate_window_ms: i64,
    ) -> Ledger {
        Ledger {
            experiments: HashMap::new(),
            next_seq: 0,
            labels,
            event_metrics,
            join_window_ms,
            analysis,
            pre_period: PrePeriods {
                window_ms: covariate_window_ms,
                positives: HashMap::new(),
                since_sweep: 0,
            },
        }
    }

    /// Starts counting experiments it does not know yet.
    pub fn sync(&mut self, records: &[ExperimentRecord]) {
        for record in records {
            let config = &record.config;
            let totals = |name: &str, weight: f64| VariantTotals {
                name: name.to_owned(),
                weight,
                ..Default::default()
            };
            let (variants, teams) = match config.interleave {
                true => (
                    vec![totals(super::INTERLEAVED, 1.0)],
                    Some([config.variants[0].name.clone(), config.variants[1].name.clone()]),
                ),
                false => {
                    (config.variants.iter().map(|v| totals(&v.name, v.weight)).collect(), None)
                }
            };
            let srm = SequentialSrm::new(self.analysis.srm_concentration);
            let plan = config.planned_users.map(|users| (users, config.planned_looks));
            let ledger =
                self.experiments.entry(config.name.clone()).or_insert_with(|| ExperimentLedger {
                    progress: ExperimentProgress { variants, srm, teams, looks: Vec::new() },
                    plan,
                    users: HashMap::new(),
                    dirty: HashSet::new(),
                });
            // A restored experiment learns its plan here.
            ledger.plan = plan;
        }
    }

    /// Restores an experiment's progress and users from a checkpoint.
    pub fn restore(
        &mut self,
        name: &str,
        progress: ExperimentProgress,
        users: Vec<(String, UserTally)>,
    ) {
        self.experiments.insert(
            name.to_owned(),
            ExperimentLedger {
                progress,
                plan: None,
                users: users.into_iter().collect(),
                dirty: HashSet::new(),
            },
        );
    }

    /// Counts one logged event.
    pub fn observe(&mut self, stored: &StoredEvent) {
        self.next_seq = self.next_seq.max(stored.seq + 1);
        let event = &stored.event;
        if event.event_type == IMPRESSION {
            let Some(served) = &event.served else { return };
            for (experiment, variant) in &served.variants {
                let Some(ledger) = self.experiments.get_mut(experiment) else { continue };
                let Some(variant) =
                    ledger.progress.variants.iter().position(|v| v.name == *variant)
                else {
                    continue;
                };
                let covariate = self.pre_period.count_before(&event.user, event.ts_ms);
                let event_metrics = &self.event_metrics;
                ledger.update(&event.user, event_metrics, Some((variant, covariate)), |tally| {
                    tally.impressions += 1.0;
                    if tally.shown.len() == SHOWN_PER_USER {
                        tally.shown.pop_front();
                    }
                    tally.shown.push_back((event.item.clone(), event.ts_ms, served.team.clone()));
                });
            }
            return;
        }
        let positive = self.labels.label(&event.event_type, event.value);
        let counted = self.event_metrics.contains(&event.event_type);
        if !positive && !counted {
            return;
        }
        if positive {
            self.pre_period.record(&event.user, event.ts_ms);
        }
        let window = self.join_window_ms;
        for ledger in self.experiments.values_mut() {
            if !ledger.users.contains_key(&event.user) {
                continue;
            }
            ledger.update(&event.user, &self.event_metrics, None, |tally| {
                if positive {
                    tally.clicks += 1.0;
                    // The latest impression of the item is the one answered.
                    let shown = tally.shown.iter().rposition(|(item, shown_ms, _)| {
                        *item == event.item
                            && event.ts_ms >= *shown_ms
                            && event.ts_ms - shown_ms <= window
                    });
                    // One click per impression: the item is answered.
                    if let Some((_, _, team)) = shown.and_then(|at| tally.shown.remove(at)) {
                        tally.ctr_clicks += 1.0;
                        if let Some(team) = team {
                            *tally.credits.entry(team).or_default() += 1.0;
                        }
                    }
                }
                if counted {
                    *tally.events.entry(event.event_type.clone()).or_default() += 1.0;
                }
            });
        }
    }

    /// An experiment's progress now.
    pub fn progress(&self, name: &str) -> Option<&ExperimentProgress> {
        self.experiments.get(name).map(|ledger| &ledger.progress)
    }

    /// Looks at every experiment's sample ratio (the always-valid SRM test
    /// remembers each look), and takes the group-sequential look of every
    /// experiment with a plan whose exposed users reached its next planned
    /// fraction.
    pub fn look(&mut self) {
        for ledger in self.experiments.values_mut() {
            let progress = &mut ledger.progress;
            let users: Vec<u64> = progress.variants.iter().map(|v| v.users).collect();
            let weights: Vec<f64> = progress.variants.iter().map(|v| v.weight).collect();
            progress.srm.observe(&users, &weights);
            let Some((planned_users, planned_looks)) = ledger.plan else { continue };
            let exposed = users.iter().sum();
            // The analysis runs only when a look is due, not every checkpoint.
            if look_due(&progress.looks, exposed, planned_users, planned_looks).is_none() {
                continue;
            }
            let mut monitor = progress.srm;
            let results = analyse(&progress.variants, &self.analysis, &mut monitor);
            take_look(&mut progress.looks, &results, exposed, planned_users, planned_looks);
        }
    }

    /// What changed since the last call, to make durable: each experiment's
    /// progress and its changed users' tallies.
    pub fn take_changes(&mut self) -> Vec<ExperimentChanges> {
        self.experiments
            .iter_mut()
            .map(|(name, ledger)| {
                let users = ledger
                    .dirty
                    .drain()
                    .filter_map(|user| ledger.users.get(&user).map(|tally| (user, tally.clone())))
                    .collect();
                (name.clone(), ledger.progress.clone(), users)
            })
            .collect()
    }
}

impl ExperimentLedger {
    /// Applies `change` to a user's tally (creating it at `exposure` if the
    /// user is new) and moves the variant's sums by the difference.
    fn update(
        &mut self,
        user: &str,
        event_metrics: &[String],
        exposure: Option<(usize, f64)>,
        change: impl FnOnce(&mut UserTally),
    ) {
        let teams = self.progress.teams.clone();
        let (tally, before) = match (self.users.get_mut(user), exposure) {
            (Some(tally), _) => {
                let before = tally.values(event_metrics, teams.as_ref());
                (tally, Some(before))
            }
            (None, Some((variant, covariate))) => {
                let tally = UserTally { variant, covariate, ..Default::default() };
                (self.users.entry(user.to_owned()).or_insert(tally), None)
            }
            (None, None) => return,
        };
        change(tally);
        let after = tally.values(event_metrics, teams.as_ref());
        let totals = &mut self.progress.variants[tally.variant];
        if before.is_none() {
            totals.users += 1;
        }
        for (index, (name, kind, x, y)) in after.into_iter().enumerate() {
            let metric = totals
                .metrics
                .entry(name)
                .or_insert(MetricTotals { kind, totals: PairedMoments::default() });
            let moments = &mut metric.totals;
            match before.as_ref().map(|values| (values[index].2, values[index].3)) {
                None => moments.add(x, y),
                Some((x0, y0)) => {
                    moments.x.sum += x - x0;
                    moments.x.sum_squares += x * x - x0 * x0;
                    moments.y.sum += y - y0;
                    moments.y.sum_squares += y * y - y0 * y0;
                    moments.sum_of_products += x * y - x0 * y0;
                }
            }
        }
        self.dirty.insert(user.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cascade_core::config::{ExperimentConfig, VariantConfig};
    use cascade_core::event::{Event, Served};

    use crate::experiments::ExperimentStatus;

    fn record(interleave: bool) -> ExperimentRecord {
        let variant = |name: &str| VariantConfig {
            name: name.into(),
            weight: 0.5,
            recommend: Default::default(),
            models_dir: None,
        };
        ExperimentRecord {
            config: ExperimentConfig {
                name: "e".into(),
                layer: "default".into(),
                salt: None,
                allocation: 1.0,
                traffic_start: 0.0,
                variants: vec![variant("a"), variant("b")],
                interleave,
                planned_users: None,
                planned_looks: 20,
            },
            status: ExperimentStatus::Running,
            started_ms: 0,
            stopped_ms: None,
        }
    }

    fn event(
        seq: u64,
        user: &str,
        item: &str,
        kind: &str,
        ts_ms: i64,
        served: Option<(&str, u32, Option<&str>)>,
    ) -> StoredEvent {
        let served = served.map(|(variant, prior, team)| {
            Box::new(Served {
                request_id: format!("r{seq}"),
                model_version: "v".into(),
                variants: vec![("e".into(), variant.into())],
                prior_consumption: prior,
                team: team.map(str::to_owned),
                policy: None,
                propensity: None,
                candidates: Vec::new(),
            })
        });
        StoredEvent {
            seq,
            event: Event {
                user: user.into(),
                item: item.into(),
                event_type: kind.into(),
                value: None,
                ts_ms,
                served,
            },
        }
    }

    fn ledger() -> Ledger {
        let labels = LabelConfig { positive_event_types: vec!["click".into()], rating: None };
        Ledger::new(labels, vec!["buy".into()], 1_000, AnalysisSettings::default(), 10_000)
    }

    /// The sums kept event by event equal the sums of the users' final
    /// values: the incremental updates lose nothing.
    #[test]
    fn incremental_sums_equal_the_final_tallies() {
        let mut ledger = ledger();
        ledger.sync(&[record(false)]);
        let mut rng = cascade_experiments::calibration::SplitMix::new(3);
        let mut seq = 0;
        for step in 0..3_000 {
            let user = format!("u{}", rng.next_u64() % 40);
            let item = format!("i{}", rng.next_u64() % 15);
            let variant = if user.len() % 2 == 0 { "a" } else { "b" };
            let kind = match rng.next_u64() % 4 {
                0 | 1 => "impression",
                2 => "click",
                _ => "buy",
            };
            let served =
                (kind == "impression").then_some((variant, (rng.next_u64() % 9) as u32, None));
            ledger.observe(&event(seq, &user, &item, kind, step * 100, served));
            seq += 1;
        }
        assert_eq!(ledger.next_seq, seq);
        let experiment = &ledger.experiments["e"];
        for (index, totals) in experiment.progress.variants.iter().enumerate() {
            let users: Vec<&UserTally> =
                experiment.users.values().filter(|t| t.variant == index).collect();
            assert_eq!(totals.users, users.len() as u64);
            for (name, metric) in &totals.metrics {
                let pairs: Vec<(f64, f64)> = users
                    .iter()
                    .map(|t| {
                        let values = t.values(&["buy".to_owned()], None);
                        let (_, _, x, y) = values.into_iter().find(|(n, ..)| n == name).unwrap();
                        (x, y)
                    })
                    .collect();
                let (x, y): (Vec<f64>, Vec<f64>) = pairs.into_iter().unzip();
                let direct = PairedMoments::of(&x, &y);
                let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
                let kept = &metric.totals;
                assert_eq!(kept.n(), direct.n(), "{name}");
                assert!(
                    close(kept.x.sum, direct.x.sum)
                        && close(kept.x.sum_squares, direct.x.sum_squares),
                    "{name}"
                );
                assert!(
                    close(kept.y.sum, direct.y.sum)
                        && close(kept.y.sum_squares, direct.y.sum_squares),
                    "{name}"
                );
                assert!(close(kept.sum_of_products, direct.sum_of_products), "{name}");
            }
        }
        let clicked: f64 = experiment.users.values().map(|t| t.ctr_clicks).sum();
        assert!(clicked > 0.0, "some clicks answered impressions within the window");
    }

    /// A click answers the latest impression of the item, within the join
    /// window, once; in an interleaved list it credits that impression's team.
    #[test]
    fn clicks_credit_the_latest_impressions_team_once() {
        let mut ledger = ledger();
        ledger.sync(&[record(true)]);
        let shown = |seq, item, ts, team| {
            event(seq, "u", item, "impression", ts, Some((INTERLEAVED_NAME, 4, Some(team))))
        };
        ledger.observe(&shown(0, "x", 0, "a"));
        ledger.observe(&shown(1, "x", 500, "b"));
        ledger.observe(&event(2, "u", "x", "click", 600, None));
        ledger.observe(&event(3, "u", "x", "click", 700, None));
        ledger.observe(&shown(4, "y", 1_000, "a"));
        ledger.observe(&event(5, "u", "y", "click", 2_500, None));
        let tally = &ledger.experiments["e"].users["u"];
        assert_eq!(tally.credits.get("b"), Some(&1.0), "the latest impression's team");
        assert_eq!(
            tally.credits.get("a"),
            Some(&1.0),
            "the older impression of x answers the second click"
        );
        assert_eq!(
            (tally.clicks, tally.ctr_clicks, tally.impressions),
            (3.0, 2.0, 3.0),
            "y's click came after the window"
        );
        assert_eq!(tally.covariate, 0.0, "no positive event before the first exposure");
    }

    /// The covariate counts the user's positive events in the window before
    /// the first exposure: not older ones, not later ones, not other users'.
    #[test]
    fn the_covariate_is_the_pre_period_count() {
        let mut ledger = ledger();
        ledger.sync(&[record(false)]);
        let click = |seq, user, ts| event(seq, user, "x", "click", ts, None);
        ledger.observe(&click(0, "u", 1_000)); // 11 s before exposure: outside the 10 s window
        ledger.observe(&click(1, "u", 5_000));
        ledger.observe(&event(2, "u", "x", "buy", 6_000, None)); // not a positive type
        ledger.observe(&click(3, "u", 11_000));
        ledger.observe(&click(4, "v", 11_500));
        ledger.observe(&event(5, "u", "y", "impression", 12_000, Some(("a", 0, None))));
        ledger.observe(&click(6, "u", 13_000));
        ledger.observe(&event(7, "u", "z", "impression", 14_000, Some(("a", 0, None))));
        let tally = &ledger.experiments["e"].users["u"];
        assert_eq!(tally.covariate, 2.0, "the clicks at 5 s and 11 s");
        assert_eq!(tally.clicks, 1.0, "the click after exposure is the metric");
    }

    const INTERLEAVED_NAME: &str = super::super::INTERLEAVED;
}
