//! Re-rank: freshness boost and popularity dampening on the ranker's
//! scores, diversity by maximal marginal relevance over item embeddings,
//! then business rules that pin items to positions.

/// How ages and popularity shift relevance before diversity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Adjustments {
    /// Added to a just-published item's relevance (relevance spans 0..1);
    /// halves every `half_life_seconds`.
    pub freshness_boost: f32,
    /// The boost's half-life.
    pub half_life_seconds: f64,
    /// Subtracted from the most popular item's relevance, in proportion to
    /// log(1 + count) / log(1 + max count) for the others.
    pub popularity_dampening: f32,
}

/// Rescales `scored` to relevance in [0, 1] (min-max, so the knobs mean
/// the same for any ranker), then adds the freshness boost and subtracts the
/// popularity dampening. `age_seconds` and `count` describe an item.
pub fn adjust(
    scored: &[(u32, f32)],
    settings: Adjustments,
    age_seconds: impl Fn(u32) -> Option<f64>,
    count: impl Fn(u32) -> f32,
    max_count: f32,
) -> Vec<(u32, f32)> {
    let (low, high) = bounds(scored);
    let span = (high - low).max(f32::EPSILON);
    let log_max = max_count.max(0.0).ln_1p().max(f32::EPSILON);
    scored
        .iter()
        .map(|&(item, score)| {
            let relevance = if high > low { (score - low) / span } else { 1.0 };
            let fresh = age_seconds(item).map_or(0.0, |age| {
                settings.freshness_boost * 0.5f64.powf(age / settings.half_life_seconds) as f32
            });
            let popular = settings.popularity_dampening * count(item).max(0.0).ln_1p() / log_max;
            (item, relevance + fresh - popular)
        })
        .collect()
}

fn bounds(scored: &[(u32, f32)]) -> (f32, f32) {
    scored.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &(_, s)| (l.min(s), h.max(s)))
}

/// Maximal marginal relevance (Carbonell & Goldstein, 1998): picks `n` of
/// `scored` one at a time, each maximising
/// λ · relevance − (1 − λ) · max cosine similarity to the items already picked.
/// Relevance is the score min-max scaled to [0, 1] so λ means the same for
/// any ranker. `embedding(item)` gives the vector compared (any dimension).
pub fn mmr<'a>(
    scored: &[(u32, f32)],
    embedding: impl Fn(u32) -> &'a [f32],
    lambda: f32,
    n: usize,
) -> Vec<(u32, f32)> {
    if scored.is_empty() || n == 0 {
        return Vec::new();
    }
    let (low, high) = bounds(scored);
    let span = (high - low).max(f32::EPSILON);
    let unit: Vec<Vec<f32>> = scored
        .iter()
        .map(|&(item, _)| {
            let v = embedding(item);
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(f32::EPSILON);
            v.iter().map(|x| x / norm).collect()
        })
        .collect();
    let mut closest = vec![f32::NEG_INFINITY; scored.len()];
    let mut taken = vec![false; scored.len()];
    let mut picked = Vec::with_capacity(n.min(scored.len()));
    while picked.len() < n.min(scored.len()) {
        let mut best: Option<(usize, f32)> = None;
        for (k, &(_, score)) in scored.iter().enumerate() {
            if taken[k] {
                continue;
            }
            let redundancy = if picked.is_empty() { 0.0 } else { closest[k] };
            let value = lambda * (score - low) / span - (1.0 - lambda) * redundancy;
            if best.is_none_or(|(_, b)| value > b) {
                best = Some((k, value));
            }
        }
        let (k, _) = best.expect("an untaken candidate remains");
        taken[k] = true;
        picked.push(scored[k]);
        for (j, other) in unit.iter().enumerate() {
            if !taken[j] {
                let similarity: f32 = other.iter().zip(&unit[k]).map(|(a, b)| a * b).sum();
                closest[j] = closest[j].max(similarity);
            }
        }
    }
    picked
}

/// Moves each pinned item to its 0-based position (clamped to the list),
/// inserting it if absent; pins apply in order, so a later pin can push an
/// earlier one down. The list keeps its length cap `n`.
pub fn pin(list: &mut Vec<(u32, f32)>, pins: &[(u32, usize)], n: usize) {
    for &(item, position) in pins {
        let score = match list.iter().position(|&(i, _)| i == item) {
            Some(at) => list.remove(at).1,
            None => f32::NAN,
        };
        list.insert(position.min(list.len()), (item, score));
    }
    list.truncate(n);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mmr_trades_relevance_for_diversity() {
        // Items 0 and 1 point the same way; 2 elsewhere and slightly less relevant.
        let vectors = [[1.0f32, 0.0], [1.0, 0.01], [0.0, 1.0]];
        let scored = [(0, 0.9), (1, 0.85), (2, 0.8)];
        let relevance_only = mmr(&scored, |i| &vectors[i as usize][..], 1.0, 2);
        assert_eq!(relevance_only.iter().map(|p| p.0).collect::<Vec<_>>(), vec![0, 1]);
        let diverse = mmr(&scored, |i| &vectors[i as usize][..], 0.5, 2);
        assert_eq!(diverse.iter().map(|p| p.0).collect::<Vec<_>>(), vec![0, 2]);
    }

    #[test]
    fn fresh_items_rise_and_popular_ones_sink() {
        let settings = Adjustments {
            freshness_boost: 0.2,
            half_life_seconds: 100.0,
            popularity_dampening: 0.1,
        };
        // Item 0 is the most relevant but old and the most popular; item 1
        // slightly less relevant, new and rare; item 2 has no date.
        let scored = [(0, 0.9), (1, 0.88), (2, 0.5)];
        let ages = |item: u32| match item {
            0 => Some(1000.0),
            1 => Some(0.0),
            _ => None,
        };
        let counts = |item: u32| [100.0, 1.0, 10.0][item as usize];
        let adjusted = adjust(&scored, settings, ages, counts, 100.0);
        assert!(adjusted[1].1 > adjusted[0].1, "{adjusted:?}");
        // A freshly published item gets the whole boost; one half-life later, half.
        let none = Adjustments { popularity_dampening: 0.0, ..settings };
        let at = |age: f64| adjust(&[(0, 1.0), (1, 0.0)], none, |_| Some(age), |_| 0.0, 1.0)[0].1;
        assert!((at(0.0) - 1.2).abs() < 1e-6 && (at(100.0) - 1.1).abs() < 1e-6);
        // Without knobs, only the rescaling remains.
        let plain =
            Adjustments { freshness_boost: 0.0, half_life_seconds: 1.0, popularity_dampening: 0.0 };
        let rescaled = adjust(&scored, plain, ages, counts, 100.0);
        assert_eq!(rescaled[0].1, 1.0);
        assert_eq!(rescaled[2].1, 0.0);
    }

    #[test]
    fn pins_move_or_insert_and_keep_the_cap() {
        let mut list = vec![(1, 0.9), (2, 0.8), (3, 0.7)];
        pin(&mut list, &[(3, 0), (7, 1)], 3);
        assert_eq!(list.iter().map(|p| p.0).collect::<Vec<_>>(), vec![3, 7, 1]);
    }
}
