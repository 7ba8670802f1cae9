//! The serving build replayed: a server built from the log up to a cut
//! answers each user's next item after it. Compares the all-data build
//! (what `cascade serve` does) with the build on the protocol splits it did
//! before (users with fewer than 3 interactions unknown, the newest
//! interactions unseen by the models) and with popularity, by how many
//! interactions each user had at the build: HR@10 of the next item.
//!
//! Users new in the replayed weeks join the build with their first one or
//! two interactions (alternately), so the replay has users the build knows
//! by one or two interactions, as every production log has.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Result, anyhow};
use serde::Serialize;

use cascade_core::Event;
use cascade_serve::metrics::Metrics;
use cascade_serve::recommender::{Models, PipelineSettings, Recommender};
use cascade_serve::request::RecommendRequest;
use cascade_store::{EntityKind, EventKey, KeyedEvent};

use crate::progress::Progress;
use crate::registry::ModelKind;
use crate::serving::build::{ServingBuild, train_models};
use crate::workspace::Workspace;

/// What to replay.
#[derive(Debug, Clone)]
pub struct ServingReplay {
    /// The ranking model of both builds.
    pub ranker: ModelKind,
    /// The replayed weeks at the end of the log.
    pub test_weeks: u32,
    /// Items per list; a hit is the next item among them.
    pub k: usize,
}

/// HR@k of one arm in one group of users.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ArmHits {
    pub hits: usize,
    pub hr: f64,
}

/// One group of users (by their interactions in the build) and each arm:
/// `all_data` (what `cascade serve` builds), `all_data_unranked` (the same
/// models without the ranker: recall order, then the same re-ranking),
/// `protocol_splits` (the build before) and `popularity` (the build's most
/// consumed items the user has not consumed).
#[derive(Debug, Clone, Default, Serialize)]
pub struct GroupReport {
    pub users: usize,
    pub arms: BTreeMap<String, ArmHits>,
}

/// The replay's outcome, by group ("1", "2", "3+": the user's interactions
/// in the build).
#[derive(Debug, Clone, Serialize)]
pub struct ServingReplayReport {
    pub ranker: String,
    pub k: usize,
    pub cut_ms: i64,
    pub build_events: usize,
    pub groups: BTreeMap<String, GroupReport>,
}

/// The build's log and each target user's next item.
struct Cut {
    build: Vec<Event>,
    /// (user, next item, the user's interactions in the build).
    targets: Vec<(String, String, usize)>,
    cut_ms: i64,
}

/// Splits `events` (interactions in log order) at `test_weeks` before the
/// newest: everything earlier is built from, and users first seen later
/// bring their first one or two interactions; each user's next interaction
/// after what the build holds is the target.
fn cut(mut events: Vec<Event>, test_weeks: u32) -> Result<Cut> {
    events.sort_by_key(|e| e.ts_ms);
    let newest = events.last().ok_or_else(|| anyhow!("the store holds no interactions"))?.ts_ms;
    let cut_ms = newest - i64::from(test_weeks) * 7 * 86_400_000;
    let mut by_user: HashMap<&str, Vec<&Event>> = HashMap::new();
    for event in &events {
        by_user.entry(event.user.as_str()).or_default().push(event);
    }
    let mut users: Vec<&str> = by_user.keys().copied().collect();
    users.sort_unstable();
    let (mut build, mut targets) = (Vec::new(), Vec::new());
    let mut newcomers = 0usize;
    for user in users {
        let own = &by_user[user];
        let before = own.iter().take_while(|e| e.ts_ms < cut_ms).count();
        let known = match before {
            0 => {
                newcomers += 1;
                1 + newcomers % 2
            }
            n => n,
        };
        build.extend(own.iter().take(known).map(|e| (*e).clone()));
        let seen: HashSet<&str> = own.iter().take(known).map(|e| e.item.as_str()).collect();
        if let Some(next) = own.iter().skip(known).find(|e| !seen.contains(e.item.as_str())) {
            targets.push((user.to_owned(), next.item.clone(), known));
        }
    }
    Ok(Cut { build, targets, cut_ms })
}

/// Runs the replay on the interactions of `workspace`'s store (importing
/// `data` first when given).
pub fn run(
    workspace: &Workspace,
    data: Option<&Path>,
    replay: &ServingReplay,
    progress: Progress,
) -> Result<ServingReplayReport> {
    let store = workspace.store()?;
    workspace.ensure_data(&store, data, progress)?;
    let feedback: HashSet<&str> =
        workspace.config.labels.feedback_event_types().into_iter().collect();
    let mut events = Vec::new();
    store.replay(0, |stored| {
        if feedback.contains(stored.event.event_type.as_str()) {
            events.push(stored.event);
        }
    })?;
    let cut = cut(events, replay.test_weeks)?;
    let scratch = tempfile::tempdir()?;
    let built = Workspace::at(
        scratch.path().to_path_buf(),
        workspace.config.clone(),
        workspace.builtin_config,
    );
    let copy = built.store()?;
    for kind in [EntityKind::User, EntityKind::Item] {
        copy.upsert(kind, &store.records(kind)?)?;
    }
    let keyed: Vec<KeyedEvent> = cut
        .build
        .iter()
        .enumerate()
        .map(|(n, event)| KeyedEvent {
            key: EventKey::from_client_id(&n.to_string()),
            event: event.clone(),
        })
        .collect();
    copy.append(&keyed)?;

    let mut arms: Vec<(&str, Vec<bool>)> = Vec::new();
    let all_data = train_models(&built, ServingBuild::AllData, replay.ranker, progress)?;
    let (ranked, mut all_data) = hits_of(all_data, &cut.targets, replay.k)?;
    arms.push(("all_data", ranked));
    all_data.set_ranker(None);
    arms.push(("all_data_unranked", hits_of(all_data, &cut.targets, replay.k)?.0));
    let splits = train_models(&built, ServingBuild::ProtocolSplits, replay.ranker, progress)?;
    arms.push(("protocol_splits", hits_of(splits, &cut.targets, replay.k)?.0));
    arms.push(("popularity", popularity_hits(&cut, replay.k)));
    let mut groups: BTreeMap<String, GroupReport> = BTreeMap::new();
    for (t, (_, _, known)) in cut.targets.iter().enumerate() {
        let name = if *known < 3 { known.to_string() } else { "3+".to_owned() };
        let group = groups.entry(name).or_default();
        group.users += 1;
        for (arm, hits) in &arms {
            group.arms.entry((*arm).to_owned()).or_default().hits += usize::from(hits[t]);
        }
    }
    for group in groups.values_mut() {
        for arm in group.arms.values_mut() {
            arm.hr = arm.hits as f64 / group.users as f64;
        }
    }
    Ok(ServingReplayReport {
        ranker: replay.ranker.name().to_owned(),
        k: replay.k,
        cut_ms: cut.cut_ms,
        build_events: cut.build.len(),
        groups,
    })
}

/// Whether each target's next item is in the top `k` the served pipeline
/// returns for its user, and the models back.
fn hits_of(
    models: Models,
    targets: &[(String, String, usize)],
    k: usize,
) -> Result<(Vec<bool>, Models)> {
    let metrics = Arc::new(Metrics::default());
    let recommender = Recommender::new(models, PipelineSettings::default(), metrics);
    let hits = targets
        .iter()
        .map(|(user, next, _)| {
            let request: RecommendRequest =
                serde_json::from_value(serde_json::json!({ "user_id": user, "n": k }))?;
            let response =
                recommender.recommend(&request).map_err(|e| anyhow!("user {user}: {e}"))?;
            Ok(response.items.iter().any(|item| &item.item_id == next))
        })
        .collect::<Result<Vec<bool>>>()?;
    let shared = recommender.models();
    drop(recommender);
    let models = Arc::try_unwrap(shared).map_err(|_| anyhow!("the models are still shared"))?;
    Ok((hits, models))
}

/// Whether each target's next item is among the `k` items most consumed in
/// the build that its user has not consumed.
fn popularity_hits(cut: &Cut, k: usize) -> Vec<bool> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    let mut consumed: HashMap<&str, HashSet<&str>> = HashMap::new();
    for event in &cut.build {
        *counts.entry(event.item.as_str()).or_default() += 1;
        consumed.entry(event.user.as_str()).or_default().insert(event.item.as_str());
    }
    let mut ranked: Vec<(&str, usize)> = counts.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    cut.targets
        .iter()
        .map(|(user, next, _)| {
            let own = consumed.get(user.as_str());
            ranked
                .iter()
                .filter(|(item, _)| own.is_none_or(|own| !own.contains(item)))
                .take(k)
                .any(|(item, _)| item == next)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(user: &str, item: &str, day: i64) -> Event {
        let ts_ms = day * 86_400_000;
        Event {
            user: user.into(),
            item: item.into(),
            event_type: "rating".into(),
            value: None,
            ts_ms,
            served: None,
        }
    }

    #[test]
    fn the_cut_keeps_the_past_and_one_or_two_of_each_newcomer() {
        let events = vec![
            event("old", "a", 0),
            event("old", "b", 1),
            event("old", "c", 40),
            event("new-1", "a", 35),
            event("new-1", "b", 36),
            event("new-1", "c", 37),
            event("new-2", "c", 36),
            event("new-2", "a", 38),
            event("new-2", "b", 39),
            event("gone", "a", 2),
        ];
        // The newest event is day 40; four weeks before it is day 12.
        let cut = cut(events, 4).unwrap();
        assert_eq!(cut.cut_ms, 12 * 86_400_000);
        let built: Vec<(&str, &str)> =
            cut.build.iter().map(|e| (e.user.as_str(), e.item.as_str())).collect();
        assert!(built.contains(&("old", "a")) && built.contains(&("old", "b")));
        assert!(!built.contains(&("old", "c")), "after the cut");
        // Newcomers alternate: the first (in id order) brings two, the next one.
        assert!(built.contains(&("new-1", "a")) && built.contains(&("new-1", "b")));
        assert!(built.contains(&("new-2", "c")) && !built.contains(&("new-2", "a")));
        let targets: Vec<(&str, &str, usize)> =
            cut.targets.iter().map(|(u, i, n)| (u.as_str(), i.as_str(), *n)).collect();
        assert_eq!(targets, [("new-1", "c", 2), ("new-2", "a", 1), ("old", "c", 2)]);
    }
}
