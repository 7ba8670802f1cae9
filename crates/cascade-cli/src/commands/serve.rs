//! `cascade serve`: trains the serving models on the workspace's data and
//! answers the HTTP API (`cascade-serve`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};

use cascade_core::config::FeatureType;
use cascade_core::{FeatureValue, IdIndex};
use cascade_models::ranking::{CtrArch, CtrModelConfig};
use cascade_models::retrieval::{BprMf, BprMfConfig};
use cascade_models::training::Overrides;
use cascade_models::tuning::ITEM_KNN_DEFAULT;
use cascade_models::{Interactions, ItemKnn};
use cascade_serve::catalog::{Catalog, ItemFacts};
use cascade_serve::entities::{Entities, HiddenItems};
use cascade_serve::events::EventLog;
use cascade_serve::http::{AppState, ModelLoader, serve};
use cascade_serve::metrics::Metrics;
use cascade_serve::rank::CtrRanker;
use cascade_serve::recall::{AnnBackend, AnnIndex, AnnRecall, AnnSettings, ItemCfRecall};
use cascade_serve::recommender::{Models, PipelineSettings, Recommender};
use cascade_store::{EntityKind, GroupCommitter};

use crate::ModelName;
use crate::commands::eval::{Prepared, prepare};
use crate::commands::ranking;
use crate::progress::Progress;
use crate::workspace::Workspace;

/// Items the ANN search examines per query (its `ef`): a search returns at
/// most this many, and consumed items are removed after it, so heavy users
/// (MovieLens has users with 700 ratings) need room.
const ANN_EF_SEARCH: usize = 500;
/// The most events one durable commit of `POST /v1/events` takes.
const EVENTS_PER_COMMIT: usize = 10_000;
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
    let catalog = catalog_of(&workspace, &prepared)?;
    let models = build_models(&workspace, &prepared, catalog, ranker, arch, progress)?;

    let data: Option<PathBuf> = data.map(Path::to_path_buf);
    let loader_workspace = workspace.clone();
    // A reload retrains on the workspace's data as it is now; the serving
    // catalog (ids, histories, item facts) stays the one the server started with.
    let loader: Arc<ModelLoader> = Arc::new(move || {
        let quiet = Progress { quiet: true };
        let prepared = prepare(&loader_workspace, data.as_deref(), quiet)?;
        let catalog = catalog_of(&loader_workspace, &prepared)?;
        build_models(&loader_workspace, &prepared, catalog, ranker, arch, quiet)
    });
    let metrics = Arc::new(Metrics::default());
    let hidden = HiddenItems::load(workspace.dir.join("hidden_items.json"))?;
    let recommender = Arc::new(
        Recommender::new(models, PipelineSettings::default(), metrics.clone()).with_hidden(hidden),
    );
    // Events go to the workspace's own log, where the next reload finds them.
    let events =
        Arc::new(EventLog::new(GroupCommitter::start(workspace.store()?, EVENTS_PER_COMMIT)));
    let config = &workspace.config;
    let entities = Entities::new(workspace.store()?, config.users.clone(), config.items.clone());
    let state = Arc::new(AppState {
        recommender,
        metrics,
        loader: Some(loader),
        events: Some(events),
        entities: Some(Arc::new(entities)),
    });

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

/// Ids, every user's items in time order (train, then valid, then test),
/// and the items' categories and publication times.
fn catalog_of(workspace: &Workspace, prepared: &Prepared) -> Result<Catalog> {
    let split = &prepared.split;
    let histories = (0..split.train.len())
        .map(|u| {
            let mut items = split.train[u].clone();
            items.push(split.valid[u]);
            items.push(split.test[u]);
            items
        })
        .collect();
    Ok(Catalog {
        users: prepared.users.clone(),
        items: prepared.items.clone(),
        histories,
        facts: item_facts(workspace, &prepared.items)?,
    })
}

/// Categories come from the item table's first multi-categorical feature
/// (else its first categorical one), publication times from its first
/// timestamp feature. The data is historical, so "now" is the newest
/// publication.
fn item_facts(workspace: &Workspace, items: &IdIndex) -> Result<ItemFacts> {
    let features = &workspace.config.items.features;
    let first = |wanted: FeatureType| {
        features.iter().find(|(_, spec)| spec.feature_type == wanted).map(|(name, _)| name.clone())
    };
    let category_feature =
        first(FeatureType::MultiCategorical).or_else(|| first(FeatureType::Categorical));
    let time_feature = first(FeatureType::Timestamp);
    let store = workspace.store()?;
    let mut names: Vec<Vec<String>> = Vec::with_capacity(items.len());
    let mut published = Vec::with_capacity(items.len());
    for id in items.ids() {
        let record = store.get(EntityKind::Item, id)?.unwrap_or_default();
        let value = |feature: &Option<String>| feature.as_ref().and_then(|f| record.get(f));
        names.push(match value(&category_feature) {
            Some(FeatureValue::List(tokens)) => tokens.clone(),
            Some(FeatureValue::Text(token)) => vec![token.clone()],
            _ => Vec::new(),
        });
        published.push(match value(&time_feature) {
            Some(FeatureValue::Number(ms)) => Some((*ms / 1000.0) as i64),
            _ => None,
        });
    }
    let categories = IdIndex::new(names.iter().flatten().cloned());
    let item_categories = names
        .iter()
        .map(|tokens| tokens.iter().filter_map(|t| categories.index(t)).collect())
        .collect();
    let clock = published.iter().flatten().copied().max().unwrap_or(0);
    Ok(ItemFacts { categories, item_categories, published, clock })
}

/// Trains BPR-MF (ANN recall), fits item-CF and popularity on every history,
/// and trains the ranking architecture on ML100K-CTR's train part.
fn build_models(
    workspace: &Workspace,
    prepared: &Prepared,
    catalog: Catalog,
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
    let settings =
        AnnSettings { backend: AnnBackend::default(), ef_search: ANN_EF_SEARCH, seed: 2026 };
    let index = AnnIndex::build(matrix(items, split.n_items), dim, settings);
    let ann = AnnRecall::new(index, matrix(users, split.train.len()));

    let consumed = Interactions::new(split.n_items, &catalog.histories);
    let item_cf = ItemCfRecall::new(ItemKnn::fit(&consumed, ITEM_KNN_DEFAULT), ITEM_CF_RECENT);
    let counts: Vec<f32> = consumed.by_item.iter().map(|users| users.len() as f32).collect();

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
    let version = format!("bpr-mf+itemknn+{name}@{built}");
    Ok(Models::new(version, catalog, ann, item_cf, &counts, Some(Box::new(ranker))))
}
