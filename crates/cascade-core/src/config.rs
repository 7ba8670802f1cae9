//! The configuration: the data model (users, items, events and their
//! features), where the source files are and how they are written, how events
//! become labels, and pipeline settings.
//!
//! The commented example `cascade.toml` at the repository root is embedded in
//! the binary as the defaults ([`Config::default_toml`]) and parsed in a test,
//! so the documentation of every key cannot drift from the code.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::context::ContextFeatureSpec;
pub use crate::experiment_config::{ExperimentConfig, ExperimentSettings, VariantConfig};
pub use crate::ingest::IngestConfig;
pub use crate::policy_config::PolicyLearningConfig;
pub use crate::realtime_config::{OnlineLearningConfig, StreamConfig, WindowConfig};
pub use crate::report_config::ReportConfig;
pub use crate::serve_config::{RecommendConfig, ServeConfig};

mod layers;
mod validate;

pub use layers::ENVIRONMENT_PREFIX;
pub(crate) use validate::validate_pipeline;

/// The example configuration shipped with Cascade (MovieLens-100k schema).
const DEFAULT_TOML: &str = include_str!("../../../cascade.toml");

/// A configuration problem, naming where it is and what was expected.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{origin}: cannot read the config: {source}")]
    Read {
        /// The file.
        origin: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// TOML syntax, an unknown key, or a value of the wrong type.
    #[error("{origin}: {message}")]
    Syntax {
        /// The file (or `<embedded defaults>`).
        origin: String,
        /// The parser's message, which names the line, column and key.
        message: String,
    },
    /// Well-formed TOML whose meaning is wrong.
    #[error("{origin}: key `{key}`: {message}")]
    Invalid {
        /// The file.
        origin: String,
        /// Dotted path of the offending key.
        key: String,
        /// What was expected.
        message: String,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the stores and pipeline outputs live.
    #[serde(default)]
    pub workspace: WorkspaceConfig,
    /// The user table.
    pub users: TableConfig,
    /// The item table.
    pub items: TableConfig,
    /// The event log.
    pub events: EventsConfig,
    /// Which events are positive feedback and how ratings become labels.
    pub labels: LabelConfig,
    /// Batch pipeline settings.
    #[serde(default)]
    pub pipeline: PipelineConfig,
    /// Request-context features ranking models learn from, by name.
    #[serde(default)]
    pub context: BTreeMap<String, ContextFeatureSpec>,
    /// Per-model training settings, `[training.<model name>]`; a command-line
    /// flag wins over these, these over the model's defaults. Model names are
    /// checked where the models are known (the CLI).
    #[serde(default)]
    pub training: BTreeMap<String, ModelTrainingConfig>,
    /// Where real-time features and the event bus live.
    #[serde(default)]
    pub online_store: OnlineStoreConfig,
    /// What the event log accepts from clients.
    #[serde(default)]
    pub ingest: IngestConfig,
    /// The HTTP server's access keys and build knobs.
    #[serde(default)]
    pub serve: ServeConfig,
    /// The serving pipeline's knobs.
    #[serde(default)]
    pub recommend: RecommendConfig,
    /// The real-time features the stream processor keeps.
    #[serde(default)]
    pub stream: StreamConfig,
    /// The server's online learners.
    #[serde(default)]
    pub online_learning: OnlineLearningConfig,
    /// `cascade learn-policy`: learning a ranking policy from the log.
    #[serde(default)]
    pub policy_learning: PolicyLearningConfig,
    /// `cascade report`: the models, seeds and plots of the evaluation report.
    #[serde(default)]
    pub report: ReportConfig,
    /// A/B tests of the serving pipeline (`[[experiments]]`); more are
    /// added through the admin API and kept in the store.
    #[serde(default)]
    pub experiments: Vec<ExperimentConfig>,
    /// The experiments' holdout and analysis.
    #[serde(default)]
    pub experiment_settings: ExperimentSettings,
}

/// `[online_store]`: embedded (local disk, the default) or Redis (several
/// servers and stream workers sharing one store and one event stream).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnlineStoreConfig {
    /// `embedded` or `redis`.
    #[serde(default)]
    pub backend: OnlineBackend,
    /// The Redis server, `redis://host:port/db` (used by the Redis backend).
    #[serde(default = "default_redis_url")]
    pub redis_url: String,
    /// Every Redis key starts with this, so deployments can share a server.
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
}

/// Which online store and event bus a deployment uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnlineBackend {
    /// redb files in the workspace; one machine.
    #[default]
    Embedded,
    /// A Redis server: hashes, lists and sorted sets for the features, a
    /// stream with a consumer group for the events.
    Redis,
}

impl Default for OnlineStoreConfig {
    fn default() -> Self {
        OnlineStoreConfig {
            backend: OnlineBackend::default(),
            redis_url: default_redis_url(),
            key_prefix: default_key_prefix(),
        }
    }
}

fn default_redis_url() -> String {
    "redis://127.0.0.1:6379".to_owned()
}

fn default_key_prefix() -> String {
    "cascade".to_owned()
}

/// Training settings of one model; every key is optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelTrainingConfig {
    /// Learning rate of the model's sparse tables (SASRec: of its dense layers).
    pub learning_rate: Option<f32>,
    /// Examples per step.
    pub batch_size: Option<usize>,
    /// Seed of initialisation, shuffling and sampling.
    pub seed: Option<u64>,
    /// Upper bound on epochs.
    pub max_epochs: Option<usize>,
    /// Epochs without a better validation metric before stopping.
    pub patience: Option<usize>,
    /// Seconds of training after which the run stops at the end of the
    /// epoch, keeping its best epoch so far.
    pub time_budget_s: Option<f64>,
    /// EASE: the L2 strength λ (no validation search).
    pub lambda: Option<f64>,
    /// EASE: the λ values searched on validation.
    pub lambda_grid: Option<Vec<f64>>,
    /// ItemKNN: neighbours kept per item.
    pub k: Option<usize>,
    /// ItemKNN: the cosine's shrinkage.
    pub shrink: Option<f64>,
    /// Embedding size (bpr-mf, neumf, two-tower, sasrec).
    pub dim: Option<usize>,
    /// BPR-MF: embeddings start uniform in ±init_scale.
    pub init_scale: Option<f32>,
    /// Dropout while training (sasrec).
    pub dropout: Option<f32>,
    /// SASRec: dropout rates searched on validation (one model trained per
    /// rate) when `dropout` is not set.
    pub dropout_grid: Option<Vec<f32>>,
    /// Longest sequence read (sasrec).
    pub max_length: Option<usize>,
    /// Sampled negatives: per positive (neumf), per batch for the sampled
    /// softmax (sasrec).
    pub negatives: Option<usize>,
    /// SASRec: catalogues up to this many items train with the full
    /// softmax, larger ones with the sampled softmax (default 5,000; 0
    /// samples always).
    pub full_softmax_max_items: Option<usize>,
}

/// Where Cascade keeps its files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceConfig {
    /// Directory for the embedded store, the Parquet offline store and outputs.
    #[serde(default = "default_workspace_dir")]
    pub dir: String,
}

impl Default for WorkspaceConfig {
    fn default() -> Self {
        WorkspaceConfig { dir: default_workspace_dir() }
    }
}

fn default_workspace_dir() -> String {
    "cascade-workspace".to_owned()
}

/// A user or item table: its id column, features and source file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableConfig {
    /// Column that holds the id.
    pub id: String,
    /// Feature used to show a record to a person (e.g. a movie title).
    #[serde(default)]
    pub display: Option<String>,
    /// Where the table is read from, relative to the data directory.
    #[serde(default)]
    pub source: Option<SourceConfig>,
    /// Features by name.
    #[serde(default)]
    pub features: BTreeMap<String, FeatureSpec>,
}

/// The type of a feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureType {
    /// An identifier, kept as a token.
    Id,
    /// One token from a vocabulary (gender, occupation).
    Categorical,
    /// Several tokens (genres): split on `separator`, or gathered from 0/1 flag columns.
    MultiCategorical,
    /// A number.
    Numeric,
    /// A moment in time, parsed with `format`.
    Timestamp,
    /// Free text (titles, descriptions).
    Text,
}

/// One feature of a user or item table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureSpec {
    /// The feature's type.
    #[serde(rename = "type")]
    pub feature_type: FeatureType,
    /// Source column, when it differs from the feature name.
    #[serde(default)]
    pub column: Option<String>,
    /// multi_categorical: the token separator inside one cell.
    #[serde(default)]
    pub separator: Option<String>,
    /// multi_categorical: flag columns; the feature holds the names of those set to 1.
    #[serde(default)]
    pub from_flags: Option<Vec<String>>,
    /// timestamp: `unix`, `unix_ms`, `rfc3339` or a strftime pattern such as `%d-%b-%Y`.
    #[serde(default)]
    pub format: Option<String>,
    /// Look this feature's values up in another feature's embedding rows
    /// (e.g. a `last_item` feature sharing `item_id`'s): a feature name, or
    /// the user or item id column.
    #[serde(default)]
    pub share_ids_with: Option<String>,
}

impl FeatureSpec {
    /// The namespace its values are hashed in: the feature it shares ids
    /// with, or its own name.
    pub fn id_namespace<'a>(&'a self, feature_name: &'a str) -> &'a str {
        self.share_ids_with.as_deref().unwrap_or(feature_name)
    }

    /// The source column this feature is read from.
    pub fn source_column<'a>(&'a self, feature_name: &'a str) -> &'a str {
        self.column.as_deref().unwrap_or(feature_name)
    }
}

/// File formats the importer reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceFormat {
    /// Delimited text; `delimiter` defaults to `,`.
    Csv,
    /// Tab-separated text.
    Tsv,
    /// One JSON object per line.
    Jsonl,
    /// Apache Parquet.
    Parquet,
    /// One line per user: the user id, then the user's items in time order,
    /// separated by whitespace (or `delimiter`). Each item becomes one row
    /// with the two `columns` (user, item), in line order.
    Sequences,
}

/// Text encodings of delimited and JSON sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// UTF-8 (the default).
    #[default]
    Utf8,
    /// ISO-8859-1, as in MovieLens' `u.item`.
    Latin1,
}

/// Where a table or log is read from and how it is written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Path relative to the data directory given on the command line.
    pub path: String,
    /// File format.
    pub format: SourceFormat,
    /// Field delimiter for `csv` (one character).
    #[serde(default)]
    pub delimiter: Option<String>,
    /// Whether the first line names the columns (csv/tsv).
    #[serde(default = "default_true")]
    pub header: bool,
    /// Column names, for files without a header line.
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// Whether `"` quotes fields (csv only; default true). Turn it off for files
    /// like MovieLens' whose titles contain bare quote characters.
    #[serde(default)]
    pub quoting: Option<bool>,
    /// Text encoding.
    #[serde(default)]
    pub encoding: Encoding,
}

fn default_timestamp_format() -> String {
    "unix".into()
}

/// 2000-01-01T00:00:00Z.
fn default_file_order_start() -> i64 {
    946_684_800
}

fn default_true() -> bool {
    true
}

impl SourceConfig {
    /// The single-byte field delimiter for delimited formats.
    pub fn delimiter_byte(&self) -> u8 {
        match (self.format, &self.delimiter) {
            (_, Some(d)) => d.as_bytes()[0],
            (SourceFormat::Tsv, None) => b'\t',
            _ => b',',
        }
    }

    /// Whether `"` quotes fields.
    pub fn quoting(&self) -> bool {
        self.format == SourceFormat::Csv && self.quoting.unwrap_or(true)
    }
}

/// The event log's columns.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    /// Column holding the user id.
    pub user: String,
    /// Column holding the item id.
    pub item: String,
    /// Column holding the event time. Leave it out when the file is in time
    /// order and has no times: row `k` (from 0) is then timed
    /// `file_order_start + k` seconds, so file order is time order.
    #[serde(default)]
    pub timestamp: Option<String>,
    /// Format of the event time (see [`FeatureSpec::format`]).
    #[serde(default = "default_timestamp_format")]
    pub timestamp_format: String,
    /// Unix seconds of the first row of a log without a timestamp column.
    #[serde(default = "default_file_order_start")]
    pub file_order_start: i64,
    /// Column holding the event type; leave out to use `constant_event_type`.
    #[serde(default)]
    pub event_type: Option<String>,
    /// Event type of every row when the file has no event-type column.
    #[serde(default)]
    pub constant_event_type: Option<String>,
    /// Column with a numeric payload (rating, dwell time).
    #[serde(default)]
    pub value: Option<String>,
    /// Column with a client-supplied unique event id (makes re-imports idempotent
    /// even when two events are otherwise identical).
    #[serde(default)]
    pub event_id: Option<String>,
    /// Where the log is read from.
    #[serde(default)]
    pub source: Option<SourceConfig>,
}

/// How events become positive feedback and binary labels.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelConfig {
    /// Event types that are positive feedback (label 1) outright.
    #[serde(default)]
    pub positive_event_types: Vec<String>,
    /// Event types whose value is a rating, labelled by threshold.
    #[serde(default)]
    pub rating: Option<RatingLabel>,
}

/// Ratings to labels: `value >= threshold` is 1, else 0.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatingLabel {
    /// Event types carrying a rating in their value.
    pub event_types: Vec<String>,
    /// Smallest rating that counts as positive.
    pub threshold: f64,
}

impl LabelConfig {
    /// The event types that are feedback (interactions): the positive ones
    /// and the rated ones.
    pub fn feedback_event_types(&self) -> Vec<&str> {
        let mut types: Vec<&str> = self.positive_event_types.iter().map(String::as_str).collect();
        if let Some(rating) = &self.rating {
            types.extend(rating.event_types.iter().map(String::as_str));
        }
        types
    }

    /// The binary label of an event of `event_type` with `value`.
    pub fn label(&self, event_type: &str, value: Option<f64>) -> bool {
        if let Some(rating) = &self.rating
            && rating.event_types.iter().any(|t| t == event_type)
        {
            return value.is_some_and(|v| v >= rating.threshold);
        }
        self.positive_event_types.iter().any(|t| t == event_type)
    }
}

/// Batch pipeline settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// How many of the user's previous items each training sample carries.
    #[serde(default = "default_history_length")]
    pub history_length: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig { history_length: default_history_length() }
    }
}

fn default_history_length() -> usize {
    10
}

/// A config file's text and the name errors give it (its path).
fn read_config_file(path: &Path) -> Result<(String, String), ConfigError> {
    let origin = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((text, origin)),
        Err(source) => Err(ConfigError::Read { origin, source }),
    }
}

impl Config {
    /// The embedded example configuration's text.
    pub fn default_toml() -> &'static str {
        DEFAULT_TOML
    }

    /// The embedded defaults (the MovieLens-100k schema).
    #[allow(clippy::expect_used, reason = "compiled-in text, parsed by a test of its own")]
    pub fn embedded_default() -> Config {
        Config::from_toml_str(DEFAULT_TOML, "<embedded cascade.toml>")
            .expect("the embedded cascade.toml is valid; a test parses it")
    }

    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let (text, origin) = read_config_file(path)?;
        Config::from_toml_str(&text, &origin)
    }

    /// Parses and validates config text; `origin` names it in errors.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            origin: origin.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        config.validate().map_err(|(key, message)| ConfigError::Invalid {
            origin: origin.to_owned(),
            key,
            message,
        })?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_example_parses_and_declares_movielens() {
        let config = Config::from_toml_str(Config::default_toml(), "cascade.toml").unwrap();
        assert_eq!(config.users.id, "user_id");
        assert_eq!(config.items.display.as_deref(), Some("title"));
        let genres = &config.items.features["genres"];
        assert_eq!(genres.feature_type, FeatureType::MultiCategorical);
        assert_eq!(genres.from_flags.as_ref().unwrap().len(), 19);
        assert!(config.labels.label("rating", Some(4.0)));
        assert!(!config.labels.label("rating", Some(3.0)));
        assert_eq!(config.events.source.as_ref().unwrap().path, "u.data");
    }

    /// Every commented example (`# [section]`, `# key = value`) of the
    /// shipped file, switched on, still parses: the documentation of the
    /// optional sections cannot drift either.
    #[test]
    fn every_commented_example_of_cascade_toml_parses() {
        let is_example = |line: &str| {
            let Some(code) = line.strip_prefix("# ") else { return false };
            let key = code.split(" = ").next().unwrap_or("");
            (code.starts_with('[') && code.ends_with(']'))
                || (code.contains(" = ")
                    && !key.is_empty()
                    && key.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        };
        let mut switched = 0;
        let text: Vec<String> = Config::default_toml()
            .lines()
            .map(|line| {
                if is_example(line) {
                    switched += 1;
                    line[2..].to_owned()
                } else {
                    line.to_owned()
                }
            })
            .collect();
        assert!(switched >= 10, "found only {switched} example lines");
        let config = Config::from_toml_str(&text.join("\n"), "cascade.toml, examples on").unwrap();
        assert_eq!(config.online_store.backend, OnlineBackend::Redis);
        assert_eq!(config.training["neumf"].batch_size, Some(2048));
        assert_eq!(config.context.len(), 2);
        assert_eq!(config.events.event_id.as_deref(), Some("event_id"));
    }

    #[test]
    fn documented_sections_equal_the_built_in_defaults() {
        let config = Config::embedded_default();
        assert_eq!(config.ingest, IngestConfig::default(), "[ingest] in cascade.toml");
        assert_eq!(config.online_store, OnlineStoreConfig::default());
        assert_eq!(config.serve, ServeConfig::default(), "[serve] in cascade.toml");
        assert_eq!(config.recommend, RecommendConfig::default(), "[recommend] in cascade.toml");
        assert_eq!(config.stream, StreamConfig::default(), "[stream] in cascade.toml");
        assert_eq!(
            config.online_learning,
            OnlineLearningConfig::default(),
            "[online_learning] in cascade.toml"
        );
        assert_eq!(
            config.policy_learning,
            PolicyLearningConfig::default(),
            "[policy_learning] in cascade.toml"
        );
        assert_eq!(config.report, ReportConfig::default(), "[report] in cascade.toml");
    }

    fn with(replace: &str, by: &str) -> Result<Config, ConfigError> {
        let text = Config::default_toml().replacen(replace, by, 1);
        assert_ne!(text, Config::default_toml(), "fixture must change the text: {replace}");
        Config::from_toml_str(&text, "test.toml")
    }

    #[test]
    fn serving_knobs_out_of_range_name_their_key() {
        let err = with("mmr_lambda = 0.8", "mmr_lambda = 1.5").unwrap_err();
        assert!(
            matches!(&err, ConfigError::Invalid { key, .. } if key == "recommend.mmr_lambda"),
            "{err}"
        );
        let err = with("ann_ef_search = 500", "ann_ef_search = 0").unwrap_err();
        assert!(err.to_string().contains("serve.ann_ef_search"), "{err}");
        let nested = [("CASCADE__RECOMMEND__QUOTAS__ANN".to_owned(), "7".to_owned())];
        let config = Config::layered(Config::default_toml(), "cascade.toml", nested).unwrap();
        assert_eq!(config.recommend.quotas["ann"], 7, "nested keys from the environment");
        assert_eq!(config.recommend.quotas["fresh"], 10, "the other quotas keep their defaults");
    }

    #[test]
    fn realtime_sections_are_checked_by_key_and_layered() {
        let windows = "windows = [{ length_s = 3600, buckets = 60 }";
        let err = with(windows, "windows = [{ length_s = 3600, buckets = 0 }").unwrap_err();
        assert!(
            matches!(&err, ConfigError::Invalid { key, .. } if key == "stream.windows[0]"),
            "{err}"
        );
        let err = with("batch_size = 128", "batch_size = 0").unwrap_err();
        assert!(err.to_string().contains("online_learning.batch_size"), "{err}");
        let err = with("sparse_learning_rate = 0.05", "sparse_learning_rate = -1.0").unwrap_err();
        assert!(err.to_string().contains("online_learning.sparse_learning_rate"), "{err}");
        let environment = [
            ("CASCADE__STREAM__HISTORY_LENGTH".to_owned(), "7".to_owned()),
            ("CASCADE__ONLINE_LEARNING__RETRIEVAL_LEARNING_RATE".to_owned(), "0.1".to_owned()),
        ];
        let config = Config::layered(Config::default_toml(), "cascade.toml", environment).unwrap();
        assert_eq!(config.stream.history_length, 7);
        assert_eq!(config.stream.windows, StreamConfig::default().windows, "others kept");
        assert!((config.online_learning.retrieval_learning_rate - 0.1).abs() < 1e-7);
    }

    #[test]
    fn pipeline_stage_lists_are_checked_by_key() {
        let channels = "channels = [\"ann\", \"item_cf\", \"category_popular\", \"trending\", \"popular\", \"fresh\"]";
        let cases = [
            (channels, "channels = [\"ann\", \"ann\"]", "recommend.channels[1]"),
            (channels, "channels = [\"ann\", \"Mine\"]", "recommend.channels[1]"),
            (channels, "channels = [\"ann\", \"mine/x\"]", "recommend.quotas.mine/x"),
            ("fresh = 10\n", "fresh = 10\nfersh = 3\n", "recommend.quotas.fersh"),
            (
                "rerankers = [\"freshness\"",
                "rerankers = [\"pins\", \"pins\"",
                "recommend.rerankers[1]",
            ),
        ];
        for (replace, by, key) in cases {
            let err = with(replace, by).unwrap_err();
            assert!(matches!(&err, ConfigError::Invalid { key: k, .. } if k == key), "{by}: {err}");
        }
        let fewer = with(channels, "channels = [\"popular\", \"ann\"]").unwrap();
        assert_eq!(fewer.recommend.channel_quotas(), [("popular".into(), 10), ("ann".into(), 150)]);
        let text = Config::default_toml()
            .replacen(channels, "channels = [\"ann\", \"mine/x\"]", 1)
            .replacen("fresh = 10\n", "fresh = 10\n\"mine/x\" = 4\n", 1);
        let custom = Config::from_toml_str(&text, "test.toml").unwrap();
        assert_eq!(custom.recommend.channel_quotas()[1], ("mine/x".into(), 4));
        let params = "\n[recommend.channel_params.\"mine/x\"]\nitems = [\"1\", \"2\"]\n";
        let with_params = Config::from_toml_str(&format!("{text}{params}"), "test.toml").unwrap();
        let items = &with_params.recommend.channel_params["mine/x"]["items"];
        assert_eq!(items.as_array().map(Vec::len), Some(2), "a listed channel keeps its table");
        let unlisted = params.replace("mine/x", "theirs");
        let err = Config::from_toml_str(&format!("{text}{unlisted}"), "test.toml").unwrap_err();
        assert!(
            matches!(&err, ConfigError::Invalid { key, .. } if key == "recommend.channel_params.theirs"),
            "{err}"
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let err = with("[pipeline]", "[pipeline]\nhistory_lenght = 3").unwrap_err().to_string();
        assert!(err.contains("test.toml") && err.contains("history_lenght"), "{err}");
    }

    #[test]
    fn wrong_type_is_named() {
        let err = with("threshold = 4.0", "threshold = \"high\"").unwrap_err().to_string();
        assert!(err.contains("threshold") && err.contains("invalid type"), "{err}");
    }

    #[test]
    fn unknown_feature_type_lists_the_valid_ones() {
        let err =
            with("{ type = \"categorical\" }", "{ type = \"colour\" }").unwrap_err().to_string();
        assert!(err.contains("colour") && err.contains("multi_categorical"), "{err}");
    }

    #[test]
    fn semantic_errors_name_the_dotted_key() {
        let err =
            with("timestamp_format = \"unix\"", "timestamp_format = \"whenever\"").unwrap_err();
        assert!(
            matches!(&err, ConfigError::Invalid { key, .. } if key == "events.timestamp_format"),
            "{err}"
        );
        let err =
            with("{ type = \"text\" }", "{ type = \"text\", separator = \",\" }").unwrap_err();
        assert!(err.to_string().contains("items.features.title.separator"), "{err}");
        let err = with("path = \"u.data\"", "path = \"u.data\"\ndelimiter = \";;\"").unwrap_err();
        assert!(err.to_string().contains(".source.delimiter"), "{err}");
    }

    #[test]
    fn training_settings_parse_and_bad_values_name_the_key() {
        let tail = "history_length = 10";
        let good = "history_length = 10\n[training.neumf]\nlearning_rate = 0.01\nbatch_size = 512";
        let config = with(tail, good).unwrap();
        let neumf = &config.training["neumf"];
        assert_eq!(
            (neumf.learning_rate, neumf.batch_size, neumf.seed),
            (Some(0.01), Some(512), None)
        );
        let zero = "history_length = 10\n[training.fm]\nbatch_size = 0";
        let err = with(tail, zero).unwrap_err().to_string();
        assert!(err.contains("training.fm.batch_size"), "{err}");
        let negative = "history_length = 10\n[training.fm]\nlearning_rate = -1.0";
        let err = with(tail, negative).unwrap_err().to_string();
        assert!(err.contains("training.fm.learning_rate"), "{err}");
        let typo = "history_length = 10\n[training.fm]\nlr = 0.1";
        let err = with(tail, typo).unwrap_err().to_string();
        assert!(err.contains("lr"), "{err}");
    }

    #[test]
    fn shared_ids_must_name_a_feature_or_id_column() {
        let shared = "occupation = { type = \"categorical\", share_ids_with = \"user_id\" }";
        let config = with("occupation = { type = \"categorical\" }", shared).unwrap();
        assert_eq!(config.users.features["occupation"].id_namespace("occupation"), "user_id");
        let typo = "occupation = { type = \"categorical\", share_ids_with = \"job\" }";
        let err = with("occupation = { type = \"categorical\" }", typo).unwrap_err().to_string();
        assert!(
            err.contains("users.features.occupation.share_ids_with") && err.contains("job"),
            "{err}"
        );
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = Config::load(Path::new("/nonexistent/cascade.toml")).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/cascade.toml"), "{err}");
    }

    #[test]
    fn labels_follow_rating_rule_then_positive_types() {
        let labels = LabelConfig {
            positive_event_types: vec!["click".into()],
            rating: Some(RatingLabel { event_types: vec!["rating".into()], threshold: 4.0 }),
        };
        assert!(labels.label("click", None));
        assert!(!labels.label("impression", None));
        assert!(labels.label("rating", Some(5.0)));
        assert!(!labels.label("rating", None));
    }
}
