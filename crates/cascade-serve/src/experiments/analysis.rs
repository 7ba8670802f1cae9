//! The ledger kept current and durable, and results read from it.
//!
//! A thread follows the event log (`Store::events_page`) into the
//! [`Ledger`]; every `[experiment_settings] checkpoint_interval_ms` it looks
//! at the sample ratios and writes each experiment's totals, the users that
//! changed and the log position in one transaction. A restart resumes from
//! there, so nothing is counted twice and nothing accepted is lost (the log
//! is the source; the ledger is a view of it).

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use cascade_core::config::{ExperimentSettings, LabelConfig};
use cascade_core::timestamp::seconds_to_ms;
use cascade_experiments::planned;
use cascade_experiments::results::{AnalysisSettings, ExperimentResults, analyse};
use cascade_experiments::statistics::{Estimate, Lift, normal_quantile, one_sample};
use cascade_store::{Collection, Store};

use super::ledger::{ExperimentProgress, Ledger, PREFERENCE, UserTally};
use super::registry::{ExperimentRecord, Experiments};
use crate::metrics::{Metrics, VariantGuardrail};
use crate::request::ServeError;

/// Events read per page of the log.
const PAGE: usize = 5_000;
/// How long the follower sleeps when the log has nothing new.
const IDLE: Duration = Duration::from_millis(20);
/// The key (in `ExperimentTotals`) of the ledger's log position; experiment
/// names are never empty.
const POSITION_KEY: &str = "";
/// Separates experiment and user in `ExperimentUsers` keys.
const KEY_SEPARATOR: char = '\u{1f}';

/// What `GET /v1/experiments/{name}/results` answers.
#[derive(Debug, Clone, Serialize)]
pub struct ResultsResponse {
    /// The experiment as stored.
    pub experiment: ExperimentRecord,
    /// Log events counted (the results include every event before it).
    pub through_seq: u64,
    /// The statistics (see `cascade_experiments::results`).
    #[serde(flatten)]
    pub results: ExperimentResults,
    /// Each variant's serving health on this server since it started.
    pub guardrails: std::collections::BTreeMap<String, VariantGuardrail>,
    /// For an interleaving experiment, the paired per-user analysis.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interleaving: Option<InterleavingSummary>,
}

/// Team-draft interleaving's verdict: per user, clicks credited to the
/// second variant minus the first's; a one-sample t-test of its mean.
#[derive(Debug, Clone, Serialize)]
pub struct InterleavingSummary {
    /// The two variants, as the items' teams name them.
    pub teams: [String; 2],
    /// Users who saw an interleaved list.
    pub users: u64,
    /// Clicks credited to each team.
    pub credits: [f64; 2],
    /// The mean per-user preference for the second team, its interval and
    /// p-value; `None` without variance (no credited click yet).
    pub preference: Option<Lift>,
    /// Users needed for 80% power to detect the mean preference observed
    /// (one-sample, normal approximation).
    pub users_for_80pct_power: Option<f64>,
}

fn interleaving_summary(progress: &ExperimentProgress, alpha: f64) -> Option<InterleavingSummary> {
    let teams = progress.teams.clone()?;
    let variant = progress.variants.first()?;
    let mean_of =
        |metric: &str| variant.metrics.get(metric).map(|m| Estimate::mean_of(&m.totals.x));
    let credits = [&teams[0], &teams[1]].map(|team| {
        variant.metrics.get(&format!("credits:{team}")).map_or(0.0, |m| m.totals.x.sum)
    });
    let preference = mean_of(PREFERENCE);
    let lift = preference.and_then(|p| one_sample(&p, alpha));
    let users_for_80pct_power = preference.filter(|p| p.mean != 0.0).map(|p| {
        let z = normal_quantile(1.0 - alpha / 2.0) + normal_quantile(0.8);
        (z * z * p.variance / (p.mean * p.mean)).ceil()
    });
    Some(InterleavingSummary {
        teams,
        users: variant.users,
        credits,
        preference: lift,
        users_for_80pct_power,
    })
}

/// The statistics' knobs from `[experiment_settings]`.
fn analysis_settings(settings: &ExperimentSettings) -> AnalysisSettings {
    AnalysisSettings {
        alpha: settings.alpha,
        sequential_tuning: settings.sequential_tuning,
        srm_threshold: settings.srm_threshold,
        srm_concentration: settings.srm_concentration,
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Position {
    next_seq: u64,
}

/// The server's experiment analysis.
#[derive(Debug)]
pub struct ExperimentAnalysis {
    experiments: Arc<Experiments>,
    ledger: Mutex<Ledger>,
    store: Store,
    metrics: Arc<Metrics>,
    checkpoint_interval: Duration,
}

impl ExperimentAnalysis {
    /// The ledger as last made durable, caught up with the log.
    pub fn open(
        experiments: Arc<Experiments>,
        store: Store,
        labels: LabelConfig,
        join_window_ms: i64,
        metrics: Arc<Metrics>,
    ) -> Result<ExperimentAnalysis, String> {
        let settings = experiments.settings().clone();
        let mut ledger = Ledger::new(
            labels,
            settings.event_metrics.clone(),
            join_window_ms,
            analysis_settings(&settings),
            seconds_to_ms(settings.covariate_window_s),
        );
        let decode =
            |what: &str, bytes: &[u8]| format!("stored {what}: {}", String::from_utf8_lossy(bytes));
        if let Some(bytes) =
            store.document(Collection::ExperimentTotals, POSITION_KEY).map_err(|e| e.to_string())?
        {
            let position: Position = serde_json::from_slice(&bytes)
                .map_err(|e| format!("{}: {e}", decode("ledger position", &bytes)))?;
            ledger.next_seq = position.next_seq;
        }
        for record in experiments.records() {
            let name = &record.config.name;
            let Some(bytes) =
                store.document(Collection::ExperimentTotals, name).map_err(|e| e.to_string())?
            else {
                continue;
            };
            let progress: ExperimentProgress = serde_json::from_slice(&bytes)
                .map_err(|e| format!("experiment {name:?} totals: {e}"))?;
            let prefix = format!("{name}{KEY_SEPARATOR}");
            let users = store
                .documents(Collection::ExperimentUsers, &prefix)
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|(key, bytes)| {
                    let user = key[prefix.len()..].to_owned();
                    serde_json::from_slice::<UserTally>(&bytes)
                        .map(|tally| (user, tally))
                        .map_err(|e| format!("experiment {name:?} user tally: {e}"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            ledger.restore(name, progress, users);
        }
        if experiments.records().is_empty() {
            // Nothing to count yet: start at the log's end rather than read
            // it all. From here the ledger follows the log, so an experiment
            // created later finds its users' pre-periods since this start.
            let end = store.event_count().map_err(|e| e.to_string())?;
            ledger.next_seq = ledger.next_seq.max(end);
        }
        let analysis = ExperimentAnalysis {
            checkpoint_interval: Duration::from_millis(settings.checkpoint_interval_ms.max(1)),
            experiments,
            ledger: Mutex::new(ledger),
            store,
            metrics,
        };
        analysis.catch_up().map_err(|e| e.to_string())?;
        analysis.checkpoint().map_err(|e| e.to_string())?;
        Ok(analysis)
    }

    /// The experiments it analyses.
    pub fn experiments(&self) -> &Arc<Experiments> {
        &self.experiments
    }

    /// Counts every logged event not counted yet; returns how many.
    pub fn catch_up(&self) -> Result<usize, ServeError> {
        let mut ledger = self.ledger.lock();
        ledger.sync(&self.experiments.records());
        let mut counted = 0;
        loop {
            let page = self
                .store
                .events_page(ledger.next_seq, PAGE)
                .map_err(|e| ServeError::Unavailable(format!("experiment ledger: {e}")))?;
            if page.is_empty() {
                return Ok(counted);
            }
            counted += page.len();
            for stored in &page {
                ledger.observe(stored);
            }
        }
    }

    /// Makes the ledger durable: totals, changed users and the position,
    /// in one transaction; also one look of the sequential SRM test.
    pub fn checkpoint(&self) -> Result<(), ServeError> {
        let mut ledger = self.ledger.lock();
        ledger.look();
        let fail = |e: serde_json::Error| ServeError::Unavailable(e.to_string());
        let mut writes = Vec::new();
        for (name, progress, users) in ledger.take_changes() {
            writes.push((
                Collection::ExperimentTotals,
                name.clone(),
                serde_json::to_vec(&progress).map_err(fail)?,
            ));
            for (user, tally) in users {
                let key = format!("{name}{KEY_SEPARATOR}{user}");
                writes.push((
                    Collection::ExperimentUsers,
                    key,
                    serde_json::to_vec(&tally).map_err(fail)?,
                ));
            }
        }
        let position = serde_json::to_vec(&Position { next_seq: ledger.next_seq }).map_err(fail)?;
        writes.push((Collection::ExperimentTotals, POSITION_KEY.to_owned(), position));
        self.store
            .put_documents(&writes)
            .map_err(|e| ServeError::Unavailable(format!("experiment ledger checkpoint: {e}")))
    }

    /// Follows the log on a thread of its own until the analysis is dropped.
    pub fn spawn(self: &Arc<Self>) {
        let weak: Weak<ExperimentAnalysis> = Arc::downgrade(self);
        std::thread::spawn(move || {
            let mut last_checkpoint = Instant::now();
            while let Some(analysis) = weak.upgrade() {
                let counted = analysis.catch_up().unwrap_or_else(|e| {
                    eprintln!("{e}");
                    0
                });
                if last_checkpoint.elapsed() >= analysis.checkpoint_interval {
                    if let Err(e) = analysis.checkpoint() {
                        eprintln!("{e}");
                    }
                    last_checkpoint = Instant::now();
                }
                drop(analysis);
                if counted == 0 {
                    std::thread::sleep(IDLE);
                }
            }
        });
    }

    /// An experiment's results, with every event logged so far counted.
    pub fn results(&self, name: &str) -> Result<ResultsResponse, ServeError> {
        let experiment = self.experiments.record(name)?;
        self.catch_up()?;
        let settings = self.experiments.settings();
        let analysis_settings = analysis_settings(settings);
        let ledger = self.ledger.lock();
        let progress = ledger.progress(name).ok_or_else(|| {
            ServeError::NotFound(format!("experiment {name:?} has no results yet"))
        })?;
        let mut monitor = progress.srm;
        let mut results = analyse(&progress.variants, &analysis_settings, &mut monitor);
        if experiment.config.planned_users.is_some() {
            planned::decide(&mut results, &progress.looks, experiment.config.planned_looks);
        }
        Ok(ResultsResponse {
            experiment,
            through_seq: ledger.next_seq,
            results,
            guardrails: self.metrics.variant_guardrails(name),
            interleaving: interleaving_summary(progress, settings.alpha),
        })
    }
}
