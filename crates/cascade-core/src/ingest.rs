//! What the event log accepts from clients: the one wire format of an
//! event ([`EventInput`]) and the bounds every path applies to it
//! ([`IngestConfig`], `[ingest]` in cascade.toml).

use serde::{Deserialize, Serialize};

use crate::event::Event;

/// `[ingest]`: bounds on what clients may write, the same for
/// `POST /v1/events`, `cascade append` and `cascade ingest`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// The longest user, item or event id, in bytes (UTF-8).
    pub max_id_bytes: usize,
    /// The longest event type, in bytes.
    pub max_event_type_bytes: usize,
    /// How far an event's time may be ahead of the receiver's clock, in
    /// seconds. Real-time windows follow the latest event time, so one
    /// event from the far future would empty them for everyone.
    pub max_future_skew_s: u64,
    /// The earliest event time accepted, in ms since the Unix epoch.
    pub min_ts_ms: i64,
    /// The most events one `POST /v1/events` may carry.
    pub max_events_per_request: usize,
    /// Client events that may wait for a commit before `POST /v1/events`
    /// sheds load (503 with `Retry-After`): about 20 MB of queued events by
    /// default, well under a second of work at the measured ingest rate.
    pub max_pending_events: usize,
    /// Logged events the server's stream processor may be behind before
    /// ingest sheds load with 429: about 0.1 s of its work by default.
    pub max_stream_lag: u64,
    /// How long `POST /v1/events` waits for the stream processor to apply
    /// what it logged (read-your-writes) before answering anyway.
    pub read_your_writes_wait_ms: u64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            max_id_bytes: 256,
            max_event_type_bytes: 64,
            max_future_skew_s: 300,
            min_ts_ms: 0,
            max_events_per_request: 10_000,
            max_pending_events: 50_000,
            max_stream_lag: 20_000,
            read_your_writes_wait_ms: 250,
        }
    }
}

impl IngestConfig {
    /// The latest event time acceptable when the clock reads `now_ms`; no
    /// watermark may pass it.
    pub fn event_time_ceiling(&self, now_ms: i64) -> i64 {
        now_ms.saturating_add(crate::timestamp::seconds_to_ms(self.max_future_skew_s))
    }

    /// Whether an event at `ts_ms` may be logged when the clock reads
    /// `now_ms`; the error names `ts_ms` and the bound it broke.
    pub fn check_event_time(&self, ts_ms: i64, now_ms: i64) -> Result<(), String> {
        if ts_ms < self.min_ts_ms {
            return Err(format!(
                "ts_ms {ts_ms} is before the earliest accepted time {} ([ingest] min_ts_ms)",
                self.min_ts_ms
            ));
        }
        let ceiling = self.event_time_ceiling(now_ms);
        if ts_ms > ceiling {
            return Err(format!(
                "ts_ms {ts_ms} is {} s ahead of the server clock ({now_ms}); at most {} s \
                 ([ingest] max_future_skew_s)",
                (ts_ms - now_ms) / 1000,
                self.max_future_skew_s
            ));
        }
        Ok(())
    }
}

/// One event as a client sends it: the body of `POST /v1/events` holds a
/// list of these, and `cascade append` / `cascade ingest` read one per
/// JSON line. One format, so a line that works on one path works on both.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventInput {
    /// Unique per event if given; a retry with the same id is a duplicate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// External user id.
    pub user_id: String,
    /// External item id.
    pub item_id: String,
    /// `click`, `rating`, `purchase`, `impression`, …
    pub event_type: String,
    /// A rating, dwell time or price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// Milliseconds since the Unix epoch; the receiver's clock if absent.
    /// At most `[ingest] max_future_skew_s` ahead of that clock and not
    /// before `[ingest] min_ts_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts_ms: Option<i64>,
}

impl EventInput {
    /// Checks the event against `limits` and gives the event to log, with
    /// its client id; `now_ms` is the receiver's clock, which also fills a
    /// missing time. The error names the field.
    pub fn into_event(
        self,
        now_ms: i64,
        limits: &IngestConfig,
    ) -> Result<(Option<String>, Event), String> {
        for (field, text, max_bytes) in [
            ("user_id", &self.user_id, limits.max_id_bytes),
            ("item_id", &self.item_id, limits.max_id_bytes),
            ("event_type", &self.event_type, limits.max_event_type_bytes),
        ] {
            check_text(field, text, max_bytes)?;
        }
        if let Some(event_id) = &self.event_id {
            check_text("event_id", event_id, limits.max_id_bytes)?;
        }
        if self.value.is_some_and(|v| !v.is_finite()) {
            return Err("value is not a finite number".into());
        }
        let ts_ms = self.ts_ms.unwrap_or(now_ms);
        limits.check_event_time(ts_ms, now_ms)?;
        let event = Event {
            user: self.user_id,
            item: self.item_id,
            event_type: self.event_type,
            value: self.value,
            ts_ms,
            served: None,
        };
        Ok((self.event_id, event))
    }
}

/// An id or name a client sent: not blank, and at most `max_bytes` long.
/// The bound keeps one request from writing megabytes per logged row.
pub fn check_text(field: &str, text: &str, max_bytes: usize) -> Result<(), String> {
    if text.trim().is_empty() {
        return Err(format!("{field} is empty"));
    }
    if text.len() > max_bytes {
        return Err(format!("{field} is {} bytes long; at most {max_bytes}", text.len()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(ts_ms: Option<i64>) -> EventInput {
        EventInput {
            event_id: None,
            user_id: "u1".into(),
            item_id: "i1".into(),
            event_type: "click".into(),
            value: None,
            ts_ms,
        }
    }

    const NOW: i64 = 1_800_000_000_000;

    #[test]
    fn event_time_is_bounded_by_the_clock_plus_skew_and_the_floor() {
        let limits = IngestConfig::default();
        let skew_ms = 300_000;
        assert_eq!(input(None).into_event(NOW, &limits).unwrap().1.ts_ms, NOW);
        assert!(input(Some(NOW + skew_ms)).into_event(NOW, &limits).is_ok());
        let ahead = input(Some(NOW + skew_ms + 1)).into_event(NOW, &limits).unwrap_err();
        assert!(ahead.contains("ts_ms") && ahead.contains("max_future_skew_s"), "{ahead}");
        let far = input(Some(99_999_999_999_999_999)).into_event(NOW, &limits).unwrap_err();
        assert!(far.contains("ts_ms 99999999999999999"), "{far}");
        let negative = input(Some(-1)).into_event(NOW, &limits).unwrap_err();
        assert!(negative.contains("ts_ms -1") && negative.contains("min_ts_ms"), "{negative}");
        assert!(input(Some(0)).into_event(NOW, &limits).is_ok(), "the epoch itself is accepted");
        let floor = IngestConfig { min_ts_ms: NOW, ..limits };
        assert!(input(Some(NOW - 1)).into_event(NOW, &floor).is_err());
        assert_eq!(limits.event_time_ceiling(i64::MAX), i64::MAX, "no overflow");
    }

    #[test]
    fn ids_must_be_present_and_bounded_and_the_error_names_the_field() {
        let limits = IngestConfig { max_id_bytes: 8, ..IngestConfig::default() };
        let long = EventInput { user_id: "u".repeat(9), ..input(None) };
        let error = long.into_event(NOW, &limits).unwrap_err();
        assert_eq!(error, "user_id is 9 bytes long; at most 8");
        let blank = EventInput { item_id: " ".into(), ..input(None) };
        assert_eq!(blank.into_event(NOW, &limits).unwrap_err(), "item_id is empty");
        let id = EventInput { event_id: Some("e".repeat(9)), ..input(None) };
        assert!(id.into_event(NOW, &limits).unwrap_err().starts_with("event_id is 9 bytes"));
        let kind = EventInput { event_type: "t".repeat(65), ..input(None) };
        let error = kind.into_event(NOW, &IngestConfig::default()).unwrap_err();
        assert!(error.starts_with("event_type is 65 bytes"), "{error}");
        let nan = EventInput { value: Some(f64::NAN), ..input(None) };
        assert!(nan.into_event(NOW, &limits).unwrap_err().contains("value"));
        assert!(input(None).into_event(NOW, &limits).is_ok());
    }

    #[test]
    fn the_wire_format_refuses_unknown_fields_by_name() {
        let error = serde_json::from_str::<EventInput>(
            r#"{"user":"u1","item_id":"i1","event_type":"click"}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("unknown field `user`"), "{error}");
    }
}
