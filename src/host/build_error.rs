//! Why [`HostBuilder::build`](crate::host::HostBuilder::build) refused to
//! build: [`BuildError`].

use std::sync::Arc;

use crate::config::ConfigError;

/// Why [`HostBuilder::build`](crate::host::HostBuilder::build) refused to build.
///
/// # Examples
///
/// ```
/// use apphost::CancellationToken;
/// use apphost::host::{BuildError, Host, HostedService};
///
/// struct Web;
/// impl HostedService for Web {
///     async fn start(&self, _: CancellationToken) -> anyhow::Result<()> { Ok(()) }
///     async fn stop(&self, _: CancellationToken) -> anyhow::Result<()> { Ok(()) }
/// }
///
/// let err = Host::builder().add_hosted_service(Web).add_hosted_service(Web).build().unwrap_err();
/// assert!(matches!(err, BuildError::DuplicateName(ref name) if &**name == "Web"));
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// Two services have the same [`name`](crate::host::HostedService::name). Names
    /// identify services in logs and errors, so each must be unique: give the
    /// second instance of a type its own name.
    #[error("two services are named `{0}`; override `name()` to tell them apart")]
    DuplicateName(Arc<str>),
    /// A service's name is empty.
    #[error("a service has an empty name")]
    EmptyName,
    /// The `[host]` section of the configuration given to
    /// [`HostBuilder::configuration`](crate::host::HostBuilder::configuration)
    /// is bad; the message is the [`ConfigError`]'s.
    #[error(transparent)]
    Config(ConfigError),
    /// A service depends on a service that is not registered.
    #[error("service `{service}` depends on `{dependency}`, which is not registered{}", suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
    UnknownDependency {
        /// The service whose `depends_on` names it.
        service: Arc<str>,
        /// The unknown name.
        dependency: Arc<str>,
        /// The nearest registered name, if one is close.
        suggestion: Option<Arc<str>>,
    },
    /// A service depends on itself.
    #[error("service `{0}` depends on itself")]
    SelfDependency(Arc<str>),
    /// Services depend on each other in a cycle; the names go round it, the
    /// first repeated at the end.
    #[error("services depend on each other in a cycle: {}", .0.join(" → "))]
    Cycle(Vec<Arc<str>>),
    /// A `[services.<name>]` section of the configuration (or a
    /// [`configure_service`](crate::host::HostBuilder::configure_service)
    /// call) names no registered service.
    #[error("{origin} configures service `{name}`, which is not registered{}", suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
    UnknownService {
        /// Where it was named: `[services.<name>]` or `configure_service`.
        origin: &'static str,
        /// The unknown name.
        name: Arc<str>,
        /// The nearest registered name, if one is close.
        suggestion: Option<Arc<str>>,
    },
    /// The per-service budgets that must run one after another add up to
    /// more than the host-wide budget, so the plan cannot be honoured.
    #[error("the {per_service} of {} must run one after another and add up to {total:?}, more than {option} = {budget:?}", .chain.join(" → "))]
    BudgetExceeded {
        /// `stop_timeout` or `start_timeout`.
        per_service: &'static str,
        /// `shutdown_timeout` or `startup_timeout`.
        option: &'static str,
        /// The services whose budgets add up, in order.
        chain: Vec<Arc<str>>,
        /// Their sum.
        total: std::time::Duration,
        /// The host-wide budget.
        budget: std::time::Duration,
    },
}

impl BuildError {
    /// The process exit code this error suggests: 78 ([`ConfigError::EXIT_CODE`])
    /// for [`Config`](Self::Config), 1 otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// use apphost::config::ConfigOptions;
    /// use apphost::host::BuildError;
    ///
    /// let err = ConfigOptions::default()
    ///     .env_vars([("APPHOST__HOST__SHUTDOWN_TIMEOUT", "soon")])
    ///     .register(apphost::HostOptions::section())
    ///     .load()
    ///     .unwrap_err();
    /// // `load` checks the registered `[host]`; a builder given a bad one says the same.
    /// assert_eq!(BuildError::Config(err.clone()).exit_code(), 78);
    /// assert_eq!(BuildError::Config(err.clone()).to_string(), err.to_string());
    /// assert_eq!(BuildError::EmptyName.exit_code(), 1);
    /// ```
    pub fn exit_code(&self) -> u8 {
        match self {
            BuildError::Config(e) => e.exit_code(),
            _ => 1,
        }
    }
}
