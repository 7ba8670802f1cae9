//! Admin routes: `POST /admin/models/reload` and `/metrics`.

use super::*;

pub(super) async fn reload(State(state): State<Arc<AppState>>) -> Response {
    let Some(loader) = state.loader.clone() else {
        return error(StatusCode::NOT_FOUND, "this server has no model loader");
    };
    match tokio::task::spawn_blocking(move || loader()).await {
        Ok(Ok(models)) => {
            let version = models.version.clone();
            state.recommender.swap(models);
            axum::Json(json!({ "model_version": version })).into_response()
        }
        // A failed load keeps the models that are serving.
        Ok(Err(e)) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reload failed, old models kept: {e:#}"),
        ),
        Err(e) => {
            error(StatusCode::INTERNAL_SERVER_ERROR, format!("reload failed, old models kept: {e}"))
        }
    }
}

pub(super) async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    ([("content-type", "text/plain; version=0.0.4")], state.metrics.render()).into_response()
}
