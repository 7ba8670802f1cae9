//! The real-time features over HTTP: what a user did lately and which
//! categories they lean to, how an item is doing in each window, and what
//! is trending. Read from whichever [`FeatureRead`] the server holds: its
//! own stream processor's, or a shared online store kept by stream workers.

use serde::{Deserialize, Serialize};

use cascade_store::online::{FeatureRead, OnlineStoreError};

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

/// A user's features now (as of the store's watermark).
pub fn user_features(
    store: &dyn FeatureRead,
    user_id: &str,
) -> Result<UserFeatures, OnlineStoreError> {
    let now = store.now_ms()?;
    let affinities = store.category_affinities(user_id, now)?;
    Ok(UserFeatures {
        user_id: user_id.to_owned(),
        history: store.history(user_id)?,
        category_affinities: affinities
            .into_iter()
            .take(TOP_CATEGORIES)
            .map(|(category, score)| CategoryAffinity { category, score })
            .collect(),
    })
}

/// An item's window counts now.
pub fn item_stats(store: &dyn FeatureRead, item_id: &str) -> Result<ItemStats, OnlineStoreError> {
    let windows = store.item_stats(item_id, store.now_ms()?)?;
    Ok(ItemStats {
        item_id: item_id.to_owned(),
        windows: windows
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

/// The `n` items with the most interactions in the shortest window now.
pub fn trending(store: &dyn FeatureRead, n: usize) -> Result<Trending, OnlineStoreError> {
    let shortest_window_ms = store.settings().windows.first().map_or(0, |w| w.0);
    Ok(Trending {
        window_s: shortest_window_ms / 1000,
        items: store
            .trending(store.now_ms()?, n)?
            .into_iter()
            .map(|(item_id, interactions)| TrendingItem { item_id, interactions })
            .collect(),
    })
}
