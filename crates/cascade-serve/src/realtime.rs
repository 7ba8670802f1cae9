//! The stream processor's features over HTTP: what a user did lately and
//! which categories they lean to, how an item is doing in each window, and
//! what is trending. Read-only views of `cascade_stream::FeatureState`.

use serde::{Deserialize, Serialize};

use cascade_stream::LiveStream;

/// Categories listed per user.
pub const TOP_CATEGORIES: usize = 10;

/// `GET /v1/users/{id}/features`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct UserFeatures {
    /// The user.
    pub user_id: String,
    /// Latest interactions (not impressions), oldest first.
    pub history: Vec<String>,
    /// Categories by interactions decayed with a half-life, strongest first.
    pub category_affinities: Vec<CategoryAffinity>,
}

/// A user's decayed interest in one category.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CategoryAffinity {
    /// Category name.
    pub category: String,
    /// Interactions in it, each weighted 2^(−age / half-life).
    pub score: f64,
}

/// `GET /v1/items/{id}/stats`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ItemStats {
    /// The item.
    pub item_id: String,
    /// One entry per sliding window, shortest first.
    pub windows: Vec<WindowCounts>,
}

/// An item's counts over one window of event time.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WindowCounts {
    /// The window's length in seconds.
    pub window_s: i64,
    /// Times shown.
    pub impressions: u64,
    /// Clicks, ratings, purchases… in the window.
    pub interactions: u64,
    /// Interactions per impression, shrunk towards the global rate.
    pub smoothed_ctr: f64,
}

/// `GET /v1/trending`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Trending {
    /// The window counted, in seconds.
    pub window_s: i64,
    /// Most interactions first.
    pub items: Vec<TrendingItem>,
}

/// One trending item.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TrendingItem {
    /// The item.
    pub item_id: String,
    /// Interactions in the window.
    pub interactions: u64,
}

/// A user's features as the stream processor has them now.
pub fn user_features(live: &LiveStream, user_id: &str) -> UserFeatures {
    live.read(|state| UserFeatures {
        user_id: user_id.to_owned(),
        history: state.history(user_id),
        category_affinities: state
            .category_affinities(user_id)
            .into_iter()
            .take(TOP_CATEGORIES)
            .map(|(category, score)| CategoryAffinity { category, score })
            .collect(),
    })
}

/// An item's window counts as the stream processor has them now.
pub fn item_stats(live: &LiveStream, item_id: &str) -> ItemStats {
    live.read(|state| ItemStats {
        item_id: item_id.to_owned(),
        windows: state
            .item_stats(item_id)
            .into_iter()
            .map(|w| WindowCounts {
                window_s: w.window_ms / 1000,
                impressions: w.tally.impressions,
                interactions: w.tally.interactions,
                smoothed_ctr: w.smoothed_ctr,
            })
            .collect(),
    })
}

/// The `n` items with the most interactions in the shortest window.
pub fn trending(live: &LiveStream, n: usize) -> Trending {
    live.read(|state| Trending {
        window_s: state.settings().windows.first().map_or(0, |w| w.0 / 1000),
        items: state
            .trending(n)
            .into_iter()
            .map(|(item_id, interactions)| TrendingItem { item_id, interactions })
            .collect(),
    })
}
