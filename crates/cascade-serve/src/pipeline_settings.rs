//! The serving pipeline's settings: which stages run, in what order, with
//! which knobs. One value per variant; `[recommend]` declares the default.

use std::time::Duration;

use cascade_core::serve_config::{
    BUILT_IN_CHANNELS, BUILT_IN_RERANKERS, EXPLORING_RERANKERS, ExplorationConfig, RecommendConfig,
};

use crate::rerank::Adjustments;

/// The stages of a serving pipeline and their knobs.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineSettings {
    /// Recall channels by name with their quotas, in merge order.
    pub channels: Vec<(String, usize)>,
    /// Re-ranking steps by name, in the order they run.
    pub rerankers: Vec<String>,
    /// How long one reading of the stream's trending items serves requests
    /// (reading scans every item counted in the window).
    pub trending_refresh: Duration,
    /// How many trending items one reading keeps.
    pub trending_pool: usize,
    /// The `freshness` and `popularity` steps' knobs.
    pub adjustments: Adjustments,
    /// MMR's relevance weight (1 = no diversity), for `diversity`.
    pub mmr_lambda: f32,
    /// MMR picks among this many most relevant candidates (at least n).
    pub mmr_pool: usize,
    /// Whether items the user already consumed are removed.
    pub remove_consumed: bool,
    /// Whether the ranking model orders the candidates (else recall order).
    pub use_ranker: bool,
    /// Exposure cap: an item already shown to the user this many times
    /// within `exposure_window` is not shown again until older showings
    /// leave the window. `None` disables the cap.
    pub exposure_cap: Option<usize>,
    /// The exposure cap's window.
    pub exposure_window: Duration,
    /// The longest id or category name a request may carry, in bytes
    /// (`[ingest] max_id_bytes`).
    pub max_id_bytes: usize,
    /// The most ids one request list (`exclude`, `pin`, filters) may hold.
    pub max_list_ids: usize,
    /// The exploring steps' knobs.
    pub exploration: ExplorationConfig,
}

impl PipelineSettings {
    /// The settings `[recommend]` declares; `max_id_bytes` is `[ingest]`'s.
    pub fn from_config(config: &RecommendConfig, max_id_bytes: usize) -> PipelineSettings {
        PipelineSettings {
            channels: config.channel_quotas(),
            rerankers: config.rerankers.clone(),
            trending_refresh: Duration::from_millis(config.trending_refresh_ms),
            trending_pool: config.trending_pool,
            adjustments: Adjustments {
                freshness_boost: config.freshness_boost,
                half_life_seconds: config.freshness_half_life_days * 86_400.0,
                popularity_dampening: config.popularity_dampening,
            },
            mmr_lambda: config.mmr_lambda,
            mmr_pool: config.mmr_pool,
            remove_consumed: config.remove_consumed,
            use_ranker: config.use_ranker,
            exposure_cap: (config.exposure_cap > 0).then_some(config.exposure_cap),
            exposure_window: Duration::from_secs(config.exposure_window_s),
            max_id_bytes,
            max_list_ids: config.max_list_ids,
            exploration: config.exploration.clone(),
        }
    }

    /// Whether every listed stage is built in or `registered_*` says so;
    /// the error names the first that is neither by its dotted key.
    pub fn check_stages(
        &self,
        registered_channel: impl Fn(&str) -> bool,
        registered_reranker: impl Fn(&str) -> bool,
    ) -> Result<(), String> {
        let built_in_channel = |name: &str| BUILT_IN_CHANNELS.iter().any(|(b, _)| *b == name);
        for (k, (name, _)) in self.channels.iter().enumerate() {
            if !built_in_channel(name) && !registered_channel(name) {
                let built_in: Vec<&str> = BUILT_IN_CHANNELS.iter().map(|(b, _)| *b).collect();
                return Err(format!(
                    "recommend.channels[{k}]: no recall channel named {name:?} (built in: {})",
                    built_in.join(", ")
                ));
            }
        }
        let last = self.rerankers.len().saturating_sub(1);
        for (k, name) in self.rerankers.iter().enumerate() {
            let exploring = EXPLORING_RERANKERS.contains(&name.as_str());
            if !BUILT_IN_RERANKERS.contains(&name.as_str())
                && !exploring
                && !registered_reranker(name)
            {
                return Err(format!(
                    "recommend.rerankers[{k}]: no re-ranker named {name:?} (built in: {}, {})",
                    BUILT_IN_RERANKERS.join(", "),
                    EXPLORING_RERANKERS.join(", ")
                ));
            }
            if exploring && k != last {
                return Err(format!(
                    "recommend.rerankers[{k}]: the exploring step {name:?} must be listed last \
                     (the propensities it logs are of the list as served)"
                ));
            }
            if exploring && self.rerankers.iter().any(|step| step == "pins") {
                return Err(format!(
                    "recommend.rerankers[{k}]: the exploring step {name:?} cannot share a \
                     pipeline with pins (a pin would move what it drew, or cut its candidates)"
                ));
            }
        }
        self.check_exploration()
    }

    /// The exploring knobs in range, named by their dotted keys.
    fn check_exploration(&self) -> Result<(), String> {
        let e = &self.exploration;
        if !(0.0..=1.0).contains(&e.epsilon) {
            return Err(format!("recommend.exploration.epsilon: {} is not in [0, 1]", e.epsilon));
        }
        if !(e.temperature > 0.0 && e.temperature.is_finite()) {
            return Err(format!(
                "recommend.exploration.temperature: {} is not a positive number",
                e.temperature
            ));
        }
        if e.monte_carlo_samples < 2 {
            return Err("recommend.exploration.monte_carlo_samples: at least 2".to_owned());
        }
        if self.rerankers.iter().any(|step| step == "learned_policy") {
            crate::rerank::exploration::load_learned_policy(&e.learned_policy)?;
        }
        Ok(())
    }

    /// Whether `[recommend] channels` lists `name`.
    pub fn lists_channel(&self, name: &str) -> bool {
        self.channels.iter().any(|(listed, _)| listed == name)
    }
}

/// What `cascade.toml` documents.
impl Default for PipelineSettings {
    fn default() -> Self {
        let max_id_bytes = cascade_core::IngestConfig::default().max_id_bytes;
        PipelineSettings::from_config(&RecommendConfig::default(), max_id_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_nothing_provides_are_named_by_key() {
        let mut settings = PipelineSettings::default();
        assert_eq!(settings.check_stages(|_| false, |_| false), Ok(()));
        settings.channels.push(("mine".into(), 5));
        settings.rerankers.insert(1, "shuffle".into());
        let error = settings.check_stages(|_| false, |_| true).unwrap_err();
        assert!(
            error.starts_with("recommend.channels[6]: no recall channel named \"mine\""),
            "{error}"
        );
        let error = settings.check_stages(|name| name == "mine", |_| false).unwrap_err();
        assert!(
            error.starts_with("recommend.rerankers[1]: no re-ranker named \"shuffle\""),
            "{error}"
        );
        assert_eq!(settings.check_stages(|name| name == "mine", |name| name == "shuffle"), Ok(()));
    }
}
