//! Reading typed columns out of query results, whatever physical string or
//! integer type the engine chose (Utf8 or Utf8View, Int32 or Int64, ...).

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};

use crate::error::BatchError;

/// Column `name` cast to `to`: an error names the column, since either
/// failure is a query that does not return what its reader expects.
fn column_as(batch: &RecordBatch, name: &str, to: &DataType) -> Result<ArrayRef, BatchError> {
    let column = batch
        .column_by_name(name)
        .ok_or_else(|| BatchError::Data(format!("the query result has no column `{name}`")))?;
    cast(column.as_ref(), to)
        .map_err(|e| BatchError::Data(format!("column `{name}` does not read as {to}: {e}")))
}

/// A text column; nulls read as empty strings.
pub fn strings(batch: &RecordBatch, name: &str) -> Result<Vec<String>, BatchError> {
    let array = column_as(batch, name, &DataType::Utf8)?;
    let array = array.as_string::<i32>();
    Ok((0..array.len())
        .map(|i| if array.is_null(i) { String::new() } else { array.value(i).to_owned() })
        .collect())
}

/// A text column with nulls kept.
pub fn optional_strings(
    batch: &RecordBatch,
    name: &str,
) -> Result<Vec<Option<String>>, BatchError> {
    let array = column_as(batch, name, &DataType::Utf8)?;
    let array = array.as_string::<i32>();
    Ok((0..array.len()).map(|i| (!array.is_null(i)).then(|| array.value(i).to_owned())).collect())
}

/// An integer column; nulls read as 0.
pub fn ints(batch: &RecordBatch, name: &str) -> Result<Vec<i64>, BatchError> {
    let array = column_as(batch, name, &DataType::Int64)?;
    let array = array.as_primitive::<Int64Type>();
    Ok((0..array.len()).map(|i| if array.is_null(i) { 0 } else { array.value(i) }).collect())
}

/// A float column; nulls read as NaN.
pub fn floats(batch: &RecordBatch, name: &str) -> Result<Vec<f64>, BatchError> {
    let array = column_as(batch, name, &DataType::Float64)?;
    let array = array.as_primitive::<Float64Type>();
    Ok((0..array.len()).map(|i| if array.is_null(i) { f64::NAN } else { array.value(i) }).collect())
}
