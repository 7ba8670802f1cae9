//! One training step of a sparse embedding table (gather 512 ids, candle
//! backward of a small loss, row-wise Adagrad on the touched rows), on a
//! table of 1,000 rows and one of 10,000,000 rows. The step must cost the same.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use cascade_nn::{EmbeddingTable, OptimizerConfig, TableConfig};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

const DIM: usize = 16;
const BATCH: usize = 512;

fn table_with_rows(rows: u64) -> EmbeddingTable {
    let mut table = EmbeddingTable::new(TableConfig {
        name: "ids".into(),
        dim: DIM,
        optimizer: OptimizerConfig::Adagrad { lr: 0.05, initial_accumulator: 0.1 },
        init_scale: 0.01,
        seed: 3,
    });
    let ids: Vec<u64> = (0..rows).collect();
    for chunk in ids.chunks(1 << 16) {
        table.lookup(chunk).expect("lookup");
    }
    table
}

fn step(table: &mut EmbeddingTable, ids: &[u64]) {
    let lookup = table.lookup(ids).expect("lookup");
    let loss = lookup.var.as_tensor().sqr().and_then(|t| t.sum_all()).expect("loss");
    let grads = loss.backward().expect("backward");
    table.apply_gradients(&lookup, &grads).expect("update");
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("embedding_step_b512_d16");
    for rows in [1_000u64, 10_000_000] {
        let mut table = table_with_rows(rows);
        // A fixed pseudo-random batch spread over the whole table.
        let ids: Vec<u64> =
            (0..BATCH as u64).map(|i| (i.wrapping_mul(2_654_435_761)) % rows).collect();
        group.bench_with_input(BenchmarkId::from_parameter(rows), &ids, |b, ids| {
            b.iter(|| step(&mut table, ids))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
