//! Re-rank: the steps between the ranker's scores and the list served,
//! run in the order `[recommend] rerankers` lists them. Each step is a
//! [`Reranker`] working on one [`Slate`]; the built-in ones are freshness,
//! popularity, diversity (MMR), pins and the exposure cap, and a library
//! user registers more by name (`Recommender::with_reranker`).

pub mod diversity;
pub mod exploration;
pub mod exposure_cap;
pub mod pins;
pub mod score_shaping;

use std::collections::HashSet;
use std::sync::Arc;

use crate::exposure::ExposureMemory;
use crate::models::Models;
use crate::recommender::PipelineSettings;
use crate::request::{RecommendRequest, ServeError};

pub use cascade_core::event::Propensities;
pub use diversity::{Diversity, mmr};
pub use exploration::Explore;
pub use exposure_cap::ExposureCap;
pub use pins::{Pins, pin};
pub use score_shaping::{Adjustments, Freshness, Popularity};

/// One item of the list being re-ranked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlateItem {
    /// Dense item index.
    pub item: u32,
    /// The ranker's score, shown in the response; NaN for an item no
    /// ranker scored (a pinned item recall did not find).
    pub score: f32,
    /// What the steps order by: the ranker's score min-max scaled to
    /// [0, 1] (so knobs mean the same for any ranker), then shifted by
    /// the steps.
    pub order: f32,
}

/// The list a request's re-ranking works on, best first. It starts as every
/// ranked candidate; steps may reorder, drop or insert, and whatever is
/// left is cut to the request's `n`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Slate {
    /// The items, in the order they would be served.
    pub items: Vec<SlateItem>,
    /// Set by an exploring step (listed last). `None`: the list was
    /// certain.
    pub exploration: Option<Exploration>,
}

/// What an exploring step drew.
#[derive(Debug, Clone, PartialEq)]
pub struct Exploration {
    /// The policy and its setting.
    pub policy: String,
    /// Each served slot's propensities.
    pub propensities: Vec<Propensities>,
    /// The candidates it drew from, most relevant first, with the
    /// relevance it drew by.
    pub candidates: Vec<(u32, f64)>,
}

impl Slate {
    /// From ranker scores sorted best first.
    pub fn from_ranked(scored: &[(u32, f32)]) -> Slate {
        let (low, high) = scored
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &(_, s)| (l.min(s), h.max(s)));
        let span = (high - low).max(f32::EPSILON);
        let items = scored
            .iter()
            .map(|&(item, score)| {
                let order = if high > low { (score - low) / span } else { 1.0 };
                SlateItem { item, score, order }
            })
            .collect();
        Slate { items, exploration: None }
    }

    /// Sorts by `order`, best first; ties go to the lower index, so a list
    /// is reproducible.
    pub fn sort_by_order(&mut self) {
        self.items.sort_by(|a, b| b.order.total_cmp(&a.order).then(a.item.cmp(&b.item)));
    }
}

/// What a step knows about the request it re-ranks for.
#[derive(Clone, Copy)]
pub struct RerankContext<'a> {
    /// The request as the client sent it (pins, filters, context).
    pub request: &'a RecommendRequest,
    /// The models answering it: catalog, popularity counts, embeddings.
    pub models: &'a Models,
    /// Hidden items the catalog knows: never served.
    pub hidden: &'a HashSet<u32>,
    /// How many items the response holds.
    pub n: usize,
    /// Seeds the request's random draws (exploration), from its request
    /// id, so that a served list can be reproduced.
    pub seed: u64,
    /// The stream's real-time features (items' windowed impressions and
    /// interactions), when the server runs a stream processor.
    pub features: Option<&'a dyn cascade_store::online::FeatureRead>,
}

/// One re-ranking step.
pub trait Reranker: Send + Sync {
    /// The name `[recommend] rerankers` lists it by.
    fn name(&self) -> &str;

    /// External ids of items this step keeps out of the user's list
    /// altogether. They are removed before recall, so that the channels
    /// fill their quotas with other items.
    fn excluded(&self, _user_id: &str) -> Vec<String> {
        Vec::new()
    }

    /// Reorders, drops or inserts items of `slate`. An error is the
    /// request's (e.g. a pin naming an unknown item).
    fn rerank(&self, slate: &mut Slate, context: &RerankContext<'_>) -> Result<(), ServeError>;

    /// Told the external ids of the list served, in order.
    fn served(&self, _user_id: &str, _items: &[&str]) {}
}

/// The built-in step called `name`, with its knobs from `settings`; `None`
/// for a name only a library user can register.
pub fn built_in(
    name: &str,
    settings: &PipelineSettings,
    exposures: &Arc<ExposureMemory>,
) -> Option<Box<dyn Reranker>> {
    let step: Box<dyn Reranker> = match name {
        "freshness" => Box::new(Freshness::new(settings.adjustments)),
        "popularity" => Box::new(Popularity::new(settings.adjustments)),
        "diversity" => Box::new(Diversity { lambda: settings.mmr_lambda, pool: settings.mmr_pool }),
        "pins" => Box::new(Pins),
        "exposure_cap" => Box::new(ExposureCap::new(exposures.clone())),
        "epsilon_greedy" => Box::new(Explore::epsilon_greedy(&settings.exploration)),
        "plackett_luce" => Box::new(Explore::plackett_luce(&settings.exploration)),
        "thompson" => Box::new(Explore::thompson(&settings.exploration)),
        "linear_thompson" => Box::new(Explore::linear_thompson(&settings.exploration)),
        "learned_policy" => Box::new(Explore::learned_policy(&settings.exploration)),
        _ => return None,
    };
    Some(step)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slate_starts_as_relevance_in_unit_range() {
        let slate = Slate::from_ranked(&[(4, 3.0), (2, 1.0), (7, 2.0)]);
        let orders: Vec<f32> = slate.items.iter().map(|s| s.order).collect();
        assert_eq!(orders, vec![1.0, 0.0, 0.5]);
        assert_eq!(slate.items[0].score, 3.0, "the ranker's score is kept for the response");
        let tied = Slate::from_ranked(&[(1, 0.3), (0, 0.3)]);
        assert!(tied.items.iter().all(|s| s.order == 1.0));
        let mut tied = tied;
        tied.sort_by_order();
        assert_eq!(tied.items[0].item, 0, "ties go to the lower index");
    }

    #[test]
    fn every_documented_step_is_built_in() {
        let settings = PipelineSettings::default();
        let exposures = Arc::new(ExposureMemory::new(None, std::time::Duration::ZERO));
        let exploring = cascade_core::serve_config::EXPLORING_RERANKERS;
        for name in cascade_core::serve_config::BUILT_IN_RERANKERS.iter().chain(&exploring) {
            let step = built_in(name, &settings, &exposures).expect(name);
            assert_eq!(step.name(), *name);
        }
        assert!(built_in("mine", &settings, &exposures).is_none());
    }
}
