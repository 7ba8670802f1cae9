//! `POST /v1/events`: unpack the batch, [`EventLog::ingest`] it off the
//! reactor, answer each event's status.

use super::*;

pub(super) async fn ingest_events(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let Some(log) = state.events.clone() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "this server has no event log");
    };
    let batch: EventBatch = match serde_json::from_slice(&body) {
        Ok(batch) => batch,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("request body: {e}")),
    };
    let recommender = state.recommender.clone();
    let work = move || log.ingest(&batch.events, recommender.live().map(Arc::as_ref), now_ms());
    match blocking(work).await {
        Ok(statuses) => axum::Json(EventsAnswer::new(statuses)).into_response(),
        Err(response) => response,
    }
}
