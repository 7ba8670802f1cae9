//! Request-context features: facts about the moment of a request (or of a
//! logged event) that ranking models learn from, declared in `[context]`.
//!
//! Each is derived from a time, so training reads it off each event's
//! timestamp and serving off the request's `context` map (or its clock). Both
//! sides call the same derivation, so a model sees the same value for the
//! same moment. Times are taken in UTC: the event log carries no time zone.

use chrono::{DateTime, Datelike, Timelike};
use serde::Deserialize;

/// How a context feature is derived from a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContextDerivation {
    /// 0..=23.
    HourOfDay,
    /// 0 (Monday) ..= 6 (Sunday).
    DayOfWeek,
}

impl ContextDerivation {
    /// The feature's value at `at_ms` (milliseconds since the Unix epoch).
    pub fn value_at(self, at_ms: i64) -> u32 {
        let time = DateTime::from_timestamp_millis(at_ms).unwrap_or_default();
        match self {
            ContextDerivation::HourOfDay => time.hour(),
            ContextDerivation::DayOfWeek => time.weekday().num_days_from_monday(),
        }
    }

    /// The largest value it takes.
    pub fn max_value(self) -> u32 {
        match self {
            ContextDerivation::HourOfDay => 23,
            ContextDerivation::DayOfWeek => 6,
        }
    }
}

/// One `[context]` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextFeatureSpec {
    /// What it is derived from.
    pub derive: ContextDerivation,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hour_and_weekday_of_a_known_moment() {
        // 1998-03-04 05:06:07 UTC was a Wednesday.
        let at_ms = 888_987_967_000;
        assert_eq!(ContextDerivation::HourOfDay.value_at(at_ms), 5);
        assert_eq!(ContextDerivation::DayOfWeek.value_at(at_ms), 2);
        for derivation in [ContextDerivation::HourOfDay, ContextDerivation::DayOfWeek] {
            for hours in 0..24 * 7 {
                let value = derivation.value_at(at_ms + hours * 3_600_000);
                assert!(value <= derivation.max_value());
            }
        }
    }
}
