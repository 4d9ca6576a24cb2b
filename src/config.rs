//! Layered configuration, read through the `config` crate and serde.
//!
//! Sources, each overriding the ones before it:
//!
//! 1. `{directory}/default.toml`
//! 2. `{directory}/{environment}.toml` (`production` unless told otherwise)
//! 3. files added with [`ConfigOptions::file`], in order
//! 4. environment variables `APPHOST__SECTION__KEY` (the prefix is
//!    configurable; `__` separates levels; names are lowercased to keys, so
//!    `APPHOST__HOST__SHUTDOWN_TIMEOUT` sets `host.shutdown_timeout`)
//! 5. values set in code with [`ConfigOptions::set`]
//!
//! The directory is, in order: [`ConfigOptions::directory`], the variable
//! `APPHOST_CONFIG_DIR`, or [`ConfigOptions::default_directory`] (`./config`
//! unless changed). Only the last may be missing (then
//! defaults apply); a directory that was named and does not exist is an
//! error, and so is a file added with [`ConfigOptions::file`]. The two
//! files in the directory are optional. The environment name is, in order:
//! [`ConfigOptions::environment`], `APPHOST_ENVIRONMENT`, or `production`.
//!
//! The configuration knows no consumer. Each part of the program registers
//! the section it reads ([`ConfigOptions::register`] with a [`Section`]:
//! name, keys, typed validator): [`load`](ConfigOptions::load) checks every
//! registered section in every layer and fails with a [`ConfigError`] that
//! names the source, the key and what was expected, so bad input stops the
//! process before any service starts. [`console::run`](crate::console::run)
//! registers `[host]`, `[logging]` and `[console]`. Services read their own
//! sections with [`Configuration::section`], or keep them current across
//! reloads with [`Configuration::watch`]. A top-level section that no part
//! of the program read or registered is an error too
//! ([`Configuration::check_unread`]), so a misspelled `[hosts]` cannot
//! silently leave the defaults in force.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use apphost::config::ConfigOptions;
//!
//! # let dir = tempfile::tempdir().unwrap();
//! # std::fs::write(dir.path().join("default.toml"), "[host]\nshutdown_timeout = \"10s\"\n").unwrap();
//! // config/default.toml holds: [host] shutdown_timeout = "10s"
//! let config = ConfigOptions::default()
//!     .directory(dir.path())
//!     .env_vars([("APPHOST__HOST__SERVICES_STOP_CONCURRENTLY", "true")])
//!     .load()?;
//! let host = config.host_options()?;
//! assert_eq!(host.shutdown_timeout, Duration::from_secs(10));
//! assert!(host.services_stop_concurrently);
//! # Ok::<(), apphost::config::ConfigError>(())
//! ```

mod configuration;
pub(crate) mod duration;
mod error;
mod layer;
mod section;
mod tracking;
mod watch;

use std::path::PathBuf;

pub use configuration::Configuration;
pub use duration::{
    DurationError, MAX_DURATION, deserialize_duration, deserialize_optional_duration,
    parse_duration,
};
pub use error::ConfigError;
pub(crate) use error::closest;
pub use section::Section;
pub use watch::Watch;

use layer::{IN_CODE, Layer};

/// The environment used when none is named.
const DEFAULT_ENVIRONMENT: &str = "production";

// ===== ConfigOptions =====

/// Where to read configuration from; [`load`](Self::load) reads it.
///
/// Every method takes and returns `self`, builder-style. `Clone` copies
/// the settings, nothing has been read yet.
///
/// # Examples
///
/// ```
/// use apphost::config::ConfigOptions;
///
/// let config = ConfigOptions::default()
///     .environment("development")
///     .env_prefix("MYAPP")
///     .set("host.shutdown_timeout", "2s")
/// #   .env_vars(Vec::<(String, String)>::new())
///     .load()
///     .unwrap();
/// assert_eq!(config.environment(), "development");
/// ```
#[derive(Debug, Clone)]
#[must_use = "ConfigOptions does nothing until `load` is called"]
pub struct ConfigOptions {
    environment: Option<String>,
    directory: Option<PathBuf>,
    default_directory: PathBuf,
    files: Vec<PathBuf>,
    env_prefix: String,
    overrides: Vec<(String, String)>,
    /// `None`: read the process environment at `load` time.
    env_vars: Option<Vec<(String, String)>>,
    sections: Vec<Section>,
    allow_unread: bool,
}

impl Default for ConfigOptions {
    fn default() -> Self {
        ConfigOptions {
            environment: None,
            directory: None,
            default_directory: PathBuf::from("config"),
            files: Vec::new(),
            env_prefix: "APPHOST".to_owned(),
            overrides: Vec::new(),
            env_vars: None,
            sections: Vec::new(),
            allow_unread: false,
        }
    }
}

impl ConfigOptions {
    /// Names the environment, choosing `{environment}.toml`. Overrides
    /// `APPHOST_ENVIRONMENT`. Names are lowercased (`Development` reads
    /// `development.toml`) and may hold letters, digits, `-` and `_`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use apphost::config::ConfigOptions;
    /// let options = ConfigOptions::default().environment("Staging");
    /// # let config = options.env_vars(Vec::<(String, String)>::new()).load().unwrap();
    /// # assert_eq!(config.environment(), "staging");
    /// ```
    pub fn environment(mut self, name: impl Into<String>) -> Self {
        self.environment = Some(name.into());
        self
    }

    /// Names the configuration directory. Overrides `APPHOST_CONFIG_DIR`;
    /// it must exist.
    ///
    /// # Examples
    ///
    /// ```
    /// # use apphost::config::ConfigOptions;
    /// let err = ConfigOptions::default()
    ///     .directory("/no/such/dir")
    /// #   .env_vars(Vec::<(String, String)>::new())
    ///     .load()
    ///     .unwrap_err();
    /// assert!(err.to_string().contains("/no/such/dir"));
    /// ```
    pub fn directory(mut self, path: impl Into<PathBuf>) -> Self {
        self.directory = Some(path.into());
        self
    }

    /// Changes the directory used when none is named (default `./config`,
    /// relative to the current directory). Unlike a named directory it may
    /// be absent: then defaults apply.
    ///
    /// # Examples
    ///
    /// ```
    /// # use apphost::config::ConfigOptions;
    /// let config = ConfigOptions::default()
    ///     .default_directory("/no/such/dir")
    /// #   .env_vars(Vec::<(String, String)>::new())
    ///     .load()
    ///     .unwrap();
    /// assert_eq!(config.directory(), None);
    /// ```
    pub fn default_directory(mut self, path: impl Into<PathBuf>) -> Self {
        self.default_directory = path.into();
        self
    }

    /// Adds a TOML file read after the environment file; it must exist.
    ///
    /// # Examples
    ///
    /// ```
    /// # use apphost::config::ConfigOptions;
    /// let err = ConfigOptions::default()
    ///     .file("/no/such/local.toml")
    /// #   .env_vars(Vec::<(String, String)>::new())
    ///     .load()
    ///     .unwrap_err();
    /// assert_eq!(err.to_string(), "/no/such/local.toml: file not found");
    /// ```
    pub fn file(mut self, path: impl Into<PathBuf>) -> Self {
        self.files.push(path.into());
        self
    }

    /// Sets the prefix of the environment variables (default `APPHOST`):
    /// with `MYAPP`, `MYAPP__HOST__SHUTDOWN_TIMEOUT`, `MYAPP_ENVIRONMENT`
    /// and `MYAPP_CONFIG_DIR` are read.
    ///
    /// # Examples
    ///
    /// ```
    /// # use apphost::config::ConfigOptions;
    /// let config = ConfigOptions::default()
    ///     .env_prefix("MYAPP")
    ///     .env_vars([("MYAPP__HOST__SHUTDOWN_TIMEOUT", "1s"), ("APPHOST__HOST__X", "ignored")])
    ///     .load()
    ///     .unwrap();
    /// assert_eq!(config.host_options().unwrap().shutdown_timeout.as_secs(), 1);
    /// ```
    pub fn env_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.env_prefix = prefix.into();
        self
    }

    /// Sets `key` (dotted, such as `"host.shutdown_timeout"`) to `value`,
    /// above every other source. Values are strings, read like environment
    /// variables: `"true"`, `"7"` and `"10s"` all work where they fit.
    ///
    /// # Examples
    ///
    /// ```
    /// # use apphost::config::ConfigOptions;
    /// let config = ConfigOptions::default()
    ///     .env_vars([("APPHOST__HOST__SHUTDOWN_TIMEOUT", "9s")])
    ///     .set("host.shutdown_timeout", "3s")
    ///     .load()
    ///     .unwrap();
    /// assert_eq!(config.host_options().unwrap().shutdown_timeout.as_secs(), 3);
    /// ```
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.overrides.push((key.into(), value.into()));
        self
    }

    /// Uses `vars` instead of the process environment, for the prefixed
    /// variables as well as `APPHOST_ENVIRONMENT` and `APPHOST_CONFIG_DIR`.
    /// Meant for tests: changing the real environment is `unsafe` in edition
    /// 2024 and races with other test threads.
    ///
    /// # Examples
    ///
    /// ```
    /// # use apphost::config::ConfigOptions;
    /// let config = ConfigOptions::default()
    ///     .env_vars([("APPHOST_ENVIRONMENT", "test")])
    ///     .load()
    ///     .unwrap();
    /// assert_eq!(config.environment(), "test");
    /// ```
    pub fn env_vars<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.env_vars = Some(
            vars.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        );
        self
    }

    /// Registers a section read by some part of the program: [`load`](Self::load)
    /// checks it in every layer (so a bad value in a file is reported even
    /// when a variable overrides it) and it counts as read for
    /// [`Configuration::check_unread`]. Registering a name again replaces
    /// the earlier registration.
    ///
    /// # Examples
    ///
    /// ```
    /// use apphost::config::{ConfigOptions, Section};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # std::fs::write(dir.path().join("default.toml"), "[host]\nshutdown_timeout = \"soon\"\n").unwrap();
    /// // default.toml: [host] shutdown_timeout = "soon"; the variable would hide it
    /// let err = ConfigOptions::default()
    ///     .directory(dir.path())
    ///     .env_vars([("APPHOST__HOST__SHUTDOWN_TIMEOUT", "3s")])
    ///     .register(Section::new::<apphost::HostOptions>("host"))
    ///     .load()
    ///     .unwrap_err();
    /// assert!(err.source_name().ends_with("default.toml"));
    /// assert_eq!(err.key(), Some("host.shutdown_timeout"));
    /// ```
    pub fn register(mut self, section: Section) -> Self {
        self.sections.retain(|s| s.name() != section.name());
        self.sections.push(section);
        self
    }

    /// Opts out of [`Configuration::check_unread`]: for a program that
    /// reads some sections only after the host has started (and cannot
    /// [`register`](Self::register) them). Misspelled sections are then
    /// silently ignored again, so prefer registering.
    ///
    /// # Examples
    ///
    /// ```
    /// # use apphost::config::ConfigOptions;
    /// let config = ConfigOptions::default()
    ///     .env_vars([("APPHOST__LATE__KEY", "1")])
    ///     .allow_unread_sections()
    ///     .load()
    ///     .unwrap();
    /// assert!(config.check_unread().is_ok());
    /// ```
    pub fn allow_unread_sections(mut self) -> Self {
        self.allow_unread = true;
        self
    }

    /// Reads every source, checks each [registered](Self::register) section
    /// in each, and merges them.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the source for: a named directory or added
    /// file that does not exist or cannot be read, malformed TOML (with line
    /// and column), a quoted key holding a dot (`"host.shutdown_timeout" = 1`),
    /// an unknown key or a bad value under a registered section in any
    /// layer, a malformed variable name, or a bad environment name or prefix.
    ///
    /// # Examples
    ///
    /// ```
    /// # use apphost::config::ConfigOptions;
    /// // An empty directory and no variables: all defaults.
    /// let dir = tempfile::tempdir().unwrap();
    /// let config = ConfigOptions::default()
    ///     .directory(dir.path())
    ///     .env_vars(Vec::<(String, String)>::new())
    ///     .load()
    ///     .unwrap();
    /// assert!(config.sources().is_empty());
    /// ```
    pub fn load(&self) -> Result<Configuration, ConfigError> {
        let prefix = self.env_prefix.trim();
        if prefix.is_empty() || prefix.contains(['=', '\0']) {
            return Err(ConfigError::other(
                IN_CODE,
                format_args!(
                    "expected an environment variable prefix such as \"APPHOST\", found {prefix:?}"
                ),
            ));
        }
        let vars = self.read_env(prefix)?;
        let var = |suffix: &str| {
            let name = format!("{prefix}_{suffix}");
            let value = vars
                .iter()
                .rev()
                .find(|(k, _)| k.eq_ignore_ascii_case(&name))
                .map(|(_, v)| v.clone());
            value.filter(|v| !v.is_empty()).map(|v| (name, v))
        };

        let environment = match (&self.environment, var("ENVIRONMENT")) {
            (Some(name), _) => checked_environment(name, IN_CODE)?,
            (None, Some((source, name))) => checked_environment(&name, &source)?,
            (None, None) => DEFAULT_ENVIRONMENT.to_owned(),
        };
        let directory = match (&self.directory, var("CONFIG_DIR")) {
            (Some(dir), _) => Some(existing_dir(dir.clone(), IN_CODE)?),
            (None, Some((source, dir))) => Some(existing_dir(PathBuf::from(dir), &source)?),
            (None, None) => {
                let dir = self.default_directory.clone();
                if dir.is_dir() {
                    Some(dir)
                } else {
                    tracing::debug!(target: "apphost::config", directory = %dir.display(),
                        "no configuration directory; defaults apply");
                    None
                }
            }
        };

        let mut layers: Vec<Layer> = Vec::new();
        if let Some(dir) = &directory {
            for name in ["default".to_owned(), environment.clone()] {
                let path = dir.join(format!("{name}.toml"));
                if layers
                    .iter()
                    .any(|l| l.names[0] == path.display().to_string())
                {
                    continue; // environment "default": read the file once
                }
                match layer::file(&path, false)? {
                    Some(layer) => layers.push(layer),
                    None => tracing::debug!(target: "apphost::config", file = %path.display(),
                        "configuration file absent; skipped"),
                }
            }
        }
        for path in &self.files {
            layers.extend(layer::file(path, true)?);
        }
        layers.extend(layer::environment(prefix, &vars)?);
        layers.extend(layer::code(&self.overrides)?);

        let mut builder = config::Config::builder();
        let mut sources = Vec::new();
        for layer in &mut layers {
            for section in &self.sections {
                section.check(&mut layer.root)?;
            }
            sources.extend(layer.names.iter().cloned());
            builder = builder.add_source(layer.clone());
        }
        let merged = builder
            .build()
            .map_err(|e| ConfigError::other("configuration", e))?;
        tracing::debug!(target: "apphost::config", %environment, ?sources, "configuration loaded");
        let configuration = Configuration {
            environment,
            directory,
            sources,
            merged,
            layers: layers.into(),
            tracking: Default::default(),
        };
        {
            let mut tracking = configuration.tracking();
            tracking.allow_unread = self.allow_unread;
            tracking
                .read
                .extend(self.sections.iter().map(|s| s.name().to_owned()));
        }
        Ok(configuration)
    }

    /// The injected variables, or the process environment's that start with
    /// `{prefix}_` (the others are none of our business).
    fn read_env(&self, prefix: &str) -> Result<Vec<(String, String)>, ConfigError> {
        if let Some(vars) = &self.env_vars {
            return Ok(vars.clone());
        }
        let mut vars = Vec::new();
        for (name, value) in std::env::vars_os() {
            let Some(name) = name.to_str() else { continue };
            let ours = name
                .get(..=prefix.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(&format!("{prefix}_")));
            if !ours {
                continue;
            }
            match value.into_string() {
                Ok(value) => vars.push((name.to_owned(), value)),
                Err(_) => {
                    return Err(ConfigError::other(
                        name,
                        "expected UTF-8 text, found other bytes",
                    ));
                }
            }
        }
        Ok(vars)
    }
}

/// Lowercased, and safe to put in a file name.
fn checked_environment(name: &str, source: &str) -> Result<String, ConfigError> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(name.to_ascii_lowercase())
    } else {
        Err(ConfigError::other(
            source,
            format_args!(
                "expected an environment name such as \"production\" (letters, digits, - and _), found {name:?}"
            ),
        ))
    }
}

fn existing_dir(dir: PathBuf, source: &str) -> Result<PathBuf, ConfigError> {
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(ConfigError::other(
            source,
            format_args!(
                "configuration directory {} does not exist or is not a directory",
                dir.display()
            ),
        ))
    }
}
