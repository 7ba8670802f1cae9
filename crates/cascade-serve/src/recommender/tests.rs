//! The recommender's pipeline on the small fixture: stages, filters,
//! pins, the exposure cap and the stream's histories.

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::exposure::EXPOSURE_SWEEP_EVERY;
use crate::recall::AnnBackend;
use crate::rerank::Propensities;
use crate::test_fixture::small_recommender;

fn recommender(settings: PipelineSettings) -> Recommender {
    small_recommender(settings, AnnBackend::Usearch)
}

fn request(user: &str, n: usize) -> RecommendRequest {
    RecommendRequest {
        user_id: user.into(),
        context: BTreeMap::new(),
        n: Some(n),
        exclude: Vec::new(),
        pin: Vec::new(),
        filters: Filters::default(),
    }
}

fn ask(r: &Recommender, user: &str, n: usize) -> Vec<String> {
    r.recommend(&request(user, n)).unwrap().items.into_iter().map(|i| i.item_id).collect()
}

/// A real redb store in `dir` with a stream processor following it.
fn live_stream(dir: &std::path::Path) -> (cascade_store::Store, Arc<LiveStream>) {
    let store = cascade_store::Store::open(&dir.join("store.redb")).unwrap();
    let checkpoint = dir.join("stream.json");
    let processor = cascade_stream::StreamProcessor::open(
        store.clone(),
        &checkpoint,
        cascade_stream::StreamSettings::default(),
        HashMap::new(),
    )
    .unwrap();
    let live = LiveStream::start(processor, checkpoint, Default::default()).unwrap();
    (store, live)
}

#[test]
fn logged_events_join_the_history_through_the_stream_processor() {
    let dir = tempfile::tempdir().unwrap();
    let (store, live) = live_stream(dir.path());
    let settings = PipelineSettings {
        exposure_cap: None,
        trending_refresh: Duration::ZERO,
        trending_pool: 200,
        ..PipelineSettings::default()
    };
    let r = recommender(settings).with_live(live.clone());
    let first = ask(&r, "a", 5);
    let log = |events: &[(&str, &str, &str)]| {
        let keyed: Vec<cascade_store::KeyedEvent> = events
            .iter()
            .map(|&(user, item, event_type)| cascade_store::KeyedEvent {
                key: cascade_store::EventKey::from_client_id(&format!("{user}{item}{event_type}")),
                event: cascade_core::Event {
                    user: user.into(),
                    item: item.into(),
                    event_type: event_type.into(),
                    value: None,
                    ts_ms: 0,
                    served: None,
                },
            })
            .collect();
        let last = store.append(&keyed).unwrap().last().unwrap().seq();
        live.notify();
        assert!(live.wait_applied(last + 1, Duration::from_secs(5)));
    };
    // An impression is not consumption; an unknown item is ignored.
    log(&[("a", &first[0], "impression"), ("a", "no-such-item", "click")]);
    assert_eq!(ask(&r, "a", 5)[0], first[0]);
    log(&[("a", &first[0], "click")]);
    assert!(!ask(&r, "a", 27).contains(&first[0]), "a consumed item is excluded");
    // What was just clicked is trending: a user unrelated to it is offered it.
    let items = r.recommend(&request("stranger", 27)).unwrap().items;
    let trending: Vec<&str> = items
        .iter()
        .filter(|i| i.sources.iter().any(|s| s == "recall/trending"))
        .map(|i| i.item_id.as_str())
        .collect();
    assert!(trending.contains(&first[0].as_str()), "{items:?}");
    // A user the catalog never saw gets history-based recall from events.
    log(&[("new", "3", "click"), ("new", "4", "click")]);
    let items = r.recommend(&request("new", 10)).unwrap().items;
    assert!(items.iter().all(|i| i.item_id != "3" && i.item_id != "4"));
    assert!(items.iter().any(|i| i.sources.iter().any(|s| s == "recall/item_cf")), "{items:?}");
}

#[test]
fn users_whose_exposures_left_the_window_are_forgotten() {
    let window = Duration::from_millis(50);
    let settings = PipelineSettings { exposure_window: window, ..PipelineSettings::default() };
    let r = recommender(settings);
    ask(&r, "a", 3);
    ask(&r, "b", 3);
    assert_eq!(r.exposure_users(), 2);
    std::thread::sleep(window * 2);
    // Enough requests from a third user to pass one sweep.
    for _ in 0..EXPOSURE_SWEEP_EVERY {
        ask(&r, "c", 1);
    }
    assert_eq!(r.exposure_users(), 1, "only the user seen within the window");
}

#[test]
fn category_filters_restrict_and_exclude() {
    let r = recommender(PipelineSettings { exposure_cap: None, ..PipelineSettings::default() });
    let category = |id: &str| id.parse::<usize>().unwrap() % 3;
    let mut only = request("a", 5);
    only.filters.categories = vec!["c1".into()];
    let items = r.recommend(&only).unwrap().items;
    assert_eq!(items.len(), 5);
    assert!(items.iter().all(|i| category(&i.item_id) == 1), "{items:?}");
    let mut never = request("b", 10);
    never.filters.exclude_categories = vec!["c0".into(), "c2".into()];
    let items = r.recommend(&never).unwrap().items;
    assert!(!items.is_empty() && items.iter().all(|i| category(&i.item_id) == 1), "{items:?}");
    let mut typo = request("a", 5);
    typo.filters.categories = vec!["c9".into()];
    let error = r.recommend(&typo).unwrap_err();
    assert!(error.to_string().contains("\"c9\""), "{error}");
}

#[test]
fn every_channel_contributes_and_sources_are_reported() {
    let r = recommender(PipelineSettings { exposure_cap: None, ..PipelineSettings::default() });
    let items = r.recommend(&request("b", 26)).unwrap().items;
    let sources: HashSet<&str> =
        items.iter().flat_map(|i| i.sources.iter().map(String::as_str)).collect();
    for channel in ["recall/ann", "recall/item_cf", "recall/category_popular", "recall/fresh"] {
        assert!(sources.contains(channel), "{channel} missing from {sources:?}");
    }
}

#[test]
fn consumed_and_hidden_items_never_come_back() {
    let r = recommender(PipelineSettings { exposure_cap: None, ..PipelineSettings::default() });
    let first = ask(&r, "a", 10);
    assert_eq!(first.len(), 10);
    assert!(first.iter().all(|i| !["0", "1", "2"].contains(&i.as_str())), "{first:?}");
    r.hide(&first[0]).unwrap();
    assert!(!ask(&r, "a", 27).contains(&first[0]));
    assert!(matches!(r.hide("nope"), Err(ServeError::NotFound(_))));
}

#[test]
fn a_pin_never_resurrects_a_hidden_item_and_pins_may_not_collide() {
    let r = recommender(PipelineSettings { exposure_cap: None, ..PipelineSettings::default() });
    let pinned = |pins: &[(&str, usize)]| RecommendRequest {
        pin: pins
            .iter()
            .map(|&(item, position)| PinRule { item_id: item.into(), position })
            .collect(),
        ..request("a", 5)
    };
    let shown = r.recommend(&pinned(&[("3", 0), ("4", 2)])).unwrap().items;
    assert_eq!((shown[0].item_id.as_str(), shown[2].item_id.as_str()), ("3", "4"));
    r.hide("3").unwrap();
    let shown = ask_ids(&r, &pinned(&[("3", 0), ("4", 2)]));
    assert!(!shown.contains(&"3".to_owned()), "hidden, pinned or not: {shown:?}");
    assert_eq!(shown.len(), 5);
    for (pins, message) in [
        (&[("4", 1), ("5", 1)][..], "pin[1] and pin[0] both take position 1"),
        (&[("4", 1), ("4", 2)][..], "pin[1]: \"4\" is pinned twice"),
        (&[("4", 5)][..], "pin[0]: position 5 is outside a list of n = 5"),
    ] {
        match r.recommend(&pinned(pins)) {
            Err(ServeError::Invalid(error)) => assert_eq!(error, message),
            other => panic!("{pins:?}: expected 400, got {other:?}"),
        }
    }
}

#[test]
fn ids_longer_than_the_bound_are_refused_by_field() {
    let r = recommender(PipelineSettings { max_id_bytes: 16, ..PipelineSettings::default() });
    let long = "x".repeat(17);
    let cases = [
        (RecommendRequest { user_id: long.clone(), ..request("a", 5) }, "user_id is 17"),
        (
            RecommendRequest { exclude: vec!["1".into(), long.clone()], ..request("a", 5) },
            "exclude[1] is 17",
        ),
    ];
    for (request, message) in cases {
        match r.recommend(&request) {
            Err(ServeError::Invalid(error)) => {
                assert!(error.starts_with(message), "{error}")
            }
            other => panic!("expected 400, got {other:?}"),
        }
    }
    assert_eq!(ask(&r, &"a".repeat(16), 5).len(), 5, "at the bound is fine");
}

fn ask_ids(r: &Recommender, request: &RecommendRequest) -> Vec<String> {
    r.recommend(request).unwrap().items.into_iter().map(|i| i.item_id).collect()
}

/// Proposes items 29 and 28, in that order.
struct Mine;
impl CandidateSource for Mine {
    fn name(&self) -> &'static str {
        "recall/mine"
    }
    fn recall(&self, _: &RecallContext<'_>, n: usize) -> Vec<(u32, f32)> {
        [(29, 1.0), (28, 0.5)].into_iter().take(n).collect()
    }
}

/// Drops every item with an even index.
struct OddOnly;
impl Reranker for OddOnly {
    fn name(&self) -> &str {
        "odd_only"
    }
    fn rerank(&self, slate: &mut Slate, _: &RerankContext<'_>) -> Result<(), ServeError> {
        slate.items.retain(|entry| entry.item % 2 == 1);
        Ok(())
    }
}

#[test]
fn stages_are_the_listed_values_in_their_order() {
    let only_popular = PipelineSettings {
        channels: vec![("popular".into(), 10)],
        rerankers: vec!["diversity".into()],
        ..PipelineSettings::default()
    };
    let items = recommender(only_popular).recommend(&request("a", 8)).unwrap().items;
    assert_eq!(items.len(), 8);
    assert!(items.iter().all(|i| i.sources == ["recall/popular"]), "{items:?}");

    let settings = PipelineSettings {
        channels: vec![("mine".into(), 2), ("ann".into(), 20)],
        rerankers: vec!["odd_only".into(), "diversity".into()],
        exposure_cap: None,
        ..PipelineSettings::default()
    };
    let unregistered = recommender(settings.clone());
    let error = unregistered.check_pipeline().unwrap_err();
    assert!(
        error.starts_with("recommend.channels[0]: no recall channel named \"mine\""),
        "{error}"
    );
    assert!(matches!(unregistered.recommend(&request("a", 3)), Err(ServeError::Unavailable(_))));
    let r = recommender(settings)
        .with_channel(Box::new(Mine))
        .and_then(|r| r.with_reranker(Box::new(OddOnly)))
        .unwrap();
    r.check_pipeline().unwrap();
    let items = r.recommend(&request("a", 6)).unwrap().items;
    assert!(items.iter().all(|i| i.item_id.parse::<u32>().unwrap() % 2 == 1), "{items:?}");
    let mine: Vec<&str> = items
        .iter()
        .filter(|i| i.sources[0] == "recall/mine")
        .map(|i| i.item_id.as_str())
        .collect();
    assert_eq!(mine, ["29"], "28 is even; 29 was proposed first: {items:?}");
}

#[test]
fn only_listed_names_can_be_registered_and_pins_need_their_step() {
    let r = recommender(PipelineSettings::default());
    let error = r.with_channel(Box::new(Mine)).unwrap_err();
    assert!(error.contains("not listed in [recommend] channels"), "{error}");
    let r = recommender(PipelineSettings::default());
    let error = r.with_reranker(Box::new(OddOnly)).unwrap_err();
    assert!(error.contains("not listed in [recommend] rerankers"), "{error}");
    let no_pins =
        PipelineSettings { rerankers: vec!["diversity".into()], ..PipelineSettings::default() };
    let pinned = RecommendRequest {
        pin: vec![PinRule { item_id: "3".into(), position: 0 }],
        ..request("a", 5)
    };
    match recommender(no_pins).recommend(&pinned) {
        Err(ServeError::Invalid(error)) => {
            assert!(error.contains("no pins step"), "{error}")
        }
        other => panic!("expected 400, got {other:?}"),
    }
}

#[test]
fn the_exposure_cap_rotates_items_out() {
    let settings = PipelineSettings { exposure_cap: Some(2), ..PipelineSettings::default() };
    let r = recommender(settings);
    let first = ask(&r, "b", 5);
    assert_eq!(ask(&r, "b", 5), first, "same request, same answer below the cap");
    let third = ask(&r, "b", 5);
    assert!(third.iter().all(|i| !first.contains(i)), "{first:?} then {third:?}");
    // Another user is unaffected.
    assert_eq!(ask(&r, "a", 5).len(), 5);
}

fn scored(ids: &[&str]) -> Vec<ScoredItem> {
    ids.iter()
        .enumerate()
        .map(|(k, id)| ScoredItem {
            item_id: (*id).to_owned(),
            score: Some(1.0 / (k + 1) as f32),
            rank: k + 1,
            sources: vec!["recall/popular".into()],
            team: None,
            propensity: None,
        })
        .collect()
}

/// Team-draft: each pick goes to the team with fewer picks (a fair coin on
/// ties) and takes its best item not yet drafted; no item twice; ranks
/// renumbered; over many lists each team leads half the time.
#[test]
fn team_draft_alternates_fairly_without_duplicates() {
    let teams = ["a".to_owned(), "b".to_owned()];
    let (a, b) = (scored(&["1", "2", "3", "4", "5"]), scored(&["2", "6", "1", "7", "8"]));
    let mut first_to_a = 0;
    for seed in 0..1_000 {
        let drafted = team_draft([&a, &b], &teams, 6, seed);
        let ids: Vec<&str> = drafted.iter().map(|i| i.item_id.as_str()).collect();
        let unique: HashSet<&str> = ids.iter().copied().collect();
        assert_eq!(unique.len(), ids.len(), "{ids:?}");
        assert_eq!(drafted.iter().map(|i| i.rank).collect::<Vec<_>>(), (1..=6).collect::<Vec<_>>());
        let of = |team: &str| drafted.iter().filter(|i| i.team.as_deref() == Some(team)).count();
        assert_eq!((of("a"), of("b")), (3, 3), "{ids:?}");
        // Each team's picks keep its own order.
        let a_picks: Vec<&str> = drafted
            .iter()
            .filter(|i| i.team.as_deref() == Some("a"))
            .map(|i| i.item_id.as_str())
            .collect();
        let positions: Vec<usize> =
            a_picks.iter().map(|id| a.iter().position(|i| i.item_id == *id).unwrap()).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{a_picks:?}");
        first_to_a += usize::from(drafted[0].team.as_deref() == Some("a"));
    }
    assert!((450..=550).contains(&first_to_a), "a led {first_to_a} of 1,000 lists");
    let short = team_draft([&a[..1], &b[..1]], &teams, 5, 1);
    assert_eq!(short.len(), 2, "two lists of one distinct item each");
}

fn exploring(
    step: &str,
    exploration: cascade_core::serve_config::ExplorationConfig,
) -> Recommender {
    let mut rerankers = PipelineSettings::default().rerankers;
    rerankers.retain(|name| name != "exposure_cap" && name != "pins");
    rerankers.push(step.into());
    recommender(PipelineSettings {
        rerankers,
        exploration,
        exposure_cap: None,
        ..PipelineSettings::default()
    })
}

/// Plackett-Luce lists, asked 2,000 times: how often each item opens the
/// list matches the first slot's logged item-position propensity (a
/// softmax, exact); every slot's prefix propensity multiplies up to the
/// slate's; the policy is named.
#[test]
fn exploring_lists_follow_their_logged_propensities() {
    let config =
        cascade_core::serve_config::ExplorationConfig { temperature: 0.3, ..Default::default() };
    let r = exploring("plackett_luce", config);
    let draws = 2_000;
    let mut first: HashMap<String, (usize, f64)> = HashMap::new();
    let mut lists = HashSet::new();
    for _ in 0..draws {
        let response = r.recommend(&request("a", 4)).unwrap();
        assert_eq!(response.policy.as_deref(), Some("plackett_luce(temperature=0.3)"));
        let p: Vec<_> = response.items.iter().map(|i| i.propensity.unwrap()).collect();
        assert_eq!(p.len(), 4);
        assert_eq!(p[3].cascade, p[0].slate, "the last prefix is the slate");
        assert!(p.windows(2).all(|w| w[1].cascade <= w[0].cascade && w[0].slate == w[1].slate));
        assert!(p.iter().all(|q| q.item_position > 0.0 && q.item_position <= 1.0));
        let entry = first.entry(response.items[0].item_id.clone()).or_insert((0, 0.0));
        entry.0 += 1;
        entry.1 = p[0].item_position;
        lists.insert(response.items.iter().map(|i| i.item_id.clone()).collect::<Vec<_>>());
    }
    assert!(lists.len() > 5, "the lists vary: {} distinct", lists.len());
    for (item, (count, logged)) in &first {
        let freq = *count as f64 / draws as f64;
        let se = (logged * (1.0 - logged) / draws as f64).sqrt();
        assert!(
            (freq - logged).abs() < 5.0 * se + 1e-3,
            "{item}: {freq} shown first, {logged} logged"
        );
    }
}

/// A learned policy's biases move items up the list: with none it serves
/// the greedy list; a large bias on the fifth item puts it first. Its
/// lists are certain and labelled; a missing file is refused by key.
#[test]
fn a_learned_policy_ranks_by_its_logits() {
    let dir = tempfile::tempdir().unwrap();
    let save = |name: &str, biases: &[(&str, f64)]| {
        let policy = cascade_policy::learning::SavedPolicy {
            label: "test".into(),
            relevance_weight: 10.0,
            item_bias: biases.iter().map(|&(id, b)| (id.to_owned(), b)).collect(),
        };
        let path = dir.path().join(name);
        std::fs::write(&path, serde_json::to_string(&policy).unwrap()).unwrap();
        path.display().to_string()
    };
    let learned = |path: String| {
        let config = cascade_core::serve_config::ExplorationConfig {
            learned_policy: path,
            ..Default::default()
        };
        exploring("learned_policy", config)
    };
    let greedy = ask(&learned(save("none.json", &[])), "b", 5);
    let fifth = greedy[4].clone();
    let promoted = learned(save("fifth.json", &[(&fifth, 100.0)]));
    let response = promoted.recommend(&request("b", 5)).unwrap();
    assert_eq!(response.items[0].item_id, fifth, "{greedy:?}");
    assert_eq!(response.policy.as_deref(), Some("learned(test)"));
    assert!(response.items.iter().all(|i| i.propensity == Some(Propensities::CERTAIN)));
    let missing = dir.path().join("missing.json").display().to_string();
    let settings = PipelineSettings {
        rerankers: vec!["learned_policy".into()],
        exploration: cascade_core::serve_config::ExplorationConfig {
            learned_policy: missing,
            ..Default::default()
        },
        ..PipelineSettings::default()
    };
    let error = settings.check_stages(|_| false, |_| false).unwrap_err();
    assert!(error.starts_with("recommend.exploration.learned_policy: reading"), "{error}");
}

/// ε = 0 serves the greedy list, and every propensity is exactly 1.
#[test]
fn exploration_switched_off_serves_the_greedy_list_with_certainty() {
    let config =
        cascade_core::serve_config::ExplorationConfig { epsilon: 0.0, ..Default::default() };
    let greedy = exploring("epsilon_greedy", config);
    let mut plain = PipelineSettings { exposure_cap: None, ..PipelineSettings::default() };
    plain.rerankers.retain(|name| name != "exposure_cap" && name != "pins");
    let plain = recommender(plain);
    let response = greedy.recommend(&request("b", 5)).unwrap();
    let ids: Vec<String> = response.items.iter().map(|i| i.item_id.clone()).collect();
    assert_eq!(ids, ask(&plain, "b", 5));
    assert!(response.items.iter().all(|i| i.propensity == Some(Propensities::CERTAIN)));
    let unexplored = plain.recommend(&request("b", 5)).unwrap();
    assert_eq!(unexplored.policy, None);
    assert!(unexplored.items.iter().all(|i| i.propensity.is_none()), "absent means certain");
}

#[test]
fn an_exploring_step_must_come_last() {
    let mut settings = PipelineSettings::default();
    settings.rerankers.insert(0, "plackett_luce".into());
    let error = settings.check_stages(|_| false, |_| false).unwrap_err();
    assert!(error.starts_with("recommend.rerankers[0]: the exploring step"), "{error}");
    let mut settings = PipelineSettings::default();
    settings.rerankers.push("epsilon_greedy".into());
    let error = settings.check_stages(|_| false, |_| false).unwrap_err();
    assert!(error.contains("cannot share a pipeline with pins"), "{error}");
    settings.rerankers.retain(|step| step != "pins");
    assert_eq!(settings.check_stages(|_| false, |_| false), Ok(()));
    settings.exploration.epsilon = 1.5;
    let error = settings.check_stages(|_| false, |_| false).unwrap_err();
    assert!(error.starts_with("recommend.exploration.epsilon"), "{error}");
}

/// Thompson sampling reads the items' windows from the stream processor:
/// without one it is refused by name; with one, an item that other users
/// clicked at every showing leads the lists far more often than one shown
/// as often and never clicked, and every slot logs a propensity.
#[test]
fn thompson_sampling_favours_items_the_stream_saw_clicked() {
    let without = exploring("thompson", Default::default());
    let error = without.recommend(&request("a", 5)).unwrap_err().to_string();
    assert!(error.contains("thompson needs the stream processor"), "{error}");

    let dir = tempfile::tempdir().unwrap();
    let (store, live) = live_stream(dir.path());
    let r = exploring("thompson", Default::default()).with_live(live.clone());
    let greedy = ask(&r, "b", 10);
    let (liked, ignored) = (&greedy[8], &greedy[9]);
    let now = cascade_core::timestamp::now_ms();
    let mut events = Vec::new();
    for k in 0..300 {
        let user = format!("other-{k}");
        for (item, clicked) in [(liked, true), (ignored, false)] {
            events.push((user.clone(), item.clone(), "impression", now));
            if clicked {
                events.push((user.clone(), item.clone(), "click", now + 1));
            }
        }
    }
    let keyed: Vec<cascade_store::KeyedEvent> = events
        .iter()
        .enumerate()
        .map(|(k, (user, item, event_type, ts_ms))| cascade_store::KeyedEvent {
            key: cascade_store::EventKey::from_client_id(&k.to_string()),
            event: cascade_core::Event {
                user: user.clone(),
                item: item.clone(),
                event_type: (*event_type).into(),
                value: None,
                ts_ms: *ts_ms,
                served: None,
            },
        })
        .collect();
    let last = store.append(&keyed).unwrap().last().unwrap().seq();
    live.notify();
    assert!(live.wait_applied(last + 1, Duration::from_secs(10)));
    let mut leads = HashMap::new();
    for _ in 0..200 {
        let response = r.recommend(&request("b", 10)).unwrap();
        assert_eq!(response.policy.as_deref(), Some("thompson"));
        assert!(response.items.iter().all(|i| {
            let p = i.propensity.unwrap();
            p.item_position > 0.0 && p.item_position <= 1.0
        }));
        *leads.entry(response.items[0].item_id.clone()).or_insert(0) += 1;
    }
    let count = |item: &String| leads.get(item).copied().unwrap_or(0);
    assert!(count(liked) > 100, "the clicked item leads most lists: {leads:?}");
    assert_eq!(count(ignored), 0, "{leads:?}");
}

/// The linear bandit keeps the ranker's order for all but its reserved
/// slots (certain, propensity 1) and fills those from the other
/// candidates with logged Monte-Carlo propensities; it needs the stream.
#[test]
fn the_linear_bandit_fills_its_reserved_slots_from_outside_the_rankers_list() {
    let without = exploring("linear_thompson", Default::default());
    let error = without.recommend(&request("a", 5)).unwrap_err().to_string();
    assert!(error.contains("linear_thompson needs the stream processor"), "{error}");

    let dir = tempfile::tempdir().unwrap();
    let (_store, live) = live_stream(dir.path());
    let r = exploring("linear_thompson", Default::default()).with_live(live);
    let greedy = exploring(
        "epsilon_greedy",
        cascade_core::serve_config::ExplorationConfig { epsilon: 0.0, ..Default::default() },
    );
    let ranked = ask(&greedy, "b", 8);
    let mut reserved_items = HashSet::new();
    for _ in 0..50 {
        let response = r.recommend(&request("b", 8)).unwrap();
        assert_eq!(response.policy.as_deref(), Some("linear_thompson(slots=2, scale=1)"));
        let ids: Vec<String> = response.items.iter().map(|i| i.item_id.clone()).collect();
        assert_eq!(ids[..6], ranked[..6], "the ranker's slots");
        for (k, item) in response.items.iter().enumerate() {
            let p = item.propensity.unwrap();
            if k < 6 {
                assert_eq!(p.item_position, 1.0);
            } else {
                assert!(p.item_position > 0.0 && p.item_position <= 1.0);
                assert!(!ranked[..6].contains(&item.item_id));
                reserved_items.insert(item.item_id.clone());
            }
        }
    }
    assert!(reserved_items.len() > 2, "the reserved slots vary: {reserved_items:?}");
}
