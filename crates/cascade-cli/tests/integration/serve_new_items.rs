//! Items created through the API while `cascade serve --online-learning`
//! runs: in the ANN index when the PUT answers, recommended within 5 s,
//! and their vectors (and their consumers') learned from the first clicks.
//! Runs inside the serve scenario, on its server.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::serve::{get, item_ids, metric, post, put};

fn recommended(base: &str, user: &str, n: usize) -> Vec<Value> {
    let (status, body) =
        post(base, "/v1/recommend", &format!(r#"{{"user_id": "{user}", "n": {n}}}"#));
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<Value>(&body).unwrap()["items"].as_array().unwrap().clone()
}

fn similar(base: &str, item: &str) -> Vec<String> {
    let (status, body) = get(base, &format!("/v1/items/{item}/similar?n=10"));
    assert_eq!(status, 200, "{body}");
    item_ids(&serde_json::from_str(&body).unwrap())
}

pub fn new_items_join_at_once_and_learn(base: &str) {
    let film =
        r#"{"title": "Brand New (2026)", "genres": ["War", "Drama"], "release_date": 1.79e12}"#;
    assert_eq!(get(base, "/v1/items/brand-new/similar").0, 404, "unknown before the PUT");
    let put_at = Instant::now();
    assert_eq!(put(base, "/v1/items/brand-new", film).0, 201);
    // In the index when the PUT answers: its neighbours are searchable.
    let before = similar(base, "brand-new");
    assert_eq!(before.len(), 10);
    // Recommended within 5 s (the newest item leads `recall/fresh`).
    loop {
        let items = recommended(base, "2", 50);
        if let Some(item) = items.iter().find(|i| i["item_id"] == "brand-new") {
            let sources = item["sources"].as_array().unwrap();
            assert!(sources.iter().any(|s| s == "recall/fresh" || s == "recall/ann"), "{item}");
            break;
        }
        assert!(put_at.elapsed() < Duration::from_secs(5), "not recommended within 5 s");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Thirty users click it, and a user the build never saw clicks three
    // films: the learner moves the new item's vector and the new user's.
    let mut events: Vec<String> = (1..=30)
        .map(|u| {
            format!(r#"{{"event_id": "bn-{u}", "user_id": "{u}", "item_id": "brand-new", "event_type": "click"}}"#)
        })
        .collect();
    events.push(
        r#"{"event_id": "critic-1", "user_id": "critic", "item_id": "brand-new", "event_type": "click"}"#
            .to_owned(),
    );
    for film in ["50", "181", "172"] {
        events.push(format!(
            r#"{{"event_id": "fan-{film}", "user_id": "fan", "item_id": "{film}", "event_type": "click"}}"#
        ));
    }
    let (status, body) =
        post(base, "/v1/events", &format!(r#"{{"events": [{}]}}"#, events.join(",")));
    assert_eq!(status, 200, "{body}");
    let started = Instant::now();
    loop {
        let (_, metrics) = get(base, "/metrics");
        let items = metric(&metrics, "cascade_retrieval_item_vectors_moved_total");
        let users = metric(&metrics, "cascade_retrieval_user_vectors_moved_total");
        // The build's users keep their vectors by default: only "fan" moves.
        if items >= 1 && users >= 1 {
            assert!(metric(&metrics, "cascade_items_added_total") >= 1, "{metrics}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "nothing learned: {metrics}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_ne!(similar(base, "brand-new"), before, "the item's vector moved");
    // The stream processor knows the new item's genres for affinities.
    let (_, body) = get(base, "/v1/users/critic/features");
    let features: Value = serde_json::from_str(&body).unwrap();
    let categories: Vec<&str> = features["category_affinities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["category"].as_str().unwrap())
        .collect();
    assert!(categories.contains(&"War") && categories.contains(&"Drama"), "{body}");
    // The new user now has a vector of its own, and ANN recall with it.
    let items = recommended(base, "fan", 30);
    let from_ann =
        items.iter().filter(|i| i["sources"].as_array().unwrap().iter().any(|s| s == "recall/ann"));
    assert!(from_ann.count() > 0, "{items:?}");
}
