//! `diversity`: maximal marginal relevance over the retrieval embeddings,
//! so that a list is not ten versions of one item.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::request::ServeError;
use crate::rerank::{RerankContext, Reranker, Slate, SlateItem};

/// Picks the list by MMR among the `pool` most relevant items of the slate
/// (an item below them would not be picked for a short list anyway).
#[derive(Debug, Clone, Copy)]
pub struct Diversity {
    /// Relevance weight: 1 is relevance only, 0 novelty only.
    pub lambda: f32,
    /// Candidates MMR picks among (at least the request's n).
    pub pool: usize,
}

impl Reranker for Diversity {
    fn name(&self) -> &str {
        "diversity"
    }

    fn rerank(&self, slate: &mut Slate, context: &RerankContext<'_>) -> Result<(), ServeError> {
        slate.items.truncate(self.pool.max(context.n));
        let index = context.models.ann.index();
        let vectors: HashMap<u32, Cow<'_, [f32]>> =
            slate.items.iter().map(|entry| (entry.item, index.item(entry.item))).collect();
        let ordered: Vec<(u32, f32)> = slate.items.iter().map(|e| (e.item, e.order)).collect();
        let scores: HashMap<u32, f32> = slate.items.iter().map(|e| (e.item, e.score)).collect();
        let picked = mmr(&ordered, |item| &vectors[&item], self.lambda, context.n);
        let chosen: std::collections::HashSet<u32> = picked.iter().map(|&(item, _)| item).collect();
        // The rest of the pool stays behind the picks, in relevance order:
        // the list is cut to n at the end anyway, and a later step that
        // draws from more than n (exploration) still has candidates.
        let rest = slate.items.iter().filter(|e| !chosen.contains(&e.item)).copied();
        let picked =
            picked.into_iter().map(|(item, order)| SlateItem { item, score: scores[&item], order });
        slate.items = picked.chain(rest).collect::<Vec<_>>();
        Ok(())
    }
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
    let (low, high) = scored
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &(_, s)| (l.min(s), h.max(s)));
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
        // The loop runs only while an untaken candidate remains.
        let Some((k, _)) = best else { break };
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
        assert!(mmr(&[], |i| &vectors[i as usize][..], 0.5, 2).is_empty());
    }
}
