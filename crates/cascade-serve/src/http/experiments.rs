//! Admin routes of online experiments: `POST /v1/experiments` (create),
//! `GET /v1/experiments` (list), `GET /v1/experiments/{id}`,
//! `POST /v1/experiments/{id}/stop` and `GET /v1/experiments/{id}/results`.

use cascade_core::config::ExperimentConfig;

use super::*;
use crate::experiments::ExperimentAnalysis;

/// Runs `work` on the server's analysis off the reactor and answers its
/// value as JSON with `status`; a server without an analysis answers 503.
async fn with_analysis<T: Serialize + Send + 'static>(
    state: &AppState,
    status: StatusCode,
    work: impl FnOnce(&ExperimentAnalysis) -> Result<T, ServeError> + Send + 'static,
) -> Response {
    let Some(analysis) = state.experiments.clone() else {
        let message = "this server runs no experiment analysis (no event log)";
        return ServeError::Unavailable(message.into()).into_response();
    };
    match blocking(move || work(&analysis)).await {
        Ok(value) => (status, axum::Json(value)).into_response(),
        Err(response) => response,
    }
}

pub(super) async fn create_experiment(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    // serde_path_to_error names the field of a malformed body.
    let deserializer = &mut serde_json::Deserializer::from_slice(&body);
    let config: ExperimentConfig = match serde_path_to_error::deserialize(deserializer) {
        Ok(config) => config,
        Err(e) => {
            let message = format!("experiment: {}: {}", e.path(), e.inner());
            return error(StatusCode::BAD_REQUEST, message);
        }
    };
    with_analysis(&state, StatusCode::CREATED, move |a| a.experiments().create(config)).await
}

pub(super) async fn list_experiments(State(state): State<Arc<AppState>>) -> Response {
    let list = |a: &ExperimentAnalysis| Ok(json!({ "experiments": a.experiments().records() }));
    with_analysis(&state, StatusCode::OK, list).await
}

pub(super) async fn get_experiment(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Response {
    with_analysis(&state, StatusCode::OK, move |a| a.experiments().record(&id)).await
}

pub(super) async fn stop_experiment(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Response {
    with_analysis(&state, StatusCode::OK, move |a| a.experiments().stop(&id)).await
}

pub(super) async fn experiment_results(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Response {
    with_analysis(&state, StatusCode::OK, move |a| a.results(&id)).await
}
