//! The exploring steps: the served list drawn at random around the greedy
//! one (`cascade-policy`'s explorers), each slot's propensities kept on the
//! slate so that the impressions log them.

use cascade_core::serve_config::ExplorationConfig;
use cascade_experiments::calibration::SplitMix;
use cascade_policy::exploration::{EpsilonGreedy, Explored, PlackettLuce, ThompsonSampling};

use super::{Exploration, RerankContext, Reranker, Slate};
use crate::request::ServeError;

/// Which explorer draws the list.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Policy {
    EpsilonGreedy(EpsilonGreedy),
    PlackettLuce(PlackettLuce),
    Thompson(ThompsonSampling),
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
}

impl Explore {
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
}

/// Each slate item's Beta(α, β) posterior of CTR from the stream's
/// longest window: the smoothed CTR as its mean, impressions plus the
/// prior's strength as its weight.
fn posteriors(slate: &Slate, context: &RerankContext<'_>) -> Result<Vec<(f64, f64)>, ServeError> {
    let features = context.features.ok_or_else(|| {
        ServeError::Unavailable(
            "recommend.rerankers: thompson needs the stream processor's item windows, and this \
             server runs none"
                .into(),
        )
    })?;
    let unavailable = |e: cascade_store::online::OnlineStoreError| {
        ServeError::Unavailable(format!("thompson: reading item windows: {e}"))
    };
    let now = features.now_ms().map_err(unavailable)?;
    let strength = features.settings().ctr_prior_impressions.max(1.0);
    let catalog = &context.models.catalog;
    slate
        .items
        .iter()
        .map(|entry| {
            let windows =
                features.item_stats(&catalog.item_id(entry.item), now).map_err(unavailable)?;
            let Some(longest) = windows.last() else { return Ok((1.0, 1.0)) };
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
        let scores = relevance_by_position(slate);
        let k = context.n.min(scores.len());
        let mut rng = SplitMix::new(context.seed);
        let Explored { order, propensities, .. } = match &self.policy {
            Policy::EpsilonGreedy(policy) => policy.explore(&scores, k, &mut rng),
            Policy::PlackettLuce(policy) => policy.explore(&scores, k, &mut rng),
            Policy::Thompson(policy) => policy.explore(&posteriors(slate, context)?, k, &mut rng),
        };
        let candidates = slate.items.iter().zip(&scores).map(|(e, &s)| (e.item, s)).collect();
        slate.items = order.iter().map(|&index| slate.items[index]).collect();
        slate.exploration =
            Some(Exploration { policy: self.label.clone(), propensities, candidates });
        Ok(())
    }
}
