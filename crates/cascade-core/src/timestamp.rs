//! Parsing of timestamps in the formats a config may declare.

use chrono::{NaiveDate, NaiveDateTime};

/// A config's whole seconds as milliseconds, saturating at `i64::MAX`
/// (a window "forever" stays forever instead of wrapping).
pub fn seconds_to_ms(seconds: u64) -> i64 {
    i64::try_from(seconds.saturating_mul(1_000)).unwrap_or(i64::MAX)
}

/// Milliseconds since the Unix epoch now, by the wall clock (0 if the clock
/// is set before 1970).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// How a timestamp column is written in a source file.
#[derive(Debug, Clone, PartialEq)]
pub enum TimestampFormat {
    /// Integer (or fractional) seconds since the Unix epoch.
    UnixSeconds,
    /// Integer milliseconds since the Unix epoch.
    UnixMillis,
    /// RFC 3339 / ISO 8601 with an offset, e.g. `2024-05-01T12:00:00Z`.
    Rfc3339,
    /// A chrono `strftime` pattern, in UTC; a date-only pattern means midnight.
    Pattern(String),
}

impl TimestampFormat {
    /// Reads the config spelling: `unix`, `unix_ms`, `rfc3339` or a `%` pattern.
    pub fn parse_spec(spec: &str) -> Option<TimestampFormat> {
        match spec {
            "unix" | "unix_s" | "unix_seconds" => Some(TimestampFormat::UnixSeconds),
            "unix_ms" | "unix_millis" => Some(TimestampFormat::UnixMillis),
            "rfc3339" | "iso8601" => Some(TimestampFormat::Rfc3339),
            pattern if pattern.contains('%') => Some(TimestampFormat::Pattern(pattern.to_owned())),
            _ => None,
        }
    }

    /// Parses one cell into milliseconds since the epoch, or says what was expected.
    pub fn parse_millis(&self, cell: &str) -> Result<i64, String> {
        let cell = cell.trim();
        match self {
            TimestampFormat::UnixSeconds => cell
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite())
                .map(|s| (s * 1000.0).round() as i64)
                .ok_or_else(|| format!("expected Unix seconds, got {cell:?}")),
            TimestampFormat::UnixMillis => {
                cell.parse::<i64>().map_err(|_| format!("expected Unix milliseconds, got {cell:?}"))
            }
            TimestampFormat::Rfc3339 => chrono::DateTime::parse_from_rfc3339(cell)
                .map(|t| t.timestamp_millis())
                .map_err(|e| format!("expected an RFC 3339 timestamp, got {cell:?} ({e})")),
            TimestampFormat::Pattern(pattern) => NaiveDateTime::parse_from_str(cell, pattern)
                .map(|t| t.and_utc().timestamp_millis())
                .or_else(|_| {
                    NaiveDate::parse_from_str(cell, pattern)
                        .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc().timestamp_millis())
                })
                .map_err(|e| format!("expected a timestamp like {pattern:?}, got {cell:?} ({e})")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_declared_format() {
        assert_eq!(
            TimestampFormat::UnixSeconds.parse_millis("874724710").unwrap(),
            874_724_710_000
        );
        assert_eq!(TimestampFormat::UnixMillis.parse_millis("1500").unwrap(), 1500);
        assert_eq!(TimestampFormat::Rfc3339.parse_millis("1970-01-01T00:00:01Z").unwrap(), 1000);
        let date = TimestampFormat::parse_spec("%d-%b-%Y").unwrap();
        assert_eq!(date.parse_millis("02-Jan-1970").unwrap(), 86_400_000);
    }

    #[test]
    fn rejects_garbage_with_the_expected_shape() {
        let err = TimestampFormat::UnixSeconds.parse_millis("yesterday").unwrap_err();
        assert!(err.contains("expected Unix seconds"), "{err}");
        assert!(TimestampFormat::parse_spec("sometimes").is_none());
    }
}
