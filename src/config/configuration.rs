//! [`Configuration`]: the merged result of [`ConfigOptions::load`](super::ConfigOptions::load).

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use super::{ConfigError, DEFAULT_ENVIRONMENT};
use crate::host::HostOptions;
use crate::logging::LoggingOptions;

/// Loaded, merged configuration: where it came from, and typed sections.
///
/// `Clone` copies the merged values; it does not read anything again.
///
/// # Examples
///
/// ```
/// use apphost::config::Configuration;
/// let config = Configuration::empty();
/// assert_eq!(config.environment(), "production");
/// assert!(config.sources().is_empty());
/// assert_eq!(config.host_options().unwrap(), apphost::HostOptions::default());
/// ```
#[derive(Debug, Clone)]
pub struct Configuration {
    pub(super) environment: String,
    pub(super) directory: Option<PathBuf>,
    pub(super) sources: Vec<String>,
    /// The merged layers; every leaf remembers its source as its origin.
    pub(super) merged: config::Config,
}

impl Default for Configuration {
    fn default() -> Self {
        Configuration {
            environment: DEFAULT_ENVIRONMENT.to_owned(),
            directory: None,
            sources: Vec::new(),
            merged: config::Config::default(),
        }
    }
}

impl Configuration {
    /// Nothing loaded: every section has its defaults. Same as `default()`.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = apphost::config::Configuration::empty();
    /// assert_eq!(config.directory(), None);
    /// ```
    pub fn empty() -> Self {
        Self::default()
    }

    /// The environment name (lowercased), such as `production`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use apphost::config::ConfigOptions;
    /// let config = ConfigOptions::default().environment("dev")
    /// #   .env_vars(Vec::<(String, String)>::new())
    ///     .load().unwrap();
    /// assert_eq!(config.environment(), "dev");
    /// ```
    pub fn environment(&self) -> &str {
        &self.environment
    }

    /// The configuration directory read, or `None` if there was none.
    ///
    /// # Examples
    ///
    /// ```
    /// # use apphost::config::ConfigOptions;
    /// let dir = tempfile::tempdir().unwrap();
    /// let config = ConfigOptions::default().directory(dir.path())
    /// #   .env_vars(Vec::<(String, String)>::new())
    ///     .load().unwrap();
    /// assert_eq!(config.directory(), Some(dir.path()));
    /// ```
    pub fn directory(&self) -> Option<&Path> {
        self.directory.as_deref()
    }

    /// What was read, lowest priority first: file paths, then
    /// `environment variable NAME`, then `value set in code: KEY`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use apphost::config::ConfigOptions;
    /// let dir = tempfile::tempdir().unwrap();
    /// std::fs::write(dir.path().join("default.toml"), "[worker]\ninterval = \"1s\"\n").unwrap();
    /// let config = ConfigOptions::default()
    ///     .directory(dir.path())
    ///     .env_vars([("APPHOST__WORKER__INTERVAL", "2s")])
    ///     .load().unwrap();
    /// let default_toml = dir.path().join("default.toml").display().to_string();
    /// assert_eq!(
    ///     config.sources(),
    ///     [default_toml, "environment variable APPHOST__WORKER__INTERVAL".to_owned()]
    /// );
    /// ```
    pub fn sources(&self) -> &[String] {
        &self.sources
    }

    /// The `[host]` section as [`HostOptions`]; defaults if absent.
    ///
    /// # Errors
    ///
    /// As [`section`](Self::section); [`ConfigOptions::load`](super::ConfigOptions::load) has already
    /// checked `[host]`, so a loaded configuration does not fail here.
    ///
    /// # Examples
    ///
    /// ```
    /// # use apphost::config::ConfigOptions;
    /// let config = ConfigOptions::default()
    ///     .set("host.startup_timeout", "30s")
    /// #   .env_vars(Vec::<(String, String)>::new())
    ///     .load().unwrap();
    /// assert_eq!(config.host_options().unwrap().startup_timeout.unwrap().as_secs(), 30);
    /// ```
    pub fn host_options(&self) -> Result<HostOptions, ConfigError> {
        self.section("host")
    }

    /// The `[logging]` section as [`LoggingOptions`]; defaults if absent.
    ///
    /// # Errors
    ///
    /// As [`host_options`](Self::host_options).
    ///
    /// # Examples
    ///
    /// ```
    /// # use apphost::config::ConfigOptions;
    /// use apphost::logging::LogFormat;
    /// let config = ConfigOptions::default()
    ///     .env_vars([("APPHOST__LOGGING__FORMAT", "json"), ("APPHOST__LOGGING__LEVEL", "debug")])
    ///     .load().unwrap();
    /// let logging = config.logging_options().unwrap();
    /// assert_eq!((logging.filter.as_str(), logging.format), ("debug", LogFormat::Json));
    /// ```
    pub fn logging_options(&self) -> Result<LoggingOptions, ConfigError> {
        self.section("logging")
    }

    /// Reads the value at dotted `key` (usually a service's own table, such
    /// as `"worker"`) into `T`. An absent key reads as an empty table, so a
    /// `#[serde(default)]` struct gets its defaults.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the source of the offending value, its full
    /// key (`worker.interval`) and what was expected; unknown fields (with
    /// `#[serde(deny_unknown_fields)]`) get a "did you mean" suggestion.
    ///
    /// # Examples
    ///
    /// ```
    /// # use apphost::config::ConfigOptions;
    /// #[derive(serde::Deserialize)]
    /// struct Worker { batch: u32 }
    ///
    /// let config = ConfigOptions::default()
    ///     .env_vars([("APPHOST__WORKER__BATCH", "many")])
    ///     .load().unwrap();
    /// let err = config.section::<Worker>("worker").err().unwrap();
    /// assert_eq!(err.source_name(), "APPHOST__WORKER__BATCH");
    /// assert_eq!(err.key(), Some("worker.batch"));
    ///
    /// let config = ConfigOptions::default()
    ///     .env_vars([("APPHOST__WORKER__BATCH", "16")])
    ///     .load().unwrap();
    /// assert_eq!(config.section::<Worker>("worker").unwrap().batch, 16);
    /// ```
    pub fn section<T: DeserializeOwned>(&self, key: &str) -> Result<T, ConfigError> {
        let root = &self.merged.cache;
        let value = super::error::lookup(root, key).cloned().unwrap_or_else(|| {
            config::Value::new(None, config::Map::<String, config::Value>::new())
        });
        T::deserialize(value).map_err(|e| ConfigError::from_config(e, key, root))
    }
}
