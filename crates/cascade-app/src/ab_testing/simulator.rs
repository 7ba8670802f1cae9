//! `cascade simulate`: simulated users drive a running `cascade serve` over
//! real HTTP, and what they click goes back through `POST /v1/events`.
//!
//! The ground truth is EASE fitted on every interaction of the data
//! (train, validation and test items alike), so it knows what the served
//! models saw and more. A user's chance to click item i is
//! `sigmoid(offset + z)`, z being i's EASE score standardised over the
//! user's scores, with `offset` set by bisection so that the truth's own
//! top 10 among the items the user has not consumed are clicked
//! `target_ctr` of the time. Each visit asks for a list
//! of `list_length`; position k is examined with probability
//! `1 / log2(k + 1)` (position bias) and an examined item is clicked by the
//! truth's probability, times `1 + planted_lift` for users the server put
//! in the `planted_variant` (a known effect, for power analysis).
//!
//! Users differ in how often they come: with `activity = data`, a user's
//! visits are proportional to their interactions in the data (MovieLens
//! users rate from 20 to 700 films), `visits_per_user` on average; with
//! `uniform`, every user visits `visits_per_user` times. A pre-period of
//! `pre_visits_per_user` visits (same activity) can run first, with the
//! experiments in `create_experiments` posted to the admin API only after
//! it: their users' pre-period clicks are CUPED's covariate, as on a live
//! system where an experiment starts on users with a past.
//!
//! With `new_items`, that many catalogue items are copied under new ids
//! through the catalogue API before the experiment's visits, and each
//! variant reports how soon it showed and got clicks on them
//! (`new_items`).
//!
//! Users also differ in how readily they click: `engagement_spread` σ gives
//! each a lifelong factor on every click chance, log-normal with mean 1
//! (σ = 0, the default, makes them alike).
//!
//! Seeded and reproducible for a given server state: the visits are in a
//! seeded order, every draw comes from one seeded generator, and nothing
//! waits between visits (a week of traffic replays in minutes). The clicks
//! are posted with the server's clock, after the impressions they answer,
//! so the server's impression join sees them as the real ones.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use serde_json::{Value, json};

use cascade_core::ids::IdIndex;
use cascade_eval::protocols::FullRanker;
use cascade_experiments::calibration::SplitMix;
use cascade_experiments::statistics::{normal_quantile, users_per_variant};
use cascade_models::baselines::{Ease, EaseConfig};
use cascade_models::interactions::Interactions;
use cascade_serve::experiments::INTERLEAVED;

use super::new_items::{NewItemTracker, NewItemTraffic};
use crate::evaluation::prepare;
use crate::progress::Progress;
use crate::workspace::Workspace;

/// The simulation's knobs (`cascade simulate`'s flags).
#[derive(Debug, Clone, Serialize)]
pub struct SimulationSettings {
    /// The server, `http://host:port`.
    pub server: String,
    /// A key or admin token sent with every request, if keys are configured.
    #[serde(skip)]
    pub token: Option<String>,
    /// Simulated users (drawn from the data's users).
    pub users: usize,
    /// Visits per user.
    pub visits_per_user: usize,
    /// Items asked for per visit.
    pub list_length: usize,
    /// The truth's click rate on its own top 10.
    pub target_ctr: f64,
    /// EASE's λ for the truth.
    pub truth_lambda: f64,
    /// The event type a click is posted as, and its value.
    pub click_event: String,
    pub click_value: Option<f64>,
    /// Users in this variant (`experiment/variant`, as responses label it)
    /// click `1 + planted_lift` times as often; in an interleaving
    /// experiment, items that variant's team placed do.
    pub planted_variants: Vec<String>,
    pub planted_lift: f64,
    /// The experiments whose server-side results are fetched at the end.
    pub experiments: Vec<String>,
    /// How visits spread over users.
    pub activity: Activity,
    /// σ of each user's engagement: a lifelong click-propensity factor
    /// `exp(σ·N(0, 1) − σ²/2)` (mean 1) on every click chance, for the
    /// user-to-user differences a ratings log does not show (0: none).
    pub engagement_spread: f64,
    /// Mean visits per user before the experiments start (0: none).
    pub pre_visits_per_user: usize,
    /// Experiments (`POST /v1/experiments` bodies) created after the
    /// pre-period, before the experiment's visits.
    pub create_experiments: Vec<Value>,
    /// Items added through the catalogue API as new before the
    /// experiment's visits (`new_items`); 0: none.
    pub new_items: usize,
    /// Where to write each simulated user's experiment-period traffic, one
    /// JSON line each ([`UserTraffic`]), for paired comparisons of runs
    /// of the same users against different servers.
    pub per_user_out: Option<PathBuf>,
    pub seed: u64,
}

/// How visits spread over the simulated users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum Activity {
    /// In proportion to each user's interactions in the data.
    Data,
    /// The same number for every user.
    Uniform,
}

/// One variant's simulated traffic.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VariantTraffic {
    pub users: usize,
    pub visits: usize,
    pub impressions: usize,
    pub clicks: usize,
    /// Σ over lists of the truth's expected clicks.
    pub expected_clicks: f64,
    /// `clicks / impressions`.
    pub ctr: f64,
    /// `expected_clicks / users`: the truth's clicks per user.
    pub expected_clicks_per_user: f64,
    /// What the variant did with the items added as new, if any were.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_items: Option<NewItemTraffic>,
}

/// One simulated user's traffic in the experiment period.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct UserTraffic {
    pub user: String,
    /// The variant label of the user's last list.
    pub variant: String,
    pub visits: usize,
    pub impressions: usize,
    pub clicks: usize,
    /// Σ over the user's lists of the truth's expected clicks.
    pub expected_clicks: f64,
}

/// The ground truth: per user, a click probability for every item.
struct Truth {
    ease: Ease,
    histories: Vec<Vec<u32>>,
    offset: f64,
    n_items: usize,
}

impl Truth {
    /// Click probabilities of user `u` over all items.
    fn probabilities(&self, user: u32) -> Vec<f64> {
        let mut scores = vec![0.0f32; self.n_items];
        self.ease.score_user(user, &self.histories[user as usize], &mut scores);
        let n = scores.len() as f64;
        let mean = scores.iter().map(|&s| f64::from(s)).sum::<f64>() / n;
        let variance = scores.iter().map(|&s| (f64::from(s) - mean).powi(2)).sum::<f64>() / n;
        let spread = variance.sqrt().max(1e-12);
        scores.iter().map(|&s| sigmoid(self.offset + (f64::from(s) - mean) / spread)).collect()
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// The chance a simulated user examines the item at 0-based slot `k`:
/// 1 / log2(k + 2).
pub fn examination(k: usize) -> f64 {
    1.0 / ((k + 2) as f64).log2()
}

/// The simulator's ground truth on its own, for holding estimates made
/// from a simulated log to what the simulated users would really do.
pub struct GroundTruth {
    truth: Truth,
    users: std::collections::HashMap<String, u32>,
    items: IdIndex,
    preferences: parking_lot::Mutex<BTreeMap<u32, std::sync::Arc<Vec<f64>>>>,
}

impl GroundTruth {
    /// The truth `cascade simulate` fits with the same λ and click rate
    /// (imported into `truth_dir`, a workspace of its own).
    pub fn fit(
        truth_dir: PathBuf,
        config: cascade_core::Config,
        data: Option<&std::path::Path>,
        (truth_lambda, target_ctr): (f64, f64),
        progress: Progress,
    ) -> Result<GroundTruth> {
        let workspace = Workspace::at(truth_dir, config, false);
        let (truth, user_ids, items) =
            fit_truth(&workspace, data, (truth_lambda, target_ctr), progress)?;
        let users = user_ids.into_iter().enumerate().map(|(u, id)| (id, u as u32)).collect();
        let preferences = parking_lot::Mutex::new(BTreeMap::new());
        Ok(GroundTruth { truth, users, items, preferences })
    }

    /// The chance `user` clicks each of `items` once examined (0 for an
    /// item the truth does not know); `None` for a user it does not know.
    pub fn preferences(&self, user: &str, items: &[String]) -> Option<Vec<f64>> {
        let &u = self.users.get(user)?;
        let all = self
            .preferences
            .lock()
            .entry(u)
            .or_insert_with(|| std::sync::Arc::new(self.truth.probabilities(u)))
            .clone();
        Some(items.iter().map(|id| self.items.index(id).map_or(0.0, |i| all[i as usize])).collect())
    }
}

/// Fits the truth on `data` (imported into `truth_workspace`, a workspace
/// of its own: the server holds its store) and calibrates it.
fn fit_truth(
    truth_workspace: &Workspace,
    data: Option<&std::path::Path>,
    (truth_lambda, target_ctr): (f64, f64),
    progress: Progress,
) -> Result<(Truth, Vec<String>, IdIndex)> {
    let prepared = prepare(truth_workspace, data, progress)?;
    let split = &prepared.split;
    let histories: Vec<Vec<u32>> = (0..split.n_users())
        .map(|u| {
            let mut all = split.train[u].clone();
            all.extend([split.valid[u], split.test[u]]);
            all
        })
        .collect();
    let bar = progress.spinner("fitting the ground truth (EASE on every interaction)");
    let ease = Ease::fit(
        &Interactions::new(split.n_items, &histories),
        EaseConfig { lambda: truth_lambda },
    )
    .context("fitting the ground truth")?;
    bar.finish_and_clear();
    let mut truth = Truth { ease, histories, offset: 0.0, n_items: split.n_items };
    // Calibrate on a sample of users: mean click chance of their top 10.
    let sample: Vec<u32> =
        (0..split.n_users() as u32).step_by((split.n_users() / 200).max(1)).collect();
    let tops: Vec<Vec<f64>> = sample
        .iter()
        .map(|&u| {
            truth.offset = 0.0;
            // Served lists leave out what the user consumed: so does this.
            let consumed: std::collections::HashSet<u32> =
                truth.histories[u as usize].iter().copied().collect();
            let mut z = truth
                .probabilities(u)
                .into_iter()
                .enumerate()
                .filter(|(item, _)| !consumed.contains(&(*item as u32)))
                .map(|(_, p)| (p / (1.0 - p)).ln())
                .collect::<Vec<_>>();
            z.sort_by(|a, b| b.total_cmp(a));
            z.truncate(10);
            z
        })
        .collect();
    let top_ctr = |offset: f64| {
        let total: f64 = tops.iter().flatten().map(|z| sigmoid(offset + z)).sum();
        total / tops.iter().map(Vec::len).sum::<usize>().max(1) as f64
    };
    let (mut low, mut high) = (-30.0, 30.0);
    for _ in 0..100 {
        let mid = (low + high) / 2.0;
        if top_ctr(mid) < target_ctr { low = mid } else { high = mid }
    }
    truth.offset = (low + high) / 2.0;
    Ok((truth, prepared.users.ids().to_vec(), prepared.items))
}

/// The relative lift the power analysis sizes for when none is planted.
const POWER_LIFT: f64 = 0.03;

impl SimulationSettings {
    /// The level the server's analysis used (`[experiment_settings] alpha`).
    fn alpha(&self) -> f64 {
        cascade_core::config::ExperimentSettings::default().alpha
    }
}

/// Users per variant for 80% power to detect a relative lift `lift` in
/// clicks per user, from the control's per-user variance in the server's
/// results, with and without CUPED's variance reduction.
fn power_analysis(results: &Value, lift: f64, alpha: f64) -> Option<Value> {
    let comparison =
        results["comparisons"].as_array()?.iter().find(|c| c["metric"] == "clicks_per_user")?;
    let control = &comparison["control"];
    let (mean, variance) = (control["mean"].as_f64()?, control["variance"].as_f64()?);
    let reduction = comparison["cuped"]["variance_reduction"].as_f64().unwrap_or(0.0);
    let effect = lift * mean;
    let plain = users_per_variant(variance, effect, alpha, 0.8);
    Some(json!({
        "users_for_80pct_power_both_variants": (2.0 * plain).ceil(),
        "metric": "clicks_per_user",
        "relative_lift": lift,
        "control_mean": mean,
        "control_variance": variance,
        "users_per_variant_for_80pct_power": plain.ceil(),
        "cuped_variance_reduction": reduction,
        "users_per_variant_for_80pct_power_with_cuped": (plain * (1.0 - reduction)).ceil(),
    }))
}

/// Users for 80% power to detect a relative lift `lift` of one team's
/// clicks in interleaved lists: the per-user preference's variance from the
/// server, and the effect `lift` × the first team's credits per user.
fn interleaving_power(summary: &Value, lift: f64, alpha: f64) -> Option<Value> {
    let users = summary["users"].as_f64()?;
    let first_per_user = summary["credits"][0].as_f64()? / users.max(1.0);
    let standard_error = summary["preference"]["standard_error"].as_f64()?;
    let variance = standard_error * standard_error * users;
    let effect = lift * first_per_user;
    let z = normal_quantile(1.0 - alpha / 2.0) + normal_quantile(0.8);
    Some(json!({
        "metric": "interleaving_preference",
        "relative_lift": lift,
        "first_team_credits_per_user": first_per_user,
        "preference_variance": variance,
        "users_for_80pct_power": (z * z * variance / (effect * effect)).ceil(),
    }))
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().into()
}

fn call(
    agent: &ureq::Agent,
    settings: &SimulationSettings,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<Value> {
    let url = format!("{}{path}", settings.server);
    let authorization = settings.token.as_ref().map(|t| format!("Bearer {t}"));
    let mut response = match body {
        Some(body) => {
            let request = match method {
                "PUT" => agent.put(&url),
                _ => agent.post(&url),
            };
            let mut request = request.header("content-type", "application/json");
            if let Some(value) = &authorization {
                request = request.header("authorization", value);
            }
            request.send(serde_json::to_vec(body)?)
        }
        None => {
            let mut request = agent.get(&url);
            if let Some(value) = &authorization {
                request = request.header("authorization", value);
            }
            request.call()
        }
    }
    .with_context(|| format!("{method} {url}"))?;
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().with_context(|| format!("{method} {url}"))?;
    if status >= 300 {
        bail!("{method} {url}: {status} {text}");
    }
    if text.trim().is_empty() {
        // 201 Created and 204 No Content answer with no body.
        return Ok(Value::Null);
    }
    serde_json::from_str(&text).with_context(|| format!("{method} {url}: not JSON: {text}"))
}

/// Each simulated user's share of the visits, averaging 1.
fn activity_weights(truth: &Truth, users: &[u32], activity: Activity) -> Vec<f64> {
    match activity {
        Activity::Uniform => vec![1.0; users.len()],
        Activity::Data => {
            let counts: Vec<f64> =
                users.iter().map(|&u| truth.histories[u as usize].len() as f64).collect();
            let mean = counts.iter().sum::<f64>() / counts.len().max(1) as f64;
            counts.iter().map(|&c| c / mean.max(f64::MIN_POSITIVE)).collect()
        }
    }
}

/// Each user's engagement factor, log-normal with mean 1 and log-σ
/// `spread`; no draws when `spread` is 0, so such runs repeat as before.
fn engagement_factors(users: &[u32], spread: f64, rng: &mut SplitMix) -> BTreeMap<u32, f64> {
    if spread <= 0.0 {
        return BTreeMap::new();
    }
    users
        .iter()
        .map(|&user| {
            // Box-Muller: one standard normal from two uniforms.
            let (u1, u2) = (1.0 - rng.unit(), rng.unit());
            let normal = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            (user, (spread * normal - spread * spread / 2.0).exp())
        })
        .collect()
}

/// The visits of one period in a seeded random order: user u comes
/// `per_user × weight(u)` times, rounded up or down at random so that the
/// expected count is exact.
fn visit_order(users: &[u32], weights: &[f64], per_user: usize, rng: &mut SplitMix) -> Vec<u32> {
    if per_user == 0 {
        return Vec::new();
    }
    let mut visits: Vec<u32> = Vec::new();
    for (&user, &weight) in users.iter().zip(weights) {
        let expected = per_user as f64 * weight;
        let mut count = expected.floor() as usize;
        if expected.fract() > 0.0 && rng.unit() < expected.fract() {
            count += 1;
        }
        visits.extend(std::iter::repeat_n(user, count));
    }
    shuffle(&mut visits, rng);
    visits
}

/// Fisher-Yates with the simulation's generator.
fn shuffle(values: &mut [u32], rng: &mut SplitMix) {
    for i in (1..values.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        values.swap(i, j);
    }
}

/// What every visit needs: the server, the truth, and the one generator.
struct Session<'a> {
    agent: ureq::Agent,
    settings: &'a SimulationSettings,
    truth: &'a Truth,
    user_ids: &'a [String],
    items: &'a IdIndex,
    probabilities: BTreeMap<u32, Vec<f64>>,
    /// Each simulated user's engagement factor.
    engagement: BTreeMap<u32, f64>,
    /// Items added as new: each new id's original, whose click chances it
    /// has.
    new_items: HashMap<String, u32>,
    /// Each user's traffic in the latest period run.
    per_user: BTreeMap<u32, UserTraffic>,
    rng: SplitMix,
}

impl Session<'_> {
    /// Makes the visits in order: asks for a list, examines and clicks it,
    /// posts the clicks; the traffic by the variant label that served it.
    fn run(
        &mut self,
        visits: &[u32],
        period: &str,
        progress: Progress,
    ) -> Result<BTreeMap<String, VariantTraffic>> {
        let settings = self.settings;
        let bar = match progress.quiet || visits.is_empty() {
            true => ProgressBar::hidden(),
            false => ProgressBar::new(visits.len() as u64),
        };
        bar.set_style(
            ProgressStyle::with_template(&format!(
                "simulating ({period}) {{bar:30}} {{pos}}/{{len}} visits {{per_sec}} eta {{eta}}"
            ))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let mut by_variant: BTreeMap<String, VariantTraffic> = BTreeMap::new();
        let mut seen: BTreeMap<String, std::collections::HashSet<u32>> = BTreeMap::new();
        let mut new_item_trackers: BTreeMap<String, NewItemTracker> = BTreeMap::new();
        self.per_user.clear();
        for &user in visits {
            let user_id = &self.user_ids[user as usize];
            let path = format!("/v1/users/{user_id}/recommend?n={}", settings.list_length);
            let answer = call(&self.agent, settings, "GET", &path, None)?;
            let variant = answer["variant"].as_str().unwrap_or("default").to_owned();
            let lift_of = |team: Option<&str>| {
                let labelled = |label: String| variant.split(',').any(|v| v == label);
                let planted = settings.planted_variants.iter().filter_map(|p| p.split_once('/'));
                let hits = planted
                    .filter(|&(experiment, planted)| {
                        labelled(format!("{experiment}/{planted}"))
                            || (labelled(format!("{experiment}/{INTERLEAVED}"))
                                && team == Some(planted))
                    })
                    .count();
                (1.0 + settings.planted_lift).powi(hits as i32)
            };
            let truth = self.truth;
            let chances =
                self.probabilities.entry(user).or_insert_with(|| truth.probabilities(user));
            let mut clicked = Vec::new();
            let person = self
                .per_user
                .entry(user)
                .or_insert_with(|| UserTraffic { user: user_id.clone(), ..UserTraffic::default() });
            person.variant.clone_from(&variant);
            person.visits += 1;
            let traffic = by_variant.entry(variant.clone()).or_default();
            traffic.visits += 1;
            if seen.entry(variant.clone()).or_default().insert(user) {
                traffic.users += 1;
            }
            for (k, item) in answer["items"].as_array().into_iter().flatten().enumerate() {
                let Some(item_id) = item["item_id"].as_str() else { continue };
                let examined = examination(k);
                let index =
                    self.items.index(item_id).or_else(|| self.new_items.get(item_id).copied());
                let known = index.map_or(0.0, |i| chances[i as usize]);
                let engagement = self.engagement.get(&user).copied().unwrap_or(1.0);
                let chance = known * engagement * lift_of(item["team"].as_str());
                traffic.impressions += 1;
                traffic.expected_clicks += examined * chance.min(1.0);
                person.impressions += 1;
                person.expected_clicks += examined * chance.min(1.0);
                let click = self.rng.unit() < examined && self.rng.unit() < chance;
                if self.new_items.contains_key(item_id) {
                    let tracker = new_item_trackers.entry(variant.clone()).or_default();
                    tracker.shown(item_id, traffic.visits);
                    if click {
                        tracker.clicked(item_id, traffic.visits);
                    }
                }
                if click {
                    clicked.push(item_id.to_owned());
                }
            }
            traffic.clicks += clicked.len();
            person.clicks += clicked.len();
            if !clicked.is_empty() {
                let events: Vec<Value> = clicked
                    .iter()
                    .map(|item| json!({ "user_id": user_id, "item_id": item, "event_type": settings.click_event, "value": settings.click_value }))
                    .collect();
                call(
                    &self.agent,
                    settings,
                    "POST",
                    "/v1/events",
                    Some(&json!({ "events": events })),
                )?;
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
        for (variant, traffic) in by_variant.iter_mut() {
            if !self.new_items.is_empty() {
                let tracker = new_item_trackers.remove(variant).unwrap_or_default();
                traffic.new_items = Some(tracker.summary(self.new_items.len()));
            }
            traffic.ctr = traffic.clicks as f64 / traffic.impressions.max(1) as f64;
            traffic.expected_clicks_per_user =
                traffic.expected_clicks / traffic.users.max(1) as f64;
        }
        Ok(by_variant)
    }
}

/// Adds `settings.new_items` copies of catalogue items, drawn at random,
/// through `PUT /v1/items/{id}` under new ids, published at the
/// catalogue's clock (its newest publication); each new id → its
/// original's index.
fn add_new_items(session: &mut Session<'_>, workspace: &Workspace) -> Result<HashMap<String, u32>> {
    let settings = session.settings;
    let mut added = HashMap::new();
    if settings.new_items == 0 {
        return Ok(added);
    }
    let reader = workspace.item_facts_reader();
    let records = workspace.store()?.records(cascade_store::EntityKind::Item)?;
    let clock = records.iter().filter_map(|(_, r)| reader.published(r)).max();
    let mut originals: Vec<u32> = (0..session.items.len() as u32).collect();
    shuffle(&mut originals, &mut session.rng);
    for &original in originals.iter().take(settings.new_items) {
        let id = session.items.id(original);
        let answer = call(&session.agent, settings, "GET", &format!("/v1/items/{id}"), None)?;
        let mut record = answer["record"].clone();
        if let (Some(feature), Some(clock), Some(fields)) =
            (&reader.time_feature, clock, record.as_object_mut())
        {
            fields.insert(feature.clone(), json!(clock as f64 * 1000.0));
        }
        let new_id = format!("new-{}-{id}", settings.seed);
        call(&session.agent, settings, "PUT", &format!("/v1/items/{new_id}"), Some(&record))
            .with_context(|| format!("adding new item {new_id}"))?;
        added.insert(new_id, original);
    }
    Ok(added)
}

/// Runs the simulation against the server and returns its JSON summary.
pub fn simulate(
    truth_dir: PathBuf,
    config: cascade_core::Config,
    data: Option<&std::path::Path>,
    settings: &SimulationSettings,
    progress: Progress,
) -> Result<Value> {
    let truth_workspace = Workspace::at(truth_dir, config, false);
    let calibration = (settings.truth_lambda, settings.target_ctr);
    let (truth, user_ids, items) = fit_truth(&truth_workspace, data, calibration, progress)?;
    let mut rng = SplitMix::new(settings.seed);
    let mut users: Vec<u32> = (0..user_ids.len() as u32).collect();
    shuffle(&mut users, &mut rng);
    users.truncate(settings.users.min(users.len()));
    let activity = activity_weights(&truth, &users, settings.activity);
    let engagement = engagement_factors(&users, settings.engagement_spread, &mut rng);
    let pre_visits = visit_order(&users, &activity, settings.pre_visits_per_user, &mut rng);
    let visits = visit_order(&users, &activity, settings.visits_per_user, &mut rng);
    let mut session = Session {
        agent: agent(),
        settings,
        truth: &truth,
        user_ids: &user_ids,
        items: &items,
        probabilities: BTreeMap::new(),
        engagement,
        new_items: HashMap::new(),
        per_user: BTreeMap::new(),
        rng,
    };
    let started = std::time::Instant::now();
    let pre_period = session.run(&pre_visits, "pre-period", progress)?;
    if let Some(variant) = pre_period.keys().find(|variant| {
        settings
            .experiments
            .iter()
            .any(|name| variant.split(',').any(|v| v.starts_with(&format!("{name}/"))))
    }) {
        bail!(
            "pre-period visits were served by experiment variant {variant:?}: an experiment with a pre-period must start after it (--create-experiment FILE), not in the server's config"
        );
    }
    for body in &settings.create_experiments {
        call(&session.agent, settings, "POST", "/v1/experiments", Some(body))
            .context("creating an experiment after the pre-period")?;
    }
    session.new_items = add_new_items(&mut session, &truth_workspace)?;
    let by_variant = session.run(&visits, "experiment", progress)?;
    if let Some(path) = &settings.per_user_out {
        let mut lines = String::new();
        for traffic in session.per_user.values() {
            lines.push_str(&serde_json::to_string(traffic)?);
            lines.push('\n');
        }
        std::fs::write(path, lines).with_context(|| format!("writing {}", path.display()))?;
    }
    if !settings.experiments.is_empty() {
        // Impressions are made durable within a second; let them land.
        std::thread::sleep(std::time::Duration::from_millis(1_500));
    }
    let effect = if settings.planted_lift > 0.0 { settings.planted_lift } else { POWER_LIFT };
    let mut results = serde_json::Map::new();
    let mut power = serde_json::Map::new();
    for name in &settings.experiments {
        let path = format!("/v1/experiments/{name}/results");
        let answer = call(&session.agent, settings, "GET", &path, None)?;
        let analysis = match answer["interleaving"].is_object() {
            true => interleaving_power(&answer["interleaving"], effect, settings.alpha()),
            false => power_analysis(&answer, effect, settings.alpha()),
        };
        power.insert(name.clone(), analysis.unwrap_or(Value::Null));
        results.insert(name.clone(), answer);
    }
    Ok(json!({
        "settings": settings,
        "power": power,
        "truth": { "model": "EASE on every interaction", "lambda": settings.truth_lambda, "offset": truth.offset },
        "wall_s": started.elapsed().as_secs_f64(),
        "variants": by_variant,
        "pre_period": pre_period,
        "server_results": results,
    }))
}
