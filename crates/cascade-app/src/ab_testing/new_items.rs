//! New items in a simulation: how long an item added while users visit
//! waits for its first click, per variant.
//!
//! `cascade simulate --new-items N` adds N items through the catalogue API
//! before the experiment's visits: copies of catalogue items drawn at
//! random, under new ids, published at the catalogue's clock (its newest
//! publication), so the server sees brand-new items it never trained on
//! while the truth knows how much each user would like them (as much as
//! the original). Each variant then counts, in its own visits, when each
//! new item was first shown and first clicked.

use std::collections::HashMap;

use serde::Serialize;

/// What one variant did with the new items.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NewItemTraffic {
    /// New items added (the same for every variant).
    pub added: usize,
    /// Impressions of new items.
    pub impressions: usize,
    /// New items shown at least once, and clicked at least once.
    pub shown: usize,
    pub clicked: usize,
    /// The variant's visits until a new item's first impression and first
    /// click, the median over the items that had one.
    pub median_visits_to_first_impression: Option<f64>,
    pub median_visits_to_first_click: Option<f64>,
    /// The share of new items clicked within the run: the median above
    /// leaves out the ones never clicked.
    pub share_clicked: f64,
    /// Every clicked new item's first click, in the variant's visits,
    /// earliest first.
    pub first_click_visits: Vec<usize>,
}

/// One variant's first impressions and clicks of new items, by its own
/// visit count.
#[derive(Debug, Default)]
pub struct NewItemTracker {
    impressions: usize,
    first_shown: HashMap<String, usize>,
    first_clicked: HashMap<String, usize>,
}

impl NewItemTracker {
    /// New item `item` was shown on the variant's `visit`-th visit.
    pub fn shown(&mut self, item: &str, visit: usize) {
        self.impressions += 1;
        self.first_shown.entry(item.to_owned()).or_insert(visit);
    }

    /// … and clicked.
    pub fn clicked(&mut self, item: &str, visit: usize) {
        self.first_clicked.entry(item.to_owned()).or_insert(visit);
    }

    /// The summary over `added` new items.
    pub fn summary(&self, added: usize) -> NewItemTraffic {
        NewItemTraffic {
            added,
            impressions: self.impressions,
            shown: self.first_shown.len(),
            clicked: self.first_clicked.len(),
            median_visits_to_first_impression: median(self.first_shown.values()),
            median_visits_to_first_click: median(self.first_clicked.values()),
            share_clicked: self.first_clicked.len() as f64 / added.max(1) as f64,
            first_click_visits: {
                let mut visits: Vec<usize> = self.first_clicked.values().copied().collect();
                visits.sort_unstable();
                visits
            },
        }
    }
}

fn median<'a>(values: impl Iterator<Item = &'a usize>) -> Option<f64> {
    let mut sorted: Vec<usize> = values.copied().collect();
    sorted.sort_unstable();
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2] as f64),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) as f64 / 2.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_times_count_once_and_the_median_skips_items_never_clicked() {
        let mut tracker = NewItemTracker::default();
        tracker.shown("a", 3);
        tracker.shown("a", 5);
        tracker.clicked("a", 5);
        tracker.clicked("a", 9);
        tracker.shown("b", 4);
        tracker.shown("c", 10);
        tracker.clicked("c", 12);
        let summary = tracker.summary(4);
        assert_eq!((summary.impressions, summary.shown, summary.clicked), (4, 3, 2));
        assert_eq!(summary.median_visits_to_first_impression, Some(4.0));
        assert_eq!(summary.median_visits_to_first_click, Some(8.5));
        assert_eq!(summary.share_clicked, 0.5);
        assert_eq!(summary.first_click_visits, [5, 12]);
    }
}
