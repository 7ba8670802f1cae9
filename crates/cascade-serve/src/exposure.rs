//! The per-user exposure cap: an item shown to a user `cap` times within
//! the window is not shown again until older showings leave it.
//!
//! Kept by external id, so it outlives model swaps that renumber items.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Recordings between sweeps of users whose showings all left the window.
pub const EXPOSURE_SWEEP_EVERY: u64 = 1024;

/// What each user was shown, and when, within the window.
#[derive(Debug)]
pub struct ExposureMemory {
    cap: Option<usize>,
    window: Duration,
    /// User id → item id → when it was shown, oldest first.
    shown: Mutex<HashMap<String, HashMap<String, Vec<Instant>>>>,
    recordings: AtomicU64,
}

impl ExposureMemory {
    /// Caps showings at `cap` per `window`; `None` remembers nothing.
    pub fn new(cap: Option<usize>, window: Duration) -> ExposureMemory {
        ExposureMemory { cap, window, shown: Mutex::default(), recordings: AtomicU64::new(0) }
    }

    /// Items shown to the user `cap` times within the window.
    pub fn capped_items(&self, user_id: &str) -> Vec<String> {
        let Some(cap) = self.cap else { return Vec::new() };
        let now = Instant::now();
        let mut users = self.shown.lock();
        let Some(shown) = users.get_mut(user_id) else { return Vec::new() };
        shown.retain(|_, times| {
            times.retain(|t| now.duration_since(*t) < self.window);
            !times.is_empty()
        });
        shown.iter().filter(|(_, times)| times.len() >= cap).map(|(item, _)| item.clone()).collect()
    }

    /// Remembers that `items` were shown to the user now.
    pub fn record<'a>(&self, user_id: &str, items: impl Iterator<Item = &'a str>) {
        if self.cap.is_none() {
            return;
        }
        let now = Instant::now();
        let mut users = self.shown.lock();
        let shown = users.entry(user_id.to_owned()).or_default();
        for item in items {
            shown.entry(item.to_owned()).or_default().push(now);
        }
        // A user who never comes back would keep their entry forever: now
        // and then, drop every user whose newest showing left the window.
        let recordings = self.recordings.fetch_add(1, Ordering::Relaxed) + 1;
        if recordings.is_multiple_of(EXPOSURE_SWEEP_EVERY) {
            let window = self.window;
            users.retain(|_, shown| {
                shown.values().flatten().any(|t| now.duration_since(*t) < window)
            });
        }
    }

    /// Users with showings still remembered.
    pub fn users(&self) -> usize {
        self.shown.lock().len()
    }
}
