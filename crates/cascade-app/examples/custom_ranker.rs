//! A ranker of your own: any type implementing `cascade_serve::rank::Ranker`
//! can score the candidates recall found. This one ranks by how many of the
//! user's own items each candidate shares a category with, and the rest of
//! the pipeline (recall, freshness, MMR, pins, exposure cap) runs unchanged.
//!
//! ```sh
//! cargo run --release -p cascade-app --example custom_ranker -- ../shared/data/ml-100k
//! ```

mod common;

use std::sync::Arc;

use anyhow::Result;

use cascade_app::ModelKind;
use cascade_app::serving::server::pipeline_settings;
use cascade_serve::metrics::Metrics;
use cascade_serve::rank::{Ranker, RequestMoment};
use cascade_serve::recommender::Recommender;
use cascade_serve::request::RecommendRequest;

/// Scores a candidate by the user's items that share one of its categories.
struct SameCategories {
    /// Each item's category indices, by item index.
    categories: Vec<Vec<u32>>,
}

impl Ranker for SameCategories {
    fn name(&self) -> &str {
        "same-categories"
    }

    fn check_context(&self, _moment: &RequestMoment<'_>) -> Result<(), String> {
        Ok(())
    }

    fn score(
        &self,
        _user: Option<u32>,
        history: &[u32],
        items: &[u32],
        _moment: &RequestMoment<'_>,
    ) -> Result<Option<Vec<f32>>, String> {
        let of = |item: u32| self.categories.get(item as usize).map_or(&[][..], Vec::as_slice);
        let scores = items
            .iter()
            .map(|&item| {
                let shared = history
                    .iter()
                    .filter(|&&seen| of(seen).iter().any(|c| of(item).contains(c)))
                    .count();
                shared as f32
            })
            .collect();
        Ok(Some(scores))
    }
}

fn main() -> Result<()> {
    let (workspace, _scratch, mut models) = common::movielens_models(ModelKind::Lr)?;
    let categories = models.catalog.facts.item_categories.clone();
    models.set_ranker(Some(Box::new(SameCategories { categories })));
    let metrics = Arc::new(Metrics::default());
    let recommender = Recommender::new(models, pipeline_settings(&workspace.config), metrics);
    let request: RecommendRequest = serde_json::from_str(r#"{"user_id": "1", "n": 10}"#)?;
    let response = recommender.recommend(&request)?;
    println!("user 1, ranked by {:?}:", response.ranker);
    for item in response.items {
        println!("{:>3}. item {:<5} score {:?}", item.rank, item.item_id, item.score);
    }
    Ok(())
}
