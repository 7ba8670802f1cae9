//! The workspace: the config in force and the directory holding the store,
//! the offline Parquet store, pipeline outputs and downloaded datasets.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};

use cascade_batch::datasets::{MovieLensSource, download_movielens_100k, verify_movielens_100k};
use cascade_batch::import::{ImportOptions, ImportReport, import_events, import_records};
use cascade_batch::offline::export;
use cascade_batch::pipeline::Pipeline;
use cascade_core::Config;
use cascade_core::config::FeatureType;
use cascade_serve::catalog::ItemFactsReader;
use cascade_store::{EntityKind, Store};

use cascade_models::training::{Hyperparameters, Overrides};

use crate::progress::Progress;
use crate::registry::ModelKind;

/// The config and directories one command works in.
#[derive(Debug)]
pub struct Workspace {
    pub config: Config,
    pub dir: PathBuf,
    /// True when running on the built-in MovieLens-100k config.
    pub builtin_config: bool,
    /// redb allows one open handle per file and process; a server that keeps
    /// appending events while a reload reads the store shares this one.
    store: OnceLock<Store>,
}

impl Workspace {
    /// The workspace `config` (else the built-in config, both under
    /// environment overrides) names, or `dir` when given.
    pub fn open(config: Option<&Path>, dir: Option<&Path>) -> Result<Workspace> {
        let loaded = Config::load_layered(config)?;
        let dir = dir.map_or_else(|| PathBuf::from(&loaded.workspace.dir), Path::to_path_buf);
        Ok(Workspace::at(dir, loaded, config.is_none()))
    }

    /// A workspace in `dir` under `config`.
    pub fn at(dir: PathBuf, config: Config, builtin_config: bool) -> Workspace {
        Workspace { config, dir, builtin_config, store: OnceLock::new() }
    }

    /// The training overrides of `model`: command-line flags over the
    /// config's `[training.<model>]`. Every `[training.*]` table must name a
    /// model, so a typo is an error rather than silently ignored settings.
    pub fn training_overrides(&self, model: ModelKind, flags: Overrides) -> Result<Overrides> {
        let origin = if self.builtin_config { "the built-in config" } else { "the config file" };
        for name in self.config.training.keys() {
            if let Err(unknown) = name.parse::<ModelKind>() {
                bail!("{origin}: [training.{name}]: {unknown}");
            }
        }
        let config = self.config.training.get(model.name()).cloned().unwrap_or_default();
        Ok(Overrides {
            seed: flags.seed.or(config.seed),
            learning_rate: flags.learning_rate.or(config.learning_rate),
            batch_size: flags.batch_size.or(config.batch_size),
            max_epochs: flags.max_epochs.or(config.max_epochs),
            patience: flags.patience.or(config.patience),
            time_budget_s: flags.time_budget_s.or(config.time_budget_s),
        })
    }

    /// `model`'s own hyperparameters from `[training.<model>]`; a key the
    /// model does not read is an error naming it, not a silent no-op.
    pub fn hyperparameters(&self, model: ModelKind) -> Result<Hyperparameters> {
        let config = self.config.training.get(model.name()).cloned().unwrap_or_default();
        let hyper = Hyperparameters {
            lambda: config.lambda,
            lambda_grid: config.lambda_grid,
            k: config.k,
            shrink: config.shrink,
            dim: config.dim,
            init_scale: config.init_scale,
            dropout: config.dropout,
            dropout_grid: config.dropout_grid,
            max_length: config.max_length,
            negatives: config.negatives,
            full_softmax_max_items: config.full_softmax_max_items,
            learning_rate: None,
        };
        if let Some(key) =
            hyper.keys_set().into_iter().find(|k| !model.hyperparameters().contains(k))
        {
            let takes = model.hyperparameters().join(", ");
            bail!(
                "[training.{model}] {key}: `{model}` has no such setting{}",
                if takes.is_empty() { String::new() } else { format!("; it takes {takes}") }
            );
        }
        Ok(hyper)
    }

    /// A fingerprint of the user and item schema: a checkpoint trained under
    /// another schema is refused at load.
    pub fn schema_fingerprint(&self) -> String {
        let schema = format!("{:?}{:?}", self.config.users, self.config.items);
        format!("{:016x}", cascade_core::ids::feature_id("schema", &schema))
    }

    /// The workspace's store, opened on first use and shared afterwards.
    pub fn store(&self) -> Result<Store> {
        if let Some(store) = self.store.get() {
            return Ok(store.clone());
        }
        let store = Store::open(&self.dir.join("store.redb"))?;
        Ok(self.store.get_or_init(|| store).clone())
    }

    /// Each item's category names from the workspace's item table (the
    /// stream's affinities read them); empty when nothing was imported.
    pub fn item_categories(&self) -> Result<std::collections::HashMap<String, Vec<String>>> {
        let reader = self.item_facts_reader();
        let records = self.store()?.records(EntityKind::Item)?;
        Ok(records.into_iter().map(|(id, record)| (id, reader.categories(&record))).collect())
    }

    /// Where item records keep what serving needs: categories from the
    /// first multi-categorical feature (else the first categorical one),
    /// publication times from the first timestamp feature.
    pub fn item_facts_reader(&self) -> ItemFactsReader {
        let features = &self.config.items.features;
        let first = |wanted: FeatureType| {
            features
                .iter()
                .find(|(_, spec)| spec.feature_type == wanted)
                .map(|(name, _)| name.clone())
        };
        ItemFactsReader {
            category_feature: first(FeatureType::MultiCategorical)
                .or_else(|| first(FeatureType::Categorical)),
            time_feature: first(FeatureType::Timestamp),
        }
    }

    /// This workspace's name among the servers forwarding to one Redis
    /// stream: made up once and kept in `<workspace>/node-id`, so each
    /// server's forwarded offset is its own and survives restarts.
    pub fn node_id(&self) -> Result<String> {
        let path = self.dir.join("node-id");
        match std::fs::read_to_string(&path) {
            Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_owned()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
        let seed = format!(
            "{}-{}-{}",
            cascade_core::timestamp::now_ms(),
            std::process::id(),
            self.dir.display()
        );
        let id = format!("{:016x}", cascade_core::ids::feature_id("node-id", &seed));
        std::fs::create_dir_all(&self.dir)
            .and_then(|()| std::fs::write(&path, &id))
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(id)
    }

    pub fn offline_dir(&self) -> PathBuf {
        self.dir.join("offline")
    }

    pub fn pipeline_dir(&self) -> PathBuf {
        self.dir.join("pipeline")
    }

    /// Finds MovieLens-100k (`--from`, `CASCADE_DATA_DIR`, an earlier download,
    /// else the internet) and verifies every file's checksum.
    pub fn movielens_dir(&self, from: Option<&Path>, progress: Progress) -> Result<PathBuf> {
        let source = MovieLensSource::resolve(from, &self.dir.join("datasets"));
        let dir = match source {
            MovieLensSource::From(dir)
            | MovieLensSource::Environment(dir)
            | MovieLensSource::Cached(dir) => dir,
            MovieLensSource::Download(cache) => {
                progress.say("downloading MovieLens-100k from GroupLens");
                let bar = progress.bytes("download");
                let dir = download_movielens_100k(&cache, &mut |done, total| {
                    if let Some(total) = total {
                        bar.set_length(total);
                    }
                    bar.set_position(done);
                })?;
                bar.finish_and_clear();
                dir
            }
        };
        verify_movielens_100k(&dir).context("MovieLens-100k failed verification")?;
        Ok(dir)
    }

    /// Imports users, items and events from `data_dir` (idempotent), with a
    /// progress bar per table.
    pub fn import_all(
        &self,
        store: &Store,
        data_dir: &Path,
        skip_bad_rows: bool,
        progress: Progress,
    ) -> Result<Vec<ImportReport>> {
        let options = ImportOptions { skip_bad_rows, ..ImportOptions::default() };
        let mut reports = Vec::new();
        for table in ["users", "items", "events"] {
            let has_source = match table {
                "users" => self.config.users.source.is_some(),
                "items" => self.config.items.source.is_some(),
                _ => self.config.events.source.is_some(),
            };
            if !has_source {
                continue;
            }
            let bar = progress.spinner(&format!("importing {table}"));
            let mut tick = |rows: usize| {
                if rows.is_multiple_of(5_000) {
                    bar.set_message(format!("importing {table}: {rows} rows"));
                }
            };
            let report = match table {
                "users" => import_records(
                    &self.config,
                    EntityKind::User,
                    data_dir,
                    store,
                    options,
                    &mut tick,
                ),
                "items" => import_records(
                    &self.config,
                    EntityKind::Item,
                    data_dir,
                    store,
                    options,
                    &mut tick,
                ),
                _ => import_events(&self.config, data_dir, store, options, &mut tick),
            }?;
            bar.finish_and_clear();
            check_imported_something(&report)?;
            reports.push(report);
        }
        if reports.is_empty() {
            bail!("the config names no source files (users.source, items.source, events.source)");
        }
        Ok(reports)
    }

    /// Exports the store to the offline store and opens the pipeline on it.
    pub fn pipeline(&self, store: &Store, progress: Progress) -> Result<Pipeline> {
        let bar = progress.spinner("exporting the store to Parquet");
        export(store, &self.config, &self.offline_dir())?;
        bar.set_message("planning the batch pipeline");
        let pipeline = Pipeline::new(&self.config, &self.offline_dir(), &self.pipeline_dir())?;
        bar.finish_and_clear();
        Ok(pipeline)
    }

    /// Makes sure the store holds data: imports from `data` when given, or,
    /// on the built-in config with an empty store, from MovieLens-100k.
    pub fn ensure_data(
        &self,
        store: &Store,
        data: Option<&Path>,
        progress: Progress,
    ) -> Result<()> {
        let dir = match data {
            Some(dir) if self.builtin_config => self.movielens_dir(Some(dir), progress)?,
            Some(dir) => dir.to_owned(),
            None if store.event_count()? > 0 => return Ok(()),
            None if self.builtin_config => self.movielens_dir(None, progress)?,
            None => bail!(
                "the store in {} is empty: pass --data DIR to import first",
                self.dir.display()
            ),
        };
        for report in self.import_all(store, &dir, false, progress)? {
            progress.say(describe_import(&report));
        }
        Ok(())
    }
}

/// An import that stored nothing from a file is a failure, not a quiet
/// success: a wrong delimiter or column list skips every row.
fn check_imported_something(report: &ImportReport) -> Result<()> {
    if report.rows == 0 {
        bail!("{}: {} file has no rows", report.file.display(), report.table);
    }
    if report.written + report.unchanged == 0 {
        bail!(
            "nothing imported from {}: all {} rows were bad\n{}",
            report.file.display(),
            report.rows,
            describe_import(report)
        );
    }
    Ok(())
}

/// One line about an import.
pub fn describe_import(report: &ImportReport) -> String {
    let mut line = format!(
        "{:>7}: {} rows from {} — {} written, {} already present",
        report.table,
        report.rows,
        report.file.display(),
        report.written,
        report.unchanged
    );
    if report.bad_rows > 0 {
        line.push_str(&format!(", {} bad rows skipped; first:", report.bad_rows));
        for example in &report.examples {
            line.push_str(&format!("\n           {example}"));
        }
    }
    line
}
