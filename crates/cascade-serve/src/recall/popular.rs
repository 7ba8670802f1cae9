//! `recall/popular`: the most consumed items, each consumption weighted by
//! its recency (`decayed_counts`) so yesterday's hits outrank last year's.

use crate::recall::{CandidateSource, RecallContext};

/// Items ranked by how many users consumed them (ties: lower index first).
#[derive(Debug, Clone)]
pub struct PopularRecall {
    ranked: Vec<(u32, f32)>,
    counts: Vec<f32>,
}

impl PopularRecall {
    /// From each item's count, indexed by dense item index.
    pub fn new(counts: &[f32]) -> PopularRecall {
        let mut ranked: Vec<(u32, f32)> =
            counts.iter().enumerate().map(|(i, &c)| (i as u32, c)).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        PopularRecall { ranked, counts: counts.to_vec() }
    }

    /// How often the item was consumed (0 for an unknown item).
    pub fn count(&self, item: u32) -> f32 {
        self.counts.get(item as usize).copied().unwrap_or(0.0)
    }

    /// The largest count.
    pub fn max_count(&self) -> f32 {
        self.ranked.first().map_or(0.0, |top| top.1)
    }
}

/// Per-item popularity where a consumption `half_life_seconds` older than the
/// newest one counts half: Σ 0.5^((newest − t) / half-life) over `events`
/// (dense item index, unix seconds). Events of unknown items (index ≥
/// `n_items`) are skipped.
pub fn decayed_counts(events: &[(u32, i64)], n_items: usize, half_life_seconds: f64) -> Vec<f32> {
    let newest = events.iter().map(|e| e.1).max().unwrap_or(0);
    let mut counts = vec![0f32; n_items];
    for &(item, t) in events {
        if let Some(count) = counts.get_mut(item as usize) {
            *count += 0.5f64.powf((newest - t) as f64 / half_life_seconds) as f32;
        }
    }
    counts
}

impl CandidateSource for PopularRecall {
    fn name(&self) -> &'static str {
        "recall/popular"
    }

    fn recall(&self, _: &RecallContext<'_>, n: usize) -> Vec<(u32, f32)> {
        self.ranked.iter().take(n).copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_consumption_outweighs_old_and_halves_per_half_life() {
        let day = 86_400;
        // Item 0: three consumptions 60 days before the newest; item 1: two today.
        let events = [(0, 0), (0, 0), (0, 0), (1, 60 * day), (1, 60 * day), (7, 0)];
        let counts = decayed_counts(&events, 2, 30.0 * day as f64);
        assert!((counts[0] - 0.75).abs() < 1e-6, "3 × ¼: {counts:?}");
        assert!((counts[1] - 2.0).abs() < 1e-6);
        let popular = PopularRecall::new(&counts);
        let context = RecallContext { user_id: "u", user: None, history: &[] };
        assert_eq!(popular.recall(&context, 2)[0].0, 1);
        assert_eq!(popular.max_count(), 2.0);
    }
}
