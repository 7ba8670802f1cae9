//! A re-ranking step of your own: any type implementing
//! `cascade_serve::rerank::Reranker` works on the ranked list (a `Slate`)
//! where `[recommend] rerankers` lists its name. This one is a business
//! rule: at most two items of any one category reach diversity, which then
//! picks the list among them.
//!
//! ```sh
//! cargo run --release -p cascade-app --example custom_reranker -- ../shared/data/ml-100k
//! ```

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Result, anyhow};

use cascade_app::ModelKind;
use cascade_app::serving::server::pipeline_settings;
use cascade_serve::metrics::Metrics;
use cascade_serve::recommender::Recommender;
use cascade_serve::request::{RecommendRequest, ServeError};
use cascade_serve::rerank::{RerankContext, Reranker, Slate};

/// Keeps the first `per_category` items of each first category, in order.
struct CategoryCap {
    per_category: usize,
}

impl Reranker for CategoryCap {
    fn name(&self) -> &str {
        "category_cap"
    }

    fn rerank(&self, slate: &mut Slate, context: &RerankContext<'_>) -> Result<(), ServeError> {
        let categories = &context.models.catalog.facts.item_categories;
        let mut kept: HashMap<Option<u32>, usize> = HashMap::new();
        slate.items.retain(|entry| {
            let first = categories.get(entry.item as usize).and_then(|c| c.first().copied());
            let count = kept.entry(first).or_default();
            *count += 1;
            *count <= self.per_category
        });
        Ok(())
    }
}

fn main() -> Result<()> {
    let (mut workspace, _scratch, models) = common::movielens_models(ModelKind::Lr)?;
    let categories = models.catalog.facts.item_categories.clone();
    let names = models.catalog.facts.categories.clone();
    // Before diversity, so that MMR picks among what the rule allows.
    let rerankers = &mut workspace.config.recommend.rerankers;
    let at = rerankers.iter().position(|name| name == "diversity").unwrap_or(0);
    rerankers.insert(at, "category_cap".into());
    let metrics = Arc::new(Metrics::default());
    let recommender = Recommender::new(models, pipeline_settings(&workspace.config), metrics)
        .with_reranker(Box::new(CategoryCap { per_category: 2 }))
        .map_err(|e| anyhow!(e))?;
    recommender.check_pipeline().map_err(|e| anyhow!(e))?;
    let request: RecommendRequest = serde_json::from_str(r#"{"user_id": "1", "n": 10}"#)?;
    println!("user 1, at most two items per first genre:");
    for item in recommender.recommend(&request)?.items {
        let index = recommender.models().catalog.item_index(&item.item_id);
        let genre = index
            .and_then(|i| categories.get(i as usize)?.first().copied())
            .map_or("-", |c| names.id(c));
        println!("{:>3}. item {:<5} {genre}", item.rank, item.item_id);
    }
    Ok(())
}
