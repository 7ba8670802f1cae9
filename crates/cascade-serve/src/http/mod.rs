//! The HTTP API (axum): JSON in and out, errors as `{"error": "..."}` with a
//! 4xx status for anything the client sent wrong, and per-route latency in
//! `/metrics`. Model work runs on tokio's blocking pool so a slow ranking
//! never stalls the reactor.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post, put};
use serde::{Deserialize, Serialize};
use serde_json::json;

use cascade_core::timestamp::now_ms;
use cascade_store::EntityKind;
use cascade_store::online::{FeatureRead, OnlineStoreError};

// One file per resource; the handlers share this module's imports and
// helpers (`error`, `blocking`, `AppState`) through `use super::*`, and the
// route table below names them all.
mod admin;
mod experiments;
mod features;
mod ingest;
mod recommend;
mod records;

use admin::*;
use experiments::*;
use features::*;
use ingest::*;
use recommend::*;
use records::*;

use crate::access::{self, Access, AccessKeys};
use crate::entities::Entities;
use crate::events::{EventBatch, EventLog, EventsAnswer};
use crate::metrics::Metrics;
use crate::realtime;
use crate::recommender::{Models, RecommendRequest, Recommender, ServeError};

/// Builds a fresh set of models (for `POST /admin/models/reload`).
pub type ModelLoader = dyn Fn() -> anyhow::Result<Models> + Send + Sync;

/// What every handler shares.
pub struct AppState {
    /// The pipeline.
    pub recommender: Arc<Recommender>,
    /// Shared with the recommender's stage timings.
    pub metrics: Arc<Metrics>,
    /// How to rebuild the models; `None` disables reloads.
    pub loader: Option<Arc<ModelLoader>>,
    /// Where `POST /v1/events` appends; `None` answers 503.
    pub events: Option<Arc<EventLog>>,
    /// User and item records; `None` answers 503.
    pub entities: Option<Arc<Entities>>,
    /// The keys each access class needs (`[serve]`).
    pub access: Arc<AccessKeys>,
    /// The experiments and their results; `None` answers 503.
    pub experiments: Option<Arc<crate::experiments::ExperimentAnalysis>>,
}

/// One route of the API: what it matches, who may call it, and what
/// answers it.
pub struct Route {
    /// The HTTP method.
    pub method: Method,
    /// The path as axum matches it (`{id}` for a path parameter).
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    handler: MethodRouter<Arc<AppState>>,
}

fn route(
    method: Method,
    path: &'static str,
    access: Access,
    handler: MethodRouter<Arc<AppState>>,
) -> Route {
    Route { method, path, access, handler }
}

/// Every route of the API with its access class. The router is built from
/// this table alone, so a route cannot be served without a class, and a
/// test walks it to prove each one's protection.
pub fn routes() -> Vec<Route> {
    use Access::{Admin, Catalog, Ingest, Open, Public};
    vec![
        route(Method::POST, "/v1/recommend", Public, post(recommend)),
        route(Method::GET, "/v1/users/{id}/recommend", Public, get(recommend_for_user)),
        route(Method::GET, "/v1/items/{id}/similar", Public, get(similar)),
        route(Method::GET, "/v1/trending", Public, get(trending)),
        route(Method::GET, "/v1/items/{id}/stats", Public, get(item_stats)),
        route(Method::GET, "/v1/items/{id}", Public, get(get_item)),
        route(Method::POST, "/v1/events", Ingest, post(ingest_events)),
        route(Method::PUT, "/v1/items/{id}", Catalog, put(put_item)),
        route(Method::DELETE, "/v1/items/{id}", Catalog, delete(hide_item)),
        route(Method::GET, "/v1/users/{id}", Catalog, get(get_user)),
        route(Method::PUT, "/v1/users/{id}", Catalog, put(put_user)),
        route(Method::DELETE, "/v1/users/{id}", Catalog, delete(delete_user)),
        route(Method::GET, "/v1/users/{id}/features", Catalog, get(user_features)),
        route(Method::POST, "/v1/experiments", Admin, post(create_experiment)),
        route(Method::GET, "/v1/experiments", Admin, get(list_experiments)),
        route(Method::GET, "/v1/experiments/{id}", Admin, get(get_experiment)),
        route(Method::POST, "/v1/experiments/{id}/stop", Admin, post(stop_experiment)),
        route(Method::GET, "/v1/experiments/{id}/results", Admin, get(experiment_results)),
        route(Method::POST, "/admin/models/reload", Admin, post(reload)),
        route(Method::GET, "/metrics", Admin, get(metrics)),
        route(Method::GET, "/health", Open, get(|| async { "ok" })),
        route(Method::GET, "/ready", Open, get(|| async { "ready" })),
        route(
            Method::GET,
            "/openapi.json",
            Open,
            get(|| async { axum::Json(crate::openapi::document()) }),
        ),
    ]
}

/// The API's routes, each behind the check of its access class.
pub fn router(state: Arc<AppState>) -> Router {
    let mut router = Router::new();
    for route in routes() {
        let guard = (state.access.clone(), route.access);
        let handler = route.handler.layer(middleware::from_fn_with_state(guard, access::require));
        router = router.route(route.path, handler);
    }
    router.layer(middleware::from_fn_with_state(state.clone(), record_latency)).with_state(state)
}

/// Serves `router(state)` on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, state: Arc<AppState>) -> std::io::Result<()> {
    axum::serve(listener, router(state)).await
}

async fn record_latency(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    state.metrics.request(&route, response.status().as_u16(), started.elapsed());
    response
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": message.into() }))).into_response()
}

fn retry_later(status: StatusCode, message: String, retry_after_s: u64) -> Response {
    let mut response = error(status, message);
    response.headers_mut().insert(header::RETRY_AFTER, retry_after_s.into());
    response
}

impl IntoResponse for ServeError {
    fn into_response(self) -> Response {
        let status = match self {
            ServeError::Invalid(_) => StatusCode::BAD_REQUEST,
            ServeError::NotFound(_) => StatusCode::NOT_FOUND,
            ServeError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ServeError::Overloaded { retry_after_s, .. } => {
                return retry_later(
                    StatusCode::SERVICE_UNAVAILABLE,
                    self.to_string(),
                    retry_after_s,
                );
            }
            ServeError::StreamBehind { retry_after_s, .. } => {
                return retry_later(StatusCode::TOO_MANY_REQUESTS, self.to_string(), retry_after_s);
            }
        };
        error(status, self.to_string())
    }
}

/// Runs model work off the reactor.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ServeError> + Send + 'static,
) -> Result<T, Response> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(IntoResponse::into_response),
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, format!("request failed: {e}"))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Count {
    n: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every route of the table, called over real HTTP on a real server
    /// with keys configured: no key and an unknown key are 401s, another
    /// class's key a 403, its own class's key and an admin token pass.
    /// A route added to the table is walked here without further ado.
    #[test]
    fn every_route_is_protected_by_its_access_class() {
        let keys = AccessKeys::from_config(&cascade_core::config::ServeConfig {
            admin_token: vec!["admin-key".into()],
            ingest_key: vec!["ingest-key".into()],
            catalog_key: vec!["catalog-key".into()],
            public_key: vec!["public-key".into()],
            ..Default::default()
        });
        let recommender = crate::test_fixture::small_recommender(
            Default::default(),
            crate::recall::AnnBackend::Usearch,
        );
        let (_runtime, base) = start(recommender, keys);
        let agent = agent();
        let call = |route: &Route, key: Option<&str>| -> (u16, String) {
            let url = format!("{base}{}", route.path.replace("{id}", "1"));
            let request = axum::http::Request::builder().method(route.method.clone()).uri(url);
            let request = match key {
                Some(key) => request.header("authorization", format!("Bearer {key}")),
                None => request,
            };
            let mut response = agent.run(request.body("{}".to_owned()).unwrap()).unwrap();
            (response.status().as_u16(), response.body_mut().read_to_string().unwrap_or_default())
        };
        let key_of = |access: Access| match access {
            Access::Public => "public-key",
            Access::Ingest => "ingest-key",
            Access::Catalog => "catalog-key",
            Access::Admin => "admin-key",
            Access::Open => "",
        };
        let table = routes();
        assert!(table.len() >= 18, "{} routes", table.len());
        for route in &table {
            let name = format!("{} {}", route.method, route.path);
            if route.access == Access::Open {
                assert!(
                    ["/health", "/ready", "/openapi.json"].contains(&route.path),
                    "{name} is open to everyone; give it a class"
                );
                assert_ne!(call(route, None).0, 401, "{name}");
                continue;
            }
            let (status, body) = call(route, None);
            assert_eq!(status, 401, "{name} without a key: {body}");
            assert!(body.contains("\"error\""), "{name}: a JSON error: {body}");
            assert_eq!(call(route, Some("no-such-key")).0, 401, "{name} with an unknown key");
            let other =
                if route.access == Access::Public { Access::Ingest } else { Access::Public };
            let (status, body) = call(route, Some(key_of(other)));
            assert_eq!(status, 403, "{name} with a {} key: {body}", other.name());
            for key in [key_of(route.access), "admin-key"] {
                let (status, body) = call(route, Some(key));
                assert!(![401, 403].contains(&status), "{name} with {key}: {status} {body}");
            }
        }
        let class = |path: &str, method: Method| {
            table.iter().find(|r| r.path == path && r.method == method).map(|r| r.access)
        };
        assert_eq!(class("/admin/models/reload", Method::POST), Some(Access::Admin));
        assert_eq!(class("/v1/items/{id}", Method::DELETE), Some(Access::Catalog));
        assert_eq!(class("/v1/events", Method::POST), Some(Access::Ingest));
        assert_eq!(class("/v1/experiments", Method::POST), Some(Access::Admin));
        assert_eq!(class("/v1/experiments/{id}/results", Method::GET), Some(Access::Admin));
    }

    /// A real server over `recommender` alone (no event log, no records)
    /// on a free loopback port, on its own runtime.
    fn start(recommender: Recommender, access: AccessKeys) -> (tokio::runtime::Runtime, String) {
        let state = Arc::new(AppState {
            recommender: Arc::new(recommender),
            metrics: Arc::new(Metrics::default()),
            loader: None,
            events: None,
            entities: None,
            access: Arc::new(access),
            experiments: None,
        });
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        runtime.spawn(serve(listener, state));
        (runtime, base)
    }

    /// A client that opens a connection per request: the server may close
    /// one after refusing a request whose body it did not read, and a
    /// pooled connection would then fail the next request with an EOF.
    fn agent() -> ureq::Agent {
        let config = ureq::Agent::config_builder().http_status_as_error(false);
        config.max_idle_connections_per_host(0).build().into()
    }

    /// A ranker with a bug: it panics scoring user `panics_on` and fails
    /// (as a model whose kernel errors would) scoring user `fails_on`.
    struct FaultyRanker {
        panics_on: Option<u32>,
        fails_on: Option<u32>,
    }

    impl crate::rank::Ranker for FaultyRanker {
        fn name(&self) -> &str {
            "faulty"
        }
        fn check_context(&self, _: &crate::rank::RequestMoment<'_>) -> Result<(), String> {
            Ok(())
        }
        fn score(
            &self,
            user: Option<u32>,
            _: &[u32],
            items: &[u32],
            _: &crate::rank::RequestMoment<'_>,
        ) -> Result<Option<Vec<f32>>, String> {
            assert!(user.is_none() || user != self.panics_on, "a bug in the ranker");
            if user.is_some() && user == self.fails_on {
                return Err("shape mismatch".into());
            }
            Ok(Some(items.iter().map(|&i| i as f32).collect()))
        }
    }

    #[test]
    fn a_failing_ranker_is_counted_and_the_request_served_in_recall_order() {
        let mut models = crate::test_fixture::small_models(crate::recall::AnnBackend::Usearch);
        models.set_ranker(Some(Box::new(FaultyRanker { panics_on: None, fails_on: Some(0) })));
        let metrics = Arc::new(Metrics::default());
        let recommender = Recommender::new(models, Default::default(), metrics.clone());
        let request: RecommendRequest =
            serde_json::from_str(r#"{"user_id": "a", "n": 3}"#).unwrap();
        let response = recommender.recommend(&request).unwrap();
        assert_eq!(response.items.len(), 3);
        assert_eq!(response.ranker, None, "not ranked");
        assert!(metrics.render().contains("cascade_ranker_errors_total 1"), "{}", metrics.render());
    }

    #[test]
    fn a_panic_inside_one_request_does_not_break_later_requests() {
        let mut models = crate::test_fixture::small_models(crate::recall::AnnBackend::Usearch);
        models.set_ranker(Some(Box::new(FaultyRanker { panics_on: Some(1), fails_on: None })));
        let recommender = Recommender::new(models, Default::default(), Default::default());
        let (_runtime, base) = start(recommender, AccessKeys::none());
        let agent = agent();
        let recommend = |user: &str| -> (u16, String) {
            let body = format!(r#"{{"user_id": "{user}", "n": 3}}"#);
            let mut response = agent.post(format!("{base}/v1/recommend")).send(body).unwrap();
            (response.status().as_u16(), response.body_mut().read_to_string().unwrap())
        };
        assert_eq!(recommend("a").0, 200);
        let (status, body) = recommend("b");
        assert_eq!(status, 500, "{body}");
        assert!(body.contains("\"error\""), "a JSON error: {body}");
        for user in ["a", "somebody-new", "a"] {
            let (status, body) = recommend(user);
            assert_eq!(status, 200, "after the panic, {user}: {body}");
        }
        let mut metrics = agent.get(format!("{base}/metrics")).call().unwrap();
        assert_eq!(metrics.status().as_u16(), 200);
        assert!(metrics.body_mut().read_to_string().unwrap().contains("cascade_"));
    }

    #[test]
    fn shed_load_is_a_503_that_says_when_to_retry() {
        let response =
            ServeError::Overloaded { message: "behind".into(), retry_after_s: 2 }.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        let lagging =
            ServeError::StreamBehind { message: "lag".into(), retry_after_s: 1 }.into_response();
        assert_eq!(lagging.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(lagging.headers()[header::RETRY_AFTER], "1");
        let plain = ServeError::Unavailable("down".into()).into_response();
        assert!(plain.headers().get(header::RETRY_AFTER).is_none());
    }
}
