//! `[[experiments]]` (A/B tests of the serving pipeline) and
//! `[experiment_settings]` (their holdout and analysis). A variant is the
//! default pipeline (`[recommend]`) with some of its keys overridden.

use serde::{Deserialize, Serialize};

use crate::serve_config::RecommendConfig;

/// One experiment: who is in it and what each variant serves. The API's
/// `POST /v1/experiments` takes the same fields as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Unique; names the experiment in the API, the CLI and the telemetry.
    pub name: String,
    /// Experiments on one layer share no users; experiments on different
    /// layers are independent of each other and run at once.
    #[serde(default = "default_layer")]
    pub layer: String,
    /// Salts the variant choice; the name when absent. A new salt
    /// reshuffles users, so a rerun of an experiment does not inherit the
    /// last run's carry-over effects.
    #[serde(default)]
    pub salt: Option<String>,
    /// The share of the layer's users in the experiment. Raising it adds
    /// users and moves nobody already in.
    #[serde(default = "full_allocation")]
    pub allocation: f64,
    /// Where the experiment's range of the layer starts: experiments on one
    /// layer take disjoint ranges `[traffic_start, traffic_start + allocation)`.
    #[serde(default)]
    pub traffic_start: f64,
    /// The control first, then the treatments; weights sum to 1.
    pub variants: Vec<VariantConfig>,
    /// Team-draft interleaving instead of an A/B split: every user in the
    /// experiment gets one list drafted from both variants' rankings (it
    /// needs exactly two), and each click credits the variant that placed
    /// the item; the weights are not used.
    #[serde(default)]
    pub interleave: bool,
    /// A planned sample size, in exposed users: the verdict then rests on
    /// a group-sequential test (O'Brien-Fleming-type spending) whose looks
    /// the server takes itself, when each `1/planned_looks` of these users
    /// has been exposed, however often the results are read. Without it
    /// the verdict rests on the always-valid test.
    #[serde(default)]
    pub planned_users: Option<u64>,
    /// Interim looks of the group-sequential test, the last at
    /// `planned_users`.
    #[serde(default = "default_planned_looks")]
    pub planned_looks: usize,
}

/// One variant of an experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VariantConfig {
    /// Unique within the experiment; the first variant is the control.
    pub name: String,
    /// Its share of the experiment's users.
    pub weight: f64,
    /// Keys of `[recommend]` this variant overrides (channels, quotas,
    /// rerankers and their knobs, `use_ranker`); tables merge key by key.
    #[serde(default)]
    #[schemars(with = "serde_json::Map<String, serde_json::Value>")]
    pub recommend: toml::Table,
    /// A directory of `cascade train` checkpoints this variant serves
    /// instead of the server's models (the server's ranker kind and
    /// BPR-MF), loaded when the experiment starts; absent, the variant
    /// serves the server's models.
    #[serde(default)]
    pub models_dir: Option<String>,
}

fn default_layer() -> String {
    "default".into()
}

fn full_allocation() -> f64 {
    1.0
}

fn default_planned_looks() -> usize {
    20
}

impl ExperimentConfig {
    /// The salt that picks variants.
    pub fn variant_salt(&self) -> &str {
        self.salt.as_deref().unwrap_or(&self.name)
    }

    /// Why the experiment cannot interleave, if it asks to.
    pub fn interleaving_problem(&self) -> Option<String> {
        (self.interleave && self.variants.len() != 2).then(|| {
            format!("interleaving drafts from exactly two variants, got {}", self.variants.len())
        })
    }

    /// Why the experiment's plan cannot be followed, if it has one: the
    /// key and the reason.
    pub fn plan_problem(&self) -> Option<(&'static str, String)> {
        match self.planned_users {
            Some(0) => Some(("planned_users", "a plan needs at least one user".into())),
            Some(_) if self.planned_looks == 0 || self.planned_looks > 100 => Some((
                "planned_looks",
                format!("between 1 and 100 looks, got {}", self.planned_looks),
            )),
            Some(_) if self.interleave => Some((
                "planned_users",
                "an interleaving experiment's preference test is not group-sequential".into(),
            )),
            _ => None,
        }
    }

    /// Each variant's pipeline section: `base` with the variant's keys
    /// overridden. The error names the key, e.g.
    /// `variants[1].recommend.rerankers: …`.
    pub fn pipelines(
        &self,
        base: &RecommendConfig,
    ) -> Result<Vec<RecommendConfig>, (String, String)> {
        self.variants
            .iter()
            .enumerate()
            .map(|(index, variant)| {
                let key = format!("variants[{index}].recommend");
                let pipeline = base
                    .overridden(&variant.recommend)
                    .map_err(|message| (key.clone(), message))?;
                crate::config::validate_pipeline(&pipeline).map_err(|(at, message)| {
                    (format!("{key}.{}", at.trim_start_matches("recommend.")), message)
                })?;
                Ok(pipeline)
            })
            .collect()
    }
}

/// `[experiment_settings]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExperimentSettings {
    /// Users in no experiment at all, served the default pipeline: the
    /// long-run baseline every experiment's sum of wins can be checked against.
    pub holdout_fraction: f64,
    /// The holdout's salt.
    pub holdout_salt: String,
    /// Two-sided level of every test and interval.
    pub alpha: f64,
    /// The always-valid test's tuning: the total users where its interval
    /// is tightest (gbstats' default 5,000).
    pub sequential_tuning: f64,
    /// A sample-ratio-mismatch p-value below this withholds the verdict.
    pub srm_threshold: f64,
    /// The sequential SRM test's Dirichlet prior concentration.
    pub srm_concentration: f64,
    /// Event types counted per exposed user as metrics of their own
    /// (`events_per_user:<type>`), besides the positive types (`clicks_per_user`).
    pub event_metrics: Vec<String>,
    /// How often the experiments' totals are made durable (their state is
    /// rebuilt from the log after a crash either way).
    pub checkpoint_interval_ms: u64,
    /// CUPED's covariate: a user's positive events in this many seconds
    /// before their first exposure (the pre-period).
    pub covariate_window_s: u64,
}

impl Default for ExperimentSettings {
    fn default() -> Self {
        ExperimentSettings {
            holdout_fraction: 0.0,
            holdout_salt: "holdout".into(),
            alpha: 0.05,
            sequential_tuning: 5_000.0,
            srm_threshold: 0.001,
            srm_concentration: 1_000.0,
            event_metrics: Vec::new(),
            checkpoint_interval_ms: 1_000,
            covariate_window_s: 14 * 24 * 3600,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn with_experiment(variant_override: &str) -> String {
        format!(
            "{}\n[[experiments]]\nname = \"mmr\"\n[[experiments.variants]]\nname = \"control\"\nweight = 0.5\n\
             [[experiments.variants]]\nname = \"diverse\"\nweight = 0.5\nrecommend = {variant_override}\n",
            Config::default_toml()
        )
    }

    #[test]
    fn a_variant_overrides_keys_and_tables_merge() {
        let text =
            with_experiment("{ mmr_lambda = 0.5, use_ranker = false, quotas = { ann = 50 } }");
        let config = Config::from_toml_str(&text, "test").unwrap();
        let pipelines = config.experiments[0].pipelines(&config.recommend).unwrap();
        assert_eq!(pipelines[0], config.recommend, "the control is [recommend] as is");
        assert_eq!(pipelines[1].mmr_lambda, 0.5);
        assert!(!pipelines[1].use_ranker);
        assert_eq!(pipelines[1].quotas["ann"], 50);
        assert_eq!(pipelines[1].quotas["item_cf"], config.recommend.quotas["item_cf"]);
        assert_eq!(config.experiments[0].layer, "default");
        assert_eq!(config.experiments[0].variant_salt(), "mmr");
    }

    #[test]
    fn a_bad_override_names_the_experiment_variant_and_key() {
        let error = Config::from_toml_str(&with_experiment("{ mmr_lamda = 0.5 }"), "test")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("experiments[0].variants[1].recommend") && error.contains("mmr_lamda"),
            "{error}"
        );
        let error =
            Config::from_toml_str(&with_experiment("{ rerankers = [\"Bad Name\"] }"), "test")
                .unwrap_err()
                .to_string();
        assert!(error.contains("experiments[0].variants[1].recommend.rerankers[0]"), "{error}");
    }
}
