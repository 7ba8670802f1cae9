//! Embedding Cascade as a library: build the serving models from a
//! workspace, exactly as `cascade serve` does, and ask for a user's top 10
//! in-process, without HTTP.
//!
//! ```sh
//! cargo run --release -p cascade-app --example embed -- ../shared/data/ml-100k
//! ```

mod common;

use std::sync::Arc;

use anyhow::Result;

use cascade_app::ModelKind;
use cascade_app::serving::server::pipeline_settings;
use cascade_serve::metrics::Metrics;
use cascade_serve::recommender::Recommender;
use cascade_serve::request::RecommendRequest;

fn main() -> Result<()> {
    // The built-in config (MovieLens-100k), a workspace of our own.
    let (workspace, _scratch, models) = common::movielens_models(ModelKind::Lr)?;
    let metrics = Arc::new(Metrics::default());
    let recommender = Recommender::new(models, pipeline_settings(&workspace.config), metrics);
    let request: RecommendRequest = serde_json::from_str(r#"{"user_id": "1", "n": 10}"#)?;
    let response = recommender.recommend(&request)?;
    println!("user 1, model {}:", response.model_version);
    for item in response.items {
        println!("{:>3}. item {:<5} from {}", item.rank, item.item_id, item.sources.join(", "));
    }
    Ok(())
}
