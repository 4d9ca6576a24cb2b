//! [`Configuration`]: the merged result of [`ConfigOptions::load`](super::ConfigOptions::load).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use config::{Map, Value};
use serde::de::DeserializeOwned;

use super::error::lookup;
use super::layer::Layer;
use super::section::{check_layer, rename_aliases};
use super::tracking::Tracking;
use super::watch::Watch;
use super::{ConfigError, DEFAULT_ENVIRONMENT};

/// Loaded, merged configuration: where it came from, and typed sections.
///
/// `Clone` copies the merged values; it does not read anything again.
/// Clones share what was read and watched (see [`check_unread`](Self::check_unread)).
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
    /// The layers before merging, lowest priority first, to check a section
    /// in each and to blame an unknown section on the layer that has it.
    pub(super) layers: Arc<[Layer]>,
    /// Which sections were read, and the watches; shared by clones, and
    /// carried over to the configuration that a reload makes current.
    pub(super) tracking: Arc<Mutex<Tracking>>,
}

impl Default for Configuration {
    fn default() -> Self {
        Configuration {
            environment: DEFAULT_ENVIRONMENT.to_owned(),
            directory: None,
            sources: Vec::new(),
            merged: config::Config::default(),
            layers: Arc::new([]),
            tracking: Arc::default(),
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

    /// Reads the value at dotted `key` (usually a service's own table, such
    /// as `"worker"`) into `T`. An absent key reads as an empty table, so a
    /// `#[serde(default)]` struct gets its defaults.
    ///
    /// Reading marks the top-level section as read, for
    /// [`check_unread`](Self::check_unread). When several layers set the
    /// section, each is checked on its own first (as a registered
    /// [`Section`](super::Section) is at load), so a bad value in a file is
    /// reported even when a variable overrides it.
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
        self.mark_read(key);
        let top = key.split(['.', '[']).next().unwrap_or(key);
        let setting: Vec<&Value> = self.layers.iter().filter_map(|l| l.root.get(top)).collect();
        if setting.len() > 1 {
            for value in setting {
                let root: Map<String, Value> = [(top.to_owned(), value.clone())].into();
                check_layer::<T>(&Value::new(None, root), key)?;
            }
        }
        let root = &self.merged.cache;
        let value = lookup(root, key)
            .cloned()
            .unwrap_or_else(|| Value::new(None, Map::<String, Value>::new()));
        T::deserialize(value).map_err(|e| ConfigError::from_config(e, key, root))
    }

    /// [`section`](Self::section) for a top-level section whose keys have
    /// aliases (`level` for `filter`): each layer's alias is renamed before
    /// the layers are merged again, so aliases work across layers even when
    /// the section was not [registered](super::ConfigOptions::register).
    pub(crate) fn section_with_aliases<T: DeserializeOwned>(
        &self,
        key: &str,
        aliases: &[(&str, &str)],
    ) -> Result<T, ConfigError> {
        let has_alias = |layer: &Layer| match layer.root.get(key).map(|v| &v.kind) {
            Some(config::ValueKind::Table(t)) => aliases.iter().any(|(a, _)| t.contains_key(*a)),
            _ => false,
        };
        if !self.layers.iter().any(has_alias) {
            return self.section(key);
        }
        self.mark_read(key);
        let mut merged: Option<Value> = None;
        for layer in self.layers.iter() {
            let Some(value) = layer.root.get(key) else {
                continue;
            };
            let mut root: Map<String, Value> = [(key.to_owned(), value.clone())].into();
            rename_aliases(&mut root, key, aliases)?;
            check_layer::<T>(&Value::new(None, root.clone()), key)?;
            let value = root.remove(key).unwrap_or_default();
            merged = Some(match merged {
                Some(mut into) => {
                    merge(&mut into, value);
                    into
                }
                None => value,
            });
        }
        let value = merged.unwrap_or_default();
        let root = Value::new(None, Map::from([(key.to_owned(), value.clone())]));
        T::deserialize(value).map_err(|e| ConfigError::from_config(e, key, &root))
    }

    /// Reads section `key` as [`section`](Self::section) does and keeps it
    /// current: the returned [`Watch`] holds the value, and when the host
    /// applies a reload ([`Host::reload`](crate::host::Host::reload), SIGHUP
    /// under [`console::run`](crate::console::run)) the new value is read
    /// and checked together with every other watched section before
    /// anything changes. If one is invalid, the whole reload is rejected and
    /// every watch keeps its value; otherwise each watch gets its new value
    /// and its [`token`](Watch::token) is cancelled (as .NET's
    /// `IOptionsMonitor<T>` and its `OnChange`).
    ///
    /// # Errors
    ///
    /// As [`section`](Self::section), for the value in force now.
    ///
    /// # Examples
    ///
    /// ```
    /// use apphost::config::ConfigOptions;
    ///
    /// #[derive(serde::Deserialize, Default)]
    /// #[serde(default)]
    /// struct Worker { batch: u32 }
    ///
    /// let config = ConfigOptions::default()
    ///     .env_vars([("APPHOST__WORKER__BATCH", "16")])
    ///     .load().unwrap();
    /// let worker = config.watch::<Worker>("worker").unwrap();
    /// assert_eq!(worker.current().batch, 16);
    /// assert!(!worker.token().is_cancelled());
    /// ```
    pub fn watch<T>(&self, key: &str) -> Result<Watch<T>, ConfigError>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        let value: T = self.section(key)?;
        let watch = Watch::new(key, value);
        self.tracking().watches.push(watch.stage());
        Ok(watch)
    }
}

/// Deep-merges `from` into `into`: tables key by key, anything else replaced.
fn merge(into: &mut Value, from: Value) {
    let origin = from.origin().map(str::to_owned);
    match (&mut into.kind, from.kind) {
        (config::ValueKind::Table(into), config::ValueKind::Table(from)) => {
            for (k, v) in from {
                match into.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        into.insert(k, v);
                    }
                }
            }
        }
        (_, kind) => *into = Value::new(origin.as_ref(), kind),
    }
}
