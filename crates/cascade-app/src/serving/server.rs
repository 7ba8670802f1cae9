//! The composition root of `cascade serve`: everything the HTTP server
//! holds (models, stream, online learning, event log, entities, access
//! keys), wired once from the workspace and its config.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Result, anyhow};

use cascade_core::Config;
use cascade_core::config::OnlineBackend;
use cascade_core::timestamp::seconds_to_ms;
use cascade_models::ranking::CtrModel;
use cascade_models::registry::{Artifacts, RankerManifest};
use cascade_serve::access::AccessKeys;
use cascade_serve::entities::{Entities, HiddenItems};
use cascade_serve::events::EventLog;
use cascade_serve::experiments::{ExperimentAnalysis, Experiments, VariantModels};
use cascade_serve::http::{AppState, ModelLoader};
use cascade_serve::metrics::Metrics;
use cascade_serve::online_learning::{CheckpointWriter, OnlineLearningSettings, OnlineTrainer};
use cascade_serve::recall::{AnnBackend, AnnSettings};
use cascade_serve::recommender::{PipelineSettings, Recommender};
use cascade_serve::retrieval_learning::{RetrievalLearner, RetrievalLearningSettings};
use cascade_store::{GroupCommitter, Store};
use cascade_stream::{LivePace, LiveStream, StreamProcessor, StreamSettings};

use crate::progress::Progress;
use crate::registry::ModelKind;
use crate::serving::build::{load_models, ranking_arch};
use crate::serving::redis::start_redis;
use crate::serving::watch::watch_checkpoints;
use crate::workspace::Workspace;

/// What a server is built from, besides the workspace.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The ranking model (trained here, or loaded from `models_dir`).
    pub ranker: ModelKind,
    /// Run the online trainer and retrieval learner beside the server.
    pub online_learning: bool,
    /// Import from here first (else the store's data, or MovieLens-100k on
    /// the built-in config).
    pub data: Option<PathBuf>,
    /// `cascade train`'s checkpoints, loaded instead of training, and
    /// watched for new ones.
    pub models_dir: Option<PathBuf>,
}

/// Builds the server's state: trains or loads the models (showing
/// progress), catches the stream up, and starts the background threads
/// (online learning, the Redis forwarder, the checkpoint watcher).
pub fn build_server(workspace: Arc<Workspace>, options: &ServeOptions) -> Result<Arc<AppState>> {
    let ranker = options.ranker;
    ranking_arch(ranker)?;
    // Before the models train: this server registers no stages of its own.
    pipeline_settings(&workspace.config)
        .check_stages(|_| false, |_| false)
        .map_err(|e| anyhow::anyhow!("the config's serving pipeline: {e}"))?;
    let variant_loader = workspace.clone();
    // A variant's `models_dir` holds the same kinds of checkpoints `cascade
    // serve --models` reads: BPR-MF and the server's ranker.
    let variant_models = VariantModels::new(Box::new(move |dir: &Path| {
        let quiet = Progress { quiet: true };
        let models = load_models(&variant_loader, None, Some(dir), ranker, quiet);
        models.map_err(|e| format!("{}: {e:#}", dir.display()))
    }));
    let experiments = open_experiments(&workspace, Some(variant_models))?;
    for (variant, recommend) in experiments.variant_pipelines() {
        PipelineSettings::from_config(&recommend, workspace.config.ingest.max_id_bytes)
            .check_stages(|_| false, |_| false)
            .map_err(|e| anyhow!("{variant}: {e}"))?;
    }
    let loader_workspace = workspace.clone();
    let (data, models_dir) = (options.data.clone(), options.models_dir.clone());
    // `--data` is imported at start; a reload serves what the store holds
    // by then, which includes every event ingested since.
    let models = load_models(
        &workspace,
        data.as_deref(),
        models_dir.as_deref(),
        ranker,
        Progress { quiet: false },
    )?;
    let loader: Arc<ModelLoader> = Arc::new(move || {
        let quiet = Progress { quiet: true };
        load_models(&loader_workspace, None, models_dir.as_deref(), ranker, quiet)
    });
    let metrics = Arc::new(Metrics::default());
    let hidden = HiddenItems::load(workspace.dir.join("hidden_items.json"))?;
    let item_categories = workspace.item_categories()?;
    let live = start_stream(&workspace, item_categories.clone())?;
    let config = &workspace.config;
    let mut recommender = Recommender::new(models, pipeline_settings(config), metrics.clone())
        .with_hidden(hidden)
        .with_live(live)
        .with_item_facts(workspace.item_facts_reader())
        .with_experiments(experiments.clone());
    if config.online_store.backend == OnlineBackend::Redis {
        recommender = recommender.with_shared_features(start_redis(&workspace, item_categories)?);
    }
    let recommender = Arc::new(recommender);
    if options.online_learning {
        let samples = workspace.dir.join("stream").join("samples.jsonl");
        let trainer = OnlineTrainer::new(
            samples,
            recommender.clone(),
            metrics.clone(),
            OnlineLearningSettings::from(&config.online_learning),
        );
        trainer.spawn(online_checkpoint_writer(&workspace, ranker));
        let settings = RetrievalLearningSettings::from(&config.online_learning);
        RetrievalLearner::new(workspace.store()?, recommender.clone(), metrics.clone(), settings)
            .map_err(|e| anyhow!("retrieval learning: {e}"))?
            .spawn();
    }
    // Events go to the workspace's own log, where the next reload finds them.
    let events = Arc::new(event_log(workspace.store()?, config));
    let entities = Entities::new(workspace.store()?, config.users.clone(), config.items.clone())
        .with_max_id_bytes(config.ingest.max_id_bytes);
    let analysis = Arc::new(open_experiment_analysis(&workspace, experiments, metrics.clone())?);
    analysis.spawn();
    if let Some(dir) = &options.models_dir {
        let watched = [dir.join(ModelKind::BprMf.name()), dir.join(ranker.name())];
        watch_checkpoints(watched.to_vec(), loader.clone(), recommender.clone())?;
    }
    Ok(Arc::new(AppState {
        recommender,
        metrics,
        loader: Some(loader),
        events: Some(events),
        entities: Some(Arc::new(entities)),
        access: Arc::new(AccessKeys::from_config(&config.serve)),
        experiments: Some(analysis),
    }))
}

/// The experiments' analysis over the workspace's log: clicks are the
/// config's positive labels, joined to impressions within `[stream]
/// join_window_s`.
pub fn open_experiment_analysis(
    workspace: &Workspace,
    experiments: Arc<Experiments>,
    metrics: Arc<Metrics>,
) -> Result<ExperimentAnalysis> {
    let config = &workspace.config;
    ExperimentAnalysis::open(
        experiments,
        workspace.store()?,
        config.labels.clone(),
        seconds_to_ms(config.stream.join_window_s),
        metrics,
    )
    .map_err(|e| anyhow!("experiment analysis: {e}"))
}

/// The experiments the store keeps and the config declares
/// (`[[experiments]]`, `[experiment_settings]`), with `variant_models`
/// loading their variants' `models_dir`s where they are served.
pub fn open_experiments(
    workspace: &Workspace,
    variant_models: Option<VariantModels>,
) -> Result<Arc<Experiments>> {
    let config = &workspace.config;
    let mut experiments = Experiments::open(
        config.recommend.clone(),
        config.experiment_settings.clone(),
        &config.experiments,
        Some(workspace.store()?),
    )
    .map_err(|e| anyhow!("experiments: {e}"))?;
    if let Some(models) = variant_models {
        experiments =
            experiments.with_variant_models(models).map_err(|e| anyhow!("experiments: {e}"))?;
    }
    Ok(Arc::new(experiments))
}

/// The serving pipeline `[recommend]` declares, with `[ingest]`'s id limit.
/// Every server (`cascade serve`, the benchmarks, the tests) takes its
/// pipeline, ANN search and event log from these three, so what is measured
/// is what runs.
pub fn pipeline_settings(config: &Config) -> PipelineSettings {
    PipelineSettings::from_config(&config.recommend, config.ingest.max_id_bytes)
}

/// The ANN index of `recall/ann`: usearch, `[serve] ann_ef_search`.
pub fn ann_settings(config: &Config) -> AnnSettings {
    AnnSettings {
        backend: AnnBackend::default(),
        ef_search: config.serve.ann_ef_search,
        seed: 2026,
    }
}

/// `POST /v1/events`' durable log over `store`: group commits of at most
/// `[serve] events_per_commit`, events checked by `[ingest]`.
pub fn event_log(store: Store, config: &Config) -> EventLog {
    EventLog::new(
        GroupCommitter::start(store, config.serve.events_per_commit),
        config.ingest.clone(),
    )
}

/// Writes the online trainer's copy where `cascade serve --models` can read
/// it: `<workspace>/online/<ranker>/`, in `cascade train`'s layout.
fn online_checkpoint_writer(workspace: &Workspace, ranker: ModelKind) -> Box<CheckpointWriter> {
    let dir = workspace.dir.join("online").join(ranker.name());
    let fingerprint = workspace.schema_fingerprint();
    Box::new(move |model: &CtrModel, fields: &[String]| {
        let (tables, dense) = model.parts().map_err(|e| e.to_string())?;
        let settings = RankerManifest { model: model.config().clone(), fields: fields.to_vec() };
        let artifacts = Artifacts {
            tables: tables.to_vec(),
            dense: dense.tensors().to_vec(),
            settings: settings.to_value(),
            metrics: Default::default(),
            ids: None,
        };
        ranker.save_checkpoint(&dir, &fingerprint, &artifacts).map_err(|e| e.to_string())
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
        StreamSettings::from(&workspace.config.stream),
        item_categories,
    )?
    .with_event_time_bounds(workspace.config.ingest.clone())
    .with_sample_log(&workspace.dir.join("stream").join("samples.jsonl"))?;
    Ok(LiveStream::start(processor, checkpoint, LivePace::from(&workspace.config.stream))?)
}

#[cfg(test)]
mod tests {
    use cascade_core::Config;
    use cascade_eval::protocols::CtrExample;
    use cascade_models::random::SeededRng;
    use cascade_models::ranking::{CtrFeatures, SparseOnline};

    use cascade_models::ranking::{CtrArch, CtrModelConfig};

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
        online_checkpoint_writer(&workspace, ModelKind::Deepfm)(&model, &fields).unwrap();
        let saved = ModelKind::Deepfm
            .load_checkpoint(
                &dir.path().join("online").join("deepfm"),
                &workspace.schema_fingerprint(),
            )
            .unwrap();
        let (loaded, settings) = RankerManifest::restore(saved, 1).unwrap();
        assert_eq!(settings.fields, fields);
        let probe: Vec<CtrFeatures> = (0..10).map(example).collect();
        let refs: Vec<&CtrFeatures> = probe.iter().collect();
        let (want, got) = (model.score(&refs).unwrap(), loaded.score(&refs).unwrap());
        for (w, g) in want.iter().zip(&got) {
            assert!((w - g).abs() < 1e-6, "{w} vs {g}");
        }
        assert!(want.iter().any(|&p| (p - want[0]).abs() > 1e-4), "the probe scores vary");
    }
}
