//! Configuration reload: [`ConfigReloads`], the handle through which services
//! see the current configuration and learn of each reload; the reload itself,
//! validated as a whole before anything is applied; and the rule that keeps
//! `[host]` values set in code (see [`CodeSet`](super::options::CodeSet)).

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use serde::de::DeserializeOwned;

use super::options::{CodeSet, HostOptions};
use crate::cancel::{CancellationToken, CancellationTokenSource};
use crate::config::{ConfigError, Configuration, Watch};

/// The host's current configuration, and a token per reload.
///
/// Get it before the host is built with
/// [`HostBuilder::reloads`](crate::host::HostBuilder::reloads) (so a service
/// can keep one), or from [`Host::reloads`](crate::host::Host::reloads).
/// Clones share the same state.
///
/// - [`current`](Self::current) is the configuration in force;
/// - [`token`](Self::token) is cancelled when the next reload has been
///   applied (then ask for a new one): register a callback on it, or await
///   it, to re-read your section.
///
/// A reload is validated as a whole before anything changes: the `[host]`
/// section, every section [watched](Self::watch), and that the reload adds
/// no section the program does not read. If anything is invalid, the
/// reload is rejected: the token is not cancelled, `current`, the host's
/// options and every watch stay as they were.
///
/// In a loop, take the [`token`](Self::token) first, then compare
/// [`count`](Self::count) with the count you last handled: a reload between
/// the two calls is then seen by one or the other (the count is raised
/// before the token is cancelled).
///
/// # Examples
///
/// ```
/// use apphost::config::ConfigOptions;
/// use apphost::Host;
///
/// let builder = Host::builder();
/// let reloads = builder.reloads();
/// let host = builder.build().unwrap();
///
/// let before = reloads.token();
/// let config = ConfigOptions::default()
///     .env_vars([("APPHOST__HOST__SHUTDOWN_TIMEOUT", "9s")])
///     .load()
///     .unwrap();
/// host.reload(config).unwrap();
/// assert!(before.is_cancelled(), "services hear of the reload");
/// assert_eq!(reloads.count(), 1);
/// assert_eq!(host.options().shutdown_timeout, std::time::Duration::from_secs(9));
/// ```
#[derive(Clone)]
pub struct ConfigReloads {
    inner: Arc<Mutex<State>>,
    /// Held through a whole reload, so two reloads never interleave their
    /// validation and their application.
    applying: Arc<Mutex<()>>,
}

struct State {
    configuration: Arc<Configuration>,
    /// Cancelled at the next reload.
    next: CancellationTokenSource,
    count: u64,
    /// The `[host]` fields set in code, which a reload leaves alone.
    code_set: CodeSet,
}

impl ConfigReloads {
    pub(crate) fn new(configuration: Configuration) -> Self {
        ConfigReloads {
            inner: Arc::new(Mutex::new(State {
                configuration: Arc::new(configuration),
                next: CancellationTokenSource::new(),
                count: 0,
                code_set: CodeSet::default(),
            })),
            applying: Arc::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The configuration in force.
    ///
    /// # Examples
    ///
    /// ```
    /// let reloads = apphost::Host::builder().reloads();
    /// assert_eq!(reloads.current().environment(), "production");
    /// ```
    pub fn current(&self) -> Arc<Configuration> {
        self.state().configuration.clone()
    }

    /// A token cancelled once the next reload has been applied.
    ///
    /// # Examples
    ///
    /// ```
    /// let reloads = apphost::Host::builder().reloads();
    /// assert!(!reloads.token().is_cancelled());
    /// ```
    pub fn token(&self) -> CancellationToken {
        self.state().next.token()
    }

    /// How many reloads have been applied.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(apphost::Host::builder().reloads().count(), 0);
    /// ```
    pub fn count(&self) -> u64 {
        self.state().count
    }

    /// A typed view of section `key` that follows every applied reload:
    /// [`Configuration::watch`] on the configuration in force. Taken from
    /// [`HostBuilder::reloads`](crate::host::HostBuilder::reloads) before
    /// the host is built, it holds the section's defaults until
    /// [`build`](crate::host::HostBuilder::build) reads the host's
    /// configuration (its token is cancelled then); in `configure` under
    /// [`console::run`](crate::console::run), prefer
    /// [`Configuration::watch`] on the configuration given to you.
    ///
    /// # Errors
    ///
    /// As [`Configuration::section`].
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
    /// let builder = apphost::Host::builder();
    /// let worker = builder.reloads().watch::<Worker>("worker").unwrap();
    /// let config = ConfigOptions::default()
    ///     .env_vars([("APPHOST__WORKER__BATCH", "8")])
    ///     .load().unwrap();
    /// let _host = builder.configuration(config).build().unwrap();
    /// assert_eq!(worker.current().batch, 8);
    /// ```
    pub fn watch<T>(&self, key: &str) -> Result<Watch<T>, ConfigError>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        self.current().watch(key)
    }

    /// Applies a reload, or rejects it with nothing changed: reads `[host]`,
    /// checks the unread sections and every watch against `configuration`;
    /// only then updates `options` (keeping the fields code set), the
    /// watches and the configuration in force, and finally cancels the
    /// tokens, so their callbacks see everything new.
    pub(crate) fn apply(
        &self,
        configuration: Configuration,
        options: &Mutex<HostOptions>,
    ) -> Result<(), ConfigError> {
        let applying = self.applying.lock().unwrap_or_else(PoisonError::into_inner);
        let reloaded = configuration.host_options()?;
        let staged = self.current().stage_reload(&configuration, true)?;
        let code_set = self.state().code_set;
        {
            let mut options = options.lock().unwrap_or_else(PoisonError::into_inner);
            *options = code_set.merge(&options, &reloaded);
            // The verdict is an event (`Host::reload`); this is the detail.
            tracing::debug!(target: "apphost::host", options = ?*options, "host options after the reload");
        }
        let changed = staged.commit(&configuration);
        let previous = {
            let mut state = self.state();
            state.configuration = Arc::new(configuration);
            state.count += 1;
            std::mem::take(&mut state.next)
        };
        // Callbacks run outside our locks: they may read `current()`, or
        // even reload again.
        drop(applying);
        previous.cancel();
        for source in changed {
            source.cancel();
        }
        Ok(())
    }

    /// The builder's: records the fields code set and, when the host was
    /// given a configuration, makes it current without counting a reload
    /// (watches taken before get its values).
    pub(crate) fn set_initial(
        &self,
        configuration: Option<Configuration>,
        code_set: CodeSet,
    ) -> Result<(), ConfigError> {
        let applying = self.applying.lock().unwrap_or_else(PoisonError::into_inner);
        self.state().code_set = code_set;
        let Some(configuration) = configuration else {
            return Ok(());
        };
        let staged = self.current().stage_reload(&configuration, false)?;
        let changed = staged.commit(&configuration);
        self.state().configuration = Arc::new(configuration);
        drop(applying);
        for source in changed {
            source.cancel();
        }
        Ok(())
    }
}

impl fmt::Debug for ConfigReloads {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigReloads")
            .field("count", &self.count())
            .finish()
    }
}
