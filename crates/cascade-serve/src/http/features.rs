//! Real-time features: `GET /v1/users/{id}/features`,
//! `GET /v1/items/{id}/stats`, `GET /v1/trending`.

use super::*;

/// Runs a read of the real-time features off the reactor (a shared store
/// is a network round trip); 503 when there are none or the store fails.
pub(super) async fn read_features<T: Serialize + Send + 'static>(
    state: &AppState,
    read: impl FnOnce(&dyn FeatureRead) -> Result<T, OnlineStoreError> + Send + 'static,
) -> Response {
    let Some(features) = state.recommender.features().cloned() else {
        return ServeError::Unavailable("this server has no real-time features".into())
            .into_response();
    };
    let work = move || read(features.as_ref()).map_err(|e| ServeError::Unavailable(e.to_string()));
    match blocking(work).await {
        Ok(answer) => axum::Json(answer).into_response(),
        Err(response) => response,
    }
}

pub(super) async fn user_features(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Response {
    read_features(&state, move |features| realtime::user_features(features, &id)).await
}

pub(super) async fn item_stats(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Response {
    read_features(&state, move |features| realtime::item_stats(features, &id)).await
}

pub(super) async fn trending(
    State(state): State<Arc<AppState>>,
    Query(count): Query<Count>,
) -> Response {
    let n = count.n.unwrap_or(10);
    if !(1..=1000).contains(&n) {
        return error(StatusCode::BAD_REQUEST, format!("n = {n}; it must be from 1 to 1000"));
    }
    read_features(&state, move |features| realtime::trending(features, n)).await
}
