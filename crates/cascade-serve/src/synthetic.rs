//! Seeded synthetic item embeddings for benchmarks at catalog sizes
//! MovieLens does not reach.
//!
//! Retrieval embeddings are not uniform noise: items cluster by taste
//! (genres, audiences) and popular items get larger norms (they are pushed
//! up by many positives). So: `clusters` centres, each item a centre plus
//! noise, its norm scaled by a Zipf-like popularity weight. Cluster sizes are
//! skewed too (Zipf over clusters). Queries are users: a mixture of two
//! centres plus noise.

/// A small seeded generator (SplitMix64); benchmarks must repeat exactly.
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> SplitMix {
        SplitMix(seed)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Approximately standard normal (sum of four uniforms, rescaled).
    pub fn normal(&mut self) -> f32 {
        let sum: f32 = (0..4).map(|_| self.unit()).sum();
        (sum - 2.0) * (3.0f32).sqrt()
    }

    /// An index in 0..n with P(k) ∝ 1 / (k + 1)^exponent, by inverse CDF.
    pub fn zipf(&mut self, cdf: &[f32]) -> usize {
        let u = self.unit() * cdf.last().copied().unwrap_or(0.0);
        cdf.partition_point(|&c| c < u).min(cdf.len().saturating_sub(1))
    }
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
    let mut rng = SplitMix::new(seed);
    let centres: Vec<f32> = (0..clusters * dim).map(|_| rng.normal()).collect();
    let cluster_cdf = zipf_cdf(clusters, 1.0);
    let mut items = Vec::with_capacity(n * dim);
    for rank in 0..n {
        let c = rng.zipf(&cluster_cdf);
        // Popularity rank → norm between ~0.5 and ~2.
        let scale = 0.5 + 1.5 / (1.0 + rank as f32 / (n as f32 / 20.0));
        let centre = &centres[c * dim..][..dim];
        items.extend(centre.iter().map(|x| (x + 0.5 * rng.normal()) * scale / (dim as f32).sqrt()));
    }
    let mut users = Vec::with_capacity(queries * dim);
    for _ in 0..queries {
        let (a, b) = (rng.zipf(&cluster_cdf), rng.zipf(&cluster_cdf));
        for d in 0..dim {
            let mix = 0.7 * centres[a * dim + d] + 0.3 * centres[b * dim + d];
            users.push(mix + 0.3 * rng.normal());
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
        let mut rng = SplitMix::new(1);
        let mut counts = [0usize; 10];
        (0..10_000).for_each(|_| counts[rng.zipf(&cdf)] += 1);
        assert!(counts[0] > 3 * counts[9], "{counts:?}");
    }
}
