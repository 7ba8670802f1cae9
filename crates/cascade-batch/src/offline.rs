//! The offline store: the event log and the user and item tables as Parquet
//! files, the input of every batch job (here DataFusion; Spark reads the same
//! files unchanged).
//!
//! Files: `events.parquet` (seq, user_id, item_id, event_type, value, ts_ms,
//! label), `users.parquet` and `items.parquet` (id plus one typed column per
//! declared feature).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, ListBuilder, RecordBatch,
    StringBuilder, UInt64Builder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::error::ArrowError;
use datafusion::parquet::arrow::ArrowWriter;

use cascade_core::config::{FeatureType, TableConfig};
use cascade_core::{Config, FeatureValue, Record};
use cascade_store::{EntityKind, Store};

use crate::BatchError;

/// Rows per Parquet record batch.
const BATCH_ROWS: usize = 65_536;

/// Counts of what an export wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExportReport {
    /// Directory written.
    pub dir: PathBuf,
    /// Events written.
    pub events: usize,
    /// Users written.
    pub users: usize,
    /// Items written.
    pub items: usize,
}

fn write_parquet(
    path: &Path,
    schema: Arc<Schema>,
    batches: &[RecordBatch],
) -> Result<(), BatchError> {
    let temporary = path.with_extension("parquet.partial");
    let file = File::create(&temporary).map_err(|e| BatchError::file(&temporary, e))?;
    let mut writer =
        ArrowWriter::try_new(file, schema, None).map_err(|e| BatchError::file(path, e))?;
    for batch in batches {
        writer.write(batch).map_err(|e| BatchError::file(path, e))?;
    }
    writer.close().map_err(|e| BatchError::file(path, e))?;
    // Readers never see a half-written file.
    std::fs::rename(&temporary, path).map_err(|e| BatchError::file(path, e))
}

/// Writes the whole store to `dir` as Parquet.
pub fn export(store: &Store, config: &Config, dir: &Path) -> Result<ExportReport, BatchError> {
    std::fs::create_dir_all(dir).map_err(|e| BatchError::file(dir, e))?;
    let events = export_events(store, config, &dir.join("events.parquet"))?;
    let users = export_records(store, EntityKind::User, &config.users, &dir.join("users.parquet"))?;
    let items = export_records(store, EntityKind::Item, &config.items, &dir.join("items.parquet"))?;
    Ok(ExportReport { dir: dir.to_owned(), events, users, items })
}

/// The schema of `events.parquet`.
pub fn events_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("seq", DataType::UInt64, false),
        Field::new("user_id", DataType::Utf8, false),
        Field::new("item_id", DataType::Utf8, false),
        Field::new("event_type", DataType::Utf8, false),
        Field::new("value", DataType::Float64, true),
        Field::new("ts_ms", DataType::Int64, false),
        Field::new("label", DataType::Boolean, false),
    ]))
}

fn export_events(store: &Store, config: &Config, path: &Path) -> Result<usize, BatchError> {
    let schema = events_schema();
    let mut batches = Vec::new();
    let mut count = 0usize;
    let mut builders = EventBuilders::default();
    store.replay(0, |stored| {
        let e = &stored.event;
        builders.seq.append_value(stored.seq);
        builders.user.append_value(&e.user);
        builders.item.append_value(&e.item);
        builders.event_type.append_value(&e.event_type);
        builders.value.append_option(e.value);
        builders.ts.append_value(e.ts_ms);
        builders.label.append_value(config.labels.label(&e.event_type, e.value));
        count += 1;
        if count.is_multiple_of(BATCH_ROWS) {
            batches.push(builders.finish(&schema));
        }
    })?;
    batches.push(builders.finish(&schema));
    let batches: Vec<RecordBatch> =
        batches.into_iter().collect::<Result<_, _>>().map_err(|e| BatchError::file(path, e))?;
    write_parquet(path, schema, &batches)?;
    Ok(count)
}

#[derive(Default)]
struct EventBuilders {
    seq: UInt64Builder,
    user: StringBuilder,
    item: StringBuilder,
    event_type: StringBuilder,
    value: Float64Builder,
    ts: Int64Builder,
    label: BooleanBuilder,
}

impl EventBuilders {
    /// The rows so far as a batch of `schema` (an error only if the
    /// builders and the schema disagree).
    fn finish(&mut self, schema: &Arc<Schema>) -> Result<RecordBatch, ArrowError> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.seq.finish()),
            Arc::new(self.user.finish()),
            Arc::new(self.item.finish()),
            Arc::new(self.event_type.finish()),
            Arc::new(self.value.finish()),
            Arc::new(self.ts.finish()),
            Arc::new(self.label.finish()),
        ];
        RecordBatch::try_new(schema.clone(), columns)
    }
}

fn feature_data_type(feature_type: FeatureType) -> DataType {
    match feature_type {
        FeatureType::Numeric => DataType::Float64,
        FeatureType::Timestamp => DataType::Int64,
        FeatureType::MultiCategorical => {
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
        }
        FeatureType::Id | FeatureType::Categorical | FeatureType::Text => DataType::Utf8,
    }
}

fn export_records(
    store: &Store,
    kind: EntityKind,
    table: &TableConfig,
    path: &Path,
) -> Result<usize, BatchError> {
    let records = store.records(kind)?;
    let mut fields = vec![Field::new("id", DataType::Utf8, false)];
    fields.extend(
        table
            .features
            .iter()
            .map(|(name, spec)| Field::new(name, feature_data_type(spec.feature_type), true)),
    );
    let schema = Arc::new(Schema::new(fields));
    let mut columns: Vec<ArrayRef> = Vec::new();
    let mut ids = StringBuilder::new();
    records.iter().for_each(|(id, _)| ids.append_value(id));
    columns.push(Arc::new(ids.finish()));
    for (name, spec) in &table.features {
        columns.push(feature_column(&records, name, spec.feature_type));
    }
    let batch =
        RecordBatch::try_new(schema.clone(), columns).map_err(|e| BatchError::file(path, e))?;
    write_parquet(path, schema, &[batch])?;
    Ok(records.len())
}

fn feature_column(records: &[(String, Record)], name: &str, feature_type: FeatureType) -> ArrayRef {
    let values = records.iter().map(|(_, r)| r.get(name).unwrap_or(&FeatureValue::Null));
    match feature_type {
        FeatureType::Numeric => {
            let mut b = Float64Builder::new();
            values.for_each(|v| {
                b.append_option(if let FeatureValue::Number(n) = v { Some(*n) } else { None })
            });
            Arc::new(b.finish())
        }
        FeatureType::Timestamp => {
            let mut b = Int64Builder::new();
            values.for_each(|v| {
                b.append_option(if let FeatureValue::Number(n) = v {
                    Some(*n as i64)
                } else {
                    None
                })
            });
            Arc::new(b.finish())
        }
        FeatureType::MultiCategorical => {
            let mut b = ListBuilder::new(StringBuilder::new());
            for v in values {
                match v {
                    FeatureValue::List(items) => {
                        items.iter().for_each(|item| b.values().append_value(item));
                        b.append(true);
                    }
                    _ => b.append(false),
                }
            }
            Arc::new(b.finish())
        }
        FeatureType::Id | FeatureType::Categorical | FeatureType::Text => {
            let mut b = StringBuilder::new();
            values.for_each(|v| match v {
                FeatureValue::Null => b.append_null(),
                other => b.append_value(other.display()),
            });
            Arc::new(b.finish())
        }
    }
}
