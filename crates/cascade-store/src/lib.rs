//! The embedded store: an append-only, ordered, replayable event log and the
//! user and item tables, in one redb file.
//!
//! Durability contract: a call that returns `Ok` has committed its writes with
//! redb's immediate durability (fsync), so an acknowledged event survives a
//! `kill -9`. [`GroupCommitter`] batches concurrent appends into one commit so
//! that durability does not cost one fsync per event.
#![warn(missing_docs)]

mod event_key;
mod group_commit;
pub mod online;
mod recent_keys;
mod redis_bus;
mod store;

pub use event_key::EventKey;
pub use group_commit::{GroupCommitter, Overloaded, Reply, reply_of};
pub use recent_keys::RECENT_KEYS_CAPACITY;
pub use redis_bus::{BusEntry, ForwardError, Forwarded, RedisEventBus};
pub use store::{
    AppendStatus, Collection, CommitDurability, EntityKind, KeyedEvent, LogEntry, Store, StoreError,
};
