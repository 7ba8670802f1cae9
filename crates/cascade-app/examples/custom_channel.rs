//! A recall channel of your own: any type implementing
//! `cascade_serve::recall::CandidateSource` proposes candidates, and runs
//! where `[recommend] channels` lists its name, with that name's quota and
//! its parameters from `[recommend.channel_params.<name>]`. This one
//! proposes an editor's picks; the ranker and every re-ranking step then
//! treat them like any other candidate.
//!
//! ```sh
//! cargo run --release -p cascade-app --example custom_channel -- ../shared/data/ml-100k
//! ```

mod common;

use std::sync::Arc;

use anyhow::{Result, anyhow};

use cascade_app::ModelKind;
use cascade_app::serving::server::pipeline_settings;
use cascade_serve::metrics::Metrics;
use cascade_serve::recall::{CandidateSource, RecallContext};
use cascade_serve::recommender::Recommender;
use cascade_serve::request::RecommendRequest;

/// Items an editor chose, best first, by dense index.
struct EditorsPicks {
    items: Vec<u32>,
}

impl CandidateSource for EditorsPicks {
    fn name(&self) -> &'static str {
        "recall/editors_picks"
    }

    fn recall(&self, context: &RecallContext<'_>, n: usize) -> Vec<(u32, f32)> {
        let unseen = self.items.iter().filter(|item| !context.history.contains(item));
        unseen.take(n).enumerate().map(|(k, &item)| (item, 1.0 / (1.0 + k as f32))).collect()
    }
}

fn main() -> Result<()> {
    let (mut workspace, _scratch, models) = common::movielens_models(ModelKind::Lr)?;
    // The channel runs first, with a quota of two candidates, and its picks
    // come from its config table, as a deployment's cascade.toml says:
    //   [recommend.channel_params.editors_picks]
    //   items = ["483", "479", "603", "183"]  # Casablanca, Vertigo, Rear Window, Alien
    let recommend = &mut workspace.config.recommend;
    recommend.channels.insert(0, "editors_picks".into());
    recommend.quotas.insert("editors_picks".into(), 2);
    let params: toml::Table = toml::from_str(r#"items = ["483", "479", "603", "183"]"#)?;
    recommend.channel_params.insert("editors_picks".into(), params);
    let picked = recommend.channel_params["editors_picks"].get("items").and_then(|v| v.as_array());
    let items = picked
        .ok_or_else(|| anyhow!("recommend.channel_params.editors_picks.items: expected a list"))?
        .iter()
        .filter_map(|id| models.catalog.item_index(id.as_str()?))
        .collect();
    let metrics = Arc::new(Metrics::default());
    let recommender = Recommender::new(models, pipeline_settings(&workspace.config), metrics)
        .with_channel(Box::new(EditorsPicks { items }))
        .map_err(|e| anyhow!(e))?;
    recommender.check_pipeline().map_err(|e| anyhow!(e))?;
    let request: RecommendRequest = serde_json::from_str(r#"{"user_id": "1", "n": 10}"#)?;
    println!("user 1, with the editor's picks among the candidates:");
    for item in recommender.recommend(&request)?.items {
        println!("{:>3}. item {:<5} from {}", item.rank, item.item_id, item.sources.join(", "));
    }
    Ok(())
}
