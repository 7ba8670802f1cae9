//! `recall/ann`: approximate maximum-inner-product search over a retrieval
//! model's item embeddings, from the user's embedding.
//!
//! `usearch` (C++ with runtime-dispatched SIMD; DESIGN.md's choice, and the
//! fastest measured) backs every index. Two peers can be built in with the
//! `ann-peers` feature, so `cascade bench ann --backend …` measures all
//! three on the same data: `instant-distance` (small, deterministic,
//! single-threaded build) and `hnsw_rs` (parallel build with SIMD distances,
//! but its level generator is seeded from the OS, so two builds differ
//! slightly). HNSW searches by a metric, and a dot
//! product is not one. The standard reduction (Bachrach et al., 2014): with
//! M the largest item norm, item x becomes [x, √(M² − ‖x‖²)] and query q
//! becomes [q, 0]; then ‖q̃ − x̃‖² = ‖q‖² + M² − 2⟨q, x⟩, so the nearest
//! augmented items are the ones with the largest dot product. Returned scores
//! are the exact dot products of the items found.
//!
//! Items added after the build (`AnnIndex::set_added`, for items created
//! through the API) are inserted into the `usearch` graph under the next
//! keys, and while they number at most `EXACT_ADDED_SCAN` each search also
//! scans them exactly; the other two backends cannot insert and always
//! scan them.
//! M stays the catalog's: an added vector longer than M is indexed at
//! length M in its direction, and still scored by its exact dot product.
//!
//! Shapes: item matrix N × D row-major; user matrix U × D.

use parking_lot::RwLock;
use std::borrow::Cow;
use std::collections::HashMap;

use cascade_nn::matrix::dot;
#[cfg(feature = "ann-peers")]
use hnsw_rs::prelude::{DistL2, Hnsw};
#[cfg(feature = "ann-peers")]
use instant_distance::{Builder, HnswMap, Point, Search};
use rayon::prelude::*;
use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

use crate::recall::{CandidateSource, RecallContext};

#[derive(Debug, Clone)]
struct Augmented(Vec<f32>);

#[cfg(feature = "ann-peers")]
impl Point for Augmented {
    fn distance(&self, other: &Self) -> f32 {
        self.0.iter().zip(&other.0).map(|(a, b)| (a - b) * (a - b)).sum()
    }
}

/// Which HNSW implementation backs an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AnnBackend {
    /// `instant-distance`: deterministic for a seed; builds on one thread.
    #[cfg(feature = "ann-peers")]
    InstantDistance,
    /// `hnsw_rs`: builds on every rayon thread; ~7× faster to build at 100k.
    #[cfg(feature = "ann-peers")]
    HnswRs,
    /// `usearch`: builds on every rayon thread; the fastest search measured.
    #[default]
    Usearch,
}

impl AnnBackend {
    /// Every backend this build has: `usearch`, plus the two peers with the
    /// `ann-peers` feature (for `cascade bench ann`).
    pub const ALL: &'static [AnnBackend] = &[
        #[cfg(feature = "ann-peers")]
        AnnBackend::InstantDistance,
        #[cfg(feature = "ann-peers")]
        AnnBackend::HnswRs,
        AnnBackend::Usearch,
    ];

    /// The crate's name, as reports print it.
    pub fn name(self) -> &'static str {
        match self {
            #[cfg(feature = "ann-peers")]
            AnnBackend::InstantDistance => "instant-distance",
            #[cfg(feature = "ann-peers")]
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
    #[cfg(feature = "ann-peers")]
    InstantDistance(HnswMap<Augmented, u32>),
    #[cfg(feature = "ann-peers")]
    HnswRs(Hnsw<'static, f32, DistL2>),
    Usearch(Index),
}

/// Room reserved past the catalog for added items before the graph has
/// to grow (growing blocks searches for the copy).
const ADDED_HEADROOM: usize = 1024;

/// Up to this many added items, a search also scans them exactly (10,000
/// × 64 dimensions is about 0.1 ms); beyond, it trusts the graph alone.
pub const EXACT_ADDED_SCAN: usize = 10_000;

/// An HNSW index over item embeddings, searched by inner product.
pub struct AnnIndex {
    /// Searches share it; inserts, removals and growth take it alone
    /// (`usearch` cannot grow under a running search).
    graph: RwLock<Graph>,
    settings: AnnSettings,
    /// The catalog's items, N × D.
    items: Vec<f32>,
    dim: usize,
    /// The largest squared norm among the catalog's items: M².
    max_norm: f32,
    /// Up to this many added items, searches scan them exactly.
    exact_added_scan: usize,
    /// Vectors of items added after the build, item N + k at row k.
    added: RwLock<Vec<f32>>,
}

impl std::fmt::Debug for AnnIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnnIndex").field("items", &self.len()).finish()
    }
}

/// `vector` as the index stores it: [x, √(M² − ‖x‖²)], or x scaled to
/// length M and a 0 when it is longer than M.
fn augmented(vector: &[f32], max_norm: f32) -> Vec<f32> {
    let norm: f32 = vector.iter().map(|v| v * v).sum();
    let mut point = vector.to_vec();
    if norm > max_norm {
        let scale = (max_norm / norm).sqrt();
        point.iter_mut().for_each(|v| *v *= scale);
        point.push(0.0);
    } else {
        point.push((max_norm - norm).sqrt());
    }
    point
}

impl AnnIndex {
    /// Indexes `items` (N × `dim`); a search returns at most `ef_search` items.
    pub fn build(items: Vec<f32>, dim: usize, settings: AnnSettings) -> AnnIndex {
        let norms: Vec<f32> =
            items.chunks_exact(dim).map(|x| x.iter().map(|v| v * v).sum()).collect();
        let max_norm = norms.iter().copied().fold(0f32, f32::max);
        let points: Vec<Augmented> =
            items.chunks_exact(dim).map(|x| Augmented(augmented(x, max_norm))).collect();
        let graph = match settings.backend {
            #[cfg(feature = "ann-peers")]
            AnnBackend::InstantDistance => {
                let values: Vec<u32> = (0..points.len() as u32).collect();
                let builder = Builder::default().ef_search(settings.ef_search).seed(settings.seed);
                Graph::InstantDistance(builder.build(points, values))
            }
            #[cfg(feature = "ann-peers")]
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
        AnnIndex {
            graph: RwLock::new(graph),
            settings,
            items,
            dim,
            max_norm,
            exact_added_scan: EXACT_ADDED_SCAN,
            added: RwLock::new(Vec::new()),
        }
    }

    /// Scans added items exactly only while there are at most `limit`
    /// (`EXACT_ADDED_SCAN` by default; 0 measures the graph alone).
    pub fn set_exact_added_scan(&mut self, limit: usize) {
        self.exact_added_scan = limit;
    }

    /// How it was built.
    pub fn settings(&self) -> AnnSettings {
        self.settings
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Items indexed at the build: added items are numbered from here.
    pub fn catalog_items(&self) -> u32 {
        (self.items.len() / self.dim.max(1)) as u32
    }

    /// Items indexed, added ones included.
    pub fn len(&self) -> usize {
        self.catalog_items() as usize + self.added.read().len() / self.dim.max(1)
    }

    /// Whether nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Item `item`'s embedding (copied for an added item, which an update
    /// may move). Panics for an item not indexed.
    pub fn item(&self, item: u32) -> Cow<'_, [f32]> {
        match self.items.get(item as usize * self.dim..) {
            Some(rows) if !rows.is_empty() => Cow::Borrowed(&rows[..self.dim]),
            _ => Cow::Owned(self.vector_in(item, &self.added.read()).to_vec()),
        }
    }

    /// Item `item`'s embedding, with the added rows already read.
    fn vector_in<'a>(&'a self, item: u32, added: &'a [f32]) -> &'a [f32] {
        let at = item as usize * self.dim;
        match at < self.items.len() {
            true => &self.items[at..][..self.dim],
            false => &added[at - self.items.len()..][..self.dim],
        }
    }

    /// Indexes item `item` past the catalog (the next one, or one added
    /// before, which moves) with `vector`; searches see it on return.
    pub fn set_added(&self, item: u32, vector: &[f32]) -> Result<(), String> {
        if vector.len() != self.dim {
            return Err(format!(
                "item {item}: {} dimensions, the index has {}",
                vector.len(),
                self.dim
            ));
        }
        let base = self.catalog_items() as usize;
        {
            let mut added = self.added.write();
            let count = added.len() / self.dim;
            match (item as usize).checked_sub(base) {
                Some(k) if k < count => added[k * self.dim..][..self.dim].copy_from_slice(vector),
                Some(k) if k == count => added.extend_from_slice(vector),
                _ => {
                    return Err(format!(
                        "item {item} is neither added nor the next ({})",
                        base + count
                    ));
                }
            }
        }
        // Only usearch can insert; without the `ann-peers` feature it is the only graph.
        #[allow(irrefutable_let_patterns)]
        if let Graph::Usearch(index) = &*self.graph.write() {
            let key = u64::from(item);
            let point = augmented(vector, self.max_norm);
            if index.contains(key) {
                index.remove(key).map_err(|e| format!("usearch remove {item}: {e}"))?;
            }
            if index.size() + 1 > index.capacity() {
                let grown = index.capacity() + ADDED_HEADROOM.max(index.capacity() / 4);
                index.reserve(grown).map_err(|e| format!("usearch reserve {grown}: {e}"))?;
            }
            index.add(key, &point).map_err(|e| format!("usearch add {item}: {e}"))?;
        }
        Ok(())
    }

    /// Up to `n` items with the largest ⟨query, item⟩, best first, approximately.
    pub fn search(&self, query: &[f32], n: usize) -> Vec<(u32, f32)> {
        let mut augmented = query.to_vec();
        augmented.push(0.0);
        let graph = self.graph.read();
        let keys: Vec<u32> = match &*graph {
            #[cfg(feature = "ann-peers")]
            Graph::InstantDistance(map) => {
                let mut search = Search::default();
                map.search(&Augmented(augmented), &mut search).map(|hit| *hit.value).collect()
            }
            #[cfg(feature = "ann-peers")]
            Graph::HnswRs(hnsw) => {
                let ef = self.settings.ef_search;
                hnsw.search(&augmented, ef, ef).iter().map(|hit| hit.d_id as u32).collect()
            }
            Graph::Usearch(index) => match index.search(&augmented, n) {
                Ok(matches) => matches.keys.iter().map(|&key| key as u32).collect(),
                Err(_) => return self.exact_search(query, n),
            },
        };
        let graph_has_added = matches!(*graph, Graph::Usearch(_));
        drop(graph);
        let added = self.added.read();
        let base = self.catalog_items();
        // While added items are few, they are scanned exactly: the graph
        // finds items inserted late, and moved (removed and re-inserted),
        // less often than built ones (`cascade bench ann`), and the newest
        // items are the ones that must not be missed.
        let scan_added = !graph_has_added || added.len() / self.dim.max(1) <= self.exact_added_scan;
        let mut found: Vec<(u32, f32)> = keys
            .into_iter()
            .filter(|&item| !(scan_added && item >= base))
            .map(|item| (item, dot(query, self.vector_in(item, &added))))
            .collect();
        if scan_added {
            let scan = added.chunks_exact(self.dim).enumerate();
            found.extend(scan.map(|(k, x)| (base + k as u32, dot(query, x))));
        }
        found.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        found.truncate(n);
        found
    }

    /// The exact top `n` by brute force, to measure the index against.
    pub fn exact_search(&self, query: &[f32], n: usize) -> Vec<(u32, f32)> {
        let added = self.added.read();
        let mut all: Vec<(u32, f32)> = self
            .items
            .chunks_exact(self.dim)
            .chain(added.chunks_exact(self.dim))
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
#[allow(clippy::expect_used, reason = "allocation failures of a fixed-size build, as OOM")]
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
    let capacity = points.len() + ADDED_HEADROOM;
    index.reserve_capacity_and_threads(capacity, threads).expect("usearch reserves memory");
    points.par_iter().enumerate().for_each(|(key, point)| {
        index.add(key as u64, &point.0).expect("capacity was reserved for every point");
    });
    index
}

/// Users whose online-learned vectors are kept (a vector of 64 floats is
/// ~300 bytes with its key): beyond it, users the models do not know are
/// not learned until the next build.
pub const MAX_LEARNED_USERS: usize = 1_000_000;

/// The ANN channel: the user's embedding against the item index.
#[derive(Debug)]
pub struct AnnRecall {
    index: AnnIndex,
    users: Vec<f32>,
    /// Users' vectors as online learning moved them, by external id; it
    /// covers users the build never saw. Dropped with the models on a swap,
    /// whose new vectors were trained on the same events.
    learned_users: RwLock<HashMap<String, Vec<f32>>>,
}

impl AnnRecall {
    /// From the item index and the user matrix (U × D, same D).
    pub fn new(index: AnnIndex, users: Vec<f32>) -> AnnRecall {
        AnnRecall { index, users, learned_users: RwLock::new(HashMap::new()) }
    }

    /// The item index, e.g. for similar-item queries.
    pub fn index(&self) -> &AnnIndex {
        &self.index
    }

    /// The user's vector: the learned one, else the built one of dense
    /// index `user`, else none.
    pub fn user_vector(&self, user: Option<u32>, user_id: &str) -> Option<Vec<f32>> {
        if let Some(learned) = self.learned_users.read().get(user_id) {
            return Some(learned.clone());
        }
        let dim = self.index.dim();
        let user = user? as usize;
        self.users.get(user * dim..(user + 1) * dim).map(<[f32]>::to_vec)
    }

    /// Replaces the user's vector; `false` (and nothing kept) when the
    /// user is new and `MAX_LEARNED_USERS` are already kept.
    pub fn set_user_vector(&self, user_id: &str, vector: Vec<f32>) -> bool {
        let mut learned = self.learned_users.write();
        if learned.len() >= MAX_LEARNED_USERS && !learned.contains_key(user_id) {
            return false;
        }
        learned.insert(user_id.to_owned(), vector);
        true
    }

    /// Users with a learned vector.
    pub fn learned_users(&self) -> usize {
        self.learned_users.read().len()
    }
}

impl CandidateSource for AnnRecall {
    fn name(&self) -> &'static str {
        "recall/ann"
    }

    fn recall(&self, context: &RecallContext<'_>, n: usize) -> Vec<(u32, f32)> {
        match self.user_vector(context.user, context.user_id) {
            Some(query) => self.index.search(&query, n),
            None => Vec::new(),
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
        for &backend in AnnBackend::ALL {
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

    /// An added item is found at once on every backend, scored by its exact
    /// dot product even when longer than the catalog's longest; moving it
    /// moves it in the results; indices must come in order.
    #[test]
    fn added_items_are_searchable_at_once_and_move() {
        let (n, dim) = (500, 8);
        let mut rng = cascade_models::random::SeededRng::new(3);
        let items: Vec<f32> = (0..n * dim).map(|_| rng.unit() * 2.0 - 1.0).collect();
        let query: Vec<f32> = (0..dim).map(|d| if d == 0 { 1.0 } else { 0.0 }).collect();
        for &backend in AnnBackend::ALL {
            let settings = AnnSettings { backend, ef_search: 100, seed: 1 };
            let mut index = AnnIndex::build(items.clone(), dim, settings);
            let longest = (0..n as u32)
                .map(|i| index.item(i).iter().map(|v| v * v).sum::<f32>().sqrt())
                .fold(0f32, f32::max);
            // Along the query and twice as long as any catalog item.
            let added: Vec<f32> = query.iter().map(|q| q * 2.0 * longest).collect();
            index.set_added(n as u32, &added).unwrap();
            assert_eq!(index.len(), n + 1);
            let top = index.search(&query, 5);
            assert_eq!(top[0], (n as u32, 2.0 * longest), "{}", backend.name());
            assert_eq!(index.exact_search(&query, 1)[0].0, n as u32);
            // usearch: the graph itself has it, not only the exact scan.
            index.set_exact_added_scan(0);
            assert_eq!(index.search(&query, 5)[0].0, n as u32, "{}", backend.name());
            index.set_exact_added_scan(EXACT_ADDED_SCAN);
            let away: Vec<f32> = added.iter().map(|v| -v).collect();
            index.set_added(n as u32, &away).unwrap();
            let top = index.search(&query, 20);
            assert!(top.iter().all(|hit| hit.0 != n as u32), "{}: moved away", backend.name());
            assert_eq!(index.item(n as u32).as_ref(), away.as_slice());
            assert!(index.set_added(n as u32 + 2, &away).is_err(), "skips an index");
            assert!(index.set_added(3, &away).is_err(), "a catalog item");
        }
    }
}
