//! [`HostOptions`]: the knobs of the host's start and stop.

use std::time::Duration;

/// What the host does when a background service's `execute` fails or panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackgroundServiceExceptionBehavior {
    /// Log the failure, request a stop of the host, and report the failure from `run`.
    #[default]
    StopHost,
    /// Log the failure and keep the host running.
    Ignore,
}

/// Options of the host's start and stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostOptions {
    /// The budget for the whole stop sequence. Default 5 s.
    pub shutdown_timeout: Duration,
    /// The budget for the whole start sequence; `None` means no limit. Default `None`.
    pub startup_timeout: Option<Duration>,
    /// Start services concurrently within each start phase. Default false.
    pub services_start_concurrently: bool,
    /// Stop services concurrently within each stop phase. Default false.
    pub services_stop_concurrently: bool,
    /// What a failing background service does to the host. Default `StopHost`.
    pub background_service_exception_behavior: BackgroundServiceExceptionBehavior,
}

impl Default for HostOptions {
    fn default() -> Self {
        HostOptions {
            shutdown_timeout: Duration::from_secs(5),
            startup_timeout: None,
            services_start_concurrently: false,
            services_stop_concurrently: false,
            background_service_exception_behavior: BackgroundServiceExceptionBehavior::StopHost,
        }
    }
}
