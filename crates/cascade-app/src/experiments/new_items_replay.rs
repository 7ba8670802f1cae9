//! `cascade replay-new-items`: are items created after the build findable
//! by ANN recall once they have a few interactions, and what does moving
//! users' vectors online cost the items the build knew?
//!
//! Two disjoint sets of `--items` items each (validation and test) are
//! drawn, seeded, among items with at least `MIN_INTERACTIONS` training
//! interactions that are nobody's validation or test item under the
//! leave-one-out protocol, and BPR-MF trains without them. Each set's
//! training interactions are then replayed in time order (the log's
//! timestamps) against the serving models (`cascade_serve::Models`): an
//! item joins at its first interaction exactly as `PUT /v1/items/{id}`
//! adds it (`Models::add_item`: a cold-start vector from its genres), and
//! every interaction is scored before anything learns from it
//! (prequential): is the item in the top K of the user's `recall/ann`
//! once the user's consumed items are removed? Arms:
//! - **cold start**: items added, nothing learned;
//! - **online**: items added, and `OnlineRetrieval` (what `cascade serve
//!   --online-learning` runs) learns from each interaction once it is
//!   scored, with the learning rates the same replay of the validation
//!   items chose.
//!
//! After each replay, every user's leave-one-out item the replay does not
//! touch (the validation item after the validation replay, the test item
//! after the test one; both built items) is looked up the same way, with
//! the users' vectors as the arm left them: the cost, if any, of moving
//! users online. The validation replay picks the rates with the most
//! new-item hits among those that lose at most `TOLERATED_LOSS` of the
//! validation items' hit rate; the test items are never looked at to
//! choose.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};

use cascade_core::event::IMPRESSION;
use cascade_core::{IdIndex, Record};
use cascade_eval::protocols::LooSplit;
use cascade_models::random::SeededRng;
use cascade_models::retrieval::BprMf;
use cascade_models::training::Overrides;
use cascade_serve::catalog::{Catalog, ItemFactsReader};
use cascade_serve::recall::{CandidateSource, RecallContext};
use cascade_serve::recommender::Models;
use cascade_serve::retrieval_learning::{OnlineRetrieval, RetrievalLearningSettings};
use cascade_store::EntityKind;

use crate::evaluation::model_settings;
use crate::evaluation::{Prepared, prepare};
use crate::progress::Progress;
use crate::registry::ModelKind;
use crate::serving::build::{assemble, item_facts};
use crate::serving::server::ann_settings;
use crate::workspace::Workspace;

/// What `cascade replay-new-items` runs.
#[derive(Debug, Clone, Copy)]
pub struct NewItemsReplay {
    /// Items in each of the validation and test sets.
    pub items: usize,
    /// The cut-off of the top list a hit must be in.
    pub k: usize,
    /// Seed of the draw.
    pub seed: u64,
}

/// An item needs this many training interactions to be drawn: fewer would
/// leave nothing to learn from.
const MIN_INTERACTIONS: usize = 10;
/// Learning rates of new rows (added items, unseen users) the validation
/// replay chooses among.
const LEARNING_RATES: [f32; 4] = [0.03, 0.1, 0.3, 1.0];
/// Learning rates of the build's users it chooses among.
const BUILT_USER_LEARNING_RATES: [f32; 3] = [0.0, 0.01, 0.1];
/// Hit rate on the built items the chosen rates may cost, at most.
const TOLERATED_LOSS: f64 = 0.005;
/// Ranges of an item's interaction ordinal (1 = its first) hits are also
/// counted by: how fast an item becomes findable.
const ORDINALS: [(usize, usize); 3] = [(1, 5), (6, 20), (21, usize::MAX)];

/// Hits of one arm.
#[derive(Debug, Clone, Default)]
struct Hits {
    /// (interactions, in the top 10, in the top K).
    all: (u64, u64, u64),
    /// The same per `ORDINALS` range.
    by_ordinal: [(u64, u64, u64); 3],
}

impl Hits {
    fn record(&mut self, ordinal: usize, rank: Option<usize>) {
        let add = |counts: &mut (u64, u64, u64)| {
            counts.0 += 1;
            counts.1 += u64::from(rank.is_some_and(|r| r < 10));
            counts.2 += u64::from(rank.is_some());
        };
        add(&mut self.all);
        for (range, counts) in ORDINALS.iter().zip(&mut self.by_ordinal) {
            if (range.0..=range.1).contains(&ordinal) {
                add(counts);
            }
        }
    }

    fn rate(counts: (u64, u64, u64), k: usize) -> Value {
        let share = |hits: u64| hits as f64 / counts.0.max(1) as f64;
        json!({ "interactions": counts.0, "hr@10": share(counts.1), format!("hr@{k}"): share(counts.2) })
    }

    fn report(&self, k: usize) -> Value {
        let by_ordinal: serde_json::Map<String, Value> = ORDINALS
            .iter()
            .zip(&self.by_ordinal)
            .map(|(range, counts)| {
                let name = match range.1 {
                    usize::MAX => format!("{}+", range.0),
                    last => format!("{}-{last}", range.0),
                };
                (name, Hits::rate(*counts, k))
            })
            .collect();
        json!({ "all": Hits::rate(self.all, k), "by_interaction_ordinal": by_ordinal })
    }
}

/// The item's position in the user's `recall/ann` top `k`, consumed items
/// removed as serving removes them.
fn rank_in_recall(
    models: &Models,
    (user_id, user): (&str, u32),
    history: &[u32],
    item: u32,
    k: usize,
) -> Option<usize> {
    let context = RecallContext { user_id, user: Some(user), history };
    let consumed: HashSet<u32> = history.iter().copied().collect();
    let found = models.ann.recall(&context, k + history.len());
    found.into_iter().filter(|(i, _)| !consumed.contains(i)).take(k).position(|(i, _)| i == item)
}

/// What an arm replays with.
struct ReplayInputs<'a> {
    prepared: &'a Prepared,
    /// The build's split (held-out items removed), in the build's indices.
    split: &'a LooSplit,
    records: &'a HashMap<String, Record>,
    reader: &'a ItemFactsReader,
    k: usize,
}

/// Which leave-one-out item the protocol check after a replay looks up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProtocolItem {
    Valid,
    Test,
}

/// Replays `events` ((user, item) in the prepared indices, time order)
/// against fresh `models`, learning with `learning` if given. Returns the
/// hits on the replayed interactions and on every user's `then` item.
fn replay_arm(
    models: &Arc<Models>,
    events: &[(u32, u32)],
    learning: Option<RetrievalLearningSettings>,
    inputs: &ReplayInputs<'_>,
    then: ProtocolItem,
) -> Result<(Hits, Hits)> {
    let (users, items) = (&inputs.prepared.users, &inputs.prepared.items);
    let mut learner = learning.map(OnlineRetrieval::new);
    let mut ordinals: HashMap<u32, usize> = HashMap::new();
    let mut replayed: HashMap<u32, Vec<u32>> = HashMap::new();
    let mut hits = Hits::default();
    for &(user, old_item) in events {
        let (user_id, item_id) = (users.id(user), items.id(old_item));
        let item = match models.catalog.item_index(item_id) {
            Some(item) => item,
            None => {
                let record = inputs.records.get(item_id).cloned().unwrap_or_default();
                let added = models.add_item(item_id, &record, inputs.reader);
                added.map_err(|e| anyhow!(e))?.ok_or_else(|| anyhow!("{item_id} was built"))?.0
            }
        };
        let ordinal = ordinals.entry(old_item).or_default();
        *ordinal += 1;
        let mut history = inputs.split.train[user as usize].clone();
        history.extend(replayed.get(&user).into_iter().flatten());
        hits.record(*ordinal, rank_in_recall(models, (user_id, user), &history, item, inputs.k));
        replayed.entry(user).or_default().push(item);
        if let Some(learner) = &mut learner {
            learner.learn(models, [(user_id, item_id)]).map_err(|e| anyhow!(e))?;
        }
    }
    let mut protocol = Hits::default();
    for user in 0..inputs.split.n_users() as u32 {
        let mut history = inputs.split.train[user as usize].clone();
        history.extend(replayed.get(&user).into_iter().flatten());
        let target = match then {
            ProtocolItem::Valid => inputs.split.valid[user as usize],
            ProtocolItem::Test => {
                history.push(inputs.split.valid[user as usize]);
                inputs.split.test[user as usize]
            }
        };
        let rank = rank_in_recall(models, (users.id(user), user), &history, target, inputs.k);
        protocol.record(1, rank);
    }
    Ok((hits, protocol))
}

/// The replayed interactions of `held` items: every user's training
/// interactions with them, ordered by their time in the log.
fn interactions_of(
    prepared: &Prepared,
    held: &HashSet<u32>,
    times: &HashMap<(u32, u32), i64>,
) -> Vec<(u32, u32)> {
    let mut timed: Vec<(i64, u32, u32)> = Vec::new();
    for (user, history) in prepared.split.train.iter().enumerate() {
        for &item in history.iter().filter(|i| held.contains(i)) {
            let time = times.get(&(user as u32, item)).copied().unwrap_or(i64::MAX);
            timed.push((time, user as u32, item));
        }
    }
    timed.sort_unstable();
    timed.into_iter().map(|(_, user, item)| (user, item)).collect()
}

/// Runs the replay; the report as JSON.
pub fn run(
    workspace: &Workspace,
    data: Option<&std::path::Path>,
    options: NewItemsReplay,
    progress: Progress,
) -> Result<Value> {
    if options.items == 0 || options.k == 0 {
        bail!("--items and --k must be at least 1");
    }
    let prepared = prepare(workspace, data, progress)?;
    let split = &prepared.split;
    let mut in_protocol = vec![false; split.n_items];
    let mut interactions = vec![0usize; split.n_items];
    split.valid.iter().chain(&split.test).for_each(|&i| in_protocol[i as usize] = true);
    split.train.iter().flatten().for_each(|&i| interactions[i as usize] += 1);
    let mut eligible: Vec<u32> = (0..split.n_items as u32)
        .filter(|&i| !in_protocol[i as usize] && interactions[i as usize] >= MIN_INTERACTIONS)
        .collect();
    if eligible.len() < 2 * options.items {
        bail!(
            "only {} items qualify; ask for at most {} with --items",
            eligible.len(),
            eligible.len() / 2
        );
    }
    SeededRng::new(options.seed).shuffle(&mut eligible);
    let validation: HashSet<u32> = eligible[..options.items].iter().copied().collect();
    let test: HashSet<u32> = eligible[options.items..2 * options.items].iter().copied().collect();

    // The build: every other item, under indices of its own.
    let items = &prepared.items;
    let held = |i: &u32| validation.contains(i) || test.contains(i);
    let kept = IdIndex::new((0..items.len() as u32).filter(|i| !held(i)).map(|i| items.id(i)));
    let to_kept = |i: u32| kept.index(items.id(i));
    // Held-out items are drawn among items no user's validation or test
    // item is, so every one of those maps.
    let never_held = |items: &[u32]| -> Result<Vec<u32>> {
        let kept_index =
            |&i: &u32| to_kept(i).context("a held-out item is a validation or test item");
        items.iter().map(kept_index).collect()
    };
    let build_split = LooSplit {
        n_items: kept.len(),
        train: split.train.iter().map(|h| h.iter().filter_map(|&i| to_kept(i)).collect()).collect(),
        valid: never_held(&split.valid)?,
        test: never_held(&split.test)?,
    };
    let spinner = progress.spinner("training BPR-MF without the held-out items");
    let config = model_settings(workspace, ModelKind::BprMf, Overrides::default())?.bpr_mf();
    let (bpr, _) = BprMf::train(&build_split, &config, |_| {})?;
    spinner.finish_and_clear();
    let tables = bpr.tables();
    let facts = item_facts(workspace, &kept)?;
    let counts: Vec<f32> = (0..kept.len() as u32)
        .map(|i| items.index(kept.id(i)).map_or(0.0, |i| interactions[i as usize] as f32))
        .collect();
    let build = || -> Arc<Models> {
        let catalog = Catalog::new(
            prepared.users.clone(),
            kept.clone(),
            build_split.train.clone(),
            facts.clone(),
        );
        let ann = ann_settings(&workspace.config);
        let tables = [tables.0, tables.1];
        Arc::new(assemble("replay".into(), catalog, tables, None, &counts, None, ann))
    };

    let store = workspace.store()?;
    let mut times: HashMap<(u32, u32), i64> = HashMap::new();
    store.replay(0, |stored| {
        let event = stored.event;
        if event.event_type == IMPRESSION {
            return;
        }
        if let (Some(user), Some(item)) =
            (prepared.users.index(&event.user), items.index(&event.item))
            && held(&item)
        {
            times.entry((user, item)).or_insert(event.ts_ms);
        }
    })?;
    let mut records = HashMap::new();
    for &item in validation.iter().chain(&test) {
        let id = items.id(item);
        records.insert(id.to_owned(), store.get(EntityKind::Item, id)?.unwrap_or_default());
    }
    let reader = workspace.item_facts_reader();
    let inputs = ReplayInputs {
        prepared: &prepared,
        split: &build_split,
        records: &records,
        reader: &reader,
        k: options.k,
    };

    let hit_rate = |hits: &Hits| hits.all.2 as f64 / hits.all.0.max(1) as f64;
    let validation_events = interactions_of(&prepared, &validation, &times);
    let test_events = interactions_of(&prepared, &test, &times);
    let grid_size = LEARNING_RATES.len() * BUILT_USER_LEARNING_RATES.len();
    let bar = progress.bar(grid_size as u64 + 3, "replaying", "replays");
    let (_, cold_valid) =
        replay_arm(&build(), &validation_events, None, &inputs, ProtocolItem::Valid)?;
    bar.inc(1);
    let floor = hit_rate(&cold_valid) - TOLERATED_LOSS;
    let mut grid = Vec::new();
    let mut chosen: Option<(RetrievalLearningSettings, f64)> = None;
    for learning_rate in LEARNING_RATES {
        for built_user_learning_rate in BUILT_USER_LEARNING_RATES {
            let settings = RetrievalLearningSettings {
                learning_rate,
                built_user_learning_rate,
                ..RetrievalLearningSettings::default()
            };
            let (new, built) = replay_arm(
                &build(),
                &validation_events,
                Some(settings),
                &inputs,
                ProtocolItem::Valid,
            )?;
            let (new, built) = (hit_rate(&new), hit_rate(&built));
            grid.push(json!({
                "learning_rate": learning_rate,
                "built_user_learning_rate": built_user_learning_rate,
                "new_items_hr": new,
                "protocol_valid_items_hr": built,
            }));
            if built >= floor && chosen.is_none_or(|(_, best)| new > best) {
                chosen = Some((settings, new));
            }
            bar.inc(1);
        }
    }
    let chosen = chosen.map_or_else(RetrievalLearningSettings::default, |(s, _)| s);
    let (cold, cold_protocol) =
        replay_arm(&build(), &test_events, None, &inputs, ProtocolItem::Test)?;
    bar.inc(1);
    let (online, online_protocol) =
        replay_arm(&build(), &test_events, Some(chosen), &inputs, ProtocolItem::Test)?;
    bar.finish_and_clear();

    let arm = |new: &Hits, protocol: &Hits| json!({ "new_items": new.report(options.k), "protocol_test_items": protocol.report(options.k)["all"] });
    let report = json!({
        "experiment": "replay-new-items",
        "items_per_set": options.items,
        "k": options.k,
        "seed": options.seed,
        "built_items": kept.len(),
        "validation_interactions": validation_events.len(),
        "test_interactions": test_events.len(),
        "validation": {
            "cold_start_protocol_valid_items_hr": hit_rate(&cold_valid),
            "tolerated_loss": TOLERATED_LOSS,
            "grid": grid,
        },
        "chosen": {
            "learning_rate": chosen.learning_rate,
            "built_user_learning_rate": chosen.built_user_learning_rate,
        },
        "arms": {
            "cold_start": arm(&cold, &cold_protocol),
            "online": arm(&online, &online_protocol),
        },
    });
    Ok(report)
}
