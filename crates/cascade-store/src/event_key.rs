//! Deduplication keys: what makes appending the same event twice a no-op.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use cascade_core::Event;

/// A 16-byte key that identifies one logical event.
///
/// With a client-supplied event id the key is derived from that id alone, so a
/// retried request is recognised. Without one it is derived from the event's
/// content and its occurrence number among identical rows of the same source,
/// so re-importing a file adds nothing while genuinely repeated rows are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventKey(pub [u8; 16]);

impl EventKey {
    /// Key for an event with a client-supplied unique id.
    pub fn from_client_id(event_id: &str) -> EventKey {
        EventKey::digest(&[b"id", event_id.as_bytes()])
    }

    /// Key for the `occurrence`-th (0-based) copy of `event` in one source.
    pub fn from_content(event: &Event, occurrence: u32) -> EventKey {
        let value = event.value.map(f64::to_bits).unwrap_or(u64::MAX);
        EventKey::digest(&[
            b"content",
            event.user.as_bytes(),
            event.item.as_bytes(),
            event.event_type.as_bytes(),
            &value.to_le_bytes(),
            &event.ts_ms.to_le_bytes(),
            &occurrence.to_le_bytes(),
        ])
    }

    /// The key of one event of a source that `occurrences` tracks: its
    /// client id where it has one, else its content and how many identical
    /// events of the source came before it.
    pub fn for_event(
        event_id: Option<&str>,
        event: &Event,
        occurrences: &mut HashMap<EventKey, u32>,
    ) -> EventKey {
        match event_id {
            Some(id) => EventKey::from_client_id(id),
            None => {
                let seen = occurrences.entry(EventKey::from_content(event, 0)).or_insert(0);
                *seen += 1;
                EventKey::from_content(event, *seen - 1)
            }
        }
    }

    fn digest(parts: &[&[u8]]) -> EventKey {
        let mut hasher = Sha256::new();
        for part in parts {
            // Length-prefixing keeps ("ab","c") and ("a","bc") apart.
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
        let digest = hasher.finalize();
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[..16]);
        EventKey(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(user: &str) -> Event {
        Event {
            user: user.into(),
            item: "i".into(),
            event_type: "click".into(),
            value: None,
            ts_ms: 5,
            served: None,
        }
    }

    #[test]
    fn identical_rows_differ_only_by_occurrence() {
        assert_eq!(EventKey::from_content(&event("u"), 0), EventKey::from_content(&event("u"), 0));
        assert_ne!(EventKey::from_content(&event("u"), 0), EventKey::from_content(&event("u"), 1));
        assert_ne!(EventKey::from_content(&event("u"), 0), EventKey::from_content(&event("v"), 0));
        assert_ne!(EventKey::from_client_id("ab"), EventKey::from_client_id("abc"));
    }
}
