//! Events: one user–item interaction of one type at one moment.

use serde::{Deserialize, Serialize};

/// The event type of an exposure: the server showed the item to the user.
/// Impressions are not consumption, so they enter no history.
pub const IMPRESSION: &str = "impression";

/// An interaction as it arrives, before the log assigns it a sequence number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// External user id.
    pub user: String,
    /// External item id.
    pub item: String,
    /// Event type, e.g. `rating`, `click`, `impression`, `purchase`.
    pub event_type: String,
    /// Optional numeric payload (a rating, a dwell time, a price).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// Event time in milliseconds since the Unix epoch.
    pub ts_ms: i64,
}

/// An event that the log has made durable, with its position in the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// Position in the append-only log: dense, starting at 0, never reused.
    pub seq: u64,
    /// The event itself.
    #[serde(flatten)]
    pub event: Event,
}
