//! Seeded synthetic item embeddings for benchmarks at catalog sizes
//! MovieLens does not reach.
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
    let centres: Vec<f32> = (0..clusters * dim).map(|_| normal(&mut rng)).collect();
    let cluster_cdf = zipf_cdf(clusters, 1.0);
    let mut items = Vec::with_capacity(n * dim);
    for rank in 0..n {
        let c = zipf(&mut rng, &cluster_cdf);
        // Popularity rank → norm between ~0.5 and ~2.
        let scale = 0.5 + 1.5 / (1.0 + rank as f32 / (n as f32 / 20.0));
        let centre = &centres[c * dim..][..dim];
        items.extend(
            centre.iter().map(|x| (x + 0.5 * normal(&mut rng)) * scale / (dim as f32).sqrt()),
        );
    }
    let mut users = Vec::with_capacity(queries * dim);
    for _ in 0..queries {
        let (a, b) = (zipf(&mut rng, &cluster_cdf), zipf(&mut rng, &cluster_cdf));
        for d in 0..dim {
            let mix = 0.7 * centres[a * dim + d] + 0.3 * centres[b * dim + d];
            users.push(mix + 0.3 * normal(&mut rng));
        }
    }
    (items, users)
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
}
