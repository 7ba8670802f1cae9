//! `GET /openapi.json`: the API described in OpenAPI 3.0, with request and
//! response schemas generated from the Rust types the handlers use
//! (`schemars`), so the document cannot drift from what the server parses.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};

use crate::events::{EventBatch, EventsAnswer};
use crate::realtime::{ItemStats, Trending, UserFeatures};
use crate::recommender::{RecommendRequest, RecommendResponse, ScoredItem};

/// The error body of every 4xx/5xx answer.
#[derive(Debug, serde::Serialize, JsonSchema)]
#[allow(dead_code)] // Exists for its schema; handlers build the same shape.
struct ErrorBody {
    /// What was wrong, naming the field or id.
    error: String,
}

/// `GET /v1/items/{id}/similar`.
#[derive(Debug, serde::Serialize, JsonSchema)]
#[allow(dead_code)]
struct SimilarItems {
    /// Most similar first.
    items: Vec<ScoredItem>,
}

fn json_content(schema: Value) -> Value {
    json!({ "application/json": { "schema": schema } })
}

/// One operation: a summary, an optional JSON body, the success status and
/// its schema (or none), and the error statuses it can answer.
fn operation(
    summary: &str,
    body: Option<Value>,
    success: (&str, Option<Value>),
    errors: &[&str],
    error: &Value,
) -> Value {
    let mut responses = Map::new();
    let mut ok = json!({ "description": "success" });
    if let Some(schema) = success.1 {
        ok["content"] = json_content(schema);
    }
    responses.insert(success.0.to_owned(), ok);
    for status in errors {
        let described = json!({ "description": "error", "content": json_content(error.clone()) });
        responses.insert((*status).to_owned(), described);
    }
    let mut operation = json!({ "summary": summary, "responses": responses });
    if let Some(schema) = body {
        operation["requestBody"] = json!({ "required": true, "content": json_content(schema) });
    }
    operation
}

/// A PUT answers 201 when it creates and 204 when it replaces.
fn with_replaced(mut operation: Value) -> Value {
    operation["responses"]["204"] = json!({ "description": "replaced" });
    operation
}

fn id_parameter(what: &str) -> Value {
    json!([{ "name": "id", "in": "path", "required": true, "description": what, "schema": { "type": "string" } }])
}

/// The whole document.
pub fn document() -> Value {
    let mut generator: SchemaGenerator = SchemaSettings::openapi3().into_generator();
    let mut schema = |f: fn(&mut SchemaGenerator) -> schemars::Schema| f(&mut generator).to_value();
    let recommend_request = schema(|g| g.subschema_for::<RecommendRequest>());
    let recommend_response = schema(|g| g.subschema_for::<RecommendResponse>());
    let events = schema(|g| g.subschema_for::<EventBatch>());
    let events_answer = schema(|g| g.subschema_for::<EventsAnswer>());
    let similar = schema(|g| g.subschema_for::<SimilarItems>());
    let error = schema(|g| g.subschema_for::<ErrorBody>());
    let user_features = schema(|g| g.subschema_for::<UserFeatures>());
    let item_stats = schema(|g| g.subschema_for::<ItemStats>());
    let trending = schema(|g| g.subschema_for::<Trending>());
    let experiment_config = schema(|g| g.subschema_for::<cascade_core::config::ExperimentConfig>());
    let experiment = schema(|g| g.subschema_for::<crate::experiments::ExperimentRecord>());
    let record = json!({ "type": "object", "description": "feature name → value, as the config declares the features", "additionalProperties": true });
    let n = json!([{ "name": "n", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1, "maximum": 1000 } }]);
    let text = json!({ "type": "string" });

    let mut user_recommend = json!({ "get": operation("Recommendations for a user (default n = 10)", None, ("200", Some(recommend_response.clone())), &["400"], &error) });
    user_recommend["parameters"] = json!([id_parameter("user id")[0].clone(), n[0].clone()]);
    let mut similar_path = json!({ "get": operation("Items most similar by retrieval embeddings", None, ("200", Some(similar)), &["400", "404"], &error) });
    similar_path["parameters"] = json!([id_parameter("item id")[0].clone(), n[0].clone()]);
    let mut users = json!({
        "get": operation("A user's record", None, ("200", Some(json!({ "type": "object", "properties": { "user_id": text, "record": record } }))), &["404", "503"], &error),
        "put": with_replaced(operation("Create (201) or replace (204) a user's record", Some(record.clone()), ("201", None), &["400", "503"], &error)),
        "delete": operation("Delete a user's record", None, ("204", None), &["404", "503"], &error),
    });
    users["parameters"] = id_parameter("user id");
    let mut items = json!({
        "get": operation("Whether an item is hidden, and its record", None, ("200", Some(json!({ "type": "object", "properties": { "item_id": text, "hidden": { "type": "boolean" }, "record": record } }))), &["404"], &error),
        "put": with_replaced(operation("Create (201) or replace (204) an item's record; a new item is recommendable (ANN included) when the answer comes", Some(record.clone()), ("201", None), &["400", "503"], &error)),
        "delete": operation("Hide an item: never recommended again, at once and across restarts", None, ("204", None), &["404", "503"], &error),
    });
    items["parameters"] = id_parameter("item id");
    let mut features_path = json!({ "get": operation("The stream processor's features of a user: latest interactions, category affinities", None, ("200", Some(user_features)), &["503"], &error) });
    features_path["parameters"] = id_parameter("user id");
    let mut stats_path = json!({ "get": operation("An item's impressions, interactions and smoothed CTR per sliding window", None, ("200", Some(item_stats)), &["503"], &error) });
    stats_path["parameters"] = id_parameter("item id");
    let mut trending_path = json!({ "get": operation("Items with the most interactions in the shortest window (default n = 10)", None, ("200", Some(trending)), &["400", "503"], &error) });
    trending_path["parameters"] = n.clone();
    let metrics = json!({ "get": { "summary": "Prometheus metrics", "responses": { "200": { "description": "text exposition format", "content": { "text/plain": { "schema": text } } } } } });
    let experiment_list = json!({ "type": "object", "properties": { "experiments": { "type": "array", "items": experiment.clone() } } });
    let results = json!({ "type": "object", "description": "the experiment; through_seq (log events counted); decision_test (which test the verdict rests on); alpha; sample_ratio (users per variant, χ² and always-valid SRM p-values, mismatch: no verdict while true); variants (per-variant sufficient statistics); comparisons (per treatment and metric: control and treatment estimates, absolute and relative Welch lifts with intervals and p-values, the always-valid sequential lifts, CUPED with its variance reduction, the Holm-adjusted decision p-value and whether it is significant); not_computed; guardrails (per variant: requests, errors, error_rate, p99_ms)", "additionalProperties": true });
    let mut experiment_path = json!({ "get": operation("An experiment: its variants, traffic and status", None, ("200", Some(experiment.clone())), &["404", "503"], &error) });
    experiment_path["parameters"] = id_parameter("experiment name");
    let mut stop_path = json!({ "post": operation("Stop an experiment: its users get the default pipeline from the next request; results stay", None, ("200", Some(experiment.clone())), &["404", "503"], &error) });
    stop_path["parameters"] = id_parameter("experiment name");
    let mut results_path = json!({ "get": operation("An experiment's results, every logged event counted", None, ("200", Some(results)), &["404", "503"], &error) });
    results_path["parameters"] = id_parameter("experiment name");
    let plain = |summary: &str| json!({ "get": { "summary": summary, "responses": { "200": { "description": "success" } } } });

    let components = generator.take_definitions(true);
    let mut document = json!({
        "openapi": "3.0.3",
        "info": { "title": "Cascade serving API", "version": env!("CARGO_PKG_VERSION") },
        "paths": {
            "/v1/recommend": { "post": operation("Recommend items for a user in a context", Some(recommend_request), ("200", Some(recommend_response)), &["400", "404"], &error) },
            "/v1/users/{id}/recommend": user_recommend,
            "/v1/items/{id}/similar": similar_path,
            "/v1/events": { "post": operation("Log a batch of events durably; one status per event", Some(events), ("200", Some(events_answer)), &["400", "429", "503"], &error) },
            "/v1/users/{id}": users,
            "/v1/users/{id}/features": features_path,
            "/v1/items/{id}/stats": stats_path,
            "/v1/trending": trending_path,
            "/v1/items/{id}": items,
            "/v1/experiments": {
                "post": operation("Start an experiment; refused naming the field for an unknown variant key, weights that do not sum to 1, or traffic overlapping a running experiment on the same layer", Some(experiment_config), ("201", Some(experiment.clone())), &["400", "503"], &error),
                "get": operation("Every experiment, running or stopped", None, ("200", Some(experiment_list)), &["503"], &error),
            },
            "/v1/experiments/{id}": experiment_path,
            "/v1/experiments/{id}/stop": stop_path,
            "/v1/experiments/{id}/results": results_path,
            "/admin/models/reload": { "post": operation("Rebuild the models in the background and swap them in", None, ("200", None), &["404", "500"], &error) },
            "/health": plain("Alive"),
            "/ready": plain("Ready to answer"),
            "/metrics": metrics,
            "/openapi.json": plain("This document"),
        },
        "components": {
            "schemas": components,
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
        },
    });
    declare_access(&mut document, &error);
    document
}

/// Marks each operation with its route's access class (from the route
/// table, `http::routes`): a key requirement, and the 401 and 403 it
/// answers once keys are configured.
fn declare_access(document: &mut Value, error: &Value) {
    for route in crate::http::routes() {
        let method = route.method.as_str().to_lowercase();
        let Some(operation) = document["paths"][route.path].get_mut(&method) else { continue };
        operation["x-access-class"] = json!(route.access.name());
        if route.access == crate::access::Access::Open {
            continue;
        }
        operation["security"] = json!([{ "bearer": [] }]);
        let denied =
            |what: &str| json!({ "description": what, "content": json_content(error.clone()) });
        let responses = &mut operation["responses"];
        responses["401"] = denied("no key, or an unknown one (when keys are configured)");
        responses["403"] = denied("a key of another access class");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `$ref` in the document points at a schema it defines.
    fn refs(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    found.push(target.clone());
                }
                map.values().for_each(|v| refs(v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
            _ => {}
        }
    }

    #[test]
    fn every_route_of_the_table_is_documented_with_its_access_and_nothing_else_is() {
        let document = document();
        let mut documented = 0;
        for (path, operations) in document["paths"].as_object().unwrap() {
            documented +=
                operations.as_object().unwrap().keys().filter(|k| *k != "parameters").count();
            for method in operations.as_object().unwrap().keys().filter(|k| *k != "parameters") {
                let known = crate::http::routes()
                    .iter()
                    .any(|r| r.path == path && r.method.as_str().eq_ignore_ascii_case(method));
                assert!(known, "{method} {path} is documented but not served");
            }
        }
        let routes = crate::http::routes();
        assert_eq!(documented, routes.len(), "every served route is documented");
        for route in routes {
            let operation = &document["paths"][route.path][route.method.as_str().to_lowercase()];
            assert_eq!(operation["x-access-class"], route.access.name(), "{}", route.path);
            let guarded = route.access != crate::access::Access::Open;
            assert_eq!(operation["responses"]["401"].is_object(), guarded, "{}", route.path);
        }
        let events = &document["paths"]["/v1/events"]["post"]["responses"];
        assert!(events["429"].is_object() && events["503"].is_object());
        assert!(document["paths"]["/v1/items/{id}"]["put"]["responses"]["204"].is_object());
    }

    #[test]
    fn the_document_resolves_and_describes_the_request_types() {
        let document = document();
        let mut found = Vec::new();
        refs(&document, &mut found);
        assert!(!found.is_empty());
        for target in found {
            let name = target.strip_prefix("#/components/schemas/").expect("local refs");
            assert!(document["components"]["schemas"][name].is_object(), "{target} undefined");
        }
        let request = &document["components"]["schemas"]["RecommendRequest"];
        assert_eq!(request["required"], json!(["user_id"]));
        let properties = request["properties"].as_object().unwrap();
        for field in ["user_id", "context", "n", "exclude", "pin", "filters"] {
            assert!(properties.contains_key(field), "{field} missing");
        }
        let event = &document["components"]["schemas"]["EventInput"]["properties"];
        assert!(event["event_type"].is_object());
    }
}
