//! `cascade serve`: trains the serving models on the workspace's data and
//! answers the HTTP API (`cascade-serve`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};

use cascade_models::ranking::{CtrArch, CtrModelConfig};
use cascade_models::retrieval::{BprMf, BprMfConfig};
use cascade_models::training::Overrides;
use cascade_models::tuning::ITEM_KNN_DEFAULT;
use cascade_models::{Interactions, ItemKnn};
use cascade_serve::http::{AppState, ModelLoader, serve};
use cascade_serve::metrics::Metrics;
use cascade_serve::rank::CtrRanker;
use cascade_serve::recall::{AnnIndex, AnnRecall, ItemCfRecall, PopularRecall};
use cascade_serve::recommender::{Catalog, Models, PipelineSettings, Recommender};

use crate::ModelName;
use crate::commands::eval::{Prepared, prepare};
use crate::commands::ranking;
use crate::progress::Progress;
use crate::workspace::Workspace;

/// Items the ANN search examines per query (its `ef`): a search returns at
/// most this many, and consumed items are removed after it, so heavy users
/// (MovieLens has users with 700 ratings) need room.
const ANN_EF_SEARCH: usize = 500;
/// History items item-CF reads.
const ITEM_CF_RECENT: usize = 20;

pub fn run(
    common: &crate::Common,
    addr: SocketAddr,
    ranker: ModelName,
    data: Option<&Path>,
) -> Result<()> {
    let name = ranker.to_possible_value_name();
    let arch = ranking::ctr_arch(ranker).ok_or_else(|| {
        anyhow!("`--ranker {name}` is not a ranking model; use lr, fm, wide-deep, deepfm, dcnv2, din or dien")
    })?;
    let workspace = Arc::new(Workspace::open(common)?);
    let progress = Progress { quiet: false };
    let prepared = prepare(&workspace, data, progress)?;
    let catalog = catalog_of(&prepared);
    let models = build_models(&workspace, &prepared, &catalog.histories, ranker, arch, progress)?;

    let data: Option<PathBuf> = data.map(Path::to_path_buf);
    let loader_workspace = workspace.clone();
    // A reload retrains on the workspace's data as it is now; the catalog
    // (ids, histories) stays the one the server started with.
    let loader: Arc<ModelLoader> = Arc::new(move || {
        let quiet = Progress { quiet: true };
        let prepared = prepare(&loader_workspace, data.as_deref(), quiet)?;
        let histories = catalog_of(&prepared).histories;
        build_models(&loader_workspace, &prepared, &histories, ranker, arch, quiet)
    });
    let metrics = Arc::new(Metrics::default());
    let recommender =
        Arc::new(Recommender::new(models, catalog, PipelineSettings::default(), metrics.clone()));
    let state = Arc::new(AppState { recommender, metrics, loader: Some(loader) });

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener =
            tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
        let bound = listener.local_addr()?;
        println!("cascade serve: listening on http://{bound}");
        serve(listener, state).await.context("serving HTTP")
    })
}

/// Ids and every user's items in time order (train, then valid, then test).
fn catalog_of(prepared: &Prepared) -> Catalog {
    let split = &prepared.split;
    let histories = (0..split.train.len())
        .map(|u| {
            let mut items = split.train[u].clone();
            items.push(split.valid[u]);
            items.push(split.test[u]);
            items
        })
        .collect();
    Catalog { users: prepared.users.clone(), items: prepared.items.clone(), histories }
}

/// Trains BPR-MF (ANN recall), fits item-CF and popularity on every history,
/// and trains the ranking architecture on ML100K-CTR's train part.
fn build_models(
    workspace: &Workspace,
    prepared: &Prepared,
    histories: &[Vec<u32>],
    ranker: ModelName,
    arch: CtrArch,
    progress: Progress,
) -> Result<Models> {
    let split = &prepared.split;
    let bar = progress.spinner("training BPR-MF for ANN recall");
    let mut bpr_config = BprMfConfig::default();
    bpr_config
        .training
        .apply(&workspace.training_overrides(ModelName::BprMf, Overrides::default())?);
    let (bpr, _) = BprMf::train(split, &bpr_config, |_| {})?;
    bar.finish_and_clear();
    let (users, items) = bpr.tables();
    let dim = bpr_config.dim;
    let matrix = |table: &cascade_nn::EmbeddingTable, n: usize| -> Vec<f32> {
        (0..n as u64)
            .flat_map(|id| table.row(id).map_or_else(|| vec![0.0; dim], <[f32]>::to_vec))
            .collect()
    };
    let index = AnnIndex::build(matrix(items, split.n_items), dim, ANN_EF_SEARCH, 2026);
    let ann = AnnRecall::new(index, matrix(users, split.train.len()));

    let consumed = Interactions::new(split.n_items, histories);
    let item_cf = ItemCfRecall::new(ItemKnn::fit(&consumed, ITEM_KNN_DEFAULT), ITEM_CF_RECENT);
    let counts: Vec<f32> = consumed.by_item.iter().map(|users| users.len() as f32).collect();
    let popular = PopularRecall::new(&counts);

    let mut config = CtrModelConfig::default_for(arch);
    config.training.apply(&workspace.training_overrides(ranker, Overrides::default())?);
    let split_ctr = prepared.pipeline.ctr_split(&prepared.users, &prepared.items)?;
    let inputs = ranking::encode(workspace, prepared, &split_ctr, config.history_length)?;
    let (model, _) = ranking::train(&inputs, &config, progress)?;
    let encoder = prepared.field_encoder(workspace)?;
    let name = ranker.to_possible_value_name();
    let ranker = CtrRanker::new(&name, model, encoder, config.history_length);
    let built = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    Ok(Models {
        version: format!("bpr-mf+itemknn+{name}@{built}"),
        ann,
        item_cf,
        popular,
        ranker: Some(Box::new(ranker)),
    })
}
