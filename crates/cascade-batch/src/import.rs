//! The generic importer: any interaction log plus optional user and item
//! tables, mapped to the data model by the config alone.
//!
//! Every bad row is reported with file, line and column. By default the first
//! bad row stops the import (nothing after it is written, nothing before it is
//! lost); with `skip_bad_rows` they are counted, the first few kept as
//! examples, and the rest imported. Re-importing a file is idempotent: users
//! and items are upserted by id, and events carry a deduplication key.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use cascade_core::config::{FeatureSpec, FeatureType, SourceConfig, TableConfig};
use cascade_core::timestamp::TimestampFormat;
use cascade_core::{Config, Event, FeatureValue, Record};
use cascade_store::{AppendStatus, EntityKind, EventKey, KeyedEvent, Store, StoreError};

use crate::sources::{Cell, MalformedRow, SourceError, SourceRow, read_source};

/// Rows written per transaction: large enough to amortise the fsync, small
/// enough that a crash loses little work in progress.
const ROWS_PER_COMMIT: usize = 10_000;

/// How to treat bad rows.
#[derive(Debug, Clone, Copy)]
pub struct ImportOptions {
    /// Report bad rows and carry on instead of stopping at the first.
    pub skip_bad_rows: bool,
    /// How many bad-row examples a report keeps.
    pub max_examples: usize,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions { skip_bad_rows: false, max_examples: 5 }
    }
}

/// What one import of one file did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImportReport {
    /// `users`, `items` or `events`.
    pub table: String,
    /// The file read.
    pub file: PathBuf,
    /// Rows read (good and bad).
    pub rows: usize,
    /// Records new or changed, or events appended.
    pub written: usize,
    /// Events already in the log, or records unchanged.
    pub unchanged: usize,
    /// Rows skipped as bad.
    pub bad_rows: usize,
    /// The first bad rows, as `file:line: column: problem`.
    pub examples: Vec<String>,
}

/// Why an import stopped.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be read at all.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A bad row, with `skip_bad_rows` off.
    #[error("{0} (use --skip-bad-rows to import the other rows and report bad ones)")]
    BadRow(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The config declares no source for a table that was asked for.
    #[error("the config has no `{0}.source`: say where the {0} file is")]
    NoSource(String),
}

/// A problem with one field of one row.
struct FieldError {
    column: String,
    message: String,
}

fn field_error(column: &str, message: impl Into<String>) -> FieldError {
    FieldError { column: column.to_owned(), message: message.into() }
}

fn text_cell<'a>(row: &'a SourceRow, column: &str) -> Result<Option<&'a str>, FieldError> {
    match row.cell(column) {
        Cell::Text(text) => Ok(Some(text.trim())),
        Cell::Missing => Ok(None),
        Cell::List(_) => Err(field_error(column, "expected a single value, got a list")),
    }
}

fn required<'a>(row: &'a SourceRow, column: &str) -> Result<&'a str, FieldError> {
    text_cell(row, column)?.ok_or_else(|| field_error(column, "is empty or missing"))
}

fn parse_number(column: &str, text: &str) -> Result<f64, FieldError> {
    text.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| field_error(column, format!("expected a number, got {text:?}")))
}

/// Reads one feature of a record from its row.
fn feature_value(
    row: &SourceRow,
    name: &str,
    spec: &FeatureSpec,
) -> Result<FeatureValue, FieldError> {
    let column = spec.source_column(name);
    if let Some(flags) = &spec.from_flags {
        let mut set = Vec::new();
        for flag in flags {
            match text_cell(row, flag)? {
                Some("1") => set.push(flag.clone()),
                Some("0") | None => {}
                Some(other) => {
                    return Err(field_error(flag, format!("expected a 0/1 flag, got {other:?}")));
                }
            }
        }
        return Ok(FeatureValue::List(set));
    }
    if let (FeatureType::MultiCategorical, Cell::List(items)) =
        (spec.feature_type, row.cell(column))
    {
        return Ok(FeatureValue::List(items.clone()));
    }
    let Some(text) = text_cell(row, column)? else { return Ok(FeatureValue::Null) };
    Ok(match spec.feature_type {
        FeatureType::Id | FeatureType::Categorical | FeatureType::Text => {
            FeatureValue::Text(text.to_owned())
        }
        FeatureType::Numeric => FeatureValue::Number(parse_number(column, text)?),
        FeatureType::Timestamp => {
            // Config validation refuses a bad format, so this names a bug.
            let spec_text = spec.format.as_deref().unwrap_or_default();
            let format = TimestampFormat::parse_spec(spec_text).ok_or_else(|| {
                field_error(column, format!("no timestamp format {spec_text:?} in the config"))
            })?;
            FeatureValue::Number(
                format.parse_millis(text).map_err(|m| field_error(column, m))? as f64
            )
        }
        FeatureType::MultiCategorical => {
            // Config validation requires a separator where there are no flags.
            let separator = spec.separator.as_deref().ok_or_else(|| {
                field_error(column, "a multi_categorical feature needs `separator` or `from_flags`")
            })?;
            FeatureValue::List(
                text.split(separator)
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect(),
            )
        }
    })
}

fn record_from_row(row: &SourceRow, table: &TableConfig) -> Result<(String, Record), FieldError> {
    let id = required(row, &table.id)?.to_owned();
    let mut record = Record::new();
    for (name, spec) in &table.features {
        record.insert(name.clone(), feature_value(row, name, spec)?);
    }
    Ok((id, record))
}

/// The time of the `ordinal`-th row (from 0) of the file: its timestamp
/// column, or, for a log without one, its place in file order.
fn event_time(
    row: &SourceRow,
    ordinal: usize,
    config: &Config,
    format: &TimestampFormat,
) -> Result<i64, FieldError> {
    let events = &config.events;
    let (ts_ms, column) = match &events.timestamp {
        Some(column) => {
            let text = required(row, column)?;
            (format.parse_millis(text).map_err(|m| field_error(column, m))?, column.as_str())
        }
        None => ((events.file_order_start + ordinal as i64) * 1000, "(file order)"),
    };
    // The bounds every ingest path applies: a row from the far future
    // would move the real-time watermark past every later event.
    config
        .ingest
        .check_event_time(ts_ms, cascade_core::timestamp::now_ms())
        .map_err(|m| field_error(column, m))?;
    Ok(ts_ms)
}

fn event_from_row(
    row: &SourceRow,
    ordinal: usize,
    config: &Config,
    format: &TimestampFormat,
) -> Result<(Event, Option<String>), FieldError> {
    let events = &config.events;
    let ts_ms = event_time(row, ordinal, config, format)?;
    let event_type = match (&events.event_type, &events.constant_event_type) {
        (Some(column), _) => required(row, column)?.to_owned(),
        (None, Some(constant)) => constant.clone(),
        (None, None) => unreachable!("validated: one of event_type and constant_event_type"),
    };
    let value = match &events.value {
        Some(column) => text_cell(row, column)?.map(|t| parse_number(column, t)).transpose()?,
        None => None,
    };
    let event_id = match &events.event_id {
        Some(column) => Some(required(row, column)?.to_owned()),
        None => None,
    };
    let event = Event {
        user: required(row, &events.user)?.to_owned(),
        item: required(row, &events.item)?.to_owned(),
        event_type,
        value,
        ts_ms,
        served: None,
    };
    Ok((event, event_id))
}

/// Collects bad rows and decides whether to stop.
struct BadRows {
    path: PathBuf,
    options: ImportOptions,
    count: usize,
    examples: Vec<String>,
}

impl BadRows {
    fn report(
        &mut self,
        line: usize,
        column: Option<&str>,
        message: &str,
    ) -> Result<(), ImportError> {
        let where_ = match column {
            Some(column) => format!("{}:{line}: column `{column}`: {message}", self.path.display()),
            None => format!("{}:{line}: {message}", self.path.display()),
        };
        if !self.options.skip_bad_rows {
            return Err(ImportError::BadRow(where_));
        }
        self.count += 1;
        if self.examples.len() < self.options.max_examples {
            self.examples.push(where_);
        }
        Ok(())
    }

    fn malformed(&mut self, row: &MalformedRow) -> Result<(), ImportError> {
        self.report(row.line, None, &row.message)
    }
}

/// Reads a whole source, turning each good row into `T` and reporting bad ones.
fn collect_rows<T>(
    data_dir: &Path,
    source: &SourceConfig,
    options: ImportOptions,
    mut convert: impl FnMut(&SourceRow, usize) -> Result<T, FieldError>,
    on_row: &mut dyn FnMut(usize),
) -> Result<(Vec<T>, usize, BadRows), ImportError> {
    let mut bad =
        BadRows { path: data_dir.join(&source.path), options, count: 0, examples: Vec::new() };
    let mut rows = 0usize;
    let mut converted = Vec::new();
    read_source::<ImportError>(data_dir, source, |row| {
        rows += 1;
        on_row(rows);
        match row {
            Err(malformed) => bad.malformed(&malformed),
            Ok(row) => match convert(&row, rows - 1) {
                Ok(value) => {
                    converted.push(value);
                    Ok(())
                }
                Err(e) => bad.report(row.line, Some(&e.column), &e.message),
            },
        }
    })?;
    Ok((converted, rows, bad))
}

/// Imports the user or item table.
pub fn import_records(
    config: &Config,
    kind: EntityKind,
    data_dir: &Path,
    store: &Store,
    options: ImportOptions,
    on_row: &mut dyn FnMut(usize),
) -> Result<ImportReport, ImportError> {
    let (name, table) = match kind {
        EntityKind::User => ("users", &config.users),
        EntityKind::Item => ("items", &config.items),
    };
    let source = table.source.as_ref().ok_or_else(|| ImportError::NoSource(name.into()))?;
    let (records, rows, bad) =
        collect_rows(data_dir, source, options, |row, _| record_from_row(row, table), on_row)?;
    let mut written = 0;
    for chunk in records.chunks(ROWS_PER_COMMIT) {
        written += store.upsert(kind, chunk)?;
    }
    Ok(ImportReport {
        table: name.into(),
        file: bad.path,
        rows,
        written,
        unchanged: records.len() - written,
        bad_rows: bad.count,
        examples: bad.examples,
    })
}

/// Imports the event log. Events are appended in file order, so equal
/// timestamps keep their file order in the log's sequence numbers.
pub fn import_events(
    config: &Config,
    data_dir: &Path,
    store: &Store,
    options: ImportOptions,
    on_row: &mut dyn FnMut(usize),
) -> Result<ImportReport, ImportError> {
    let source =
        config.events.source.as_ref().ok_or_else(|| ImportError::NoSource("events".into()))?;
    let format = TimestampFormat::parse_spec(&config.events.timestamp_format).ok_or_else(|| {
        ImportError::BadRow(format!(
            "events.timestamp_format {:?} is not a timestamp format",
            config.events.timestamp_format
        ))
    })?;
    // Identical rows without an event id are told apart by their occurrence
    // number, so a re-import maps each row to the same key as before.
    let mut occurrences: HashMap<EventKey, u32> = HashMap::new();
    let (events, rows, bad) = collect_rows(
        data_dir,
        source,
        options,
        |row, ordinal| {
            let (event, event_id) = event_from_row(row, ordinal, config, &format)?;
            let key = match event_id {
                Some(id) => EventKey::from_client_id(&id),
                None => {
                    let seen = occurrences.entry(EventKey::from_content(&event, 0)).or_insert(0);
                    *seen += 1;
                    EventKey::from_content(&event, *seen - 1)
                }
            };
            Ok(KeyedEvent { key, event })
        },
        on_row,
    )?;
    let mut written = 0;
    for chunk in events.chunks(ROWS_PER_COMMIT) {
        written +=
            store.append(chunk)?.iter().filter(|s| matches!(s, AppendStatus::Appended(_))).count();
    }
    Ok(ImportReport {
        table: "events".into(),
        file: bad.path,
        rows,
        written,
        unchanged: events.len() - written,
        bad_rows: bad.count,
        examples: bad.examples,
    })
}
