//! The console runner's options: [`ConsoleOptions`] (set in code) and
//! [`ConsoleLifetimeOptions`] (the `[console]` section).

use std::time::Duration;

use crate::config::ConfigOptions;

#[cfg(doc)]
use super::{run, run_async_with, run_with};

/// The `[console]` section of the configuration: options of the console
/// lifetime, as .NET's `ConsoleLifetimeOptions`.
///
/// | key | type | default |
/// |---|---|---|
/// | `suppress_status_messages` | bool | `false` |
/// | `readiness_file` | path | none |
/// | `drain_delay` | duration | `"0s"` |
/// | `systemd_notify` | bool | `true` (only acts when `NOTIFY_SOCKET` is set) |
///
/// Unknown keys are an error, with the nearest valid key suggested.
///
/// # Examples
///
/// ```
/// use apphost::config::ConfigOptions;
/// use apphost::console::ConsoleLifetimeOptions;
///
/// let config = ConfigOptions::default()
///     .env_vars([("APPHOST__CONSOLE__SUPPRESS_STATUS_MESSAGES", "true")])
///     .load()
///     .unwrap();
/// let options: ConsoleLifetimeOptions = config.section("console").unwrap();
/// assert!(options.suppress_status_messages);
///
/// let config = ConfigOptions::default()
///     .env_vars([("APPHOST__CONSOLE__SUPRESS_STATUS_MESSAGES", "true")])
///     .load()
///     .unwrap();
/// let err = config.section::<ConsoleLifetimeOptions>("console").unwrap_err();
/// assert!(err.to_string().contains("did you mean console.suppress_status_messages?"), "{err}");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ConsoleLifetimeOptions {
    /// Do not log the "Application started" / "Application is shutting down"
    /// status messages. Default `false`.
    #[serde(deserialize_with = "crate::config::duration::deserialize_bool")]
    pub suppress_status_messages: bool,
    /// A file created once the host has started and removed as soon as
    /// stopping begins, for exec or file readiness probes (see
    /// [`crate::readiness`]). Default: none.
    pub readiness_file: Option<std::path::PathBuf>,
    /// How long to wait between the stop request and the start of the drain
    /// (the services' `stop`), so load balancers notice the not-ready state
    /// first. Counted inside `host.shutdown_timeout`. Default `0s`.
    #[serde(deserialize_with = "crate::config::deserialize_duration")]
    pub drain_delay: Duration,
    /// Speak systemd's notify protocol when `NOTIFY_SOCKET` is set
    /// (`READY=1`, `STOPPING=1`, `STATUS=`, watchdog, reload). Default `true`.
    #[serde(deserialize_with = "crate::config::duration::deserialize_bool")]
    pub systemd_notify: bool,
}

impl ConsoleLifetimeOptions {
    /// The `[console]` section, to [register](crate::config::ConfigOptions::register)
    /// so that loading checks it in every layer ([`run`] does, with
    /// `[host]` and `[logging]`).
    ///
    /// # Examples
    ///
    /// ```
    /// use apphost::config::ConfigOptions;
    /// use apphost::console::ConsoleLifetimeOptions;
    /// let err = ConfigOptions::default()
    ///     .env_vars([("APPHOST__CONSOLE__DRAIN_DELAY", "soon")])
    ///     .register(ConsoleLifetimeOptions::section())
    ///     .load()
    ///     .unwrap_err();
    /// assert_eq!(err.key(), Some("console.drain_delay"));
    /// ```
    pub fn section() -> crate::config::Section {
        crate::config::Section::new::<ConsoleLifetimeOptions>("console")
    }
}

/// `config` with the sections the console runner reads registered.
pub(super) fn registered(config: ConfigOptions) -> ConfigOptions {
    config
        .register(crate::host::HostOptions::section())
        .register(crate::logging::LoggingOptions::section())
        .register(ConsoleLifetimeOptions::section())
}

impl Default for ConsoleLifetimeOptions {
    fn default() -> Self {
        ConsoleLifetimeOptions {
            suppress_status_messages: false,
            readiness_file: None,
            drain_delay: Duration::ZERO,
            systemd_notify: true,
        }
    }
}

/// How [`run_with`] and [`run_async_with`] set the process up. Every method
/// takes and returns `self`; the defaults are what [`run`] uses.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use apphost::config::ConfigOptions;
/// use apphost::console::ConsoleOptions;
/// use apphost::host::Host;
///
/// fn main() -> std::process::ExitCode {
///     let options = ConsoleOptions::default()
///         .config(ConfigOptions::default().environment("development"))
///         .suppress_status_messages(true)
///         .runtime_shutdown_timeout(Duration::from_millis(500));
///     apphost::console::run_with(options, |_config| Ok(Host::builder()))
/// }
/// ```
#[derive(Debug, Clone)]
#[must_use = "ConsoleOptions does nothing until passed to `run_with` or `run_async_with`"]
pub struct ConsoleOptions {
    pub(super) config: ConfigOptions,
    /// The `[console]` section, once read by `run_with`.
    pub(super) console: Option<ConsoleLifetimeOptions>,
    pub(super) systemd: Option<bool>,
    pub(super) suppress_status_messages: Option<bool>,
    pub(super) init_logging: bool,
    pub(super) runtime_shutdown_timeout: Duration,
}

impl Default for ConsoleOptions {
    fn default() -> Self {
        ConsoleOptions {
            config: ConfigOptions::default(),
            console: None,
            systemd: None,
            suppress_status_messages: None,
            init_logging: true,
            runtime_shutdown_timeout: Duration::from_millis(100),
        }
    }
}

impl ConsoleOptions {
    /// Where [`run_with`] reads the configuration from (default
    /// [`ConfigOptions::default`]: `./config`, `APPHOST_*` variables).
    ///
    /// # Examples
    ///
    /// ```
    /// use apphost::config::ConfigOptions;
    /// let options = apphost::console::ConsoleOptions::default()
    ///     .config(ConfigOptions::default().directory("/etc/myapp").env_prefix("MYAPP"));
    /// # drop(options);
    /// ```
    pub fn config(mut self, config: ConfigOptions) -> Self {
        self.config = config;
        self
    }

    /// Silences (or, with `false`, forces) the status messages, whatever
    /// `[console] suppress_status_messages` says.
    ///
    /// # Examples
    ///
    /// ```
    /// let options = apphost::console::ConsoleOptions::default().suppress_status_messages(true);
    /// # drop(options);
    /// ```
    pub fn suppress_status_messages(mut self, suppress: bool) -> Self {
        self.suppress_status_messages = Some(suppress);
        self
    }

    /// Whether to speak systemd's notify protocol (when `NOTIFY_SOCKET` is
    /// set), whatever `[console] systemd_notify` says.
    ///
    /// # Examples
    ///
    /// ```
    /// let options = apphost::console::ConsoleOptions::default().systemd(false);
    /// # drop(options);
    /// ```
    pub fn systemd(mut self, enabled: bool) -> Self {
        self.systemd = Some(enabled);
        self
    }

    /// Whether [`run_with`] installs the `tracing` subscriber from
    /// `[logging]` (default `true`; it never replaces one the application
    /// installed first).
    ///
    /// # Examples
    ///
    /// ```
    /// // The application sets up its own logging.
    /// let options = apphost::console::ConsoleOptions::default().init_logging(false);
    /// # drop(options);
    /// ```
    pub fn init_logging(mut self, init: bool) -> Self {
        self.init_logging = init;
        self
    }

    /// How long [`run_with`], once the host has stopped, waits for the
    /// runtime's remaining tasks and blocking threads (a service call the host
    /// abandoned because it blocks its thread) before the process exits
    /// anyway. Default 100 ms. A graceful stop leaves nothing behind, so this
    /// only delays the exit of a process whose stop was not graceful.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// let options = apphost::console::ConsoleOptions::default()
    ///     .runtime_shutdown_timeout(Duration::from_secs(1));
    /// # drop(options);
    /// ```
    pub fn runtime_shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.runtime_shutdown_timeout = timeout;
        self
    }
}

// ===== run =====
