//! The generic importer on a dataset that is not MovieLens, in every source
//! format, with bad rows, skipping, and idempotent re-import.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::path::Path;
use std::sync::Arc;

use cascade_batch::import::{ImportError, ImportOptions, import_events, import_records};
use cascade_core::{Config, FeatureValue};
use cascade_store::{EntityKind, Store};
use datafusion::arrow::array::{Float64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::parquet::arrow::ArrowWriter;

/// A shop: JSON-lines click/purchase log with event ids and RFC 3339 times,
/// items as CSV with a header, users as Parquet.
const SHOP: &str = r#"
[events]
user = "customer"
item = "sku"
timestamp = "at"
timestamp_format = "rfc3339"
event_type = "action"
value = "amount"
event_id = "id"
[events.source]
path = "events.jsonl"
format = "jsonl"

[labels]
positive_event_types = ["purchase"]

[users]
id = "customer"
[users.source]
path = "users.parquet"
format = "parquet"
[users.features]
segment = { type = "categorical" }
spend = { type = "numeric" }

[items]
id = "sku"
display = "name"
[items.source]
path = "items.csv"
format = "csv"
[items.features]
name = { type = "text" }
price = { type = "numeric" }
tags = { type = "multi_categorical", separator = ";" }
launched = { type = "timestamp", format = "%Y-%m-%d" }
"#;

fn shop(dir: &Path, events: &str) -> Config {
    std::fs::write(dir.join("events.jsonl"), events).unwrap();
    std::fs::write(
        dir.join("items.csv"),
        "sku,name,price,tags,launched\nA,\"Kettle, steel\",25.5,kitchen;metal,2024-01-02\nB,Mug,4,kitchen,2024-02-03\n",
    )
    .unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("customer", DataType::Utf8, false),
        Field::new("segment", DataType::Utf8, true),
        Field::new("spend", DataType::Float64, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec!["c1", "c2"])),
            Arc::new(StringArray::from(vec![Some("gold"), None])),
            Arc::new(Float64Array::from(vec![Some(120.0), Some(3.5)])),
        ],
    )
    .unwrap();
    let mut writer = ArrowWriter::try_new(
        std::fs::File::create(dir.join("users.parquet")).unwrap(),
        schema,
        None,
    )
    .unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    Config::from_toml_str(SHOP, "shop.toml").unwrap()
}

const GOOD_EVENTS: &str = r#"{"id":"e1","customer":"c1","sku":"A","action":"click","at":"2024-03-01T10:00:00Z"}
{"id":"e2","customer":"c1","sku":"A","action":"purchase","amount":25.5,"at":"2024-03-01T10:05:00Z"}
{"id":"e3","customer":"c2","sku":"B","action":"click","at":"2024-03-02T08:00:00+01:00"}
"#;

#[test]
fn imports_a_non_movielens_dataset_from_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let config = shop(dir.path(), GOOD_EVENTS);
    let store = Store::open(&dir.path().join("store.redb")).unwrap();
    let options = ImportOptions::default();
    let users = import_records(&config, EntityKind::User, dir.path(), &store, options, &mut |_| {})
        .unwrap();
    let items = import_records(&config, EntityKind::Item, dir.path(), &store, options, &mut |_| {})
        .unwrap();
    let events = import_events(&config, dir.path(), &store, options, &mut |_| {}).unwrap();
    assert_eq!((users.written, items.written, events.written), (2, 2, 3));

    let kettle = store.get(EntityKind::Item, "A").unwrap().unwrap();
    assert_eq!(kettle["name"], FeatureValue::Text("Kettle, steel".into()));
    assert_eq!(kettle["price"], FeatureValue::Number(25.5));
    assert_eq!(kettle["tags"], FeatureValue::List(vec!["kitchen".into(), "metal".into()]));
    assert_eq!(kettle["launched"], FeatureValue::Number(1_704_153_600_000.0));
    let c2 = store.get(EntityKind::User, "c2").unwrap().unwrap();
    assert_eq!(c2["segment"], FeatureValue::Null);
    assert_eq!(c2["spend"], FeatureValue::Number(3.5));

    let log = store.events(0).unwrap();
    assert_eq!(log[1].event.event_type, "purchase");
    assert_eq!(log[1].event.value, Some(25.5));
    assert_eq!(log[2].event.ts_ms, 1_709_362_800_000, "the +01:00 offset is honoured");

    // Re-import: nothing new, nothing lost; a new event id is appended.
    let again = import_events(&config, dir.path(), &store, options, &mut |_| {}).unwrap();
    assert_eq!((again.written, again.unchanged), (0, 3));
    let more = format!(
        "{GOOD_EVENTS}{}\n",
        r#"{"id":"e4","customer":"c2","sku":"A","action":"purchase","at":"2024-03-03T00:00:00Z"}"#
    );
    std::fs::write(dir.path().join("events.jsonl"), more).unwrap();
    let grown = import_events(&config, dir.path(), &store, options, &mut |_| {}).unwrap();
    assert_eq!((grown.written, grown.unchanged), (1, 3));
    assert_eq!(store.event_count().unwrap(), 4);
    let items_again =
        import_records(&config, EntityKind::Item, dir.path(), &store, options, &mut |_| {})
            .unwrap();
    assert_eq!((items_again.written, items_again.unchanged), (0, 2));
}

const BAD_EVENTS: &str = r#"{"id":"e1","customer":"c1","sku":"A","action":"click","at":"2024-03-01T10:00:00Z"}
{"id":"e2","customer":"c1","sku":"A","action":"purchase","amount":"lots","at":"2024-03-01T10:05:00Z"}
this is not json
{"id":"e4","customer":"c2","sku":"B","action":"click","at":"yesterday"}
{"id":"e5","customer":"c2","sku":"B","action":"click","at":"2024-03-02T08:00:00Z"}
"#;

#[test]
fn a_bad_row_stops_the_import_naming_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let config = shop(dir.path(), BAD_EVENTS);
    let store = Store::open(&dir.path().join("store.redb")).unwrap();
    let err = import_events(&config, dir.path(), &store, ImportOptions::default(), &mut |_| {})
        .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, ImportError::BadRow(_)));
    assert!(
        message.contains("events.jsonl:2: column `amount`: expected a number, got \"lots\""),
        "{message}"
    );
    assert!(message.contains("--skip-bad-rows"), "{message}");
    assert_eq!(store.event_count().unwrap(), 0, "a failed import writes nothing");
}

#[test]
fn skip_bad_rows_reports_counts_and_examples_and_imports_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let config = shop(dir.path(), BAD_EVENTS);
    let store = Store::open(&dir.path().join("store.redb")).unwrap();
    let options = ImportOptions { skip_bad_rows: true, max_examples: 2 };
    let report = import_events(&config, dir.path(), &store, options, &mut |_| {}).unwrap();
    assert_eq!((report.rows, report.written, report.bad_rows), (5, 2, 3));
    assert_eq!(report.examples.len(), 2, "only the first examples are kept");
    assert!(
        report.examples[1].contains("events.jsonl:3: not a JSON object"),
        "{:?}",
        report.examples
    );
    assert_eq!(store.event_count().unwrap(), 2);
}

#[test]
fn malformed_csv_rows_and_missing_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = shop(dir.path(), GOOD_EVENTS);
    std::fs::write(dir.path().join("items.csv"), "sku,name,price,tags,launched\nA,Kettle,25.5\n")
        .unwrap();
    let store = Store::open(&dir.path().join("store.redb")).unwrap();
    let err = import_records(
        &config,
        EntityKind::Item,
        dir.path(),
        &store,
        ImportOptions::default(),
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("items.csv:2: expected 5 fields"), "{err}");
    std::fs::remove_file(dir.path().join("users.parquet")).unwrap();
    let err = import_records(
        &config,
        EntityKind::User,
        dir.path(),
        &store,
        ImportOptions::default(),
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("users.parquet") && err.contains("cannot open"), "{err}");
}

/// A log with no times and no tables: only the order of the file.
fn ordered_log(source: &str) -> Config {
    let text = format!(
        r#"
[events]
user = "user_id"
item = "item_id"
constant_event_type = "review"
[events.source]
{source}
[labels]
positive_event_types = ["review"]
[users]
id = "user_id"
[items]
id = "item_id"
"#
    );
    Config::from_toml_str(&text, "ordered.toml").unwrap()
}

#[test]
fn sequences_lines_become_one_event_per_item_in_line_order() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("seq.txt"), "1 10 11 12\n\n2  12\t10\n3\n4 13 13 x\n").unwrap();
    let config = ordered_log("path = \"seq.txt\"\nformat = \"sequences\"");
    let store = Store::open(&dir.path().join("store.redb")).unwrap();
    let options = ImportOptions { skip_bad_rows: true, max_examples: 5 };
    let report = import_events(&config, dir.path(), &store, options, &mut |_| {}).unwrap();
    assert_eq!((report.written, report.bad_rows), (8, 1), "{:?}", report.examples);
    assert!(
        report.examples[0].contains("seq.txt:4: user \"3\" has no items"),
        "{:?}",
        report.examples
    );
    let log = store.events(0).unwrap();
    let pairs: Vec<(&str, &str)> =
        log.iter().map(|e| (e.event.user.as_str(), e.event.item.as_str())).collect();
    assert_eq!(
        pairs,
        [
            ("1", "10"),
            ("1", "11"),
            ("1", "12"),
            ("2", "12"),
            ("2", "10"),
            ("4", "13"),
            ("4", "13"),
            ("4", "x")
        ]
    );
    // File order is time order: one second apart from `file_order_start`,
    // so a repeated item (user 4's 13) is two events, not one.
    let times: Vec<i64> = log.iter().map(|e| e.event.ts_ms).collect();
    assert!(times.windows(2).all(|w| w[1] > w[0]), "{times:?}");
    assert_eq!(times[0], 946_684_800_000);
    let again = import_events(&config, dir.path(), &store, options, &mut |_| {}).unwrap();
    assert_eq!((again.written, again.unchanged), (0, 8), "re-import is idempotent");
}

#[test]
fn two_column_lines_without_times_keep_file_order() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pairs.txt"), "u1 a\nu2 b\nu1 b\nu1 a\n").unwrap();
    let config = ordered_log(
        "path = \"pairs.txt\"\nformat = \"csv\"\ndelimiter = \" \"\nheader = false\ncolumns = [\"user_id\", \"item_id\"]",
    );
    let store = Store::open(&dir.path().join("store.redb")).unwrap();
    let report =
        import_events(&config, dir.path(), &store, ImportOptions::default(), &mut |_| {}).unwrap();
    assert_eq!(report.written, 4);
    let log = store.events(0).unwrap();
    let u1: Vec<(&str, i64)> = log
        .iter()
        .filter(|e| e.event.user == "u1")
        .map(|e| (e.event.item.as_str(), e.event.ts_ms - 946_684_800_000))
        .collect();
    assert_eq!(u1, [("a", 0), ("b", 2000), ("a", 3000)]);
}
