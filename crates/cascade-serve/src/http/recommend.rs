//! `POST /v1/recommend`, `GET /v1/users/{id}/recommend` and
//! `GET /v1/items/{id}/similar`: public reads of the serving pipeline.

use super::*;

pub(super) async fn recommend(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let request: RecommendRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("request body: {e}")),
    };
    answer(&state, request).await
}

/// Runs the pipeline for `request`, logs the impressions, and renders the
/// response or the error.
pub(super) async fn answer(state: &AppState, request: RecommendRequest) -> Response {
    let recommender = state.recommender.clone();
    let log = state.events.clone();
    let work = move || {
        let response = recommender.recommend(&request)?;
        if let Some(log) = log {
            log.log_impressions(&response, &request.user_id, now_ms());
        }
        Ok(response)
    };
    match blocking(work).await {
        Ok(response) => axum::Json(response).into_response(),
        Err(response) => response,
    }
}

pub(super) async fn recommend_for_user(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(count): Query<Count>,
) -> Response {
    let request = RecommendRequest {
        user_id: id,
        context: Default::default(),
        n: count.n,
        exclude: Vec::new(),
        pin: Vec::new(),
        filters: Default::default(),
    };
    answer(&state, request).await
}

pub(super) async fn similar(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(count): Query<Count>,
) -> Response {
    let recommender = state.recommender.clone();
    let n = count.n.unwrap_or(10);
    match blocking(move || recommender.similar(&id, n)).await {
        Ok(items) => axum::Json(json!({ "items": items })).into_response(),
        Err(response) => response,
    }
}
