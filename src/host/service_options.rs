//! [`ServiceOptions`]: what one service depends on, and its own budgets.

use std::time::Duration;

use serde::Deserialize;

use crate::config::duration::deserialize_optional_duration;

/// Options of one service: the services it depends on and its own start and
/// stop budgets.
///
/// Set in code with
/// [`HostBuilder::configure_service`](crate::host::HostBuilder::configure_service),
/// or in configuration under `[services.<name>]` (values set in code win):
///
/// | key | type | default |
/// |---|---|---|
/// | `depends_on` | list of service names | `[]` |
/// | `start_timeout` | duration, or `"none"` | none: only `startup_timeout` bounds it |
/// | `stop_timeout` | duration, or `"none"` | none: only `shutdown_timeout` bounds it |
///
/// - **Order**: within each phase, a service's call begins only after the
///   same phase's calls of every service it depends on have finished (start
///   phases), or of every service that depends on it (stop phases).
/// - **`start_timeout`** bounds the time spent in the service's own
///   `starting` + `start` + `started` calls, together; **`stop_timeout`** its
///   `stopping` + `stop` + `stopped` calls, or for a background service the
///   wait for `execute` to return. At the service's deadline its token is
///   cancelled with [`CancelReason::TimedOut`](crate::CancelReason::TimedOut),
///   it gets the grace period, then it is abandoned. The host-wide budget
///   still caps everything.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use apphost::host::ServiceOptions;
///
/// let options: ServiceOptions = toml::from_str(r#"
///     depends_on = ["db"]
///     stop_timeout = "3s"
/// "#).unwrap();
/// assert_eq!(options.depends_on, ["db"]);
/// assert_eq!(options.stop_timeout, Some(Duration::from_secs(3)));
/// assert_eq!(options.start_timeout, None);
/// assert_eq!(ServiceOptions::default().depends_on.len(), 0);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceOptions {
    /// Names of the services this one depends on: they start before it and
    /// stop after it.
    pub depends_on: Vec<String>,
    /// This service's own start budget (its `starting`, `start` and `started`
    /// calls together).
    #[serde(deserialize_with = "deserialize_optional_duration")]
    pub start_timeout: Option<Duration>,
    /// This service's own stop budget (its `stopping`, `stop` and `stopped`
    /// calls together, or the wait for a background service's `execute`).
    #[serde(deserialize_with = "deserialize_optional_duration")]
    pub stop_timeout: Option<Duration>,
}
