//! Reading typed columns out of query results, whatever physical string or
//! integer type the engine chose (Utf8 or Utf8View, Int32 or Int64, ...).

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};

fn column<'a>(batch: &'a RecordBatch, name: &str) -> &'a dyn Array {
    batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("query result has no column `{name}`"))
        .as_ref()
}

/// A text column; nulls read as empty strings.
pub fn strings(batch: &RecordBatch, name: &str) -> Vec<String> {
    let array = cast(column(batch, name), &DataType::Utf8).expect("any column casts to text");
    let array = array.as_string::<i32>();
    (0..array.len())
        .map(|i| if array.is_null(i) { String::new() } else { array.value(i).to_owned() })
        .collect()
}

/// A text column with nulls kept.
pub fn optional_strings(batch: &RecordBatch, name: &str) -> Vec<Option<String>> {
    let array = cast(column(batch, name), &DataType::Utf8).expect("any column casts to text");
    let array = array.as_string::<i32>();
    (0..array.len()).map(|i| (!array.is_null(i)).then(|| array.value(i).to_owned())).collect()
}

/// An integer column; nulls read as 0.
pub fn ints(batch: &RecordBatch, name: &str) -> Vec<i64> {
    let array = cast(column(batch, name), &DataType::Int64).expect("integer column");
    let array = array.as_primitive::<Int64Type>();
    (0..array.len()).map(|i| if array.is_null(i) { 0 } else { array.value(i) }).collect()
}

/// A float column; nulls read as NaN.
pub fn floats(batch: &RecordBatch, name: &str) -> Vec<f64> {
    let array = cast(column(batch, name), &DataType::Float64).expect("numeric column");
    let array = array.as_primitive::<Float64Type>();
    (0..array.len()).map(|i| if array.is_null(i) { f64::NAN } else { array.value(i) }).collect()
}
