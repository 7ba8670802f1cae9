//! Seeded synthetic item embeddings and catalogs (users, histories,
//! categories) for benchmarks at catalog sizes MovieLens does not reach.
//!
//! Retrieval embeddings are not uniform noise: items cluster by taste
//! (genres, audiences) and popular items get larger norms (they are pushed
//! up by many positives). So: `clusters` centres, each item a centre plus
//! noise, its norm scaled by a Zipf-like popularity weight. Cluster sizes are
//! skewed too (Zipf over clusters). Queries are users: a mixture of two
//! centres plus noise. Draws come from the project's fixed `SeededRng`, so a
//! benchmark repeats exactly.

use cascade_models::random::SeededRng;

/// Approximately standard normal (sum of four uniforms, rescaled).
pub fn normal(rng: &mut SeededRng) -> f32 {
    let sum: f32 = (0..4).map(|_| rng.unit()).sum();
    (sum - 2.0) * (3.0f32).sqrt()
}

/// An index in 0..cdf.len() drawn by inverse CDF from cumulative weights.
pub fn zipf(rng: &mut SeededRng, cdf: &[f32]) -> usize {
    let u = rng.unit() * cdf.last().copied().unwrap_or(0.0);
    cdf.partition_point(|&c| c < u).min(cdf.len().saturating_sub(1))
}

/// Cumulative Zipf weights over `n` ranks.
pub fn zipf_cdf(n: usize, exponent: f32) -> Vec<f32> {
    let mut total = 0.0;
    (0..n)
        .map(|k| {
            total += 1.0 / ((k + 1) as f32).powf(exponent);
            total
        })
        .collect()
}

/// `n` item embeddings (n × dim, row-major) and `queries` user embeddings.
pub fn clustered_embeddings(
    n: usize,
    dim: usize,
    clusters: usize,
    queries: usize,
    seed: u64,
) -> (Vec<f32>, Vec<f32>) {
    let mut rng = SeededRng::new(seed);
    let space = TasteSpace::new(&mut rng, dim, clusters);
    let (items, _) = space.items(&mut rng, n);
    let (users, _) = space.users(&mut rng, queries);
    (items, users)
}

/// Cluster centres ("tastes") with Zipf-skewed sizes.
struct TasteSpace {
    dim: usize,
    centres: Vec<f32>,
    cluster_cdf: Vec<f32>,
}

impl TasteSpace {
    fn new(rng: &mut SeededRng, dim: usize, clusters: usize) -> TasteSpace {
        let centres: Vec<f32> = (0..clusters * dim).map(|_| normal(rng)).collect();
        TasteSpace { dim, centres, cluster_cdf: zipf_cdf(clusters, 1.0) }
    }

    fn centre(&self, cluster: usize) -> &[f32] {
        &self.centres[cluster * self.dim..][..self.dim]
    }

    /// `n` items in popularity-rank order (item 0 the most popular), each
    /// with its cluster.
    fn items(&self, rng: &mut SeededRng, n: usize) -> (Vec<f32>, Vec<u32>) {
        let mut items = Vec::with_capacity(n * self.dim);
        let mut clusters = Vec::with_capacity(n);
        let root = (self.dim as f32).sqrt();
        for rank in 0..n {
            let c = zipf(rng, &self.cluster_cdf);
            // Popularity rank → norm between ~0.5 and ~2.
            let scale = 0.5 + 1.5 / (1.0 + rank as f32 / (n as f32 / 20.0));
            items.extend(self.centre(c).iter().map(|x| (x + 0.5 * normal(rng)) * scale / root));
            clusters.push(c as u32);
        }
        (items, clusters)
    }

    /// `n` users, each mixing a main and a second taste (70/30).
    fn users(&self, rng: &mut SeededRng, n: usize) -> (Vec<f32>, Vec<[u32; 2]>) {
        let mut users = Vec::with_capacity(n * self.dim);
        let mut tastes = Vec::with_capacity(n);
        for _ in 0..n {
            let (a, b) = (zipf(rng, &self.cluster_cdf), zipf(rng, &self.cluster_cdf));
            for d in 0..self.dim {
                let mix = 0.7 * self.centre(a)[d] + 0.3 * self.centre(b)[d];
                users.push(mix + 0.3 * normal(rng));
            }
            tastes.push([a as u32, b as u32]);
        }
        (users, tastes)
    }
}

/// What a synthetic catalog is made of.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CatalogSpec {
    /// Items; item 0 is the most popular.
    pub items: usize,
    /// Users with histories.
    pub users: usize,
    /// Embedding dimension.
    pub dim: usize,
    /// Categories (= taste clusters).
    pub categories: usize,
    /// Mean sessions per user (geometric).
    pub mean_sessions: f32,
    /// Mean items per session (geometric).
    pub mean_session_length: f32,
    /// Seed of every draw.
    pub seed: u64,
}

/// A seeded catalog with users, histories and embeddings: what the serving
/// benchmark runs on at sizes MovieLens does not reach.
#[derive(Debug, Clone)]
pub struct SyntheticCatalog {
    /// The spec it was drawn from.
    pub spec: CatalogSpec,
    /// Retrieval item embeddings, items × dim.
    pub item_vectors: Vec<f32>,
    /// Each item's category.
    pub item_categories: Vec<u32>,
    /// Each item's publication time, in seconds before "now" (0..365 days).
    pub item_age_seconds: Vec<u32>,
    /// Retrieval user embeddings, users × dim.
    pub user_vectors: Vec<f32>,
    /// Each user's items, oldest first: sessions within the user's two
    /// tastes (70/30), items Zipf-popular within a category.
    pub histories: Vec<Vec<u32>>,
}

impl SyntheticCatalog {
    /// Draws the catalog; the same spec gives the same catalog.
    pub fn generate(spec: CatalogSpec) -> SyntheticCatalog {
        let mut rng = SeededRng::new(spec.seed);
        let space = TasteSpace::new(&mut rng, spec.dim, spec.categories.max(1));
        let (item_vectors, item_categories) = space.items(&mut rng, spec.items);
        let (user_vectors, tastes) = space.users(&mut rng, spec.users);
        let item_age_seconds =
            (0..spec.items).map(|_| (rng.unit() * 365.0 * 86_400.0) as u32).collect();
        // Items of each category in popularity order, with a Zipf CDF over them.
        let mut by_category: Vec<Vec<u32>> = vec![Vec::new(); spec.categories.max(1)];
        for (item, &c) in item_categories.iter().enumerate() {
            by_category[c as usize].push(item as u32);
        }
        let cdfs: Vec<Vec<f32>> =
            by_category.iter().map(|items| zipf_cdf(items.len(), 1.0)).collect();
        let geometric = |rng: &mut SeededRng, mean: f32| -> usize {
            let p = 1.0 / mean.max(1.0);
            let u = rng.unit().clamp(f32::EPSILON, 1.0 - f32::EPSILON);
            1 + (u.ln() / (1.0 - p).ln()).floor().max(0.0) as usize
        };
        let histories = tastes
            .iter()
            .map(|taste| {
                let sessions = geometric(&mut rng, spec.mean_sessions);
                let mut history = Vec::new();
                for _ in 0..sessions {
                    let length = geometric(&mut rng, spec.mean_session_length);
                    // A session stays mostly in one taste.
                    let main = taste[usize::from(rng.unit() >= 0.7)] as usize;
                    for _ in 0..length {
                        let c = if rng.unit() < 0.8 { main } else { taste[0] as usize };
                        if by_category[c].is_empty() {
                            continue;
                        }
                        history.push(by_category[c][zipf(&mut rng, &cdfs[c])]);
                    }
                }
                history
            })
            .collect();
        SyntheticCatalog {
            spec,
            item_vectors,
            item_categories,
            item_age_seconds,
            user_vectors,
            histories,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_data_and_clusters_are_skewed() {
        let (a, qa) = clustered_embeddings(500, 8, 10, 5, 3);
        let (b, qb) = clustered_embeddings(500, 8, 10, 5, 3);
        assert_eq!((a.len(), qa.len()), (500 * 8, 5 * 8));
        assert_eq!((a, qa), (b, qb));
        let cdf = zipf_cdf(10, 1.0);
        let mut rng = SeededRng::new(1);
        let mut counts = [0usize; 10];
        (0..10_000).for_each(|_| counts[zipf(&mut rng, &cdf)] += 1);
        assert!(counts[0] > 3 * counts[9], "{counts:?}");
    }

    #[test]
    fn catalog_histories_follow_tastes_and_popularity() {
        let spec = CatalogSpec {
            items: 2000,
            users: 300,
            dim: 8,
            categories: 10,
            mean_sessions: 3.0,
            mean_session_length: 6.0,
            seed: 5,
        };
        let catalog = SyntheticCatalog::generate(spec);
        assert_eq!(catalog.item_vectors.len(), 2000 * 8);
        assert_eq!(catalog.user_vectors.len(), 300 * 8);
        assert_eq!(catalog.histories.len(), 300);
        let again = SyntheticCatalog::generate(spec);
        assert_eq!(catalog.histories, again.histories, "seeded");
        let events: usize = catalog.histories.iter().map(Vec::len).sum();
        let mean = events as f32 / 300.0;
        assert!((8.0..40.0).contains(&mean), "mean history length {mean}");
        // Skew: the first tenth of the items (most popular) draws far more
        // than the last tenth.
        let (mut head, mut tail) = (0, 0);
        for &item in catalog.histories.iter().flatten() {
            head += usize::from(item < 200);
            tail += usize::from(item >= 1800);
        }
        assert!(head > 3 * tail.max(1), "head {head} tail {tail}");
        // Users stay within few categories.
        let spread: f32 = catalog
            .histories
            .iter()
            .filter(|h| h.len() >= 5)
            .map(|h| {
                let mut cats: Vec<u32> =
                    h.iter().map(|&i| catalog.item_categories[i as usize]).collect();
                cats.sort_unstable();
                cats.dedup();
                cats.len() as f32
            })
            .sum::<f32>();
        let users = catalog.histories.iter().filter(|h| h.len() >= 5).count() as f32;
        assert!(spread / users <= 2.0, "categories per user {}", spread / users);
    }
}
