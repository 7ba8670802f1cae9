//! What `Config::from_toml_str` checks beyond the types: every error names
//! the dotted key it is about.

use super::{Config, FeatureType, SourceConfig, SourceFormat, TableConfig};
use crate::timestamp::TimestampFormat;

impl Config {
    pub(super) fn validate(&self) -> Result<(), (String, String)> {
        validate_table("users", &self.users)?;
        validate_table("items", &self.items)?;
        let shareable = |name: &str| {
            name == self.users.id
                || name == self.items.id
                || self.users.features.contains_key(name)
                || self.items.features.contains_key(name)
        };
        for (table, config) in [("users", &self.users), ("items", &self.items)] {
            for (name, spec) in &config.features {
                if let Some(other) = &spec.share_ids_with
                    && !shareable(other)
                {
                    return Err((
                        format!("{table}.features.{name}.share_ids_with"),
                        format!("expected a feature name or id column, got {other:?}"),
                    ));
                }
            }
        }
        for (model, settings) in &self.training {
            let counts = [
                ("batch_size", settings.batch_size),
                ("max_epochs", settings.max_epochs),
                ("k", settings.k),
                ("dim", settings.dim),
                ("max_length", settings.max_length),
                ("negatives", settings.negatives),
            ];
            if let Some((key, _)) = counts.iter().find(|(_, value)| *value == Some(0)) {
                return Err((
                    format!("training.{model}.{key}"),
                    "expected a positive number".into(),
                ));
            }
            let mut reals: Vec<(&str, f64)> = [
                ("time_budget_s", settings.time_budget_s),
                ("lambda", settings.lambda),
                ("shrink", settings.shrink),
                ("init_scale", settings.init_scale.map(f64::from)),
            ]
            .into_iter()
            .filter_map(|(key, value)| value.map(|v| (key, v)))
            .collect();
            reals.extend(settings.lambda_grid.iter().flatten().map(|&v| ("lambda_grid", v)));
            if let Some((key, value)) = reals.iter().find(|(_, v)| !(v.is_finite() && *v >= 0.0)) {
                return Err((
                    format!("training.{model}.{key}"),
                    format!("expected a finite number >= 0, got {value}"),
                ));
            }
            if settings.lambda_grid.as_ref().is_some_and(Vec::is_empty) {
                return Err((
                    format!("training.{model}.lambda_grid"),
                    "expected at least one value".into(),
                ));
            }
            if settings.dropout_grid.as_ref().is_some_and(Vec::is_empty) {
                return Err((
                    format!("training.{model}.dropout_grid"),
                    "expected at least one value".into(),
                ));
            }
            let rates = settings.dropout.iter().chain(settings.dropout_grid.iter().flatten());
            if let Some(&rate) = rates.into_iter().find(|rate| !(0.0..1.0).contains(*rate)) {
                return Err((
                    format!(
                        "training.{model}.dropout{}",
                        if settings.dropout == Some(rate) { "" } else { "_grid" }
                    ),
                    format!("expected a rate in [0, 1), got {rate}"),
                ));
            }
            if let Some(rate) = settings.learning_rate
                && !(rate.is_finite() && rate > 0.0)
            {
                return Err((
                    format!("training.{model}.learning_rate"),
                    format!("expected a positive finite number, got {rate}"),
                ));
            }
        }
        let events = &self.events;
        if TimestampFormat::parse_spec(&events.timestamp_format).is_none() {
            return Err(bad_timestamp_format("events.timestamp_format"));
        }
        match (&events.event_type, &events.constant_event_type) {
            (None, None) => {
                return Err((
                    "events.event_type".into(),
                    "expected a column name, or set events.constant_event_type".into(),
                ));
            }
            (Some(_), Some(_)) => {
                return Err((
                    "events.constant_event_type".into(),
                    "expected only one of events.event_type and events.constant_event_type".into(),
                ));
            }
            _ => {}
        }
        if let Some(source) = &events.source {
            validate_source("events.source", source)?;
        }
        if let Some(rating) = &self.labels.rating
            && !rating.threshold.is_finite()
        {
            return Err(("labels.rating.threshold".into(), "expected a finite number".into()));
        }
        if self.labels.positive_event_types.is_empty() && self.labels.rating.is_none() {
            return Err((
                "labels.positive_event_types".into(),
                "expected at least one positive event type (or a labels.rating rule)".into(),
            ));
        }
        if self.ingest.max_id_bytes == 0 || self.ingest.max_event_type_bytes == 0 {
            return Err(("ingest.max_id_bytes".into(), "expected at least 1 byte".into()));
        }
        if self.pipeline.history_length == 0 {
            return Err(("pipeline.history_length".into(), "expected at least 1".into()));
        }
        self.stream.check()?;
        self.online_learning.check()?;
        self.policy_learning.check()?;
        self.report.check()?;
        self.validate_serving()?;
        self.validate_experiments()
    }

    /// `[[experiments]]`: unique names, and every variant's pipeline a
    /// valid `[recommend]` once its keys are overridden. Traffic (weights,
    /// overlapping ranges) is checked where users are assigned.
    fn validate_experiments(&self) -> Result<(), (String, String)> {
        let settings = &self.experiment_settings;
        if !(0.0..1.0).contains(&settings.holdout_fraction) {
            return Err((
                "experiment_settings.holdout_fraction".into(),
                format!("expected a share in [0, 1), got {}", settings.holdout_fraction),
            ));
        }
        if !(settings.alpha > 0.0 && settings.alpha < 0.5) {
            return Err((
                "experiment_settings.alpha".into(),
                format!("expected a level in (0, 0.5), got {}", settings.alpha),
            ));
        }
        for (index, experiment) in self.experiments.iter().enumerate() {
            let key = format!("experiments[{index}]");
            if let Some(first) =
                self.experiments[..index].iter().position(|e| e.name == experiment.name)
            {
                return Err((
                    format!("{key}.name"),
                    format!(
                        "{:?} is declared twice (first at experiments[{first}])",
                        experiment.name
                    ),
                ));
            }
            experiment
                .pipelines(&self.recommend)
                .map_err(|(at, message)| (format!("{key}.{at}"), message))?;
            if let Some(problem) = experiment.interleaving_problem() {
                return Err((format!("{key}.interleave"), problem));
            }
            if let Some((field, problem)) = experiment.plan_problem() {
                return Err((format!("{key}.{field}"), problem));
            }
        }
        Ok(())
    }

    fn validate_serving(&self) -> Result<(), (String, String)> {
        let (serve, recommend) = (&self.serve, &self.recommend);
        let positive = [
            ("serve.ann_ef_search", serve.ann_ef_search),
            ("serve.events_per_commit", serve.events_per_commit),
            ("recommend.mmr_pool", recommend.mmr_pool),
            ("ingest.max_events_per_request", self.ingest.max_events_per_request),
            ("ingest.max_pending_events", self.ingest.max_pending_events),
            ("recommend.max_list_ids", recommend.max_list_ids),
            ("recommend.trending_pool", recommend.trending_pool),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(((*key).into(), "expected at least 1".into()));
        }
        let half_lives = [
            ("serve.popularity_half_life_days", serve.popularity_half_life_days),
            ("recommend.freshness_half_life_days", recommend.freshness_half_life_days),
        ];
        if let Some((key, value)) = half_lives.iter().find(|(_, v)| !(v.is_finite() && *v > 0.0)) {
            return Err((
                (*key).into(),
                format!("expected a positive number of days, got {value}"),
            ));
        }
        if !(0.0..=1.0).contains(&recommend.mmr_lambda) {
            return Err((
                "recommend.mmr_lambda".into(),
                format!("expected a weight from 0 to 1, got {}", recommend.mmr_lambda),
            ));
        }
        validate_pipeline(recommend)
    }
}

/// The stage lists: each name well formed and listed once, and quotas
/// for every listed channel (a quota for an unlisted channel that is not
/// built in is most likely a typo). Whether a name is registered is the server's check.
pub(crate) fn validate_pipeline(
    recommend: &crate::serve_config::RecommendConfig,
) -> Result<(), (String, String)> {
    for (list, names) in [("channels", &recommend.channels), ("rerankers", &recommend.rerankers)] {
        for (k, name) in names.iter().enumerate() {
            let key = format!("recommend.{list}[{k}]");
            let well_formed = !name.is_empty()
                && name.split('/').count() <= 2
                && name.split('/').all(|part| {
                    !part.is_empty()
                        && part
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                });
            if !well_formed {
                return Err((
                    key,
                    format!("expected `kind` or `kind/name` in a-z, 0-9 and _, got {name:?}"),
                ));
            }
            if let Some(first) = names[..k].iter().position(|other| other == name) {
                return Err((key, format!("{name:?} is listed twice (first at [{first}])")));
            }
        }
    }
    for name in &recommend.channels {
        if !recommend.quotas.contains_key(name) {
            return Err((
                format!("recommend.quotas.{name}"),
                "expected a quota for this listed channel".into(),
            ));
        }
    }
    if let Some(name) = recommend.channel_params.keys().find(|n| !recommend.channels.contains(n)) {
        return Err((
            format!("recommend.channel_params.{name}"),
            format!("no channel named {name:?} in recommend.channels {:?}", recommend.channels),
        ));
    }
    // Built-in channels always have a quota; only another unlisted name is an error.
    let built_in =
        |name: &str| crate::serve_config::BUILT_IN_CHANNELS.iter().any(|(b, _)| *b == name);
    let unlisted = |name: &&String| !recommend.channels.contains(name) && !built_in(name);
    if let Some(name) = recommend.quotas.keys().find(unlisted) {
        return Err((
            format!("recommend.quotas.{name}"),
            format!("no channel named {name:?} in recommend.channels {:?}", recommend.channels),
        ));
    }
    Ok(())
}

fn bad_timestamp_format(key: &str) -> (String, String) {
    (key.to_owned(), "expected `unix`, `unix_ms`, `rfc3339` or a strftime pattern with `%`".into())
}

fn validate_table(table: &str, config: &TableConfig) -> Result<(), (String, String)> {
    if let Some(display) = &config.display
        && !config.features.contains_key(display)
    {
        return Err((
            format!("{table}.display"),
            format!("expected a feature name, got {display:?}"),
        ));
    }
    if let Some(source) = &config.source {
        if source.format == SourceFormat::Sequences {
            return Err((
                format!("{table}.source.format"),
                "`sequences` is a format of the event log; a table takes csv, tsv, jsonl or parquet"
                    .into(),
            ));
        }
        validate_source(&format!("{table}.source"), source)?;
    }
    for (name, spec) in &config.features {
        let key = format!("{table}.features.{name}");
        let multi = spec.feature_type == FeatureType::MultiCategorical;
        if spec.separator.is_some() && !multi {
            return Err((
                format!("{key}.separator"),
                "only multi_categorical features take a separator".into(),
            ));
        }
        if spec.from_flags.is_some() && !multi {
            return Err((
                format!("{key}.from_flags"),
                "only multi_categorical features take from_flags".into(),
            ));
        }
        if multi && spec.separator.is_some() == spec.from_flags.is_some() {
            return Err((
                key,
                "multi_categorical expects exactly one of `separator` or `from_flags`".into(),
            ));
        }
        if let Some(separator) = &spec.separator
            && separator.is_empty()
        {
            return Err((format!("{key}.separator"), "expected a non-empty string".into()));
        }
        match (&spec.format, spec.feature_type) {
            (None, FeatureType::Timestamp) => {
                return Err((format!("{key}.format"), "timestamp features need a format".into()));
            }
            (Some(format), FeatureType::Timestamp) => {
                if TimestampFormat::parse_spec(format).is_none() {
                    return Err(bad_timestamp_format(&format!("{key}.format")));
                }
            }
            (Some(_), _) => {
                return Err((
                    format!("{key}.format"),
                    "only timestamp features take a format".into(),
                ));
            }
            (None, _) => {}
        }
    }
    Ok(())
}

fn validate_source(key: &str, source: &SourceConfig) -> Result<(), (String, String)> {
    if let Some(delimiter) = &source.delimiter {
        if !matches!(source.format, SourceFormat::Csv | SourceFormat::Sequences) {
            return Err((
                format!("{key}.delimiter"),
                "only csv and sequences sources take a delimiter".into(),
            ));
        }
        if delimiter.len() != 1 {
            return Err((
                format!("{key}.delimiter"),
                format!("expected one ASCII character, got {delimiter:?}"),
            ));
        }
    }
    let delimited = matches!(source.format, SourceFormat::Csv | SourceFormat::Tsv);
    if delimited && !source.header && source.columns.is_none() {
        return Err((
            format!("{key}.columns"),
            "a file without a header line needs `columns`".into(),
        ));
    }
    if source.format == SourceFormat::Sequences {
        if let Some(columns) = &source.columns
            && columns.len() != 2
        {
            return Err((
                format!("{key}.columns"),
                format!("a sequences source names two columns (user, item), got {}", columns.len()),
            ));
        }
    } else if !delimited && source.columns.is_some() {
        return Err((
            format!("{key}.columns"),
            "only csv, tsv and sequences sources take `columns`".into(),
        ));
    }
    Ok(())
}
