//! User and item records: `PUT`/`GET`/`DELETE /v1/users/{id}` and
//! `/v1/items/{id}` (a DELETE of an item hides it).

use super::*;

pub(super) fn entities(state: &AppState) -> Result<Arc<Entities>, ServeError> {
    state
        .entities
        .clone()
        .ok_or_else(|| ServeError::Unavailable("this server keeps no records".into()))
}

/// Runs a record operation off the reactor (the store fsyncs).
pub(super) async fn with_records<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce(&Entities) -> Result<T, ServeError> + Send + 'static,
) -> Result<T, Response> {
    let entities = entities(state).map_err(IntoResponse::into_response)?;
    blocking(move || work(&entities)).await
}

pub(super) fn json_body(body: &Bytes) -> Result<serde_json::Value, ServeError> {
    serde_json::from_slice(body).map_err(|e| ServeError::Invalid(format!("request body: {e}")))
}

pub(super) async fn put_record(
    state: &AppState,
    kind: EntityKind,
    id: String,
    body: Bytes,
) -> Response {
    let value = match json_body(&body) {
        Ok(value) => value,
        Err(e) => return e.into_response(),
    };
    let recommender = state.recommender.clone();
    let put = move |e: &Entities| {
        let (new, record) = e.put(kind, &id, &value)?;
        if kind == EntityKind::Item {
            // Recommendable from this answer on; the record is durable
            // either way, and the next model build takes it in.
            recommender.add_item(&id, &record);
        }
        Ok(new)
    };
    match with_records(state, put).await {
        Ok(true) => StatusCode::CREATED.into_response(),
        Ok(false) => StatusCode::NO_CONTENT.into_response(),
        Err(response) => response,
    }
}

pub(super) async fn put_user(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    put_record(&state, EntityKind::User, id, body).await
}

pub(super) async fn put_item(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    put_record(&state, EntityKind::Item, id, body).await
}

pub(super) async fn get_user(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Response {
    let user_id = id.clone();
    match with_records(&state, move |e| e.get(EntityKind::User, &id)).await {
        Ok(record) => axum::Json(json!({ "user_id": user_id, "record": record })).into_response(),
        Err(response) => response,
    }
}

pub(super) async fn delete_user(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Response {
    match with_records(&state, move |e| e.delete(EntityKind::User, &id)).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(response) => response,
    }
}

/// An item: whether it is hidden, and its record if the store has one.
pub(super) async fn get_item(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Response {
    let hidden = match state.recommender.is_hidden(&id) {
        Ok(hidden) => hidden,
        Err(e) => return e.into_response(),
    };
    let item_id = id.clone();
    // A hidden item may have no record (null); a failing store is a 503.
    let lookup = move |e: &Entities| match e.get(EntityKind::Item, &id) {
        Ok(record) => Ok(Some(record)),
        Err(ServeError::NotFound(_)) => Ok(None),
        Err(other) => Err(other),
    };
    let record = match with_records(&state, lookup).await {
        Ok(record) => json!(record),
        Err(response) => return response,
    };
    axum::Json(json!({ "item_id": item_id, "hidden": hidden, "record": record })).into_response()
}

/// Hides the item at once and for good; its record stays for the history.
pub(super) async fn hide_item(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Response {
    let recommender = state.recommender.clone();
    match blocking(move || recommender.hide(&id)).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(response) => response,
    }
}
