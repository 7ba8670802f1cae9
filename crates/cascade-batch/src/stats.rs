//! Statistics for BI and monitoring, written as Parquet and summarised for the console.
