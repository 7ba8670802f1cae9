//! The config in layers: the file (or the built-in defaults), then
//! `CASCADE__SECTION__KEY` environment variables.

use std::path::Path;

use super::{Config, ConfigError, DEFAULT_TOML, read_config_file};

impl Config {
    /// The config a command runs under: the file at `path` (else the
    /// built-in defaults), overridden by this process's `CASCADE__…`
    /// environment variables (see [`Config::layered`]).
    pub fn load_layered(path: Option<&Path>) -> Result<Config, ConfigError> {
        match path {
            Some(path) => {
                let (text, origin) = read_config_file(path)?;
                Config::layered(&text, &origin, std::env::vars())
            }
            None => Config::layered(DEFAULT_TOML, "<embedded cascade.toml>", std::env::vars()),
        }
    }

    /// The config in layers: `text` (a file, or the built-in defaults),
    /// then every `CASCADE__SECTION__KEY=value` among `environment`
    /// (`CASCADE__SERVE__ADMIN_TOKEN=…` sets `[serve] admin_token`). A
    /// value is read as a TOML value where it parses as one (`5`, `true`,
    /// `["a", "b"]`), else as a string. An unknown key is an error that
    /// names it, as in a file.
    pub fn layered(
        text: &str,
        origin: &str,
        environment: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let overrides: Vec<(Vec<String>, String)> = environment
            .into_iter()
            .filter_map(|(name, value)| {
                let path = name.strip_prefix(ENVIRONMENT_PREFIX)?;
                Some((path.split("__").map(str::to_lowercase).collect(), value))
            })
            .collect();
        if overrides.is_empty() {
            return Config::from_toml_str(text, origin);
        }
        let syntax = |message: String| ConfigError::Syntax { origin: origin.to_owned(), message };
        let mut table: toml::Table = toml::from_str(text).map_err(|e| syntax(e.to_string()))?;
        let mut names = Vec::new();
        for (path, value) in overrides {
            let name = format!("{ENVIRONMENT_PREFIX}{}", path.join("__").to_uppercase());
            set_dotted(&mut table, &path, environment_value(&value))
                .map_err(|message| syntax(format!("{name}: {message}")))?;
            names.push(name);
        }
        let text = toml::to_string(&table).map_err(|e| syntax(e.to_string()))?;
        Config::from_toml_str(&text, &format!("{origin} with {}", names.join(", ")))
    }
}

/// Environment variables that override config keys start with this.
pub const ENVIRONMENT_PREFIX: &str = "CASCADE__";

fn environment_value(text: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("value = {text}"))
        .ok()
        .and_then(|mut table| table.remove("value"))
        .unwrap_or_else(|| toml::Value::String(text.to_owned()))
}

/// Sets `path` (section, …, key) in `table`, creating sections as needed.
fn set_dotted(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    let (key, sections) = path.split_last().ok_or("no key after the prefix")?;
    let mut current = table;
    for section in sections {
        let entry = current
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = entry.as_table_mut().ok_or_else(|| format!("`{section}` is not a section"))?;
    }
    current.insert(key.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OnlineBackend;

    #[test]
    fn environment_variables_override_the_file_by_dotted_key() {
        let environment = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        let config = Config::layered(
            Config::default_toml(),
            "cascade.toml",
            environment(&[
                ("CASCADE__SERVE__ADMIN_TOKEN", "s3cret"),
                ("CASCADE__SERVE__INGEST_KEY", "k1,k2"),
                ("CASCADE__INGEST__MAX_ID_BYTES", "64"),
                ("CASCADE__ONLINE_STORE__BACKEND", "redis"),
                ("CASCADE_DATA_DIR", "/elsewhere"),
            ]),
        )
        .unwrap();
        assert_eq!(config.serve.admin_token, ["s3cret"]);
        assert_eq!(config.serve.ingest_key, ["k1", "k2"]);
        assert!(config.serve.requires_keys());
        assert_eq!(config.ingest.max_id_bytes, 64);
        assert_eq!(config.online_store.backend, OnlineBackend::Redis);
        let unknown = Config::layered(
            Config::default_toml(),
            "cascade.toml",
            environment(&[("CASCADE__INGEST__MAX_ID_BYTE", "64")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            unknown.contains("CASCADE__INGEST__MAX_ID_BYTE") && unknown.contains("max_id_byte"),
            "{unknown}"
        );
        assert!(!Config::embedded_default().serve.requires_keys(), "no keys by default");
    }
}
