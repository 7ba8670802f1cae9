//! Reading source files (CSV/TSV, JSON lines, Parquet) into rows of named
//! cells, with the line (or row) each came from, so that every later error can
//! name the file, line and column.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::{can_cast_types, cast};
use datafusion::arrow::datatypes::DataType;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use cascade_core::config::{Encoding, SourceConfig, SourceFormat};

/// One cell of a source row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// A scalar, as text (numbers keep their textual form).
    Text(String),
    /// A list value (JSON array, Parquet list).
    List(Vec<String>),
    /// An empty cell, `null`, or an absent key.
    Missing,
}

/// A source row: its 1-based line (or row) number and cells by column name.
#[derive(Debug, Clone)]
pub struct SourceRow {
    /// Line number in a text file (header included), or row number in Parquet.
    pub line: usize,
    /// Cells by column name.
    pub cells: HashMap<String, Cell>,
}

impl SourceRow {
    /// The cell of `column` (absent columns read as missing).
    pub fn cell(&self, column: &str) -> &Cell {
        self.cells.get(column).unwrap_or(&Cell::Missing)
    }
}

/// A source file that could not be read at all (as opposed to one bad row).
#[derive(Debug, thiserror::Error)]
#[error("{path}{}: {message}", .line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct SourceError {
    /// The file.
    pub path: PathBuf,
    /// The line, when the problem is at one.
    pub line: Option<usize>,
    /// What went wrong.
    pub message: String,
}

/// A row that is malformed at the file level (wrong number of fields, invalid
/// JSON): reported per row so `--skip-bad-rows` can continue past it.
#[derive(Debug, Clone)]
pub struct MalformedRow {
    /// Line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Reads `source` (its path relative to `data_dir`), calling `visit` for every
/// row in file order. A malformed row is passed as `Err` and reading goes on.
///
/// `visit` may stop the reading by returning an error of its own type.
pub fn read_source<E: From<SourceError>>(
    data_dir: &Path,
    source: &SourceConfig,
    mut visit: impl FnMut(Result<SourceRow, MalformedRow>) -> Result<(), E>,
) -> Result<(), E> {
    let path = data_dir.join(&source.path);
    let fail =
        |line: Option<usize>, message: String| SourceError { path: path.clone(), line, message };
    match source.format {
        SourceFormat::Csv | SourceFormat::Tsv => {
            let bytes = std::fs::read(&path)
                .map_err(|e| E::from(fail(None, format!("cannot read: {e}"))))?;
            read_delimited(&bytes, source, &mut visit, &fail)
        }
        SourceFormat::Jsonl => {
            let bytes = std::fs::read(&path)
                .map_err(|e| E::from(fail(None, format!("cannot read: {e}"))))?;
            read_jsonl(&bytes, source.encoding, &mut visit)
        }
        SourceFormat::Parquet => read_parquet(&path, &mut visit, &fail),
        SourceFormat::Sequences => {
            let bytes = std::fs::read(&path)
                .map_err(|e| E::from(fail(None, format!("cannot read: {e}"))))?;
            read_sequences(&bytes, source, &mut visit)
        }
    }
}

/// The column names of a sequences source's rows: the user's, then the item's.
fn sequence_columns(source: &SourceConfig) -> (String, String) {
    match source.columns.as_deref() {
        Some([user, item]) => (user.clone(), item.clone()),
        _ => ("user_id".into(), "item_id".into()),
    }
}

/// One row per item of each `user item_1 ... item_n` line, in line order,
/// each carrying the line it came from.
fn read_sequences<E>(
    bytes: &[u8],
    source: &SourceConfig,
    visit: &mut dyn FnMut(Result<SourceRow, MalformedRow>) -> Result<(), E>,
) -> Result<(), E> {
    let (user_column, item_column) = sequence_columns(source);
    let delimiter = source.delimiter.as_deref().and_then(|d| d.chars().next());
    for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = index + 1;
        let Ok(text) = decode(raw, source.encoding) else {
            visit(Err(MalformedRow { line, message: "not valid UTF-8".into() }))?;
            continue;
        };
        let mut fields: Box<dyn Iterator<Item = &str>> = match delimiter {
            Some(d) => Box::new(text.trim_end_matches('\r').split(d).map(str::trim)),
            None => Box::new(text.split_whitespace()),
        };
        let Some(user) = fields.next().filter(|u| !u.is_empty()) else {
            if text.trim().is_empty() {
                continue;
            }
            visit(Err(MalformedRow { line, message: "the line starts with no user id".into() }))?;
            continue;
        };
        let mut items = 0;
        for (position, item) in fields.enumerate() {
            if item.is_empty() {
                visit(Err(MalformedRow {
                    line,
                    message: format!("item {} of user {user:?} is empty", position + 1),
                }))?;
                continue;
            }
            items += 1;
            let cells = HashMap::from([
                (user_column.clone(), Cell::Text(user.to_owned())),
                (item_column.clone(), Cell::Text(item.to_owned())),
            ]);
            visit(Ok(SourceRow { line, cells }))?;
        }
        if items == 0 {
            visit(Err(MalformedRow {
                line,
                message: format!("user {user:?} has no items after the id"),
            }))?;
        }
    }
    Ok(())
}

fn decode(bytes: &[u8], encoding: Encoding) -> Result<String, std::str::Utf8Error> {
    match encoding {
        Encoding::Utf8 => std::str::from_utf8(bytes).map(str::to_owned),
        // ISO-8859-1 maps each byte to the code point of the same value.
        Encoding::Latin1 => Ok(bytes.iter().map(|&b| b as char).collect()),
    }
}

fn read_delimited<E: From<SourceError>>(
    bytes: &[u8],
    source: &SourceConfig,
    visit: &mut dyn FnMut(Result<SourceRow, MalformedRow>) -> Result<(), E>,
    fail: &dyn Fn(Option<usize>, String) -> SourceError,
) -> Result<(), E> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(source.delimiter_byte())
        .has_headers(source.header)
        .flexible(true)
        .quoting(source.quoting())
        .from_reader(bytes);
    let columns: Vec<String> = match &source.columns {
        Some(columns) => columns.clone(),
        None => reader
            .byte_headers()
            .map_err(|e| E::from(fail(Some(1), format!("cannot read the header line: {e}"))))?
            .iter()
            .map(|h| decode(h, source.encoding).unwrap_or_default().trim().to_owned())
            .collect(),
    };
    let mut record = csv::ByteRecord::new();
    loop {
        let line = reader.position().line() as usize;
        match reader.read_byte_record(&mut record) {
            Ok(false) => return Ok(()),
            Ok(true) => {}
            Err(e) => {
                visit(Err(MalformedRow { line, message: e.to_string() }))?;
                continue;
            }
        }
        let line = record.position().map_or(line, |p| p.line() as usize);
        if record.len() == 1 && record.get(0).is_some_and(|f| f.is_empty()) {
            continue; // blank line (u.genre ends with one)
        }
        if record.len() != columns.len() {
            visit(Err(MalformedRow {
                line,
                message: format!(
                    "expected {} fields ({}), found {}",
                    columns.len(),
                    columns.join(", "),
                    record.len()
                ),
            }))?;
            continue;
        }
        let mut cells = HashMap::with_capacity(columns.len());
        let mut bad_encoding = None;
        for (column, field) in columns.iter().zip(record.iter()) {
            match decode(field, source.encoding) {
                Ok(text) if text.trim().is_empty() => cells.insert(column.clone(), Cell::Missing),
                Ok(text) => cells.insert(column.clone(), Cell::Text(text)),
                Err(e) => {
                    bad_encoding = Some(format!(
                        "column `{column}`: not valid UTF-8 ({e}); set `encoding = \"latin1\"` if the file is ISO-8859-1"
                    ));
                    break;
                }
            };
        }
        match bad_encoding {
            Some(message) => visit(Err(MalformedRow { line, message }))?,
            None => visit(Ok(SourceRow { line, cells }))?,
        }
    }
}

fn json_cell(value: &serde_json::Value) -> Cell {
    use serde_json::Value;
    match value {
        Value::Null => Cell::Missing,
        Value::String(s) if s.trim().is_empty() => Cell::Missing,
        Value::String(s) => Cell::Text(s.clone()),
        Value::Array(items) => Cell::List(
            items
                .iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect(),
        ),
        other => Cell::Text(other.to_string()),
    }
}

fn read_jsonl<E>(
    bytes: &[u8],
    encoding: Encoding,
    visit: &mut dyn FnMut(Result<SourceRow, MalformedRow>) -> Result<(), E>,
) -> Result<(), E> {
    for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = index + 1;
        let Ok(text) = decode(raw, encoding) else {
            visit(Err(MalformedRow { line, message: "not valid UTF-8".into() }))?;
            continue;
        };
        if text.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&text) {
            Ok(object) => {
                let cells = object.iter().map(|(k, v)| (k.clone(), json_cell(v))).collect();
                visit(Ok(SourceRow { line, cells }))?;
            }
            Err(e) => {
                visit(Err(MalformedRow { line, message: format!("not a JSON object: {e}") }))?
            }
        }
    }
    Ok(())
}

fn read_parquet<E: From<SourceError>>(
    path: &Path,
    visit: &mut dyn FnMut(Result<SourceRow, MalformedRow>) -> Result<(), E>,
    fail: &dyn Fn(Option<usize>, String) -> SourceError,
) -> Result<(), E> {
    let file = File::open(path).map_err(|e| E::from(fail(None, format!("cannot open: {e}"))))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|e| E::from(fail(None, format!("not a readable Parquet file: {e}"))))?;
    let mut row_number = 0usize;
    for batch in reader {
        let batch = batch
            .map_err(|e| E::from(fail(Some(row_number + 1), format!("cannot decode: {e}"))))?;
        let schema = batch.schema();
        let mut columns: Vec<(String, ColumnCells)> = Vec::new();
        for (field, array) in schema.fields().iter().zip(batch.columns()) {
            let cells = match array.data_type() {
                DataType::List(item) | DataType::LargeList(item)
                    if can_cast_types(item.data_type(), &DataType::Utf8) =>
                {
                    ColumnCells::List(array.clone())
                }
                DataType::List(item) | DataType::LargeList(item) => {
                    return Err(E::from(fail(
                        None,
                        format!(
                            "column `{}`: list items of type {} cannot be read as text",
                            field.name(),
                            item.data_type()
                        ),
                    )));
                }
                _ => {
                    let text = cast(array, &DataType::Utf8).map_err(|e| {
                        E::from(fail(
                            None,
                            format!("column `{}`: cannot read as text: {e}", field.name()),
                        ))
                    })?;
                    ColumnCells::Text(text)
                }
            };
            columns.push((field.name().clone(), cells));
        }
        for row in 0..batch.num_rows() {
            row_number += 1;
            let cells =
                columns.iter().map(|(name, cells)| (name.clone(), cells.cell(row))).collect();
            visit(Ok(SourceRow { line: row_number, cells }))?;
        }
    }
    Ok(())
}

enum ColumnCells {
    Text(datafusion::arrow::array::ArrayRef),
    List(datafusion::arrow::array::ArrayRef),
}

impl ColumnCells {
    fn cell(&self, row: usize) -> Cell {
        match self {
            ColumnCells::Text(array) if array.is_null(row) => Cell::Missing,
            ColumnCells::Text(array) => Cell::Text(array.as_string::<i32>().value(row).to_owned()),
            ColumnCells::List(array) if array.is_null(row) => Cell::Missing,
            ColumnCells::List(array) => {
                let values = match array.data_type() {
                    DataType::LargeList(_) => array.as_list::<i64>().value(row),
                    _ => array.as_list::<i32>().value(row),
                };
                // The item type was checked to cast when the column was read.
                let Ok(text) = cast(&values, &DataType::Utf8) else { return Cell::Missing };
                let text = text.as_string::<i32>();
                Cell::List(
                    (0..text.len())
                        .filter(|&i| !text.is_null(i))
                        .map(|i| text.value(i).to_owned())
                        .collect(),
                )
            }
        }
    }
}
