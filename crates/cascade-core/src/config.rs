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
pub use crate::ingest::IngestConfig;
pub use crate::serve_config::{RecallQuotas, RecommendConfig, ServeConfig};
use crate::timestamp::TimestampFormat;

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
    /// Column holding the event time.
    pub timestamp: String,
    /// Format of the event time (see [`FeatureSpec::format`]).
    pub timestamp_format: String,
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

impl Config {
    /// The embedded example configuration's text.
    pub fn default_toml() -> &'static str {
        DEFAULT_TOML
    }

    /// The embedded defaults (the MovieLens-100k schema).
    pub fn embedded_default() -> Config {
        Config::from_toml_str(DEFAULT_TOML, "<embedded cascade.toml>")
            .expect("the embedded cascade.toml is valid; a test parses it")
    }

    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { origin: origin.clone(), source })?;
        Config::from_toml_str(&text, &origin)
    }

    /// The config a command runs under: the file at `path` (else the
    /// built-in defaults), overridden by this process's `CASCADE__…`
    /// environment variables (see [`Config::layered`]).
    pub fn load_layered(path: Option<&Path>) -> Result<Config, ConfigError> {
        match path {
            Some(path) => {
                let origin = path.display().to_string();
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { origin: origin.clone(), source })?;
                Config::layered(&text, &origin, std::env::vars())
            }
            None => Config::layered(DEFAULT_TOML, "<embedded cascade.toml>", std::env::vars()),
        }
    }

    /// The config in layers: `text` (a file, or the built-in defaults),
    /// then every `CASCADE__SECTION__KEY=value` among `environment`
    /// (`CASCADE__SERVE__ADMIN_TOKEN=…` sets `[serve] admin_token`). A
    /// value is read as a TOML value where it parses as one (`5`, `true`,
    /// `["a", "b"]`), else as a string. An unknown key is an error that
    /// names it, as in a file.
    pub fn layered(
        text: &str,
        origin: &str,
        environment: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let overrides: Vec<(Vec<String>, String)> = environment
            .into_iter()
            .filter_map(|(name, value)| {
                let path = name.strip_prefix(ENVIRONMENT_PREFIX)?;
                Some((path.split("__").map(str::to_lowercase).collect(), value))
            })
            .collect();
        if overrides.is_empty() {
            return Config::from_toml_str(text, origin);
        }
        let syntax = |message: String| ConfigError::Syntax { origin: origin.to_owned(), message };
        let mut table: toml::Table = toml::from_str(text).map_err(|e| syntax(e.to_string()))?;
        let mut names = Vec::new();
        for (path, value) in overrides {
            let name = format!("{ENVIRONMENT_PREFIX}{}", path.join("__").to_uppercase());
            set_dotted(&mut table, &path, environment_value(&value))
                .map_err(|message| syntax(format!("{name}: {message}")))?;
            names.push(name);
        }
        let text = toml::to_string(&table).map_err(|e| syntax(e.to_string()))?;
        Config::from_toml_str(&text, &format!("{origin} with {}", names.join(", ")))
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

    fn validate(&self) -> Result<(), (String, String)> {
        validate_table("users", &self.users)?;
        validate_table("items", &self.items)?;
        let shareable = |name: &str| {
            name == self.users.id
                || name == self.items.id
                || self.users.features.contains_key(name)
                || self.items.features.contains_key(name)
        };
        for (table, config) in [("users", &self.users), ("items", &self.items)] {
            for (name, spec) in &config.features {
                if let Some(other) = &spec.share_ids_with
                    && !shareable(other)
                {
                    return Err((
                        format!("{table}.features.{name}.share_ids_with"),
                        format!("expected a feature name or id column, got {other:?}"),
                    ));
                }
            }
        }
        for (model, settings) in &self.training {
            if settings.batch_size == Some(0) {
                return Err((
                    format!("training.{model}.batch_size"),
                    "expected a positive number of examples".into(),
                ));
            }
            if let Some(rate) = settings.learning_rate
                && !(rate.is_finite() && rate > 0.0)
            {
                return Err((
                    format!("training.{model}.learning_rate"),
                    format!("expected a positive finite number, got {rate}"),
                ));
            }
        }
        let events = &self.events;
        if TimestampFormat::parse_spec(&events.timestamp_format).is_none() {
            return Err(bad_timestamp_format("events.timestamp_format"));
        }
        match (&events.event_type, &events.constant_event_type) {
            (None, None) => {
                return Err((
                    "events.event_type".into(),
                    "expected a column name, or set events.constant_event_type".into(),
                ));
            }
            (Some(_), Some(_)) => {
                return Err((
                    "events.constant_event_type".into(),
                    "expected only one of events.event_type and events.constant_event_type".into(),
                ));
            }
            _ => {}
        }
        if let Some(source) = &events.source {
            validate_source("events.source", source)?;
        }
        if let Some(rating) = &self.labels.rating
            && !rating.threshold.is_finite()
        {
            return Err(("labels.rating.threshold".into(), "expected a finite number".into()));
        }
        if self.labels.positive_event_types.is_empty() && self.labels.rating.is_none() {
            return Err((
                "labels.positive_event_types".into(),
                "expected at least one positive event type (or a labels.rating rule)".into(),
            ));
        }
        if self.ingest.max_id_bytes == 0 || self.ingest.max_event_type_bytes == 0 {
            return Err(("ingest.max_id_bytes".into(), "expected at least 1 byte".into()));
        }
        if self.pipeline.history_length == 0 {
            return Err(("pipeline.history_length".into(), "expected at least 1".into()));
        }
        self.validate_serving()
    }

    fn validate_serving(&self) -> Result<(), (String, String)> {
        let (serve, recommend) = (&self.serve, &self.recommend);
        let positive = [
            ("serve.ann_ef_search", serve.ann_ef_search),
            ("serve.events_per_commit", serve.events_per_commit),
            ("recommend.mmr_pool", recommend.mmr_pool),
            ("ingest.max_events_per_request", self.ingest.max_events_per_request),
            ("ingest.max_pending_events", self.ingest.max_pending_events),
            ("recommend.max_list_ids", recommend.max_list_ids),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(((*key).into(), "expected at least 1".into()));
        }
        let half_lives = [
            ("serve.popularity_half_life_days", serve.popularity_half_life_days),
            ("recommend.freshness_half_life_days", recommend.freshness_half_life_days),
        ];
        if let Some((key, value)) = half_lives.iter().find(|(_, v)| !(v.is_finite() && *v > 0.0)) {
            return Err((
                (*key).into(),
                format!("expected a positive number of days, got {value}"),
            ));
        }
        if !(0.0..=1.0).contains(&recommend.mmr_lambda) {
            return Err((
                "recommend.mmr_lambda".into(),
                format!("expected a weight from 0 to 1, got {}", recommend.mmr_lambda),
            ));
        }
        Ok(())
    }
}

/// Environment variables that override config keys start with this.
pub const ENVIRONMENT_PREFIX: &str = "CASCADE__";

fn environment_value(text: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("value = {text}"))
        .ok()
        .and_then(|mut table| table.remove("value"))
        .unwrap_or_else(|| toml::Value::String(text.to_owned()))
}

/// Sets `path` (section, …, key) in `table`, creating sections as needed.
fn set_dotted(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    let (key, sections) = path.split_last().ok_or("no key after the prefix")?;
    let mut current = table;
    for section in sections {
        let entry = current
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = entry.as_table_mut().ok_or_else(|| format!("`{section}` is not a section"))?;
    }
    current.insert(key.clone(), value);
    Ok(())
}

fn bad_timestamp_format(key: &str) -> (String, String) {
    (key.to_owned(), "expected `unix`, `unix_ms`, `rfc3339` or a strftime pattern with `%`".into())
}

fn validate_table(table: &str, config: &TableConfig) -> Result<(), (String, String)> {
    if let Some(display) = &config.display
        && !config.features.contains_key(display)
    {
        return Err((
            format!("{table}.display"),
            format!("expected a feature name, got {display:?}"),
        ));
    }
    if let Some(source) = &config.source {
        validate_source(&format!("{table}.source"), source)?;
    }
    for (name, spec) in &config.features {
        let key = format!("{table}.features.{name}");
        let multi = spec.feature_type == FeatureType::MultiCategorical;
        if spec.separator.is_some() && !multi {
            return Err((
                format!("{key}.separator"),
                "only multi_categorical features take a separator".into(),
            ));
        }
        if spec.from_flags.is_some() && !multi {
            return Err((
                format!("{key}.from_flags"),
                "only multi_categorical features take from_flags".into(),
            ));
        }
        if multi && spec.separator.is_some() == spec.from_flags.is_some() {
            return Err((
                key,
                "multi_categorical expects exactly one of `separator` or `from_flags`".into(),
            ));
        }
        if let Some(separator) = &spec.separator
            && separator.is_empty()
        {
            return Err((format!("{key}.separator"), "expected a non-empty string".into()));
        }
        match (&spec.format, spec.feature_type) {
            (None, FeatureType::Timestamp) => {
                return Err((format!("{key}.format"), "timestamp features need a format".into()));
            }
            (Some(format), FeatureType::Timestamp) => {
                if TimestampFormat::parse_spec(format).is_none() {
                    return Err(bad_timestamp_format(&format!("{key}.format")));
                }
            }
            (Some(_), _) => {
                return Err((
                    format!("{key}.format"),
                    "only timestamp features take a format".into(),
                ));
            }
            (None, _) => {}
        }
    }
    Ok(())
}

fn validate_source(key: &str, source: &SourceConfig) -> Result<(), (String, String)> {
    if let Some(delimiter) = &source.delimiter {
        if source.format != SourceFormat::Csv {
            return Err((format!("{key}.delimiter"), "only csv sources take a delimiter".into()));
        }
        if delimiter.len() != 1 {
            return Err((
                format!("{key}.delimiter"),
                format!("expected one ASCII character, got {delimiter:?}"),
            ));
        }
    }
    let delimited = matches!(source.format, SourceFormat::Csv | SourceFormat::Tsv);
    if delimited && !source.header && source.columns.is_none() {
        return Err((
            format!("{key}.columns"),
            "a file without a header line needs `columns`".into(),
        ));
    }
    if !delimited && source.columns.is_some() {
        return Err((format!("{key}.columns"), "only csv/tsv sources take `columns`".into()));
    }
    Ok(())
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

    #[test]
    fn environment_variables_override_the_file_by_dotted_key() {
        let environment = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        let config = Config::layered(
            Config::default_toml(),
            "cascade.toml",
            environment(&[
                ("CASCADE__SERVE__ADMIN_TOKEN", "s3cret"),
                ("CASCADE__SERVE__INGEST_KEY", "k1,k2"),
                ("CASCADE__INGEST__MAX_ID_BYTES", "64"),
                ("CASCADE__ONLINE_STORE__BACKEND", "redis"),
                ("CASCADE_DATA_DIR", "/elsewhere"),
            ]),
        )
        .unwrap();
        assert_eq!(config.serve.admin_token, ["s3cret"]);
        assert_eq!(config.serve.ingest_key, ["k1", "k2"]);
        assert!(config.serve.requires_keys());
        assert_eq!(config.ingest.max_id_bytes, 64);
        assert_eq!(config.online_store.backend, OnlineBackend::Redis);
        let unknown = Config::layered(
            Config::default_toml(),
            "cascade.toml",
            environment(&[("CASCADE__INGEST__MAX_ID_BYTE", "64")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            unknown.contains("CASCADE__INGEST__MAX_ID_BYTE") && unknown.contains("max_id_byte"),
            "{unknown}"
        );
        assert!(!Config::embedded_default().serve.requires_keys(), "no keys by default");
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
        assert_eq!(config.recommend.quotas.ann, 7, "nested keys from the environment");
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
