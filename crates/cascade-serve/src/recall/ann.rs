//! `recall/ann`: approximate maximum-inner-product search over a retrieval
//! model's item embeddings, from the user's embedding.
//!
//! Three HNSW crates are wired in (`AnnBackend`) so they can be measured on
//! the same data (`cascade bench ann --backend …`): `usearch` (C++ with
//! runtime-dispatched SIMD; DESIGN.md's choice, and the fastest here),
//! `instant-distance` (small, deterministic, single-threaded build) and
//! `hnsw_rs` (parallel build with SIMD distances, but its level generator is
//! seeded from the OS, so two builds differ slightly). HNSW searches by a metric, and a dot
//! product is not one. The standard reduction (Bachrach et al., 2014): with
//! M the largest item norm, item x becomes [x, √(M² − ‖x‖²)] and query q
//! becomes [q, 0]; then ‖q̃ − x̃‖² = ‖q‖² + M² − 2⟨q, x⟩, so the nearest
//! augmented items are the ones with the largest dot product. Returned scores
//! are the exact dot products of the items found.
//!
//! Shapes: item matrix N × D row-major; user matrix U × D.

use cascade_nn::matrix::dot;
use hnsw_rs::prelude::{DistL2, Hnsw};
use instant_distance::{Builder, HnswMap, Point, Search};
use rayon::prelude::*;
use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

use crate::recall::{CandidateSource, RecallContext};

#[derive(Debug, Clone)]
struct Augmented(Vec<f32>);

impl Point for Augmented {
    fn distance(&self, other: &Self) -> f32 {
        self.0.iter().zip(&other.0).map(|(a, b)| (a - b) * (a - b)).sum()
    }
}

/// Which HNSW implementation backs an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AnnBackend {
    /// `instant-distance`: deterministic for a seed; builds on one thread.
    InstantDistance,
    /// `hnsw_rs`: builds on every rayon thread; ~7× faster to build at 100k.
    HnswRs,
    /// `usearch`: builds on every rayon thread; the fastest search measured.
    #[default]
    Usearch,
}

impl AnnBackend {
    /// The crate's name, as reports print it.
    pub fn name(self) -> &'static str {
        match self {
            AnnBackend::InstantDistance => "instant-distance",
            AnnBackend::HnswRs => "hnsw_rs",
            AnnBackend::Usearch => "usearch",
        }
    }
}

/// How to build and search an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnSettings {
    /// The implementation.
    pub backend: AnnBackend,
    /// Candidates a search examines (its `ef`); also the most it can return.
    pub ef_search: usize,
    /// Seed of the level draws (`instant-distance` only).
    pub seed: u64,
}

/// Graph parameters of the `hnsw_rs` and `usearch` builds, matching
/// `instant-distance`'s defaults (ef_construction 100) with 16 links per
/// node, so the three are compared on equal graphs.
const GRAPH_LINKS: usize = 16;
const GRAPH_EF_CONSTRUCTION: usize = 100;

/// Search contexts `usearch` preallocates. A search finds none free when more
/// run at once (it then fails, and the exact scan answers instead); the
/// server runs requests on tokio's blocking pool, which rarely has more
/// than this many busy threads on a small machine.
const USEARCH_SEARCH_CONTEXTS: usize = 256;

enum Graph {
    InstantDistance(HnswMap<Augmented, u32>),
    HnswRs(Hnsw<'static, f32, DistL2>),
    Usearch(Index),
}

/// An HNSW index over item embeddings, searched by inner product.
pub struct AnnIndex {
    graph: Graph,
    settings: AnnSettings,
    items: Vec<f32>,
    dim: usize,
}

impl std::fmt::Debug for AnnIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnnIndex").field("items", &(self.items.len() / self.dim.max(1))).finish()
    }
}

impl AnnIndex {
    /// Indexes `items` (N × `dim`); a search returns at most `ef_search` items.
    pub fn build(items: Vec<f32>, dim: usize, settings: AnnSettings) -> AnnIndex {
        let norms: Vec<f32> =
            items.chunks_exact(dim).map(|x| x.iter().map(|v| v * v).sum()).collect();
        let max_norm = norms.iter().copied().fold(0f32, f32::max);
        let points: Vec<Augmented> = items
            .chunks_exact(dim)
            .zip(&norms)
            .map(|(x, norm)| {
                let mut point = x.to_vec();
                point.push((max_norm - norm).max(0.0).sqrt());
                Augmented(point)
            })
            .collect();
        let graph = match settings.backend {
            AnnBackend::InstantDistance => {
                let values: Vec<u32> = (0..points.len() as u32).collect();
                let builder = Builder::default().ef_search(settings.ef_search).seed(settings.seed);
                Graph::InstantDistance(builder.build(points, values))
            }
            AnnBackend::HnswRs => {
                let n = points.len().max(1);
                let layers = 16.min((n as f32).ln().ceil().max(1.0) as usize);
                let hnsw = Hnsw::new(GRAPH_LINKS, n, layers, GRAPH_EF_CONSTRUCTION, DistL2 {});
                let rows: Vec<(&Vec<f32>, usize)> =
                    points.iter().enumerate().map(|(id, p)| (&p.0, id)).collect();
                hnsw.parallel_insert(&rows);
                Graph::HnswRs(hnsw)
            }
            AnnBackend::Usearch => Graph::Usearch(usearch_graph(&points, settings.ef_search)),
        };
        AnnIndex { graph, settings, items, dim }
    }

    /// How it was built.
    pub fn settings(&self) -> AnnSettings {
        self.settings
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Item `item`'s embedding.
    pub fn item(&self, item: u32) -> &[f32] {
        &self.items[item as usize * self.dim..][..self.dim]
    }

    /// Up to `n` items with the largest ⟨query, item⟩, best first, approximately.
    pub fn search(&self, query: &[f32], n: usize) -> Vec<(u32, f32)> {
        let mut augmented = query.to_vec();
        augmented.push(0.0);
        let score = |item: u32| (item, dot(query, self.item(item)));
        let mut found: Vec<(u32, f32)> = match &self.graph {
            Graph::InstantDistance(map) => {
                let mut search = Search::default();
                map.search(&Augmented(augmented), &mut search)
                    .map(|hit| score(*hit.value))
                    .collect()
            }
            Graph::HnswRs(hnsw) => {
                let ef = self.settings.ef_search;
                hnsw.search(&augmented, ef, ef).iter().map(|hit| score(hit.d_id as u32)).collect()
            }
            Graph::Usearch(index) => match index.search(&augmented, n) {
                Ok(matches) => matches.keys.iter().map(|&key| score(key as u32)).collect(),
                Err(_) => return self.exact_search(query, n),
            },
        };
        found.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        found.truncate(n);
        found
    }

    /// The exact top `n` by brute force, to measure the index against.
    pub fn exact_search(&self, query: &[f32], n: usize) -> Vec<(u32, f32)> {
        let mut all: Vec<(u32, f32)> = self
            .items
            .chunks_exact(self.dim)
            .enumerate()
            .map(|(i, x)| (i as u32, dot(query, x)))
            .collect();
        let n = n.min(all.len());
        if n == 0 {
            return Vec::new();
        }
        all.select_nth_unstable_by(n - 1, |a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        all.truncate(n);
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        all
    }
}

/// Builds a `usearch` graph over the augmented points, keyed by item index,
/// on every rayon thread.
fn usearch_graph(points: &[Augmented], ef_search: usize) -> Index {
    let options = IndexOptions {
        dimensions: points.first().map_or(1, |p| p.0.len()),
        metric: MetricKind::L2sq,
        quantization: ScalarKind::F16,
        connectivity: GRAPH_LINKS,
        expansion_add: GRAPH_EF_CONSTRUCTION,
        expansion_search: ef_search,
        multi: false,
    };
    // Failures here are allocation failures of a fixed-size build: nothing a
    // caller could recover from differently than from any other OOM.
    let index = Index::new(&options).expect("usearch index options are valid");
    let threads = USEARCH_SEARCH_CONTEXTS.max(rayon::current_num_threads());
    index.reserve_capacity_and_threads(points.len(), threads).expect("usearch reserves memory");
    points.par_iter().enumerate().for_each(|(key, point)| {
        index.add(key as u64, &point.0).expect("capacity was reserved for every point");
    });
    index
}

/// The ANN channel: the user's embedding against the item index.
#[derive(Debug)]
pub struct AnnRecall {
    index: AnnIndex,
    users: Vec<f32>,
}

impl AnnRecall {
    /// From the item index and the user matrix (U × D, same D).
    pub fn new(index: AnnIndex, users: Vec<f32>) -> AnnRecall {
        AnnRecall { index, users }
    }

    /// The item index, e.g. for similar-item queries.
    pub fn index(&self) -> &AnnIndex {
        &self.index
    }
}

impl CandidateSource for AnnRecall {
    fn name(&self) -> &'static str {
        "recall/ann"
    }

    fn recall(&self, context: &RecallContext<'_>, n: usize) -> Vec<(u32, f32)> {
        let dim = self.index.dim();
        match context.user {
            Some(user) if (user as usize + 1) * dim <= self.users.len() => {
                self.index.search(&self.users[user as usize * dim..][..dim], n)
            }
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On random vectors the index finds most of the exact top 10.
    #[test]
    fn ann_recall_at_10_is_high_against_brute_force() {
        let (n, dim) = (2000, 16);
        let mut rng = cascade_models::random::SeededRng::new(7);
        let mut next = || rng.unit() * 2.0 - 1.0;
        let items: Vec<f32> = (0..n * dim).map(|_| next()).collect();
        let queries: Vec<Vec<f32>> = (0..50).map(|_| (0..dim).map(|_| next()).collect()).collect();
        for backend in [AnnBackend::InstantDistance, AnnBackend::HnswRs, AnnBackend::Usearch] {
            let settings = AnnSettings { backend, ef_search: 100, seed: 1 };
            let index = AnnIndex::build(items.clone(), dim, settings);
            let mut hits = 0;
            for query in &queries {
                let exact: Vec<u32> = index.exact_search(query, 10).iter().map(|h| h.0).collect();
                let approx = index.search(query, 10);
                assert_eq!(approx.len(), 10);
                assert!(approx.windows(2).all(|w| w[0].1 >= w[1].1), "sorted by dot product");
                hits += approx.iter().filter(|h| exact.contains(&h.0)).count();
            }
            let recall = hits as f64 / 500.0;
            assert!(recall > 0.9, "{}: recall@10 {recall}", backend.name());
        }
    }
}
