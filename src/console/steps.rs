//! The steps [`run_host`](super) takes after set-up: start and stop (with
//! the drain delay), reload on SIGHUP, the report file, the exit code, and
//! .NET's status messages.

use std::fmt;
use std::io::{self, Write};
use std::time::Duration;

use super::TARGET;
use super::options::ConsoleLifetimeOptions;
use crate::cancel::{CancelReason, CancellationRegistration, CancellationToken};
use crate::config::{ConfigError, ConfigOptions};
use crate::host::{FailureKind, Host, HostError};
use crate::systemd::SystemdLifetime;

/// Writes the host's report to `path` as pretty JSON, atomically; a failure
/// is logged and changes nothing else.
pub(super) fn write_report(host: &Host, path: &std::path::Path) {
    let Some(report) = host.report() else {
        tracing::error!(target: TARGET, path = %path.display(), "the host has not stopped: no report to write");
        return;
    };
    let written = serde_json::to_vec_pretty(&report)
        .map_err(io::Error::other)
        .and_then(|mut json| {
            json.push(b'\n');
            crate::fs_safe::write_atomic(path, &json)
        });
    match written {
        Ok(()) => {
            tracing::info!(target: TARGET, path = %path.display(), exit_code = report.exit_code, "report written");
        }
        Err(error) => {
            tracing::error!(target: TARGET, path = %path.display(), %error, "cannot write the report file; the exit code is unchanged");
        }
    }
}

/// SIGHUP: re-reads the configuration and applies it, or rejects it and keeps
/// the old one; tells systemd (`Type=notify-reload`) either way.
pub(super) fn reload(host: &Host, config: &ConfigOptions, systemd: Option<&SystemdLifetime>) {
    if let Some(systemd) = systemd {
        systemd.reloading();
    }
    // `Host::reload` records its verdict as an event; a configuration that
    // does not get that far is recorded here.
    let applied = config
        .load()
        .and_then(|configuration| {
            configuration.section::<ConsoleLifetimeOptions>("console")?;
            Ok(configuration)
        })
        .inspect_err(|error| host.reload_rejected(error))
        .and_then(|configuration| host.reload(configuration));
    // The verdict is an event: the log line and systemd's READY=1 and
    // STATUS= come from it (see `host/log.rs` and `SystemdLifetime`).
    if applied.is_ok() {
        tracing::debug!(target: TARGET, sources = ?host.configuration().sources(), "configuration sources after the reload");
    }
}

/// Start, wait for a stop request, stop; the exit code.
pub(super) async fn start_and_stop(
    host: &Host,
    abandon: CancellationToken,
    drain_delay: Duration,
) -> u8 {
    let forced = abandon.clone();
    let stopping = host.lifetime().stopping();
    let start = host.start(CancellationToken::none());
    tokio::pin!(start);
    let started = tokio::select! {
        biased;
        result = &mut start => Some(result),
        () = stopping.cancelled() => None,
    };
    let (start_result, stop_result) = match started {
        Some(Ok(())) => {
            stopping.cancelled().await;
            (Ok(()), drain(host, abandon, drain_delay).await)
        }
        // A failed start has already stopped what started (the rollback);
        // `stop` returns that result.
        Some(Err(e)) => (Err(e), host.stop(abandon).await),
        None => {
            // A stop request during start: `stop` cuts the start short and
            // stops what started; the abandon token bounds that stop too.
            let stop = host.stop(abandon).await;
            (start.await, stop)
        }
    };
    let forced = forced.reason();
    match start_result {
        Ok(()) => outcome(stop_result, forced),
        Err(start) if requested_by_the_application(&start) => outcome(stop_result, forced),
        // A stop signal during start is a stop that was asked for: once what
        // had started stopped within the budget, it is a graceful stop (exit
        // 0, INFO), not a failure: systemd must not record the unit as
        // failed because `systemctl stop` came during a slow start.
        Err(start) if stop_requested_by_signal(&start) && stop_result.is_ok() => {
            tracing::info!(target: TARGET, "the start was cut short by a stop request; stopped gracefully");
            0
        }
        // The start's error lists the rollback's failures too.
        Err(start) => report(&start, "the host failed to start"),
    }
}

/// Every failure is a cancellation by a signal (a stop request through the
/// console lifetime): nothing failed, nothing timed out.
pub(super) fn stop_requested_by_signal(error: &HostError) -> bool {
    error
        .failures()
        .iter()
        .all(|f| matches!(f.kind(), FailureKind::Cancelled(CancelReason::Signal(_))))
}

/// Stops the host after the drain delay, all within the shutdown budget
/// counted from the stop request: the delay gives load balancers time to see
/// the not-ready state (the readiness file is already gone) before services
/// stop. A second signal skips the rest of the delay.
pub(super) async fn drain(
    host: &Host,
    abandon: CancellationToken,
    drain_delay: Duration,
) -> Result<(), HostError> {
    if drain_delay.is_zero() {
        return host.stop(abandon).await;
    }
    // One budget, counted once from here, by the host's stop: the delay is
    // spent from it (at most all of it), and the stop gets what is left.
    let requested = std::time::Instant::now();
    let delay = drain_delay.min(host.options().shutdown_timeout);
    tracing::info!(target: TARGET, "waiting {delay:?} for load balancers before draining");
    let _ = abandon.run_until_cancelled(tokio::time::sleep(delay)).await;
    host.stop_from(abandon, requested).await
}

/// Only cancelled, and only because the application itself asked to stop
/// (not a signal, not a timeout): what [`Host::run`] treats as no error.
pub(super) fn requested_by_the_application(error: &HostError) -> bool {
    error.failures().iter().all(|f| {
        matches!(f.kind(), FailureKind::Cancelled(reason)
            if !matches!(reason, CancelReason::Signal(_) | CancelReason::TimedOut))
    })
}

/// The exit code of a stop, and its last log line: a stop forced by a
/// second signal says so.
pub(super) fn outcome(stop: Result<(), HostError>, forced: Option<CancelReason>) -> u8 {
    match (stop, forced) {
        (Ok(()), None) => 0,
        (Ok(()), Some(reason)) => {
            tracing::warn!(target: TARGET, forced_by = %reason, "the stop was forced (the graceful stop was cut short); every service returned in time");
            0
        }
        (Err(e), None) => report(&e, "the host stopped with errors"),
        (Err(e), Some(reason)) => {
            let what = format!("the stop was forced by {reason} and the host stopped with errors");
            report(&e, &what)
        }
    }
}

pub(super) fn report(error: &HostError, what: &str) -> u8 {
    let code = error.exit_code();
    tracing::error!(target: TARGET, error = %error, exit_code = code, "{what}");
    code
}

/// Prints a configuration error as one line and returns 78.
pub(super) fn config_error(error: &ConfigError) -> u8 {
    fatal(
        format_args!("configuration error: {error}"),
        error.exit_code(),
    )
}

/// Prints `{program}: {message}` to stderr, ignoring a closed stderr.
pub(super) fn fatal(message: fmt::Arguments<'_>, code: u8) -> u8 {
    let program = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "apphost".to_owned());
    let _ = writeln!(io::stderr().lock(), "{program}: {message}");
    code
}

// ===== status messages =====

/// The registrations of the status messages; dropping it unregisters them.
pub(super) struct StatusMessages {
    _started: CancellationRegistration,
    _stopping: CancellationRegistration,
}

impl StatusMessages {
    pub(super) fn register(host: &Host) -> StatusMessages {
        let environment = host.configuration().environment().to_owned();
        let directory = match host.configuration().directory() {
            Some(dir) => std::path::absolute(dir)
                .unwrap_or_else(|_| dir.to_owned())
                .display()
                .to_string(),
            None => "(none: built-in defaults)".to_owned(),
        };
        let started = host.lifetime().started().register(move || {
            tracing::info!(target: TARGET, "Application started. Press Ctrl+C to shut down.");
            tracing::info!(target: TARGET, "Hosting environment: {environment}");
            tracing::info!(target: TARGET, "Config directory: {directory}");
        });
        let stopping = host
            .lifetime()
            .stopping()
            .register(|| tracing::info!(target: TARGET, "Application is shutting down..."));
        StatusMessages {
            _started: started,
            _stopping: stopping,
        }
    }
}
