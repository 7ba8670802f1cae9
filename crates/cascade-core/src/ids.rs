//! Dense indices for external ids: models address users and items as
//! `0..n`, in a deterministic order.

use std::collections::HashMap;

/// A bijection between external ids and dense indices `0..len`.
///
/// Ids are ordered numerically when every id is an integer (so MovieLens item
/// "2" comes before "10", as PROTOCOLS.md requires), and as strings otherwise.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IdIndex {
    ids: Vec<String>,
    positions: HashMap<String, u32>,
}

impl IdIndex {
    /// Builds the index over the distinct ids given.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(ids: I) -> IdIndex {
        let mut ids: Vec<String> = ids.into_iter().map(Into::into).collect();
        ids.sort_unstable();
        ids.dedup();
        let numeric: Option<Vec<i64>> = ids.iter().map(|id| id.parse::<i64>().ok()).collect();
        if let Some(numeric) = numeric {
            let mut order: Vec<(i64, String)> = numeric.into_iter().zip(ids).collect();
            order.sort_unstable();
            ids = order.into_iter().map(|(_, id)| id).collect();
        }
        let positions = ids.iter().enumerate().map(|(i, id)| (id.clone(), i as u32)).collect();
        IdIndex { ids, positions }
    }

    /// Number of ids.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are no ids.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The dense index of an external id.
    pub fn index(&self, id: &str) -> Option<u32> {
        self.positions.get(id).copied()
    }

    /// The external id at a dense index.
    pub fn id(&self, index: u32) -> &str {
        &self.ids[index as usize]
    }

    /// All ids in index order.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }
}

/// The 64-bit id of `value` in `field`, as embedding tables key their rows.
/// FNV-1a of `field=value`: fixed across runs and machines, so any schema maps
/// onto the same tables with no vocabulary pass, and values first seen online
/// simply get new rows.
pub fn feature_id(field: &str, value: &str) -> u64 {
    let mut hash: u64 = 0xCBF2_9CE4_8422_2325;
    for byte in field.bytes().chain([b'=']).chain(value.bytes()) {
        hash ^= byte as u64;
        hash = hash.wrapping_mul(0x0100_0000_01B3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_ids_are_stable_and_field_scoped() {
        assert_ne!(feature_id("gender", "F"), feature_id("occupation", "F"));
        // Pinned (FNV-1a 64 of "gender=F", computed independently): changing
        // the hash would silently invalidate every checkpoint's id maps.
        assert_eq!(feature_id("gender", "F"), 0xA141_BA80_10EC_B693);
    }

    #[test]
    fn numeric_ids_sort_numerically_others_lexically() {
        let numeric = IdIndex::new(["10", "2", "1", "2"]);
        assert_eq!(numeric.ids(), ["1", "2", "10"]);
        assert_eq!(numeric.index("10"), Some(2));
        let mixed = IdIndex::new(["b10", "b2", "a"]);
        assert_eq!(mixed.ids(), ["a", "b10", "b2"]);
        assert_eq!(mixed.id(1), "b10");
        assert_eq!(mixed.index("zzz"), None);
    }
}
