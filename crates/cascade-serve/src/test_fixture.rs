//! The small recommender unit tests share.

use std::sync::Arc;

use cascade_core::ids::IdIndex;
use cascade_models::tuning::ITEM_KNN_DEFAULT;
use cascade_models::{Interactions, ItemKnn};

use crate::catalog::{Catalog, ItemFacts};
use crate::metrics::Metrics;
use crate::recall::{AnnBackend, AnnIndex, AnnRecall, AnnSettings, ItemCfRecall};
use crate::recommender::{Models, PipelineSettings, Recommender};

/// Two users ("a", "b") and 30 items ("0".."29", item i in category
/// c{i % 3}, published at i × 1000 s) with 4-dimensional embeddings, no
/// ranker; the ANN index on `backend`.
pub fn small_recommender(settings: PipelineSettings, backend: AnnBackend) -> Recommender {
    Recommender::new(small_models(backend), settings, Arc::new(Metrics::default()))
}

/// The models of [`small_recommender`].
pub fn small_models(backend: AnnBackend) -> Models {
    let n_items = 30;
    let histories: Vec<Vec<u32>> = vec![vec![0, 1, 2], vec![1, 2, 3, 4]];
    let vectors: Vec<f32> = (0..n_items * 4).map(|k| ((k * 7 % 13) as f32 - 6.0) / 6.0).collect();
    let users: Vec<f32> = (0..2 * 4).map(|k| (k as f32 - 3.5) / 3.5).collect();
    let consumed = Interactions::new(n_items, &histories);
    let counts: Vec<f32> = (0..n_items).map(|i| (n_items - i) as f32).collect();
    // Item i is in category c{i % 3}, published at i × 1000 s.
    let facts = ItemFacts {
        categories: IdIndex::new(["c0", "c1", "c2"]),
        item_categories: (0..n_items).map(|i| vec![(i % 3) as u32]).collect(),
        published: (0..n_items).map(|i| Some(i as i64 * 1000)).collect(),
        clock: n_items as i64 * 1000,
    };
    let catalog = Catalog::new(
        IdIndex::new(["a", "b"]),
        IdIndex::new((0..n_items).map(|i| i.to_string())),
        histories,
        facts,
    );
    Models::new(
        "test".into(),
        catalog,
        AnnRecall::new(
            AnnIndex::build(vectors, 4, AnnSettings { backend, ef_search: 50, seed: 1 }),
            users,
        ),
        ItemCfRecall::new(ItemKnn::fit(&consumed, ITEM_KNN_DEFAULT), 5),
        &counts,
        None,
    )
}
