//! The recommendation API's request and response types, and the errors a
//! request can meet with the HTTP status each maps to.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `POST /v1/recommend`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecommendRequest {
    /// The user's external id; unknown users get popular items.
    pub user_id: String,
    /// Request-time context: values of the features the config's
    /// `[context]` declares (e.g. `{"hour_of_day": 21}`); the server's clock
    /// supplies declared ones left out, and undeclared keys are ignored.
    #[serde(default)]
    pub context: BTreeMap<String, serde_json::Value>,
    /// How many items, 1..=1000 (default 10).
    #[schemars(range(min = 1, max = 1000))]
    pub n: Option<usize>,
    /// External item ids never to return.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Items to place at fixed 0-based positions, each below `n`, one item
    /// per position. A hidden item is never shown, pinned or not.
    #[serde(default)]
    pub pin: Vec<PinRule>,
    /// Category rules.
    #[serde(default)]
    pub filters: Filters,
}

impl RecommendRequest {
    /// The number of items asked for (default 10).
    pub fn count(&self) -> usize {
        self.n.unwrap_or(10)
    }

    /// Checks what no catalog is needed for: `n`, the length of every id
    /// and name (at most `max_id_bytes`), at most `max_list_ids` ids per
    /// list, and pins that fit the list without colliding. The error names
    /// the field.
    pub fn validate(&self, max_id_bytes: usize, max_list_ids: usize) -> Result<(), ServeError> {
        let bad = ServeError::Invalid;
        let n = self.count();
        check_n(n)?;
        cascade_core::ingest::check_text("user_id", &self.user_id, max_id_bytes).map_err(bad)?;
        let lists = [
            ("exclude", self.exclude.iter().collect::<Vec<_>>()),
            ("pin", self.pin.iter().map(|p| &p.item_id).collect()),
            ("filters.categories", self.filters.categories.iter().collect()),
            ("filters.exclude_categories", self.filters.exclude_categories.iter().collect()),
        ];
        for (field, ids) in lists {
            if ids.len() > max_list_ids {
                return Err(bad(format!(
                    "{field} has {} entries; at most {max_list_ids}",
                    ids.len()
                )));
            }
            for (k, id) in ids.into_iter().enumerate() {
                cascade_core::ingest::check_text(&format!("{field}[{k}]"), id, max_id_bytes)
                    .map_err(bad)?;
            }
        }
        let mut positions = std::collections::HashMap::new();
        let mut items = std::collections::HashSet::new();
        for (k, rule) in self.pin.iter().enumerate() {
            if rule.position >= n {
                return Err(bad(format!(
                    "pin[{k}]: position {} is outside a list of n = {n}",
                    rule.position
                )));
            }
            if let Some(other) = positions.insert(rule.position, k) {
                return Err(bad(format!(
                    "pin[{k}] and pin[{other}] both take position {}",
                    rule.position
                )));
            }
            if !items.insert(rule.item_id.as_str()) {
                return Err(bad(format!("pin[{k}]: {:?} is pinned twice", rule.item_id)));
            }
        }
        Ok(())
    }
}

/// The number of items a list may hold: 1..=1000.
pub fn check_n(n: usize) -> Result<(), ServeError> {
    if (1..=1000).contains(&n) {
        Ok(())
    } else {
        Err(ServeError::Invalid(format!("n must be in 1..=1000, got {n}")))
    }
}

/// Category rules of a request; names as the item data spells them.
#[derive(Debug, Clone, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Filters {
    /// Only items in at least one of these (empty: any).
    #[serde(default)]
    pub categories: Vec<String>,
    /// Never items in any of these.
    #[serde(default)]
    pub exclude_categories: Vec<String>,
}

/// Put `item_id` at `position`.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PinRule {
    /// External item id.
    pub item_id: String,
    /// 0-based position.
    pub position: usize,
}

/// One recommended item.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct ScoredItem {
    /// External item id.
    pub item_id: String,
    /// The ranker's score (or the recall score where nothing ranked it);
    /// absent for a pinned item no model scored.
    pub score: Option<f32>,
    /// 1-based position.
    pub rank: usize,
    /// Channels that proposed it (`rule/pin` for a pinned item).
    pub sources: Vec<String>,
    /// In an interleaved list, the variant whose ranking placed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// How likely this item was here, when an exploring step drew the
    /// list (`policy`); absent means certain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propensity: Option<cascade_core::event::Propensities>,
}

/// One experiment's variant a user is in.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct ExperimentVariant {
    /// The experiment's name.
    pub experiment: String,
    /// The variant's name.
    pub variant: String,
}

/// The answer to a recommendation request.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RecommendResponse {
    /// Unique, also across restarts.
    pub request_id: String,
    /// The experiments' variants the user is in, as one label:
    /// `experiment/variant` pairs joined by commas, `default` for none.
    pub variant: String,
    /// The same, one entry per experiment.
    #[serde(default)]
    pub experiments: Vec<ExperimentVariant>,
    /// How many items the user had consumed before this list (logged with
    /// the impressions).
    #[serde(default)]
    pub prior_consumption: usize,
    /// The exploring policy that drew the list, with its setting; absent
    /// when nothing explored (every propensity 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Under exploration, the candidates the policy drew from and their
    /// relevance: logged with the impressions, not sent to the client.
    #[serde(skip)]
    pub explored_candidates: Vec<(String, f64)>,
    /// Which models answered.
    pub model_version: String,
    /// The ranker's name, if one scored the candidates.
    pub ranker: Option<String>,
    /// Best first.
    pub items: Vec<ScoredItem>,
}

/// Why the serving library refused or could not do what it was asked. A
/// domain error: which HTTP status each variant becomes is the `http`
/// module's business alone.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The request itself is wrong (a field out of range, an unknown
    /// stage, conflicting pins); the message names what.
    #[error("{0}")]
    Invalid(String),
    /// What the request names does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The server cannot do it now (the event log or a stage failed, a
    /// listed stage is not registered).
    #[error("{0}")]
    Unavailable(String),
    /// Too much work is already waiting for a commit: the server sheds
    /// load rather than queue without limit; retry after that long.
    #[error("{message}")]
    Overloaded {
        /// What is behind, and by how much.
        message: String,
        /// Seconds the client should wait before retrying.
        retry_after_s: u64,
    },
    /// The stream processor is too far behind the log: accepting more now
    /// would let the backlog grow; retry after that long.
    #[error("{message}")]
    StreamBehind {
        /// What is behind, and by how much.
        message: String,
        /// Seconds the client should wait before retrying.
        retry_after_s: u64,
    },
}
