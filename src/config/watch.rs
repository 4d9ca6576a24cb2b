//! [`Watch`]: a typed view of one section that follows reloads, and the
//! [`Stage`] through which a reload validates it before applying anything.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use serde::de::DeserializeOwned;

use super::{ConfigError, Configuration};
use crate::cancel::{CancellationToken, CancellationTokenSource};

/// The value of one section, kept current across reloads; from
/// [`Configuration::watch`] or
/// [`ConfigReloads::watch`](crate::host::ConfigReloads::watch). Clones
/// share the same value.
///
/// - [`current`](Self::current) is the value in force;
/// - [`token`](Self::token) is cancelled once a reload has given the
///   section a new value (then ask for a new token): register a callback on
///   it, or await it, to act on the change.
///
/// A reload is applied as a whole: the new values of every watched section
/// are read and checked first, and if any is invalid no watch changes.
///
/// # Examples
///
/// ```
/// use apphost::config::ConfigOptions;
/// use apphost::Host;
///
/// #[derive(serde::Deserialize, Default)]
/// #[serde(default, deny_unknown_fields)]
/// struct Worker { batch: u32 }
///
/// let config = ConfigOptions::default()
///     .env_vars([("APPHOST__WORKER__BATCH", "1")])
///     .load().unwrap();
/// let worker = config.watch::<Worker>("worker").unwrap();
/// let host = Host::builder().configuration(config).build().unwrap();
///
/// let changed = worker.token();
/// let reloaded = ConfigOptions::default()
///     .env_vars([("APPHOST__WORKER__BATCH", "2")])
///     .load().unwrap();
/// host.reload(reloaded).unwrap();
/// assert!(changed.is_cancelled());
/// assert_eq!(worker.current().batch, 2);
/// ```
pub struct Watch<T> {
    shared: Arc<Shared<T>>,
}

struct Shared<T> {
    section: String,
    state: Mutex<State<T>>,
}

struct State<T> {
    value: Arc<T>,
    /// Cancelled when the next value is applied.
    next: CancellationTokenSource,
    changes: u64,
}

impl<T> Shared<T> {
    fn state(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One step of a reload: read and check a watched section in the new
/// configuration, and return what applies it (which hands back the token
/// source to cancel once everything is applied).
pub(crate) trait Stage: Send + Sync {
    fn stage(self: Arc<Self>, next: &Configuration) -> Result<Commit, ConfigError>;
}

/// Applies one staged value; returns the source to cancel afterwards.
pub(crate) type Commit = Box<dyn FnOnce() -> CancellationTokenSource + Send>;

impl<T: DeserializeOwned + Send + Sync + 'static> Stage for Shared<T> {
    fn stage(self: Arc<Self>, next: &Configuration) -> Result<Commit, ConfigError> {
        let value: T = next.section(&self.section)?;
        Ok(Box::new(move || {
            let mut state = self.state();
            state.value = Arc::new(value);
            state.changes += 1;
            std::mem::take(&mut state.next)
        }))
    }
}

impl<T: DeserializeOwned + Send + Sync + 'static> Watch<T> {
    pub(crate) fn new(section: &str, value: T) -> Self {
        Watch {
            shared: Arc::new(Shared {
                section: section.to_owned(),
                state: Mutex::new(State {
                    value: Arc::new(value),
                    next: CancellationTokenSource::new(),
                    changes: 0,
                }),
            }),
        }
    }

    /// The handle a reload uses; weak, so a dropped watch is not read again.
    pub(crate) fn stage(&self) -> Weak<dyn Stage> {
        let shared: Arc<dyn Stage> = self.shared.clone();
        Arc::downgrade(&shared)
    }
}

impl<T> Watch<T> {
    /// The value in force.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[derive(serde::Deserialize, Default)] #[serde(default)] struct Echo { address: String }
    /// let config = apphost::config::ConfigOptions::default()
    ///     .env_vars([("APPHOST__ECHO__ADDRESS", "[::1]:7")])
    ///     .load().unwrap();
    /// let echo = config.watch::<Echo>("echo").unwrap();
    /// assert_eq!(echo.current().address, "[::1]:7");
    /// ```
    pub fn current(&self) -> Arc<T> {
        self.shared.state().value.clone()
    }

    /// A token cancelled once a reload has applied a new value of the
    /// section (every applied reload counts, even one that left the section
    /// as it was); a rejected reload does not cancel it. The value is
    /// already current when the token's callbacks run.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[derive(serde::Deserialize, Default)] #[serde(default)] struct Echo { address: String }
    /// let config = apphost::config::Configuration::empty();
    /// let echo = config.watch::<Echo>("echo").unwrap();
    /// assert!(!echo.token().is_cancelled());
    /// ```
    pub fn token(&self) -> CancellationToken {
        self.shared.state().next.token()
    }

    /// How many reloads have applied a value to this watch.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[derive(serde::Deserialize, Default)] #[serde(default)] struct Echo { address: String }
    /// let echo = apphost::config::Configuration::empty().watch::<Echo>("echo").unwrap();
    /// assert_eq!(echo.changes(), 0);
    /// ```
    pub fn changes(&self) -> u64 {
        self.shared.state().changes
    }

    /// The watched section's key.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[derive(serde::Deserialize, Default)] #[serde(default)] struct Echo { address: String }
    /// let echo = apphost::config::Configuration::empty().watch::<Echo>("echo").unwrap();
    /// assert_eq!(echo.section(), "echo");
    /// ```
    pub fn section(&self) -> &str {
        &self.shared.section
    }
}

impl<T> Clone for Watch<T> {
    fn clone(&self) -> Self {
        Watch {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Watch<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.state();
        f.debug_struct("Watch")
            .field("section", &self.shared.section)
            .field("value", &state.value)
            .field("changes", &state.changes)
            .finish()
    }
}
