//! Sparse embedding tables as TorchRec, HugeCTR and Monolith build them, on
//! top of candle for everything dense.
//!
//! A batch's rows are gathered into a small leaf tensor (B × D); candle
//! computes that tensor's gradient; the table then applies a row-wise sparse
//! optimizer to the touched rows only. Per-step time and memory therefore
//! depend on the batch, never on the table's size. Ids map to rows through a
//! collisionless [`IdMap`] that grows when new ids arrive and can evict ids
//! unseen for a while.
//!
//! Memory per row, D = embedding dimension: 4·D bytes of weights, plus the
//! optimizer's state (Adagrad 4·D, Adam 8·D + 4, FTRL 8·D), plus about 40
//! bytes of id-map entry and bookkeeping.
#![warn(missing_docs)]

pub mod checkpoint;
pub mod dense;
pub mod embedding;
pub mod id_map;
pub mod matrix;
pub mod optimizers;

pub use dense::{DenseParams, DenseSnapshot, Mlp};
pub use embedding::{EmbeddingTable, Lookup, Pooling, TableConfig, TableParts};
pub use id_map::IdMap;
pub use optimizers::{OptimizerConfig, RowOptimizer};
