//! Configuration reload: [`ConfigReloads`], the handle through which services
//! see the current configuration and learn of each reload, and the rule that
//! merges reloaded `[host]` options with values set in code.

use std::fmt;
use std::sync::{Arc, Mutex};

use super::options::HostOptions;
use crate::cancel::{CancellationToken, CancellationTokenSource};
use crate::config::Configuration;

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
/// A reload whose configuration is invalid is rejected before anything
/// changes: the token is not cancelled and `current` stays as it was.
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
}

struct State {
    configuration: Arc<Configuration>,
    /// Cancelled at the next reload.
    next: CancellationTokenSource,
    count: u64,
}

impl ConfigReloads {
    pub(crate) fn new(configuration: Configuration) -> Self {
        ConfigReloads {
            inner: Arc::new(Mutex::new(State {
                configuration: Arc::new(configuration),
                next: CancellationTokenSource::new(),
                count: 0,
            })),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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

    /// Makes `configuration` current, then cancels the previous token, so
    /// its callbacks already see the new configuration.
    pub(crate) fn publish(&self, configuration: Configuration) {
        let previous = {
            let mut state = self.state();
            state.configuration = Arc::new(configuration);
            state.count += 1;
            std::mem::take(&mut state.next)
        };
        // Callbacks run outside our lock: they may read `current()`.
        previous.cancel();
    }

    /// Replaces the configuration without counting a reload (the builder's).
    pub(crate) fn set_initial(&self, configuration: Configuration) {
        self.state().configuration = Arc::new(configuration);
    }
}

impl fmt::Debug for ConfigReloads {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigReloads")
            .field("count", &self.count())
            .finish()
    }
}

/// The options after a reload: each field takes the reloaded configuration's
/// value, unless code had set it (it differs between what the configuration
/// gave, `from_config`, and what is in force, `current`): values set in code
/// keep winning over configuration, as at build time.
pub(crate) fn merge_reloaded(
    current: &HostOptions,
    from_config: &HostOptions,
    reloaded: &HostOptions,
) -> HostOptions {
    fn pick<T: PartialEq + Clone>(current: &T, from_config: &T, reloaded: &T) -> T {
        if current == from_config {
            reloaded.clone()
        } else {
            current.clone()
        }
    }
    HostOptions {
        shutdown_timeout: pick(
            &current.shutdown_timeout,
            &from_config.shutdown_timeout,
            &reloaded.shutdown_timeout,
        ),
        startup_timeout: pick(
            &current.startup_timeout,
            &from_config.startup_timeout,
            &reloaded.startup_timeout,
        ),
        services_start_concurrently: pick(
            &current.services_start_concurrently,
            &from_config.services_start_concurrently,
            &reloaded.services_start_concurrently,
        ),
        services_stop_concurrently: pick(
            &current.services_stop_concurrently,
            &from_config.services_stop_concurrently,
            &reloaded.services_stop_concurrently,
        ),
        background_service_exception_behavior: pick(
            &current.background_service_exception_behavior,
            &from_config.background_service_exception_behavior,
            &reloaded.background_service_exception_behavior,
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn code_values_survive_a_reload_and_config_values_follow_it() {
        let from_config = HostOptions::default();
        let current = HostOptions {
            services_stop_concurrently: true, // set in code
            ..HostOptions::default()
        };
        let reloaded = HostOptions {
            shutdown_timeout: Duration::from_secs(30),
            services_stop_concurrently: false,
            ..HostOptions::default()
        };
        let merged = merge_reloaded(&current, &from_config, &reloaded);
        assert_eq!(merged.shutdown_timeout, Duration::from_secs(30));
        assert!(merged.services_stop_concurrently);
    }
}
