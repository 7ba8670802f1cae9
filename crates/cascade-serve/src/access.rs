//! Who may call which route: every route of the API declares an access
//! class ([`Access`]), and a request must carry a key of that class
//! (`Authorization: Bearer <key>`) once any key is configured
//! (`[serve]` in cascade.toml). An admin token opens every class.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use cascade_core::config::ServeConfig;

/// The access class of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// Liveness, readiness and the API document: never needs a key, so
    /// load balancers and clients can always find the server.
    Open,
    /// Reads anyone may be given: recommendations, similar items,
    /// trending, item stats.
    Public,
    /// Writing events.
    Ingest,
    /// User and item records, and what is kept per user.
    Catalog,
    /// Operating the server: model reloads, metrics.
    Admin,
}

impl Access {
    /// How config and documentation name it.
    pub fn name(self) -> &'static str {
        match self {
            Access::Open => "open",
            Access::Public => "public",
            Access::Ingest => "ingest",
            Access::Catalog => "catalog",
            Access::Admin => "admin",
        }
    }
}

/// The configured keys, by class.
#[derive(Clone, Default)]
pub struct AccessKeys {
    admin: Vec<String>,
    ingest: Vec<String>,
    catalog: Vec<String>,
    public: Vec<String>,
}

impl std::fmt::Debug for AccessKeys {
    // Never print a key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKeys").field("required", &self.required()).finish_non_exhaustive()
    }
}

/// Why a request may not use a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// No key, or one that is no key of this server: 401.
    Unauthenticated(String),
    /// A valid key of another class: 403.
    Forbidden(String),
}

impl AccessKeys {
    /// The keys of `[serve]`.
    pub fn from_config(config: &ServeConfig) -> AccessKeys {
        AccessKeys {
            admin: config.admin_token.clone(),
            ingest: config.ingest_key.clone(),
            catalog: config.catalog_key.clone(),
            public: config.public_key.clone(),
        }
    }

    /// No keys: every route answers everyone (loopback only).
    pub fn none() -> AccessKeys {
        AccessKeys::default()
    }

    /// Whether requests need keys at all.
    pub fn required(&self) -> bool {
        [&self.admin, &self.ingest, &self.catalog, &self.public].iter().any(|k| !k.is_empty())
    }

    fn of(&self, access: Access) -> &[String] {
        match access {
            Access::Open => &[],
            Access::Public => &self.public,
            Access::Ingest => &self.ingest,
            Access::Catalog => &self.catalog,
            Access::Admin => &self.admin,
        }
    }

    /// Whether `presented` (the bearer key, if any) may use a route of
    /// class `access`. Every configured key is compared, each in constant
    /// time, so the answer's timing does not tell which key nearly matched.
    pub fn check(&self, access: Access, presented: Option<&str>) -> Result<(), Denied> {
        if access == Access::Open || !self.required() {
            return Ok(());
        }
        let Some(presented) = presented else {
            return Err(Denied::Unauthenticated(format!(
                "this route needs a key of class `{}`: send `Authorization: Bearer <key>`",
                access.name()
            )));
        };
        let matches = |keys: &[String]| {
            keys.iter().fold(false, |found, key| found | constant_time_eq(key, presented))
        };
        if matches(self.of(access)) || matches(&self.admin) {
            return Ok(());
        }
        let classes = [Access::Public, Access::Ingest, Access::Catalog];
        if classes.iter().fold(false, |found, &class| found | matches(self.of(class))) {
            return Err(Denied::Forbidden(format!(
                "this key is not of class `{}`, which this route needs",
                access.name()
            )));
        }
        Err(Denied::Unauthenticated("unknown key".into()))
    }
}

/// Refuses to serve `addr` without keys unless it is a loopback address:
/// a server without keys lets anyone hide items and reload models.
pub fn check_bind(addr: std::net::SocketAddr, keys: &AccessKeys) -> Result<(), String> {
    if keys.required() || addr.ip().is_loopback() {
        return Ok(());
    }
    Err(format!(
        "refusing to serve {addr} without access keys: anyone who can reach it could write \
         events, records and models. Set them in the config's [serve] section (admin_token, \
         ingest_key, catalog_key, public_key) or the environment (CASCADE__SERVE__ADMIN_TOKEN=…, \
         CASCADE__SERVE__INGEST_KEY=…), or bind to 127.0.0.1"
    ))
}

/// Equality of two keys in time that depends only on their lengths.
fn constant_time_eq(expected: &str, presented: &str) -> bool {
    let (a, b) = (expected.as_bytes(), presented.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

/// The bearer key of a request, if it sent one.
fn bearer(request: &Request) -> Option<&str> {
    let value = request.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(str::trim)
}

/// Middleware of one route: answers 401 or 403 (JSON) unless the request
/// may use a route of class `access`.
pub async fn require(
    State((keys, access)): State<(Arc<AccessKeys>, Access)>,
    request: Request,
    next: Next,
) -> Response {
    match keys.check(access, bearer(&request)) {
        Ok(()) => next.run(request).await,
        Err(Denied::Unauthenticated(message)) => {
            let mut response =
                (StatusCode::UNAUTHORIZED, axum::Json(json!({ "error": message }))).into_response();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
        Err(Denied::Forbidden(message)) => {
            (StatusCode::FORBIDDEN, axum::Json(json!({ "error": message }))).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> AccessKeys {
        AccessKeys::from_config(&ServeConfig {
            admin_token: vec!["admin-1".into()],
            ingest_key: vec!["ingest-old".into(), "ingest-new".into()],
            catalog_key: vec![],
            public_key: vec!["public-1".into()],
            ..ServeConfig::default()
        })
    }

    #[test]
    fn each_class_takes_its_own_keys_and_admin_tokens_open_every_class() {
        let keys = keys();
        assert_eq!(keys.check(Access::Ingest, Some("ingest-old")), Ok(()));
        assert_eq!(keys.check(Access::Ingest, Some("ingest-new")), Ok(()), "rotation");
        assert_eq!(keys.check(Access::Ingest, Some("admin-1")), Ok(()));
        assert_eq!(keys.check(Access::Open, None), Ok(()));
        assert!(matches!(keys.check(Access::Ingest, None), Err(Denied::Unauthenticated(_))));
        assert!(matches!(
            keys.check(Access::Ingest, Some("ingest")),
            Err(Denied::Unauthenticated(_))
        ));
        assert!(matches!(keys.check(Access::Admin, Some("public-1")), Err(Denied::Forbidden(_))));
        // A class without keys is open to admin tokens only.
        assert!(matches!(
            keys.check(Access::Catalog, Some("ingest-new")),
            Err(Denied::Forbidden(_))
        ));
        assert_eq!(keys.check(Access::Catalog, Some("admin-1")), Ok(()));
        assert_eq!(AccessKeys::none().check(Access::Admin, None), Ok(()), "no keys, no checks");
        assert!(!format!("{keys:?}").contains("admin-1"), "keys never reach a log");
    }

    #[test]
    fn only_loopback_addresses_are_served_without_keys() {
        let none = AccessKeys::none();
        assert!(check_bind("127.0.0.1:8080".parse().unwrap(), &none).is_ok());
        assert!(check_bind("[::1]:8080".parse().unwrap(), &none).is_ok());
        let refused = check_bind("0.0.0.0:8080".parse().unwrap(), &none).unwrap_err();
        assert!(refused.contains("CASCADE__SERVE__ADMIN_TOKEN"), "{refused}");
        assert!(check_bind("0.0.0.0:8080".parse().unwrap(), &keys()).is_ok());
    }

    #[test]
    fn keys_compare_equal_only_when_every_byte_is() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "ab"));
    }
}
