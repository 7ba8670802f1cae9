//! Checkpoints: every tensor in one safetensors file, and a JSON manifest
//! saying what they are (model, schema fingerprint, feature spec, tables,
//! metrics, data range, version). Loading checks the manifest against what the
//! caller expects before touching a tensor, so a checkpoint from another
//! schema or model is refused with a reason instead of mis-loaded.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use crate::embedding::{EmbeddingTable, TableConfig};

/// Bumped when the on-disk layout changes.
pub const FORMAT_VERSION: u32 = 1;
const TENSORS: &str = "model.safetensors";
const MANIFEST: &str = "manifest.json";

/// What a checkpoint holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Layout version ([`FORMAT_VERSION`]).
    pub format_version: u32,
    /// Model name, e.g. `bpr-mf`.
    pub model: String,
    /// Fingerprint of the schema and feature spec the model was trained on.
    pub schema_fingerprint: String,
    /// The feature spec, for people and tools.
    pub features: serde_json::Value,
    /// The embedding tables.
    pub tables: Vec<TableConfig>,
    /// Names of the dense tensors.
    pub dense: Vec<String>,
    /// Validation (and, once read, test) metrics.
    pub metrics: BTreeMap<String, f64>,
    /// First and last event time of the training data (ms).
    pub data_range: Option<(i64, i64)>,
    /// Cascade version that wrote it.
    pub version: String,
}

/// A checkpoint could not be written or read.
#[derive(Debug, thiserror::Error)]
#[error("checkpoint {path}: {message}")]
pub struct CheckpointError {
    /// The checkpoint directory.
    pub path: PathBuf,
    /// What went wrong.
    pub message: String,
}

fn fail(path: &Path, message: impl std::fmt::Display) -> CheckpointError {
    CheckpointError { path: path.to_owned(), message: message.to_string() }
}

fn bytes_f32(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn bytes_u32(values: &[u32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn bytes_u64(values: &[u64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Writes `tables` and `dense` tensors with `manifest` into `dir`.
pub fn save(
    dir: &Path,
    manifest: &Manifest,
    tables: &[&EmbeddingTable],
    dense: &[(String, Tensor)],
) -> Result<(), CheckpointError> {
    std::fs::create_dir_all(dir).map_err(|e| fail(dir, e))?;
    let mut buffers: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for table in tables {
        let name = &table.config().name;
        let dim = table.config().dim;
        let parts = table.parts();
        let (entries, weights, state, steps) =
            (parts.entries, parts.weights, parts.state, parts.row_steps);
        let rows = steps.len();
        let ids: Vec<u64> = entries.iter().map(|(id, _)| *id).collect();
        let positions: Vec<u32> = entries.iter().map(|(_, row)| *row).collect();
        buffers.push((format!("{name}.weights"), Dtype::F32, vec![rows, dim], bytes_f32(weights)));
        buffers.push((
            format!("{name}.state"),
            Dtype::F32,
            vec![rows, state.len() / rows.max(1)],
            bytes_f32(state),
        ));
        buffers.push((format!("{name}.row_steps"), Dtype::U32, vec![rows], bytes_u32(steps)));
        buffers.push((format!("{name}.ids"), Dtype::U64, vec![ids.len()], bytes_u64(&ids)));
        buffers.push((
            format!("{name}.rows"),
            Dtype::U32,
            vec![positions.len()],
            bytes_u32(&positions),
        ));
    }
    for (name, tensor) in dense {
        let values: Vec<f32> =
            tensor.flatten_all().and_then(|t| t.to_vec1()).map_err(|e| fail(dir, e))?;
        buffers.push((
            format!("dense.{name}"),
            Dtype::F32,
            tensor.dims().to_vec(),
            bytes_f32(&values),
        ));
    }
    let views: Vec<(String, TensorView<'_>)> = buffers
        .iter()
        .map(|(name, dtype, shape, data)| {
            TensorView::new(*dtype, shape.clone(), data)
                .map(|view| (name.clone(), view))
                .map_err(|e| fail(dir, e))
        })
        .collect::<Result<_, _>>()?;
    safetensors::tensor::serialize_to_file(
        views,
        None::<HashMap<String, String>>,
        &dir.join(TENSORS),
    )
    .map_err(|e| fail(dir, e))?;
    let text = serde_json::to_string_pretty(manifest).map_err(|e| fail(dir, e))?;
    std::fs::write(dir.join(MANIFEST), text).map_err(|e| fail(dir, e))
}

/// Reads only the manifest.
pub fn read_manifest(dir: &Path) -> Result<Manifest, CheckpointError> {
    let text = std::fs::read_to_string(dir.join(MANIFEST))
        .map_err(|e| fail(dir, format!("{MANIFEST}: {e}")))?;
    serde_json::from_str(&text).map_err(|e| fail(dir, format!("{MANIFEST}: {e}")))
}

/// A loaded checkpoint.
#[derive(Debug)]
pub struct Checkpoint {
    /// Its manifest.
    pub manifest: Manifest,
    /// Its embedding tables, in manifest order.
    pub tables: Vec<EmbeddingTable>,
    /// Its dense tensors by name, in manifest order.
    pub dense: Vec<(String, Tensor)>,
}

impl Checkpoint {
    /// Takes the embedding table named `name` out of the checkpoint, so a
    /// model is restored by its tables' names, whatever their order.
    pub fn take_table(&mut self, name: &str) -> Result<EmbeddingTable, CheckpointError> {
        let position =
            self.tables.iter().position(|t| t.config().name == name).ok_or_else(|| {
                let names: Vec<&str> =
                    self.tables.iter().map(|t| t.config().name.as_str()).collect();
                CheckpointError {
                    path: PathBuf::from(&self.manifest.model),
                    message: format!("no table named `{name}` (it holds {names:?})"),
                }
            })?;
        Ok(self.tables.remove(position))
    }
}

/// Loads a checkpoint after checking it is the `model` trained on the schema
/// with `schema_fingerprint`.
pub fn load(
    dir: &Path,
    model: &str,
    schema_fingerprint: &str,
) -> Result<Checkpoint, CheckpointError> {
    let manifest = read_manifest(dir)?;
    if manifest.format_version != FORMAT_VERSION {
        return Err(fail(
            dir,
            format!(
                "format version {} (this build reads {FORMAT_VERSION})",
                manifest.format_version
            ),
        ));
    }
    if manifest.model != model {
        return Err(fail(dir, format!("holds model `{}`, expected `{model}`", manifest.model)));
    }
    if manifest.schema_fingerprint != schema_fingerprint {
        return Err(fail(
            dir,
            format!(
                "was trained on another schema (fingerprint {}, the running config has {schema_fingerprint}): retrain or use the matching config",
                manifest.schema_fingerprint
            ),
        ));
    }
    let bytes =
        std::fs::read(dir.join(TENSORS)).map_err(|e| fail(dir, format!("{TENSORS}: {e}")))?;
    let tensors =
        SafeTensors::deserialize(&bytes).map_err(|e| fail(dir, format!("{TENSORS}: {e}")))?;
    let get = |name: &str, dtype: Dtype| -> Result<(Vec<usize>, &[u8]), CheckpointError> {
        let view = tensors.tensor(name).map_err(|e| fail(dir, format!("tensor `{name}`: {e}")))?;
        if view.dtype() != dtype {
            return Err(fail(
                dir,
                format!("tensor `{name}` is {:?}, expected {dtype:?}", view.dtype()),
            ));
        }
        Ok((view.shape().to_vec(), view.data()))
    };
    let f32s = |data: &[u8]| {
        data.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect::<Vec<f32>>()
    };
    let u32s = |data: &[u8]| {
        data.chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect::<Vec<u32>>()
    };
    let mut tables = Vec::new();
    for config in &manifest.tables {
        let name = &config.name;
        let (shape, weights) = get(&format!("{name}.weights"), Dtype::F32)?;
        if shape.len() != 2 || shape[1] != config.dim {
            return Err(fail(
                dir,
                format!(
                    "table `{name}` has shape {shape:?}, the manifest says dimension {}",
                    config.dim
                ),
            ));
        }
        let (_, state) = get(&format!("{name}.state"), Dtype::F32)?;
        let (_, steps) = get(&format!("{name}.row_steps"), Dtype::U32)?;
        let (_, ids) = get(&format!("{name}.ids"), Dtype::U64)?;
        let (_, rows) = get(&format!("{name}.rows"), Dtype::U32)?;
        let ids: Vec<u64> = ids
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect();
        let entries: Vec<(u64, u32)> = ids.into_iter().zip(u32s(rows)).collect();
        tables.push(EmbeddingTable::from_parts(
            config.clone(),
            &entries,
            f32s(weights),
            f32s(state),
            u32s(steps),
        ));
    }
    let mut dense = Vec::new();
    for name in &manifest.dense {
        let (shape, data) = get(&format!("dense.{name}"), Dtype::F32)?;
        let tensor = Tensor::from_vec(f32s(data), shape, &Device::Cpu).map_err(|e| fail(dir, e))?;
        dense.push((name.clone(), tensor));
    }
    Ok(Checkpoint { manifest, tables, dense })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optimizers::OptimizerConfig;

    fn manifest(tables: Vec<TableConfig>) -> Manifest {
        Manifest {
            format_version: FORMAT_VERSION,
            model: "toy".into(),
            schema_fingerprint: "abc".into(),
            features: serde_json::json!({"user": "id"}),
            tables,
            dense: vec!["bias".into()],
            metrics: BTreeMap::from([("ndcg@10".into(), 0.07)]),
            data_range: Some((0, 10)),
            version: "0.1.0".into(),
        }
    }

    #[test]
    fn round_trips_and_refuses_another_schema_or_model() {
        let config = TableConfig {
            name: "users".into(),
            dim: 3,
            optimizer: OptimizerConfig::Adam { lr: 0.01, beta1: 0.9, beta2: 0.999 },
            init_scale: 0.1,
            seed: 1,
        };
        let mut table = EmbeddingTable::new(config.clone());
        let lookup = table.lookup(&[42, 7]).unwrap();
        let grads = lookup.var.as_tensor().sqr().unwrap().sum_all().unwrap().backward().unwrap();
        table.apply_gradients(&lookup, &grads).unwrap();
        let bias = Tensor::new(&[0.5f32, -0.5], &Device::Cpu).unwrap();
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), &manifest(vec![config]), &[&table], &[("bias".into(), bias)]).unwrap();

        let Checkpoint { manifest: loaded_manifest, tables, dense } =
            load(dir.path(), "toy", "abc").unwrap();
        assert_eq!(loaded_manifest.metrics["ndcg@10"], 0.07);
        assert_eq!(tables[0].row(42), table.row(42));
        assert_eq!(tables[0].row(7), table.row(7));
        assert_eq!(tables[0].parts().state, table.parts().state, "optimizer state survives");
        assert_eq!(dense[0].1.to_vec1::<f32>().unwrap(), vec![0.5, -0.5]);

        let err = load(dir.path(), "toy", "other").unwrap_err().to_string();
        assert!(err.contains("another schema"), "{err}");
        let err = load(dir.path(), "deepfm", "abc").unwrap_err().to_string();
        assert!(err.contains("`toy`") && err.contains("`deepfm`"), "{err}");
        let err = load(Path::new("/nonexistent"), "toy", "abc").unwrap_err().to_string();
        assert!(err.contains("manifest.json"), "{err}");
    }
}
