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
            let recommender = state.recommender.clone();
            // Variants' own models (`models_dir`) are read again too; one
            // that fails keeps its old models and says why.
            let variants = tokio::task::spawn_blocking(move || {
                let experiments = recommender.experiments();
                experiments.and_then(|e| e.variant_models()).map(|m| m.reload()).unwrap_or_default()
            })
            .await
            .unwrap_or_default();
            let variants: serde_json::Map<String, serde_json::Value> = variants
                .into_iter()
                .map(|(dir, outcome)| {
                    let value = match outcome {
                        Ok(version) => json!({ "model_version": version }),
                        Err(e) => {
                            json!({ "error": format!("reload failed, old models kept: {e}") })
                        }
                    };
                    (dir, value)
                })
                .collect();
            axum::Json(json!({ "model_version": version, "variant_models": variants }))
                .into_response()
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
