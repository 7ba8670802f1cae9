//! The experiments a server runs: declared in `[[experiments]]` or created
//! through the admin API, kept in the store so they survive restarts, and
//! the route of each user through them.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use cascade_core::config::{ExperimentConfig, ExperimentSettings, RecommendConfig};
use cascade_core::timestamp::now_ms;
use cascade_experiments::assignment::{Assigner, ExperimentLayout, Holdout};
use cascade_store::{Collection, Store};

use crate::experiments::variant_models::VariantModels;
use crate::models::Models;
use crate::request::ServeError;

/// Whether an experiment still takes users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExperimentStatus {
    /// Taking users.
    Running,
    /// Everyone gets the default pipeline again; results stay readable.
    Stopped,
}

/// An experiment as stored and as `GET /v1/experiments` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ExperimentRecord {
    /// The experiment as declared or posted.
    #[serde(flatten)]
    pub config: ExperimentConfig,
    /// Running or stopped.
    pub status: ExperimentStatus,
    /// When it started taking users (ms since the epoch).
    pub started_ms: i64,
    /// When it was stopped, if it was.
    pub stopped_ms: Option<i64>,
}

/// Where one user goes: the experiments' variants they are in, and the
/// pipeline section those variants add up to.
#[derive(Debug, Clone)]
pub struct Route {
    /// `(experiment, variant)`, in the experiments' order; empty for the
    /// holdout and for users in no experiment.
    pub variants: Vec<(String, String)>,
    /// `[recommend]` with every variant's overrides applied; `None` when
    /// the default pipeline serves.
    pub recommend: Option<Arc<RecommendConfig>>,
    /// Identifies `recommend` while the experiments do not change (a
    /// cache key for the pipeline built from it).
    pub key: String,
    /// The models a variant's `models_dir` serves; `None` for the server's.
    pub models: Option<Arc<Models>>,
    /// Set when the user is in an interleaving experiment: the list is
    /// drafted from these two pipelines.
    pub interleaved: Option<Interleaved>,
}

/// The two rankings an interleaved list is drafted from.
#[derive(Debug, Clone)]
pub struct Interleaved {
    /// The interleaving experiment's name.
    pub experiment: String,
    /// The two variants' names, which the items' teams carry.
    pub teams: [String; 2],
    /// Each team's pipeline section and its cache key.
    pub pipelines: [(Arc<RecommendConfig>, String); 2],
    /// Each team's models, when its variant names a `models_dir`.
    pub models: [Option<Arc<Models>>; 2],
}

/// The variant name an interleaving experiment's users are reported in.
pub const INTERLEAVED: &str = "interleaved";

/// (experiment, variant) indices a user is in.
type Chosen = Vec<(usize, usize)>;

/// Running experiments, assigned once per change.
#[derive(Debug)]
struct Layout {
    records: Vec<ExperimentRecord>,
    assigner: Assigner,
    /// For each of the assigner's experiments, its index in `records`.
    running: Vec<usize>,
    /// Merged pipelines by the (experiment, variant) indices that made them.
    merged: Mutex<HashMap<Chosen, Arc<RecommendConfig>>>,
    generation: u64,
}

/// The server's experiments.
#[derive(Debug)]
pub struct Experiments {
    base: RecommendConfig,
    settings: ExperimentSettings,
    store: Option<Store>,
    layout: RwLock<Arc<Layout>>,
    /// Where variants' `models_dir`s are loaded; `None` where nothing is
    /// served (the results command), so no models are read.
    variant_models: Option<VariantModels>,
}

impl Experiments {
    /// The stored experiments and the declared ones (a declared experiment
    /// not in the store starts now; one already there takes the declared
    /// config and keeps its status and start). Fails naming the experiment
    /// and field of a layout that cannot run.
    pub fn open(
        base: RecommendConfig,
        settings: ExperimentSettings,
        declared: &[ExperimentConfig],
        store: Option<Store>,
    ) -> Result<Experiments, String> {
        let mut records: Vec<ExperimentRecord> = match &store {
            Some(store) => store
                .documents(Collection::Experiments, "")
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|(name, bytes)| {
                    serde_json::from_slice(&bytes)
                        .map_err(|e| format!("stored experiment {name:?}: {e}"))
                })
                .collect::<Result<_, _>>()?,
            None => Vec::new(),
        };
        for config in declared {
            match records.iter_mut().find(|record| record.config.name == config.name) {
                Some(record) => record.config = config.clone(),
                None => records.push(ExperimentRecord {
                    config: config.clone(),
                    status: ExperimentStatus::Running,
                    started_ms: now_ms(),
                    stopped_ms: None,
                }),
            }
        }
        let layout = build_layout(&base, &settings, records, 0)?;
        let experiments = Experiments {
            base,
            settings,
            store,
            layout: RwLock::new(Arc::new(layout)),
            variant_models: None,
        };
        experiments.persist_all().map_err(|e| e.to_string())?;
        Ok(experiments)
    }

    /// Serves variants' `models_dir`s through `models`, loading the running
    /// experiments' directories now; fails naming the experiment and the
    /// variant whose directory does not load.
    pub fn with_variant_models(mut self, models: VariantModels) -> Result<Experiments, String> {
        let layout = self.layout.read().clone();
        for &index in &layout.running {
            let config = &layout.records[index].config;
            load_variant_models(&models, config)
                .map_err(|e| format!("experiment {:?}: {e}", config.name))?;
        }
        self.variant_models = Some(models);
        Ok(self)
    }

    /// The variants' models: every loaded directory, for catalog writes
    /// and reloads; empty where none are served.
    pub fn variant_models(&self) -> Option<&VariantModels> {
        self.variant_models.as_ref()
    }

    /// The holdout and analysis settings.
    pub fn settings(&self) -> &ExperimentSettings {
        &self.settings
    }

    /// Every experiment, running or stopped, in the order they were added.
    pub fn records(&self) -> Vec<ExperimentRecord> {
        self.layout.read().records.clone()
    }

    /// One experiment by name.
    pub fn record(&self, name: &str) -> Result<ExperimentRecord, ServeError> {
        self.records()
            .into_iter()
            .find(|record| record.config.name == name)
            .ok_or_else(|| ServeError::NotFound(format!("no experiment named {name:?}")))
    }

    /// Starts a new experiment. Refused, naming the field, when the name is
    /// taken, a variant's override is not a valid `[recommend]`, or its
    /// traffic overlaps a running experiment's on the same layer.
    pub fn create(&self, config: ExperimentConfig) -> Result<ExperimentRecord, ServeError> {
        let name_taken =
            || ServeError::Invalid(format!("name: an experiment named {:?} exists", config.name));
        if self.layout.read().records.iter().any(|record| record.config.name == config.name) {
            return Err(name_taken());
        }
        // Models load before the layout is locked: requests keep being
        // routed meanwhile.
        if config.variants.iter().any(|variant| variant.models_dir.is_some()) {
            let Some(models) = &self.variant_models else {
                let message = "models_dir: this server does not load variants' models";
                return Err(ServeError::Invalid(message.into()));
            };
            load_variant_models(models, &config).map_err(ServeError::Invalid)?;
        }
        let mut layout = self.layout.write();
        if layout.records.iter().any(|record| record.config.name == config.name) {
            return Err(name_taken());
        }
        let record = ExperimentRecord {
            config,
            status: ExperimentStatus::Running,
            started_ms: now_ms(),
            stopped_ms: None,
        };
        let mut records = layout.records.clone();
        records.push(record.clone());
        let next = build_layout(&self.base, &self.settings, records, layout.generation + 1)
            .map_err(ServeError::Invalid)?;
        self.persist(&record)?;
        *layout = Arc::new(next);
        Ok(record)
    }

    /// Stops an experiment: its users get the default pipeline from the
    /// next request; its results stay.
    pub fn stop(&self, name: &str) -> Result<ExperimentRecord, ServeError> {
        let mut layout = self.layout.write();
        let mut records = layout.records.clone();
        let record = records
            .iter_mut()
            .find(|record| record.config.name == name)
            .ok_or_else(|| ServeError::NotFound(format!("no experiment named {name:?}")))?;
        if record.status == ExperimentStatus::Running {
            record.status = ExperimentStatus::Stopped;
            record.stopped_ms = Some(now_ms());
        }
        let stopped = record.clone();
        let next = build_layout(&self.base, &self.settings, records, layout.generation + 1)
            .map_err(ServeError::Invalid)?;
        self.persist(&stopped)?;
        *layout = Arc::new(next);
        Ok(stopped)
    }

    /// The user's route through the running experiments.
    pub fn route(&self, user_id: &str) -> Route {
        let layout = self.layout.read().clone();
        let assignment = layout.assigner.assign(user_id);
        if assignment.variants.is_empty() {
            return Route {
                variants: Vec::new(),
                recommend: None,
                key: String::new(),
                models: None,
                interleaved: None,
            };
        }
        let chosen: Vec<(usize, usize)> = assignment
            .variants
            .iter()
            .map(|&(experiment, variant)| (layout.running[experiment], variant))
            .collect();
        let variants = chosen
            .iter()
            .map(|&(experiment, variant)| {
                let config = &layout.records[experiment].config;
                let variant = match config.interleave {
                    true => INTERLEAVED.to_owned(),
                    false => config.variants[variant].name.clone(),
                };
                (config.name.clone(), variant)
            })
            .collect();
        let pipeline = |chosen: Chosen| {
            let key = format!("{}:{chosen:?}", layout.generation);
            let mut merged = layout.merged.lock();
            let recommend = merged
                .entry(chosen)
                .or_insert_with_key(|chosen| Arc::new(merge(&self.base, &layout.records, chosen)))
                .clone();
            (recommend, key)
        };
        let interleaving = chosen.iter().position(|&(e, _)| layout.records[e].config.interleave);
        let interleaved = interleaving.map(|at| {
            let config = &layout.records[chosen[at].0].config;
            // Each team is the user's route with the interleaving
            // experiment's variant swapped for the team's.
            let team = |variant: usize| {
                let mut with = chosen.clone();
                with[at].1 = variant;
                (self.models_of(&layout.records, &with), pipeline(with))
            };
            let [(a_models, a), (b_models, b)] = [team(0), team(1)];
            Interleaved {
                experiment: config.name.clone(),
                teams: [config.variants[0].name.clone(), config.variants[1].name.clone()],
                pipelines: [a, b],
                models: [a_models, b_models],
            }
        });
        let models = self.models_of(&layout.records, &chosen);
        let (recommend, key) = pipeline(chosen);
        Route { variants, recommend: Some(recommend), key, models, interleaved }
    }

    /// The models the chosen variants serve: the last one's `models_dir`
    /// that names one (as with `[recommend]` keys, the later experiment
    /// wins), else the server's (`None`).
    fn models_of(
        &self,
        records: &[ExperimentRecord],
        chosen: &[(usize, usize)],
    ) -> Option<Arc<Models>> {
        let dir = chosen
            .iter()
            .rev()
            .find_map(|&(e, v)| records[e].config.variants[v].models_dir.as_deref())?;
        self.variant_models.as_ref()?.get(dir)
    }

    /// Every variant's pipeline section of every running experiment, for
    /// checking that the server provides their stages.
    pub fn variant_pipelines(&self) -> Vec<(String, RecommendConfig)> {
        let layout = self.layout.read().clone();
        let mut pipelines = Vec::new();
        for &index in &layout.running {
            let config = &layout.records[index].config;
            for (variant, pipeline) in
                config.variants.iter().zip(config.pipelines(&self.base).unwrap_or_default())
            {
                pipelines.push((format!("experiments.{}.{}", config.name, variant.name), pipeline));
            }
        }
        pipelines
    }

    fn persist(&self, record: &ExperimentRecord) -> Result<(), ServeError> {
        let Some(store) = &self.store else { return Ok(()) };
        let bytes =
            serde_json::to_vec(record).map_err(|e| ServeError::Unavailable(e.to_string()))?;
        store
            .put_documents(&[(Collection::Experiments, record.config.name.clone(), bytes)])
            .map_err(|e| {
                ServeError::Unavailable(format!("storing experiment {:?}: {e}", record.config.name))
            })
    }

    fn persist_all(&self) -> Result<(), ServeError> {
        for record in self.records() {
            self.persist(&record)?;
        }
        Ok(())
    }
}

/// Loads every `models_dir` `config`'s variants name; the error names the
/// variant's field.
fn load_variant_models(models: &VariantModels, config: &ExperimentConfig) -> Result<(), String> {
    for (index, variant) in config.variants.iter().enumerate() {
        if let Some(dir) = &variant.models_dir {
            models.ensure(dir).map_err(|e| format!("variants[{index}].models_dir: {e}"))?;
        }
    }
    Ok(())
}

/// `base` with each chosen variant's overrides applied in turn. Each
/// variant was checked alone when its experiment started; keys two layers
/// both override take the later experiment's value.
fn merge(
    base: &RecommendConfig,
    records: &[ExperimentRecord],
    chosen: &[(usize, usize)],
) -> RecommendConfig {
    chosen.iter().fold(base.clone(), |merged, &(experiment, variant)| {
        let overrides = &records[experiment].config.variants[variant].recommend;
        merged.overridden(overrides).unwrap_or(merged)
    })
}

fn build_layout(
    base: &RecommendConfig,
    settings: &ExperimentSettings,
    records: Vec<ExperimentRecord>,
    generation: u64,
) -> Result<Layout, String> {
    let mut layouts = Vec::new();
    let mut running = Vec::new();
    for (index, record) in records.iter().enumerate() {
        let config = &record.config;
        config
            .pipelines(base)
            .map_err(|(key, message)| format!("experiment {:?}: {key}: {message}", config.name))?;
        if let Some(problem) = config.interleaving_problem() {
            return Err(format!("experiment {:?}: interleave: {problem}", config.name));
        }
        if let Some((field, problem)) = config.plan_problem() {
            return Err(format!("experiment {:?}: {field}: {problem}", config.name));
        }
        if record.status == ExperimentStatus::Running {
            running.push(index);
            layouts.push(ExperimentLayout {
                name: config.name.clone(),
                layer: config.layer.clone(),
                salt: config.variant_salt().to_owned(),
                traffic_start: config.traffic_start,
                allocation: config.allocation,
                variants: config.variants.iter().map(|v| (v.name.clone(), v.weight)).collect(),
            });
        }
    }
    let holdout = (settings.holdout_fraction > 0.0).then(|| Holdout {
        salt: settings.holdout_salt.clone(),
        fraction: settings.holdout_fraction,
    });
    let assigner = Assigner::new(holdout, layouts).map_err(|e| e.to_string())?;
    Ok(Layout { records, assigner, running, merged: Mutex::new(HashMap::new()), generation })
}
