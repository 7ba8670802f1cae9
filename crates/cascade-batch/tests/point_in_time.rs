//! No future leaks into a training sample: on random event logs (many equal
//! timestamps on purpose), every point-in-time feature the SQL pipeline
//! computes equals a brute-force computation that looks only at events with a
//! strictly earlier timestamp.

use cascade_batch::offline::export;
use cascade_batch::pipeline::Pipeline;
use cascade_core::{Config, Event};
use cascade_store::{EventKey, KeyedEvent, Store};
use proptest::prelude::*;

const HISTORY: usize = 3;

fn events() -> impl Strategy<Value = Vec<(u8, u8, u8, u8)>> {
    // (user, item, time in seconds, rating); few distinct times → many ties.
    prop::collection::vec((0u8..4, 0u8..6, 0u8..8, 1u8..=5), 1..60)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10, ..ProptestConfig::default() })]

    #[test]
    fn samples_see_only_strictly_earlier_events(rows in events()) {
        let mut config = Config::embedded_default();
        config.pipeline.history_length = HISTORY;
        let work = tempfile::tempdir().unwrap();
        let store = Store::open(&work.path().join("s.redb")).unwrap();
        let log: Vec<Event> = rows
            .iter()
            .map(|&(u, i, t, r)| Event {
                user: format!("u{u}"),
                item: format!("i{i}"),
                event_type: "rating".into(),
                value: Some(r as f64),
                ts_ms: t as i64 * 1000,
                served: None,
            })
            .collect();
        let keyed: Vec<KeyedEvent> = log
            .iter()
            .enumerate()
            .map(|(n, e)| KeyedEvent { key: EventKey::from_client_id(&n.to_string()), event: e.clone() })
            .collect();
        store.append(&keyed).unwrap();
        export(&store, &config, &work.path().join("offline")).unwrap();
        let pipeline = Pipeline::new(&config, &work.path().join("offline"), &work.path().join("out")).unwrap();
        let samples = pipeline.samples().unwrap();
        prop_assert_eq!(samples.len(), log.len());

        for sample in &samples {
            let me = &log[sample.seq as usize];
            prop_assert_eq!(&sample.user_id, &me.user);
            let earlier = |e: &&Event| e.ts_ms < me.ts_ms;
            let user_before: Vec<(usize, &Event)> =
                log.iter().enumerate().filter(|(_, e)| e.user == me.user && earlier(e)).collect();
            let item_before: Vec<&Event> = log.iter().filter(|e| e.item == me.item && earlier(e)).collect();
            let liked = |e: &Event| e.value.unwrap() >= 4.0;
            prop_assert_eq!(sample.user_events_before, user_before.len() as i64);
            prop_assert_eq!(sample.user_positives_before, user_before.iter().filter(|(_, e)| liked(e)).count() as i64);
            prop_assert_eq!(sample.item_events_before, item_before.len() as i64);
            prop_assert_eq!(sample.item_positives_before, item_before.iter().filter(|e| liked(e)).count() as i64);

            // The last HISTORY earlier items in protocol order (time, then log order).
            let mut ordered = user_before.clone();
            ordered.sort_by_key(|(seq, e)| (e.ts_ms, *seq));
            let expected: Vec<String> =
                ordered.iter().rev().take(HISTORY).rev().map(|(_, e)| e.item.clone()).collect();
            prop_assert_eq!(&sample.history, &expected, "sample {}", sample.seq);
        }
    }
}
