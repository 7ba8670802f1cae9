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
    /// For an impression the server logged: the list it belonged to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served: Option<Box<Served>>,
}

/// What an impression was part of: the request, the models, and the
/// experiments' variants that produced the list (the value of an
/// impression is the item's 1-based position in it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Served {
    /// The response's request id.
    pub request_id: String,
    /// The models' version that answered.
    pub model_version: String,
    /// `(experiment, variant)` for each experiment the user is in; empty
    /// for the holdout and users in none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variants: Vec<(String, String)>,
    /// How many items the user had consumed when the list was served (kept
    /// for analysis; the experiments' CUPED covariate is the user's
    /// pre-period positives, which the ledger counts from the log).
    #[serde(default)]
    pub prior_consumption: u32,
    /// For an interleaved list, the variant whose ranking contributed this
    /// item (team-draft interleaving).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// The exploring policy that drew the list (its name and settings);
    /// absent when the list was served without exploration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// How likely this item was here under `policy`; absent means certain
    /// (1 everywhere: no exploration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propensity: Option<Propensities>,
    /// On an explored list's first impression only: the candidates the
    /// policy drew from, with the relevance it drew by, so that another
    /// policy's propensities for the same list can be computed offline.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<(String, f64)>,
}

impl Served {
    /// The impression's propensities: exactly 1 when nothing explored.
    pub fn propensities(&self) -> Propensities {
        self.propensity.unwrap_or(Propensities::CERTAIN)
    }
}

/// The probabilities a served slot had of being what it is, under the
/// policy that drew the list (`cascade-policy` computes them).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Propensities {
    /// The whole served list's probability (the same on every slot).
    pub slate: f64,
    /// The probability of this item at this position, over all lists.
    pub item_position: f64,
    /// The probability of the list's prefix up to and including this slot.
    pub cascade: f64,
}

impl Propensities {
    /// A slot served without exploration: it was certain.
    pub const CERTAIN: Propensities = Propensities { slate: 1.0, item_position: 1.0, cascade: 1.0 };
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
