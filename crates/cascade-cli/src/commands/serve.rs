//! `cascade serve`: trains the serving models on the workspace's data and
//! answers the HTTP API (`cascade-serve`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};

use cascade_core::IdIndex;
use cascade_core::config::OnlineBackend;
use cascade_models::Interactions;
use cascade_models::ranking::{CtrArch, CtrModel, CtrModelConfig};
use cascade_models::retrieval::{BprMf, BprMfConfig};
use cascade_models::training::Overrides;
use cascade_nn::EmbeddingTable;
use cascade_nn::checkpoint::{self, FORMAT_VERSION, Manifest};
use cascade_serve::access::{AccessKeys, check_bind};
use cascade_serve::catalog::{Catalog, ItemFacts, ItemFactsReader};
use cascade_serve::entities::{Entities, HiddenItems};
use cascade_serve::events::{EventLog, IMPRESSION};
use cascade_serve::http::{AppState, ModelLoader, serve};
use cascade_serve::metrics::Metrics;
use cascade_serve::online_learning::{CheckpointWriter, OnlineLearningSettings, OnlineTrainer};
use cascade_serve::rank::{CtrRanker, Ranker};
use cascade_serve::recall::{
    AnnBackend, AnnIndex, AnnRecall, AnnSettings, ItemCfRecall, decayed_counts,
};
use cascade_serve::recommender::{Models, PipelineSettings, Recommender};
use cascade_serve::retrieval_learning::{RetrievalLearner, RetrievalLearningSettings};
use cascade_store::online::{OnlineStore, RedisOnlineStore};
use cascade_store::{EntityKind, GroupCommitter, RedisEventBus};

use crate::commands::stream_worker::spawn_forwarder;
use cascade_stream::{LiveStream, StreamProcessor, StreamSettings};

use crate::ModelName;
use crate::commands::eval::{Prepared, prepare};
use crate::commands::ranking::{self, ContextFeatures};
use crate::commands::watch::watch_checkpoints;
use crate::progress::Progress;
use crate::workspace::Workspace;

/// Items the ANN search examines per query (its `ef`): a search returns at
/// most this many, and consumed items are removed after it, so heavy users
/// (MovieLens has users with 700 ratings) need room.
const ANN_EF_SEARCH: usize = 500;
/// The most events one durable commit of `POST /v1/events` takes.
const EVENTS_PER_COMMIT: usize = 10_000;
/// A consumption this much older than the newest one counts half in
/// `recall/popular`, `recall/category_popular` and popularity dampening.
const POPULARITY_HALF_LIFE_DAYS: f64 = 30.0;

/// How `cascade serve` runs.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    pub addr: SocketAddr,
    pub ranker: ModelName,
    /// Run the online trainer beside the server.
    pub online_learning: bool,
}

pub fn run(
    common: &crate::Common,
    options: &ServeOptions,
    data: Option<&Path>,
    models_dir: Option<&Path>,
) -> Result<()> {
    let (addr, ranker) = (options.addr, options.ranker);
    let workspace = Arc::new(Workspace::open(common)?);
    // Before any model is built: a refused bind should not cost a training.
    let access = AccessKeys::from_config(&workspace.config.serve);
    check_bind(addr, &access).map_err(|e| anyhow!(e))?;
    let name = ranker.to_possible_value_name();
    let arch = ranking::ctr_arch(ranker).ok_or_else(|| {
        anyhow!("`--ranker {name}` is not a ranking model; use lr, fm, wide-deep, deepfm, dcnv2, din or dien")
    })?;
    let progress = Progress { quiet: false };
    let data: Option<PathBuf> = data.map(Path::to_path_buf);
    let models_dir: Option<PathBuf> = models_dir.map(Path::to_path_buf);
    // Builds everything from the workspace's data as it is now: the catalog
    // (ids, histories, item facts) and models, from checkpoints if given,
    // else trained here. Used at start, by `POST /admin/models/reload` and
    // by the checkpoint watcher.
    let loader_workspace = workspace.clone();
    let loader_models = models_dir.clone();
    let load = move |progress: Progress| -> Result<Models> {
        let workspace = &loader_workspace;
        let prepared = prepare(workspace, data.as_deref(), progress)?;
        let catalog = catalog_of(workspace, &prepared)?;
        let models = match &loader_models {
            Some(dir) => checkpoint_models(workspace, &prepared, catalog, dir, ranker)?,
            None => build_models(workspace, &prepared, catalog, ranker, arch, progress)?,
        };
        add_items_without_events(workspace, &models)?;
        Ok(models)
    };
    let models = load(progress)?;
    let loader: Arc<ModelLoader> = Arc::new(move || load(Progress { quiet: true }));
    let metrics = Arc::new(Metrics::default());
    let hidden = HiddenItems::load(workspace.dir.join("hidden_items.json"))?;
    let item_categories = workspace.item_categories()?;
    let live = start_stream(&workspace, item_categories.clone())?;
    let settings = PipelineSettings {
        max_id_bytes: workspace.config.ingest.max_id_bytes,
        ..PipelineSettings::default()
    };
    let mut recommender = Recommender::new(models, settings, metrics.clone())
        .with_hidden(hidden)
        .with_live(live)
        .with_item_facts(workspace.item_facts_reader());
    if workspace.config.online_store.backend == OnlineBackend::Redis {
        recommender = recommender.with_shared_features(start_redis(&workspace, item_categories)?);
    }
    let recommender = Arc::new(recommender);
    if options.online_learning {
        let samples = workspace.dir.join("stream").join("samples.jsonl");
        let trainer = OnlineTrainer::new(
            samples,
            recommender.clone(),
            metrics.clone(),
            OnlineLearningSettings::default(),
        );
        trainer.spawn(online_checkpoint_writer(&workspace, &name));
        let settings = RetrievalLearningSettings::default();
        RetrievalLearner::new(workspace.store()?, recommender.clone(), metrics.clone(), settings)
            .map_err(|e| anyhow!("retrieval learning: {e}"))?
            .spawn();
    }
    // Events go to the workspace's own log, where the next reload finds them.
    let events = Arc::new(EventLog::new(
        GroupCommitter::start(workspace.store()?, EVENTS_PER_COMMIT),
        workspace.config.ingest.clone(),
    ));
    let config = &workspace.config;
    let entities = Entities::new(workspace.store()?, config.users.clone(), config.items.clone())
        .with_max_id_bytes(config.ingest.max_id_bytes);
    if let Some(dir) = &models_dir {
        let watched = [dir.join("bpr-mf"), dir.join(&name)];
        watch_checkpoints(watched.to_vec(), loader.clone(), recommender.clone());
    }
    let state = Arc::new(AppState {
        recommender,
        metrics,
        loader: Some(loader),
        events: Some(events),
        entities: Some(Arc::new(entities)),
        access: Arc::new(access),
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

/// Writes the online trainer's copy where `cascade serve --models` can read
/// it: `<workspace>/online/<ranker>/`, in `cascade train`'s layout.
fn online_checkpoint_writer(workspace: &Workspace, name: &str) -> Box<CheckpointWriter> {
    let dir = workspace.dir.join("online").join(name);
    let (name, fingerprint) = (name.to_owned(), workspace.schema_fingerprint());
    Box::new(move |model: &CtrModel, fields: &[String]| {
        let (tables, dense) = model.parts().map_err(|e| e.to_string())?;
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            model: name.clone(),
            schema_fingerprint: fingerprint.clone(),
            features: serde_json::json!({ "model": model.config(), "fields": fields }),
            tables: tables.iter().map(|t| t.config().clone()).collect(),
            dense: dense.tensors().iter().map(|(n, _)| n.clone()).collect(),
            metrics: Default::default(),
            data_range: None,
            version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        checkpoint::save(&dir, &manifest, &tables, dense.tensors()).map_err(|e| e.to_string())
    })
}

/// The stream processor over the workspace's log, resumed from its
/// checkpoint (`<workspace>/stream/checkpoint.json`) and caught up before
/// the server answers; labelled samples go to `stream/samples.jsonl`.
/// Affinities use the catalog's item categories as of the start.
fn start_stream(
    workspace: &Workspace,
    item_categories: HashMap<String, Vec<String>>,
) -> Result<Arc<LiveStream>> {
    let checkpoint = workspace.dir.join("stream").join("checkpoint.json");
    let processor = StreamProcessor::open(
        workspace.store()?,
        &checkpoint,
        StreamSettings::default(),
        item_categories,
    )?
    .with_event_time_bounds(workspace.config.ingest.clone())
    .with_sample_log(&workspace.dir.join("stream").join("samples.jsonl"))?;
    Ok(LiveStream::start(processor, checkpoint)?)
}

/// With `[online_store] backend = "redis"`: a thread forwards the
/// workspace's log into the Redis event stream, exactly once, for
/// `cascade stream-worker`s to turn into features, and the features this
/// server reads come from the Redis online store they keep, shared by
/// every server of the deployment.
fn start_redis(
    workspace: &Workspace,
    item_categories: HashMap<String, Vec<String>>,
) -> Result<Arc<dyn OnlineStore>> {
    let online = &workspace.config.online_store;
    let settings = StreamSettings::default().online();
    let store = RedisOnlineStore::open(&online.redis_url, &online.key_prefix, settings)?;
    let bus = RedisEventBus::open(&online.redis_url, &online.key_prefix)?;
    eprintln!("cascade serve: forwarding events to Redis stream {}", bus.stream());
    spawn_forwarder(bus, workspace.store()?, workspace.node_id()?, item_categories);
    Ok(Arc::new(store))
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
    let facts = item_facts(workspace, &prepared.items)?;
    Ok(Catalog::new(prepared.users.clone(), prepared.items.clone(), histories, facts))
}

/// Categories and publication times as `Workspace::item_facts_reader`
/// reads them. The data is historical, so "now" is the newest publication.
pub(crate) fn item_facts(workspace: &Workspace, items: &IdIndex) -> Result<ItemFacts> {
    let store = workspace.store()?;
    let mut records = Vec::with_capacity(items.len());
    for id in items.ids() {
        records.push(store.get(EntityKind::Item, id)?.unwrap_or_default());
    }
    Ok(workspace.item_facts_reader().facts(records))
}

/// Items whose records the store has but no event does (created through
/// the API since the last build, or imported without events) join the
/// freshly built models as `PUT /v1/items/{id}` adds them, so a restart or
/// a reload keeps them recommendable.
fn add_items_without_events(workspace: &Workspace, models: &Models) -> Result<()> {
    let reader: ItemFactsReader = workspace.item_facts_reader();
    for (id, record) in workspace.store()?.records(EntityKind::Item)? {
        models.add_item(&id, &record, &reader).map_err(|e| anyhow!("item {id:?}: {e}"))?;
    }
    Ok(())
}

/// Trains BPR-MF (ANN recall) and the ranking architecture on ML100K-CTR's
/// train part, then assembles the serving models.
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

    let mut config = CtrModelConfig::default_for(arch);
    config.training.apply(&workspace.training_overrides(ranker, Overrides::default())?);
    let split_ctr = prepared.pipeline.ctr_split(&prepared.users, &prepared.items)?;
    let inputs = ranking::encode(
        workspace,
        prepared,
        &split_ctr,
        config.history_length,
        ContextFeatures::Declared,
    )?;
    let (model, _) = ranking::train(&inputs, &config, progress)?;
    let encoder = prepared.field_encoder(workspace)?;
    let name = ranker.to_possible_value_name();
    let ranker = CtrRanker::new(&name, model, encoder, config.history_length)?;
    let version = format!("bpr-mf+itemknn+{name}@{}", cascade_core::timestamp::now_ms());
    let (users, items) = bpr.tables();
    let counts = popularity(workspace, &catalog)?;
    Ok(assemble(version, catalog, [users, items], &counts, Some(Box::new(ranker))))
}

/// Loads BPR-MF and the ranker from the checkpoints `cascade train` wrote
/// into `models_dir` (`bpr-mf/`, `<ranker>/`), checked against the running
/// schema, then assembles the serving models.
pub fn checkpoint_models(
    workspace: &Workspace,
    prepared: &Prepared,
    catalog: Catalog,
    models_dir: &Path,
    ranker: ModelName,
) -> Result<Models> {
    let fingerprint = workspace.schema_fingerprint();
    let name = ranker.to_possible_value_name();
    let load = |model: &str| {
        checkpoint::load(&models_dir.join(model), model, &fingerprint).map_err(|e| {
            anyhow!("{e}; write it with `cascade train --model {model}` (same data and config)")
        })
    };
    let retrieval = load("bpr-mf")?;
    let saved = load(&name)?;
    let config: CtrModelConfig = serde_json::from_value(saved.manifest.features["model"].clone())
        .with_context(|| {
        format!("{}: the manifest's model settings", models_dir.join(&name).display())
    })?;
    let fields: Vec<String> = serde_json::from_value(saved.manifest.features["fields"].clone())
        .with_context(|| format!("{}: the manifest's fields", models_dir.join(&name).display()))?;
    let encoder = prepared.field_encoder(workspace)?;
    if fields != encoder.field_names {
        bail!(
            "{}: trained on fields {fields:?}, the running config has {:?}",
            models_dir.join(&name).display(),
            encoder.field_names
        );
    }
    let [linear, embedding]: [EmbeddingTable; 2] = saved
        .tables
        .try_into()
        .map_err(|_| anyhow!("{}: expected 2 tables", models_dir.join(&name).display()))?;
    let item_field = encoder.item_field();
    let model =
        CtrModel::from_parts(&config, fields.len(), item_field, linear, embedding, &saved.dense)?;
    let ranker = CtrRanker::new(&name, model, encoder, config.history_length)?;
    let [users, items]: [&EmbeddingTable; 2] = retrieval
        .tables
        .iter()
        .collect::<Vec<_>>()
        .try_into()
        .map_err(|_| anyhow!("{}: expected 2 tables", models_dir.join("bpr-mf").display()))?;
    let version = format!(
        "checkpoints:bpr-mf@{}+{name}@{}",
        manifest_stamp(&models_dir.join("bpr-mf")),
        manifest_stamp(&models_dir.join(&name))
    );
    let counts = popularity(workspace, &catalog)?;
    Ok(assemble(version, catalog, [users, items], &counts, Some(Box::new(ranker))))
}

/// Each item's consumption count in the workspace's event log, decayed with
/// a half-life of `POPULARITY_HALF_LIFE_DAYS` from the newest event
/// (impressions are exposures, not consumption).
fn popularity(workspace: &Workspace, catalog: &Catalog) -> Result<Vec<f32>> {
    let mut consumed = Vec::new();
    workspace.store()?.replay(0, |stored| {
        let event = stored.event;
        if event.event_type != IMPRESSION
            && let Some(item) = catalog.items.index(&event.item)
        {
            consumed.push((item, event.ts_ms.div_euclid(1000)));
        }
    })?;
    let half_life = POPULARITY_HALF_LIFE_DAYS * 86_400.0;
    Ok(decayed_counts(&consumed, catalog.items.len(), half_life))
}

/// A checkpoint's manifest modification time in ms, for versions and the watcher.
pub fn manifest_stamp(dir: &Path) -> u128 {
    std::fs::metadata(dir.join("manifest.json"))
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis())
}

/// ANN over the retrieval embeddings ([users, items] tables keyed by dense
/// index), item-CF over every history, popularity from `counts`, and the ranker.
pub(crate) fn assemble(
    version: String,
    catalog: Catalog,
    [users, items]: [&EmbeddingTable; 2],
    counts: &[f32],
    ranker: Option<Box<dyn Ranker>>,
) -> Models {
    let dim = items.config().dim;
    let matrix = |table: &EmbeddingTable, n: usize| -> Vec<f32> {
        (0..n as u64)
            .flat_map(|id| table.row(id).map_or_else(|| vec![0.0; dim], <[f32]>::to_vec))
            .collect()
    };
    let (n_users, n_items) = (catalog.users.len(), catalog.items.len());
    let settings =
        AnnSettings { backend: AnnBackend::default(), ef_search: ANN_EF_SEARCH, seed: 2026 };
    let index = AnnIndex::build(matrix(items, n_items), dim, settings);
    let ann = AnnRecall::new(index, matrix(users, n_users));
    let consumed = Interactions::new(n_items, &catalog.histories);
    let item_cf = ItemCfRecall::fit(&consumed);
    Models::new(version, catalog, ann, item_cf, counts, ranker)
}

#[cfg(test)]
mod tests {
    use cascade_core::Config;
    use cascade_eval::protocols::CtrExample;
    use cascade_models::random::SeededRng;
    use cascade_models::ranking::{CtrFeatures, SparseOnline};

    use super::*;

    /// What the online trainer checkpoints loads the way `cascade serve
    /// --models` loads `cascade train`'s checkpoints, and scores the same.
    #[test]
    fn the_online_checkpoint_loads_like_a_trained_one() {
        let dir = tempfile::tempdir().unwrap();
        let workspace = Workspace::at(dir.path().to_owned(), Config::embedded_default(), true);
        let mut config = CtrModelConfig::default_for(CtrArch::DeepFm);
        config.dim = 4;
        let mut model = CtrModel::new(&config, 2, 1).unwrap();
        let example =
            |n: u64| CtrFeatures { fields: vec![vec![n % 5], vec![100 + n % 7]], history: vec![] };
        let examples: Vec<CtrExample<CtrFeatures>> = (0..60)
            .map(|n| CtrExample { user: 0, label: n % 3 == 0, features: example(n) })
            .collect();
        // What the server's trainer runs: Adagrad rows (their state's
        // layout differs from training's Adam, and must load as saved).
        let update = OnlineLearningSettings::default().update;
        assert!(matches!(update.sparse, SparseOnline::Adagrad(_)));
        model.update(&examples, update, &mut SeededRng::new(1)).unwrap();

        let fields = ["user_id".to_owned(), "item_id".to_owned()];
        online_checkpoint_writer(&workspace, "deepfm")(&model, &fields).unwrap();
        let saved = checkpoint::load(
            &dir.path().join("online").join("deepfm"),
            "deepfm",
            &workspace.schema_fingerprint(),
        )
        .unwrap();
        let loaded_config: CtrModelConfig =
            serde_json::from_value(saved.manifest.features["model"].clone()).unwrap();
        assert_eq!(saved.manifest.features["fields"], serde_json::json!(fields));
        let [linear, embedding]: [EmbeddingTable; 2] = saved.tables.try_into().unwrap();
        let loaded =
            CtrModel::from_parts(&loaded_config, 2, 1, linear, embedding, &saved.dense).unwrap();
        let probe: Vec<CtrFeatures> = (0..10).map(example).collect();
        let refs: Vec<&CtrFeatures> = probe.iter().collect();
        let (want, got) = (model.score(&refs).unwrap(), loaded.score(&refs).unwrap());
        for (w, g) in want.iter().zip(&got) {
            assert!((w - g).abs() < 1e-6, "{w} vs {g}");
        }
        assert!(want.iter().any(|&p| (p - want[0]).abs() > 1e-4), "the probe scores vary");
    }
}
