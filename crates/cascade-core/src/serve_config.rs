//! `[serve]`: how the HTTP server is reached, and with which keys.

use serde::{Deserialize, Deserializer};

/// `[serve]`. Every route of the API has an access class; a request to a
/// route needs a key of its class (or an admin token) once any key is
/// configured. With none configured the server answers everyone, and so
/// `cascade serve` binds only to a loopback address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeConfig {
    /// Tokens for admin routes (model reload, metrics); an admin token is
    /// also accepted on every other route. One, or a list so they can be rotated.
    #[serde(deserialize_with = "one_or_many")]
    pub admin_token: Vec<String>,
    /// Keys for `POST /v1/events`.
    #[serde(deserialize_with = "one_or_many")]
    pub ingest_key: Vec<String>,
    /// Keys for user and item records (PUT, DELETE, and reading users).
    #[serde(deserialize_with = "one_or_many")]
    pub catalog_key: Vec<String>,
    /// Keys for public reads (recommendations, similar items, trending).
    #[serde(deserialize_with = "one_or_many")]
    pub public_key: Vec<String>,
}

impl ServeConfig {
    /// Whether any key is configured: then every route but health,
    /// readiness and the OpenAPI document needs one.
    pub fn requires_keys(&self) -> bool {
        [&self.admin_token, &self.ingest_key, &self.catalog_key, &self.public_key]
            .iter()
            .any(|keys| !keys.is_empty())
    }
}

/// A list of keys, or one string of comma-separated keys (the form an
/// environment variable such as `CASCADE__SERVE__ADMIN_TOKEN` takes).
fn one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let keys = match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(text) => text.split(',').map(str::to_owned).collect(),
        OneOrMany::Many(keys) => keys,
    };
    let keys: Vec<String> = keys.into_iter().map(|k| k.trim().to_owned()).collect();
    if keys.iter().any(String::is_empty) {
        return Err(serde::de::Error::custom("a key is empty"));
    }
    Ok(keys)
}
