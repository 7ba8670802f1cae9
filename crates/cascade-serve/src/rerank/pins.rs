//! `pins`: a request's business rules that put given items at given
//! positions. A pin never brings back a hidden item.

use crate::request::ServeError;
use crate::rerank::{RerankContext, Reranker, Slate, SlateItem};

/// Applies the request's `pin` rules (validated with the request: no
/// position outside the list, no item or position twice).
#[derive(Debug, Clone, Copy, Default)]
pub struct Pins;

impl Reranker for Pins {
    fn name(&self) -> &str {
        "pins"
    }

    fn rerank(&self, slate: &mut Slate, context: &RerankContext<'_>) -> Result<(), ServeError> {
        let catalog = &context.models.catalog;
        let mut pins = Vec::with_capacity(context.request.pin.len());
        for rule in &context.request.pin {
            let item = catalog.item_index(&rule.item_id).ok_or_else(|| {
                ServeError::Invalid(format!("pin: no item with id {:?}", rule.item_id))
            })?;
            if !context.hidden.contains(&item) {
                pins.push((item, rule.position));
            }
        }
        pin(&mut slate.items, &pins, context.n);
        Ok(())
    }
}

/// Moves each pinned item to its 0-based position (clamped to the list),
/// inserting it if absent (with NaN scores: no ranker scored it); pins
/// apply in order, so a later pin can push an earlier one down. The list
/// keeps its length cap `n`.
pub fn pin(list: &mut Vec<SlateItem>, pins: &[(u32, usize)], n: usize) {
    for &(item, position) in pins {
        let entry = match list.iter().position(|entry| entry.item == item) {
            Some(at) => list.remove(at),
            None => SlateItem { item, score: f32::NAN, order: f32::NAN },
        };
        list.insert(position.min(list.len()), entry);
    }
    list.truncate(n);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_move_or_insert_and_keep_the_cap() {
        let entry = |item, score| SlateItem { item, score, order: score };
        let mut list = vec![entry(1, 0.9), entry(2, 0.8), entry(3, 0.7)];
        pin(&mut list, &[(3, 0), (7, 1)], 3);
        assert_eq!(list.iter().map(|e| e.item).collect::<Vec<_>>(), vec![3, 7, 1]);
        assert_eq!(list[0].score, 0.7, "a moved item keeps its score");
        assert!(list[1].score.is_nan(), "an inserted one has none");
    }
}
