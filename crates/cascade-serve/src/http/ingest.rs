//! `POST /v1/events`: validation, durable append, backpressure and the
//! read-your-writes wait.

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
    let work = move || {
        let live = recommender.live();
        let limits = log.limits();
        if let Some(live) = live {
            check_stream_lag(live, log.appended_up_to(), limits.max_stream_lag)?;
        }
        let (statuses, _) = log.append(&batch.events, now_ms())?;
        // Durable first, then visible: a crash in between loses nothing.
        // Waiting for the stream processor lets the client read its own
        // writes; past the wait the events are durable all the same.
        if let Some(live) = live
            && let Some(last) = statuses.iter().filter_map(|s| s.seq).max()
        {
            live.notify();
            live.wait_applied(last + 1, Duration::from_millis(limits.read_your_writes_wait_ms));
        }
        Ok(statuses)
    };
    match blocking(work).await {
        Ok(statuses) => axum::Json(EventsAnswer::new(statuses)).into_response(),
        Err(response) => response,
    }
}

/// 429 + `Retry-After` when the stream processor is more than `max_lag`
/// events behind the log (or has stopped), so the backlog cannot grow
/// without limit.
pub(super) fn check_stream_lag(
    live: &LiveStream,
    log_end: u64,
    max_lag: u64,
) -> Result<(), RequestError> {
    if let Some(failure) = live.failure() {
        return Err(RequestError::Unavailable(format!("the stream processor stopped: {failure}")));
    }
    let lag = log_end.saturating_sub(live.applied());
    if lag > max_lag {
        return Err(RequestError::TooManyRequests {
            message: format!(
                "the stream processor is {lag} events behind the log (bound {max_lag}, [ingest] max_stream_lag)"
            ),
            retry_after_s: 1,
        });
    }
    Ok(())
}
