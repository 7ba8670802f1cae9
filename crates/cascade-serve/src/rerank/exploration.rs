//! The exploring steps: the served list drawn at random around the greedy
//! one (`cascade-policy`'s explorers), each slot's propensities kept on the
//! slate so that the impressions log them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cascade_core::serve_config::ExplorationConfig;
use cascade_experiments::calibration::SplitMix;
use cascade_policy::exploration::{
    EpsilonGreedy, Explored, LinearPosterior, LinearThompson, PlackettLuce, ThompsonSampling,
};
use cascade_policy::learning::SavedPolicy;
use cascade_store::online::{FeatureRead, OnlineStoreError, WindowStats};
use parking_lot::Mutex;

use super::{Exploration, RerankContext, Reranker, Slate};
use crate::request::ServeError;

/// Which explorer draws the list.
#[derive(Debug, Clone)]
enum Policy {
    EpsilonGreedy(EpsilonGreedy),
    PlackettLuce(PlackettLuce),
    Thompson(ThompsonSampling),
    Linear(LinearThompson, Arc<BanditFit>),
    /// The greedy list of a learned policy's logits; the policy, or why
    /// its file could not be read.
    Learned(Result<Arc<SavedPolicy>, String>),
}

/// The linear bandit's ridge fit over every item's window: refitted every
/// `refresh`, and whenever the models (hence the vectors) change.
#[derive(Debug)]
struct BanditFit {
    ridge: f64,
    refresh: Duration,
    /// The models' version it was fitted on, when, and the fit.
    cached: Mutex<Option<(String, Instant, Arc<LinearPosterior>)>>,
}

/// An exploring re-ranking step; listed last, it draws the served list.
#[derive(Debug, Clone)]
pub struct Explore {
    name: &'static str,
    policy: Policy,
    /// The policy and its setting, logged with every impression.
    label: String,
    /// Candidates drawn from (the most relevant).
    candidates: usize,
}

impl Explore {
    /// `epsilon_greedy` at `[recommend.exploration] epsilon`.
    pub fn epsilon_greedy(config: &ExplorationConfig) -> Explore {
        Explore {
            name: "epsilon_greedy",
            policy: Policy::EpsilonGreedy(EpsilonGreedy { epsilon: config.epsilon }),
            label: format!("epsilon_greedy(epsilon={})", config.epsilon),
            candidates: config.candidates,
        }
    }

    /// `plackett_luce` at `[recommend.exploration] temperature`.
    pub fn plackett_luce(config: &ExplorationConfig) -> Explore {
        Explore {
            name: "plackett_luce",
            policy: Policy::PlackettLuce(PlackettLuce {
                temperature: config.temperature,
                monte_carlo_samples: config.monte_carlo_samples,
                exact_prefix_limit: config.exact_prefix_limit,
            }),
            label: format!("plackett_luce(temperature={})", config.temperature),
            candidates: config.candidates,
        }
    }

    /// `thompson`: each candidate's CTR drawn from a Beta posterior of its
    /// longest stream window (the stream's smoothed CTR and impressions
    /// plus `[stream] ctr_prior_impressions` as the Beta's strength).
    pub fn thompson(config: &ExplorationConfig) -> Explore {
        Explore {
            name: "thompson",
            policy: Policy::Thompson(ThompsonSampling {
                monte_carlo_samples: config.monte_carlo_samples,
            }),
            label: "thompson".to_owned(),
            candidates: config.candidates,
        }
    }

    /// `linear_thompson`: the last `bandit_slots` slots by linear Thompson
    /// sampling over the item vectors (`cascade_policy`'s `LinearThompson`).
    pub fn linear_thompson(config: &ExplorationConfig) -> Explore {
        Explore {
            name: "linear_thompson",
            policy: Policy::Linear(
                LinearThompson {
                    slots: config.bandit_slots,
                    scale: config.bandit_scale,
                    monte_carlo_samples: config.monte_carlo_samples,
                },
                Arc::new(BanditFit {
                    ridge: config.bandit_ridge,
                    refresh: Duration::from_millis(config.bandit_refresh_ms),
                    cached: Mutex::new(None),
                }),
            ),
            label: format!(
                "linear_thompson(slots={}, scale={})",
                config.bandit_slots, config.bandit_scale
            ),
            candidates: config.candidates,
        }
    }
}

/// The policy file at `path`, or why it cannot be served, naming the key
/// and the file.
pub fn load_learned_policy(path: &str) -> Result<SavedPolicy, String> {
    let key = "recommend.exploration.learned_policy";
    if path.is_empty() {
        return Err(format!(
            "{key}: the learned_policy step needs a policy file (`cascade learn-policy` writes \
             them to <workspace>/policies/)"
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{key}: reading {path}: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("{key}: {path} is not a saved policy: {e}"))
}

impl Explore {
    /// `learned_policy`: the greedy list of the logits of the policy in
    /// `[recommend.exploration] learned_policy`. It draws nothing at
    /// random (every propensity 1) but logs its candidates like the
    /// explorers, with its logits as their relevance, so that `cascade
    /// ope` and `cascade learn-policy` can read its lists.
    pub fn learned_policy(config: &ExplorationConfig) -> Explore {
        let policy = load_learned_policy(&config.learned_policy).map(Arc::new);
        let label = match &policy {
            Ok(policy) => format!("learned({})", policy.label),
            Err(_) => "learned(unreadable)".to_owned(),
        };
        Explore {
            name: "learned_policy",
            policy: Policy::Learned(policy),
            label,
            candidates: config.candidates,
        }
    }
}

impl BanditFit {
    /// The posterior for `context`'s models, refitted when stale.
    fn posterior(
        &self,
        context: &RerankContext<'_>,
        step: &'static str,
    ) -> Result<Arc<LinearPosterior>, ServeError> {
        let models = context.models;
        if let Some((version, at, posterior)) = &*self.cached.lock()
            && *version == models.version
            && at.elapsed() < self.refresh
        {
            return Ok(posterior.clone());
        }
        let windows = ItemWindows::of(context, step)?;
        let index = models.ann.index();
        let catalog = &models.catalog;
        let n_items = catalog.items.len() + catalog.added.len();
        let mut rows = Vec::with_capacity(n_items);
        for item in 0..n_items as u32 {
            if let Some(w) = windows.longest(item)? {
                rows.push((
                    index.item(item),
                    w.tally.impressions as f64,
                    w.tally.interactions as f64,
                ));
            }
        }
        let items = rows.iter().map(|(x, n, c)| (x.as_ref(), *n, *c));
        let posterior = Arc::new(LinearPosterior::fit(index.dim(), self.ridge, items));
        *self.cached.lock() = Some((models.version.clone(), Instant::now(), posterior.clone()));
        Ok(posterior)
    }
}

/// The stream's windows of one item, for the steps that read them.
struct ItemWindows<'a> {
    features: &'a dyn FeatureRead,
    now: i64,
    context: &'a RerankContext<'a>,
    step: &'static str,
}

impl<'a> ItemWindows<'a> {
    /// The windows as of now; an error naming `step` without a stream.
    fn of(context: &'a RerankContext<'a>, step: &'static str) -> Result<Self, ServeError> {
        let features = context.features.ok_or_else(|| {
            ServeError::Unavailable(format!(
                "recommend.rerankers: {step} needs the stream processor's item windows, and \
                 this server runs none"
            ))
        })?;
        let now = features.now_ms().map_err(|e| read_error(step, e))?;
        Ok(ItemWindows { features, now, context, step })
    }

    /// The item's longest window, if the stream keeps any.
    fn longest(&self, item: u32) -> Result<Option<WindowStats>, ServeError> {
        let id = self.context.models.catalog.item_id(item);
        let windows =
            self.features.item_stats(&id, self.now).map_err(|e| read_error(self.step, e))?;
        Ok(windows.into_iter().last())
    }
}

fn read_error(step: &str, error: OnlineStoreError) -> ServeError {
    ServeError::Unavailable(format!("{step}: reading item windows: {error}"))
}

/// Each slate item's Beta(α, β) posterior of CTR from the stream's
/// longest window: the smoothed CTR as its mean, impressions plus the
/// prior's strength as its weight.
fn posteriors(slate: &Slate, context: &RerankContext<'_>) -> Result<Vec<(f64, f64)>, ServeError> {
    let windows = ItemWindows::of(context, "thompson")?;
    let strength = windows.features.settings().ctr_prior_impressions.max(1.0);
    slate
        .items
        .iter()
        .map(|entry| {
            let Some(longest) = windows.longest(entry.item)? else { return Ok((1.0, 1.0)) };
            let weight = longest.tally.impressions as f64 + strength;
            let ctr = longest.smoothed_ctr.clamp(1e-6, 1.0 - 1e-6);
            Ok((ctr * weight, (1.0 - ctr) * weight))
        })
        .collect()
}

/// The relevance each slot's item is drawn by: the slate's `order`, made
/// non-increasing down the list, so that an earlier step that reordered
/// without rescoring (MMR) keeps its order in the greedy list.
fn relevance_by_position(slate: &Slate) -> Vec<f64> {
    let mut ceiling = f64::INFINITY;
    slate
        .items
        .iter()
        .map(|entry| {
            ceiling = ceiling.min(f64::from(entry.order));
            ceiling
        })
        .collect()
}

impl Reranker for Explore {
    fn name(&self) -> &str {
        self.name
    }

    fn rerank(&self, slate: &mut Slate, context: &RerankContext<'_>) -> Result<(), ServeError> {
        slate.items.truncate(self.candidates.max(context.n));
        let mut scores = relevance_by_position(slate);
        if let Policy::Learned(policy) = &self.policy {
            let policy = policy.as_ref().map_err(|e| ServeError::Unavailable(e.clone()))?;
            let catalog = &context.models.catalog;
            for (score, entry) in scores.iter_mut().zip(&slate.items) {
                *score = policy.logit(*score, &catalog.item_id(entry.item));
            }
        }
        let k = context.n.min(scores.len());
        let mut rng = SplitMix::new(context.seed);
        let Explored { order, propensities, .. } = match &self.policy {
            Policy::EpsilonGreedy(policy) => policy.explore(&scores, k, &mut rng),
            Policy::Learned(_) => EpsilonGreedy { epsilon: 0.0 }.explore(&scores, k, &mut rng),
            Policy::PlackettLuce(policy) => policy.explore(&scores, k, &mut rng),
            Policy::Thompson(policy) => policy.explore(&posteriors(slate, context)?, k, &mut rng),
            Policy::Linear(policy, fit) => {
                let index = context.models.ann.index();
                let vectors: Vec<Vec<f64>> = slate
                    .items
                    .iter()
                    .map(|e| index.item(e.item).iter().map(|&x| f64::from(x)).collect())
                    .collect();
                let posterior = fit.posterior(context, self.name)?;
                policy.explore(&scores, &vectors, &posterior, k, &mut rng)
            }
        };
        let candidates = slate.items.iter().zip(&scores).map(|(e, &s)| (e.item, s)).collect();
        slate.items = order.iter().map(|&index| slate.items[index]).collect();
        slate.exploration =
            Some(Exploration { policy: self.label.clone(), propensities, candidates });
        Ok(())
    }
}
