//! Every user's interactions read straight from the event log, in protocol
//! order, without the batch pipeline: what a reload from checkpoints builds
//! its catalog from, so it costs a scan of the log instead of an export and
//! a DataFusion run.

use std::collections::HashMap;

use anyhow::Result;

use cascade_core::{Config, IdIndex};
use cascade_store::Store;

/// Users, items and histories, as the batch pipeline's `interactions`
/// view defines them.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreHistories {
    /// Every user with at least one interaction.
    pub users: IdIndex,
    /// Every item with at least one interaction.
    pub items: IdIndex,
    /// Each user's items, indexed by `items`, oldest first.
    pub histories: Vec<Vec<u32>>,
}

impl StoreHistories {
    /// Scans `store`'s log once. Interactions are the config's feedback
    /// events; each user's are ordered by event time, ties by log order:
    /// the same rule, and so the same histories, as the pipeline's
    /// `interactions` view (`ORDER BY ts_ms, seq`).
    pub fn read(store: &Store, config: &Config) -> Result<StoreHistories> {
        let feedback = config.labels.feedback_event_types();
        let mut by_user: HashMap<String, Vec<(i64, u64, String)>> = HashMap::new();
        store.replay(0, |stored| {
            let event = stored.event;
            if feedback.contains(&event.event_type.as_str()) {
                by_user.entry(event.user).or_default().push((event.ts_ms, stored.seq, event.item));
            }
        })?;
        let items = IdIndex::new(by_user.values().flatten().map(|(_, _, item)| item.clone()));
        let users = IdIndex::new(by_user.keys().cloned());
        let mut histories = vec![Vec::new(); users.len()];
        for (user, mut events) in by_user {
            events.sort_unstable_by_key(|&(ts_ms, seq, _)| (ts_ms, seq));
            let Some(u) = users.index(&user) else { continue };
            histories[u as usize] =
                events.iter().filter_map(|(_, _, item)| items.index(item)).collect();
        }
        Ok(StoreHistories { users, items, histories })
    }
}

#[cfg(test)]
mod tests {
    use cascade_core::Event;
    use cascade_store::{EventKey, KeyedEvent};

    use super::*;
    use crate::progress::Progress;
    use crate::workspace::Workspace;

    /// The scan and the batch pipeline agree on a log with equal times
    /// (log order decides), late events (time decides), impressions and
    /// other non-feedback events, and a user with a single interaction.
    #[test]
    fn the_scan_gives_the_pipelines_users_items_and_histories() {
        let dir = tempfile::tempdir().unwrap();
        let workspace = Workspace::at(dir.path().to_owned(), Config::embedded_default(), true);
        let store = workspace.store().unwrap();
        let log = [
            ("2", "30", "rating", 1_000),
            ("1", "20", "rating", 2_000),
            ("1", "10", "rating", 2_000), // same time: log order keeps it after 20
            ("1", "5", "rating", 1_500),  // logged late, earlier in time
            ("1", "99", "impression", 500),
            ("3", "20", "click", 100), // not feedback under the MovieLens config
            ("2", "10", "rating", 900),
            ("4", "40", "rating", 3_000), // one interaction: a known user
        ];
        let events: Vec<KeyedEvent> = log
            .iter()
            .enumerate()
            .map(|(n, &(user, item, event_type, ts_ms))| KeyedEvent {
                key: EventKey::from_client_id(&n.to_string()),
                event: Event {
                    user: user.into(),
                    item: item.into(),
                    event_type: event_type.into(),
                    value: Some(4.0),
                    ts_ms,
                    served: None,
                },
            })
            .collect();
        store.append(&events).unwrap();

        let scanned = StoreHistories::read(&store, &workspace.config).unwrap();
        let pipeline = workspace.pipeline(&store, Progress { quiet: true }).unwrap();
        let items = pipeline.interaction_items().unwrap();
        let (users, histories) = pipeline.histories(&items).unwrap();
        assert_eq!(scanned, StoreHistories { users, items, histories });
        let ids = |u: &str| -> Vec<&str> {
            let history = &scanned.histories[scanned.users.index(u).unwrap() as usize];
            history.iter().map(|&i| scanned.items.id(i)).collect()
        };
        assert_eq!(ids("1"), ["5", "20", "10"]);
        assert_eq!(ids("4"), ["40"]);
        assert!(scanned.users.index("3").is_none(), "clicks are not MovieLens feedback");
    }
}
