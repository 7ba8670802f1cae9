//! Models a variant serves instead of the server's: the `cascade train`
//! checkpoints in its `models_dir`. Reading checkpoints needs the
//! workspace (its store and config), which this crate does not know, so the
//! composition root hands in the loader; this keeps what it loaded, one
//! set of models per directory however many variants name it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::models::Models;

/// Loads the models of one checkpoint directory; the error says why not.
pub type VariantModelLoader = dyn Fn(&Path) -> Result<Models, String> + Send + Sync;

/// The variants' models, by directory as the experiment names it.
pub struct VariantModels {
    loader: Box<VariantModelLoader>,
    loaded: RwLock<BTreeMap<String, Arc<Models>>>,
}

impl std::fmt::Debug for VariantModels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VariantModels").field("loaded", &self.loaded.read().keys()).finish()
    }
}

impl VariantModels {
    /// Nothing loaded yet; `loader` reads a directory when one is named.
    pub fn new(loader: Box<VariantModelLoader>) -> VariantModels {
        VariantModels { loader, loaded: RwLock::new(BTreeMap::new()) }
    }

    /// Loads `dir` unless it is loaded already. Runs without holding the
    /// lock, so requests keep being answered while a directory loads.
    pub fn ensure(&self, dir: &str) -> Result<(), String> {
        if self.loaded.read().contains_key(dir) {
            return Ok(());
        }
        let models = (self.loader)(Path::new(dir))?;
        self.loaded.write().entry(dir.to_owned()).or_insert_with(|| Arc::new(models));
        Ok(())
    }

    /// The models loaded from `dir`, if they are.
    pub fn get(&self, dir: &str) -> Option<Arc<Models>> {
        self.loaded.read().get(dir).cloned()
    }

    /// Every loaded set of models (for catalog writes, which reach them all).
    pub fn all(&self) -> Vec<Arc<Models>> {
        self.loaded.read().values().cloned().collect()
    }

    /// Reads every loaded directory again: each directory's new version,
    /// or why it failed (its old models then keep serving).
    pub fn reload(&self) -> BTreeMap<String, Result<String, String>> {
        let dirs: Vec<String> = self.loaded.read().keys().cloned().collect();
        dirs.into_iter()
            .map(|dir| {
                let outcome = (self.loader)(Path::new(&dir)).map(|models| {
                    let version = models.version.clone();
                    self.loaded.write().insert(dir.clone(), Arc::new(models));
                    version
                });
                (dir, outcome)
            })
            .collect()
    }
}
