//! Scoring one request's 300 candidates with DeepFM (5 fields, D = 16, MLP
//! [64, 32]): candle's graph (`CtrModel::score` as training validates)
//! against the serving path (`CtrModel::prepare_for_serving`), same model.
//! Run with `RAYON_NUM_THREADS=1`, as the `cascade` binary sets it for
//! candle's matmul (see `configure_threads` in cascade-cli).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use cascade_eval::protocols::CtrExample;
use cascade_models::random::SeededRng;
use cascade_models::ranking::{CtrArch, CtrFeatures, CtrModel, CtrModelConfig};
use criterion::{Criterion, criterion_group, criterion_main};

const CANDIDATES: usize = 300;

/// user, item, category, hour, weekday: the synthetic serving benchmark's fields.
fn examples(rng: &mut SeededRng, n: usize) -> Vec<CtrExample<CtrFeatures>> {
    (0..n)
        .map(|_| {
            let (user, item) = (rng.below(20_000) as u64, rng.below(100_000) as u64);
            let (category, hour, day) = (item % 64, rng.below(24) as u64, rng.below(7) as u64);
            let fields = vec![
                vec![user],
                vec![1_000_000 + item],
                vec![2_000_000 + category],
                vec![3_000_000 + hour],
                vec![4_000_000 + day],
            ];
            CtrExample {
                user: user as u32,
                label: (user + category) % 3 == 0,
                features: CtrFeatures { fields, history: Vec::new() },
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut rng = SeededRng::new(11);
    let (train, valid) = (examples(&mut rng, 40_000), examples(&mut rng, 2_000));
    let request = examples(&mut rng, CANDIDATES);
    let request: Vec<&CtrFeatures> = request.iter().map(|e| &e.features).collect();
    let mut config = CtrModelConfig::default_for(CtrArch::DeepFm);
    config.training.max_epochs = 1;
    let (mut model, _) = CtrModel::train(&train, &valid, &config, 1, |_| {}).expect("training");
    let mut group = c.benchmark_group("deepfm_score_300_candidates");
    group.bench_function("candle_graph", |b| b.iter(|| model.score(&request).expect("score")));
    model.prepare_for_serving().expect("snapshot");
    group.bench_function("serving_path", |b| b.iter(|| model.score(&request).expect("score")));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
