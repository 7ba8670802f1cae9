//! Feature values of user and item records.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One feature value, typed by the feature's declared type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FeatureValue {
    /// A number (numeric features).
    Number(f64),
    /// A single token or free text (id, categorical, text features).
    Text(String),
    /// A set of tokens (multi-categorical features).
    List(Vec<String>),
    /// A missing value: empty cell or absent key.
    Null,
}

impl FeatureValue {
    /// The value as it is shown to a person (lists joined by `|`).
    pub fn display(&self) -> String {
        match self {
            FeatureValue::Number(n) => n.to_string(),
            FeatureValue::Text(s) => s.clone(),
            FeatureValue::List(items) => items.join("|"),
            FeatureValue::Null => String::new(),
        }
    }
}

/// A user or item: its features by name. Ordered so that stored records are
/// byte-stable, which keeps re-imports idempotent at the byte level too.
pub type Record = BTreeMap<String, FeatureValue>;
