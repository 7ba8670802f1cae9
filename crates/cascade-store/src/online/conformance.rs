//! The conformance suite every feature store backend must pass: the same
//! events, the same reads, the same answers. Each backend's tests invoke
//! [`conformance_tests!`](crate::conformance_tests) with a function that
//! opens a fresh, empty store, which makes one test per case, so a failure
//! names its backend and its case.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test suite for backends' tests: a failed unwrap is a failed case"
)]

use super::{FeatureRead, FeatureUpdate, FeatureWrite, OnlineSettings, Tally};

/// A store both sides of the suite can use.
pub trait FeatureStore: FeatureRead + FeatureWrite {}
impl<S: FeatureRead + FeatureWrite> FeatureStore for S {}

/// One `#[test]` per conformance case. `setup` makes what every store of
/// the backend needs (a server), or `None` to skip after saying why;
/// `fresh(&setup, settings)` opens a fresh, empty store on it.
#[macro_export]
macro_rules! conformance_tests {
    (setup: $setup:expr, fresh: $fresh:expr) => {
        $crate::conformance_tests!(@cases $setup, $fresh;
            history_keeps_the_last_interactions_in_order,
            counters_count_each_window_and_forget_what_left_it,
            a_repeated_update_id_changes_nothing,
            affinities_decay_with_the_half_life,
            trending_ranks_interactions_in_the_first_window,
            unknown_keys_read_as_empty);
    };
    (@cases $setup:expr, $fresh:expr; $($case:ident),+) => {
        $(
            #[test]
            fn $case() {
                let Some(fixture) = $setup else { return };
                let settings = $crate::online::conformance::suite_settings();
                $crate::online::conformance::$case(&($fresh)(&fixture, settings));
            }
        )+
    };
}

const MINUTE: i64 = 60_000;
const T0: i64 = 1_700_000_000_000;

/// The settings every case runs with: 3 interactions of history, a 10-min
/// window in 10 buckets and a 60-min one in 6, a half-life of one hour.
pub fn suite_settings() -> OnlineSettings {
    OnlineSettings {
        history_length: 3,
        windows: vec![(10 * MINUTE, 10), (60 * MINUTE, 6)],
        ctr_prior_impressions: 10.0,
        affinity_half_life_ms: 60 * MINUTE,
    }
}

fn update(id: &str, user: &str, item: &str, impression: bool, ts_ms: i64) -> FeatureUpdate {
    FeatureUpdate {
        id: id.to_owned(),
        user: user.to_owned(),
        item: item.to_owned(),
        impression,
        ts_ms,
        categories: Vec::new(),
    }
}

fn interaction(id: &str, user: &str, item: &str, ts_ms: i64, categories: &[&str]) -> FeatureUpdate {
    let categories = categories.iter().map(|c| c.to_string()).collect();
    FeatureUpdate { categories, ..update(id, user, item, false, ts_ms) }
}

/// A conformance case (see the module).
pub fn history_keeps_the_last_interactions_in_order(store: &impl FeatureStore) {
    let updates = [
        interaction("h1", "u", "a", T0, &[]),
        update("h2", "u", "shown", true, T0 + 1),
        interaction("h3", "u", "b", T0 + 2, &[]),
        interaction("h4", "u", "c", T0 + 3, &[]),
        interaction("h5", "u", "d", T0 + 4, &[]),
        interaction("h6", "v", "a", T0 + 5, &[]),
    ];
    store.apply_batch(&updates).expect("apply");
    assert_eq!(store.history("u").unwrap(), ["b", "c", "d"], "history: the last 3, oldest first");
    assert_eq!(store.watermark_ms().unwrap(), Some(T0 + 5), "watermark: the latest event time");
    store.apply(&update("h7", "u", "late", true, T0 - MINUTE)).unwrap();
    assert_eq!(store.watermark_ms().unwrap(), Some(T0 + 5), "watermark: a late event keeps it");
    assert_eq!(store.history("v").unwrap(), ["a"], "history: per user");
}

/// A conformance case (see the module).
pub fn counters_count_each_window_and_forget_what_left_it(store: &impl FeatureStore) {
    let first = [
        update("c1", "u1", "x", true, T0),
        update("c2", "u2", "x", true, T0 + MINUTE),
        interaction("c3", "u1", "x", T0 + 2 * MINUTE, &[]),
    ];
    assert_eq!(store.apply_batch(&first).expect("apply"), [true; 3], "counters: new ids apply");
    let at = |minutes: i64| store.item_tallies("x", T0 + minutes * MINUTE).unwrap();
    assert_eq!(
        at(5),
        [Tally { impressions: 2, interactions: 1 }, Tally { impressions: 2, interactions: 1 }],
        "counters: both windows hold the first three events at +5 min"
    );
    let later = [
        update("c4", "u3", "x", true, T0 + 20 * MINUTE),
        update("c5", "u3", "y", true, T0 + 20 * MINUTE),
    ];
    store.apply_batch(&later).expect("apply");
    assert_eq!(
        store.global_tally().unwrap(),
        Tally { impressions: 4, interactions: 1 },
        "counters: global"
    );
    assert_eq!(
        at(20),
        [Tally { impressions: 1, interactions: 0 }, Tally { impressions: 3, interactions: 1 }],
        "counters: at +20 min the 10-min window holds only the last impression"
    );
    assert_eq!(at(200), [Tally::default(); 2], "counters: after both windows, nothing");

    let stats = store.item_stats("x", T0 + 20 * MINUTE).unwrap();
    // Prior: 1 interaction in 4 impressions; weight 10 impressions.
    let expected = (1.0 + 10.0 * 0.25) / (3.0 + 10.0);
    assert!(
        (stats[1].smoothed_ctr - expected).abs() < 1e-12,
        "counters: smoothed CTR {} against {expected}",
        stats[1].smoothed_ctr
    );
    assert_eq!(stats[1].window_ms, 60 * MINUTE);
}

/// A conformance case (see the module).
pub fn a_repeated_update_id_changes_nothing(store: &impl FeatureStore) {
    let click = interaction("r1", "u", "a", T0, &["Drama"]);
    assert!(store.apply(&click).unwrap(), "dedup: the first delivery applies");
    assert!(!store.apply(&click).unwrap(), "dedup: a re-delivery is recognised");
    let batch = [interaction("r2", "u", "b", T0 + 1, &[]), click.clone()];
    assert_eq!(store.apply_batch(&batch).unwrap(), [true, false], "dedup: inside a batch too");
    assert_eq!(store.history("u").unwrap(), ["a", "b"], "dedup: history counted once");
    assert_eq!(store.global_tally().unwrap().interactions, 2, "dedup: counters counted once");
    let affinity = store.category_affinities("u", T0).unwrap();
    assert_eq!(affinity.len(), 1);
    assert!((affinity[0].1 - 1.0).abs() < 1e-12, "dedup: affinity counted once: {affinity:?}");
}

/// A conformance case (see the module).
pub fn affinities_decay_with_the_half_life(store: &impl FeatureStore) {
    let updates = [
        interaction("a1", "u", "m1", T0, &["Drama", "War"]),
        interaction("a2", "u", "m2", T0 + 60 * MINUTE, &["Drama"]),
        // Late by half an hour: counts in full, decays nothing.
        interaction("a3", "u", "m3", T0 + 30 * MINUTE, &["Comedy"]),
        // An impression is not interest.
        FeatureUpdate { categories: vec!["Horror".into()], ..update("a4", "u", "m4", true, T0) },
    ];
    store.apply_batch(&updates).unwrap();
    let scores = store.category_affinities("u", T0 + 120 * MINUTE).unwrap();
    let names: Vec<&str> = scores.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(names, ["Drama", "Comedy", "War"], "affinity: strongest first: {scores:?}");
    // Drama: (1·½ + 1) at +60 min, then one more half-life: 0.75.
    assert!((scores[0].1 - 0.75).abs() < 1e-9, "affinity: Drama {}", scores[0].1);
    // Comedy: 1 at +30 min, 1.5 half-lives later.
    assert!((scores[1].1 - 0.5f64.powf(1.5)).abs() < 1e-9, "affinity: Comedy {}", scores[1].1);
    assert!((scores[2].1 - 0.25).abs() < 1e-9, "affinity: War {}", scores[2].1);
}

/// A conformance case (see the module).
pub fn trending_ranks_interactions_in_the_first_window(store: &impl FeatureStore) {
    let mut updates = Vec::new();
    for (n, item) in ["b", "a", "b", "c", "a", "b"].iter().enumerate() {
        updates.push(interaction(&format!("t{n}"), &format!("u{n}"), item, T0 + MINUTE, &[]));
    }
    updates.push(update("t-imp", "u9", "z", true, T0 + MINUTE));
    updates.push(interaction("t-old", "u9", "old", T0 - 30 * MINUTE, &[]));
    store.apply_batch(&updates).unwrap();
    let top = store.trending(T0 + 2 * MINUTE, 2).unwrap();
    assert_eq!(top, [("b".to_owned(), 3), ("a".to_owned(), 2)], "trending: top 2");
    let all = store.trending(T0 + 2 * MINUTE, 10).unwrap();
    assert_eq!(all.len(), 3, "trending: impressions and old interactions do not count: {all:?}");
    assert!(store.trending(T0 + 30 * MINUTE, 10).unwrap().is_empty(), "trending: window passed");
}

/// A conformance case (see the module).
pub fn unknown_keys_read_as_empty(store: &impl FeatureStore) {
    assert_eq!(store.watermark_ms().unwrap(), None, "no event, no watermark");
    assert!(store.history("nobody").unwrap().is_empty());
    assert!(store.category_affinities("nobody", T0).unwrap().is_empty());
    assert_eq!(store.item_tallies("nothing", T0).unwrap(), [Tally::default(); 2]);
    assert!(store.trending(T0, 5).unwrap().is_empty());
    let stats = store.item_stats("nothing", T0).unwrap();
    assert_eq!(stats[0].smoothed_ctr, 0.0, "no data, no prior: a rate of 0");
}
