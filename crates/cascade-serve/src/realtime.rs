//! The stream processor's features over HTTP: what a user did lately and
//! which categories they lean to, how an item is doing in each window, and
//! what is trending. Read from this server's stream processor, or from a
//! shared online store kept by stream workers.

use serde::{Deserialize, Serialize};

use std::sync::Arc;

use cascade_store::online::{OnlineStore, OnlineStoreError};
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

/// Where the real-time features are read: the in-process stream processor
/// (embedded), or an online store that stream workers keep for several
/// servers (Redis).
#[derive(Clone)]
pub enum FeatureSource {
    /// This server's own stream processor.
    Stream(Arc<LiveStream>),
    /// A shared online store; reads are as of its watermark.
    Shared(Arc<dyn OnlineStore>),
}

impl FeatureSource {
    /// The user's latest interactions, oldest first.
    pub fn history(&self, user_id: &str) -> Result<Vec<String>, OnlineStoreError> {
        match self {
            FeatureSource::Stream(live) => Ok(live.read(|state| state.history(user_id))),
            FeatureSource::Shared(store) => store.history(user_id),
        }
    }

    /// The `k` items with the most interactions in the shortest window.
    pub fn trending(&self, k: usize) -> Result<Vec<(String, u64)>, OnlineStoreError> {
        match self {
            FeatureSource::Stream(live) => Ok(live.read(|state| state.trending(k))),
            FeatureSource::Shared(store) => store.trending(store.watermark_ms()?.unwrap_or(0), k),
        }
    }

    fn shortest_window_ms(&self) -> i64 {
        let windows = match self {
            FeatureSource::Stream(live) => live.read(|state| state.settings().windows.clone()),
            FeatureSource::Shared(store) => store.settings().windows.clone(),
        };
        windows.first().map_or(0, |w| w.0)
    }

    /// A user's features now.
    pub fn user_features(&self, user_id: &str) -> Result<UserFeatures, OnlineStoreError> {
        let (history, affinities) = match self {
            FeatureSource::Stream(live) => {
                live.read(|state| (state.history(user_id), state.category_affinities(user_id)))
            }
            FeatureSource::Shared(store) => {
                let now = store.watermark_ms()?.unwrap_or(0);
                (store.history(user_id)?, store.category_affinities(user_id, now)?)
            }
        };
        Ok(UserFeatures {
            user_id: user_id.to_owned(),
            history,
            category_affinities: affinities
                .into_iter()
                .take(TOP_CATEGORIES)
                .map(|(category, score)| CategoryAffinity { category, score })
                .collect(),
        })
    }

    /// An item's window counts now.
    pub fn item_stats(&self, item_id: &str) -> Result<ItemStats, OnlineStoreError> {
        let windows = match self {
            FeatureSource::Stream(live) => live.read(|state| state.item_stats(item_id)),
            FeatureSource::Shared(store) => {
                let now = store.watermark_ms()?.unwrap_or(0);
                store.item_stats(item_id, now)?
            }
        };
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

    /// The `n` items with the most interactions in the shortest window.
    pub fn trending_view(&self, n: usize) -> Result<Trending, OnlineStoreError> {
        Ok(Trending {
            window_s: self.shortest_window_ms() / 1000,
            items: self
                .trending(n)?
                .into_iter()
                .map(|(item_id, interactions)| TrendingItem { item_id, interactions })
                .collect(),
        })
    }
}
