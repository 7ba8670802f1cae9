//! `exposure_cap`: an item shown to a user `exposure_cap` times within the
//! window rests until older showings leave it.

use std::sync::Arc;

use crate::exposure::ExposureMemory;
use crate::request::ServeError;
use crate::rerank::{RerankContext, Reranker, Slate};

/// Keeps capped items out before recall (so the channels fill their quotas
/// with others) and remembers every list served. Its place among the steps
/// does not matter: it changes no slate.
#[derive(Debug, Clone)]
pub struct ExposureCap {
    memory: Arc<ExposureMemory>,
}

impl ExposureCap {
    /// Over `memory`, which the recommender also reports from.
    pub fn new(memory: Arc<ExposureMemory>) -> ExposureCap {
        ExposureCap { memory }
    }
}

impl Reranker for ExposureCap {
    fn name(&self) -> &str {
        "exposure_cap"
    }

    fn excluded(&self, user_id: &str) -> Vec<String> {
        self.memory.capped_items(user_id)
    }

    fn rerank(&self, _slate: &mut Slate, _context: &RerankContext<'_>) -> Result<(), ServeError> {
        Ok(())
    }

    fn served(&self, user_id: &str, items: &[&str]) {
        self.memory.record(user_id, items.iter().copied());
    }
}
