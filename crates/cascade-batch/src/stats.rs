//! Statistics for BI and monitoring: events per day and type, the item
//! popularity and user activity distributions (log2 buckets), and label
//! rates. Written as Parquet under `stats/` and summarised for the console.

use std::fmt;
use std::path::PathBuf;

use crate::BatchError;
use crate::pipeline::Pipeline;
use crate::table_columns::{floats, ints};

/// A distribution over entities (items by popularity, users by activity)
/// in power-of-two buckets.
const BUCKETED: &str = "SELECT CAST(POWER(2, FLOOR(LOG2(n))) AS BIGINT) AS bucket_min,
                               COUNT(*) AS entities, SUM(n) AS events
                        FROM (SELECT COUNT(*) AS n FROM interactions GROUP BY {key}) per_entity
                        GROUP BY CAST(POWER(2, FLOOR(LOG2(n))) AS BIGINT) ORDER BY bucket_min";

/// The console summary of the statistics.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StatsSummary {
    /// Events in the log.
    pub events: i64,
    /// Distinct users with interactions.
    pub users: i64,
    /// Distinct items with interactions.
    pub items: i64,
    /// First and last event day (days since the epoch).
    pub day_range: (i64, i64),
    /// Median events per active day.
    pub median_events_per_day: f64,
    /// Share of positive labels among interactions.
    pub label_rate: f64,
    /// Share of interactions on the most popular 10% of items.
    pub top10pct_item_share: f64,
    /// Gini coefficient of item popularity (0 = uniform, 1 = one item takes all).
    pub item_gini: f64,
    /// Median interactions per user.
    pub median_user_activity: f64,
    /// Files written.
    pub files: Vec<PathBuf>,
}

fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn gini(ascending: &[f64]) -> f64 {
    let n = ascending.len() as f64;
    let total: f64 = ascending.iter().sum();
    if n == 0.0 || total == 0.0 {
        return 0.0;
    }
    let weighted: f64 = ascending.iter().enumerate().map(|(i, x)| (i as f64 + 1.0) * x).sum();
    (2.0 * weighted) / (n * total) - (n + 1.0) / n
}

/// Writes the statistics tables and computes the summary.
pub fn compute(pipeline: &Pipeline) -> Result<StatsSummary, BatchError> {
    let files = vec![
        pipeline.write(
            "stats events_per_day",
            "SELECT day, event_type, COUNT(*) AS events, AVG(CASE WHEN label THEN 1.0 ELSE 0.0 END) AS label_rate
             FROM (SELECT CAST(FLOOR(ts_ms / 86400000.0) AS BIGINT) AS day, event_type, label FROM events) e
             GROUP BY day, event_type ORDER BY day, event_type",
            "stats/events_per_day.parquet",
        )?,
        pipeline.write(
            "stats item_popularity",
            &BUCKETED.replace("{key}", "item_id"),
            "stats/item_popularity.parquet",
        )?,
        pipeline.write(
            "stats user_activity",
            &BUCKETED.replace("{key}", "user_id"),
            "stats/user_activity.parquet",
        )?,
        pipeline.write(
            "stats label_rate",
            "SELECT event_type, COUNT(*) AS events, AVG(CASE WHEN label THEN 1.0 ELSE 0.0 END) AS label_rate
             FROM events GROUP BY event_type ORDER BY event_type",
            "stats/label_rate.parquet",
        )?,
    ];

    let days = pipeline.collect(
        "stats days",
        "SELECT CAST(FLOOR(ts_ms / 86400000.0) AS BIGINT) AS day, COUNT(*) AS events FROM events GROUP BY 1 ORDER BY 1",
    )?;
    let (mut day_numbers, mut per_day) = (Vec::new(), Vec::new());
    for batch in &days {
        day_numbers.extend(ints(batch, "day")?);
        per_day.extend(ints(batch, "events")?.into_iter().map(|n| n as f64));
    }
    per_day.sort_by(f64::total_cmp);

    let totals = pipeline.collect(
        "stats totals",
        "SELECT (SELECT COUNT(*) FROM events) AS events,
                COUNT(DISTINCT user_id) AS users, COUNT(DISTINCT item_id) AS items,
                AVG(CASE WHEN label THEN 1.0 ELSE 0.0 END) AS label_rate
         FROM interactions",
    )?;
    let totals = totals.first().ok_or_else(|| BatchError::Data("no events".into()))?;

    let mut item_counts: Vec<f64> = Vec::new();
    for batch in &pipeline
        .collect("stats item counts", "SELECT COUNT(*) AS n FROM interactions GROUP BY item_id")?
    {
        item_counts.extend(ints(batch, "n")?.into_iter().map(|n| n as f64));
    }
    item_counts.sort_by(f64::total_cmp);
    let top = (item_counts.len() as f64 * 0.1).ceil() as usize;
    let top_share =
        item_counts.iter().rev().take(top).sum::<f64>() / item_counts.iter().sum::<f64>().max(1.0);

    let mut user_counts: Vec<f64> = Vec::new();
    for batch in &pipeline
        .collect("stats user counts", "SELECT COUNT(*) AS n FROM interactions GROUP BY user_id")?
    {
        user_counts.extend(ints(batch, "n")?.into_iter().map(|n| n as f64));
    }
    user_counts.sort_by(f64::total_cmp);

    Ok(StatsSummary {
        events: ints(totals, "events")?[0],
        users: ints(totals, "users")?[0],
        items: ints(totals, "items")?[0],
        day_range: (
            day_numbers.first().copied().unwrap_or(0),
            day_numbers.last().copied().unwrap_or(0),
        ),
        median_events_per_day: median(&per_day),
        label_rate: floats(totals, "label_rate")?[0],
        top10pct_item_share: top_share,
        item_gini: gini(&item_counts),
        median_user_activity: median(&user_counts),
        files,
    })
}

fn date(day: i64) -> String {
    chrono::DateTime::from_timestamp(day * 86_400, 0)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

impl fmt::Display for StatsSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "events            {} from {} users on {} items",
            self.events, self.users, self.items
        )?;
        writeln!(
            f,
            "time span         {} .. {} ({} days), median {:.0} events per active day",
            date(self.day_range.0),
            date(self.day_range.1),
            self.day_range.1 - self.day_range.0 + 1,
            self.median_events_per_day
        )?;
        writeln!(f, "label rate        {:.4}", self.label_rate)?;
        writeln!(
            f,
            "item popularity   top 10% of items take {:.1}% of interactions (Gini {:.3})",
            self.top10pct_item_share * 100.0,
            self.item_gini
        )?;
        write!(f, "user activity     median {:.0} interactions per user", self.median_user_activity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gini_and_median_by_hand() {
        assert_eq!(gini(&[1.0, 1.0, 1.0, 1.0]), 0.0);
        // One of four holds everything: (2·4·x)/(4x) − 5/4 = 0.75.
        assert!((gini(&[0.0, 0.0, 0.0, 8.0]) - 0.75).abs() < 1e-12);
        assert_eq!(median(&[1.0, 2.0, 10.0]), 2.0);
        assert_eq!(median(&[1.0, 2.0, 4.0, 10.0]), 3.0);
    }
}
