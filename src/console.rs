//! Running a host as a console process: the three-line `main`.
//!
//! [`run`] does everything a service process needs between `main` and the
//! host, in this order, and returns the process's [`ExitCode`]:
//!
//! 1. loads the configuration ([`ConfigOptions::default`]: `./config` or
//!    `APPHOST_CONFIG_DIR`, the environment from `APPHOST_ENVIRONMENT`,
//!    `APPHOST__SECTION__KEY` variables), with `[host]`, `[logging]` and
//!    `[console]` [registered](ConfigOptions::register) so each layer is
//!    checked;
//! 2. sets up logging from `[logging]` (`RUST_LOG` overrides it; skipped if
//!    the application already installed a `tracing` subscriber);
//! 3. reads `[console]` ([`ConsoleLifetimeOptions`]);
//! 4. builds a multi-thread tokio runtime and, inside it, calls your
//!    `configure` closure with the [`Configuration`], so services can read
//!    their own sections, and builds the host with that configuration
//!    (`[host]` → [`HostOptions`](crate::HostOptions); values set in code win);
//!    then checks that every top-level section was read by some part of the
//!    program ([`Configuration::check_unread`]: a misspelled `[hosts]` or
//!    `APPHOST__WORKERS__BATCH` exits 78 naming the nearest known section;
//!    opt out with [`ConfigOptions::allow_unread_sections`]);
//! 5. installs the [`ConsoleLifetime`] (SIGINT, SIGTERM, SIGQUIT stop
//!    gracefully, a second signal cuts the stop short, a third exits, SIGHUP
//!    reloads; see [`crate::signal`]); when `NOTIFY_SOCKET` is set, the
//!    [`SystemdLifetime`] (readiness, status, watchdog, reload; see
//!    [`crate::systemd`]); the [`ReadinessFile`] if
//!    `[console] readiness_file` is set;
//! 6. starts the host, waits for a stop request, waits
//!    `[console] drain_delay`, stops it (the second signal's token is linked
//!    into the stop). The shutdown budget is counted once, from the stop
//!    request: the drain delay is spent from it, and the host's stop gets
//!    what is left. When `host.report_file` is set, it then writes the
//!    [`HostReport`](crate::host::HostReport) there as pretty JSON,
//!    atomically, whatever the outcome (a failure to write is logged and
//!    does not change the exit code);
//! 7. shuts the runtime down, waiting at most
//!    [`ConsoleOptions::runtime_shutdown_timeout`] for tasks the host
//!    abandoned (not at all after a stop that ran out of budget, exit 124),
//!    so a service that blocks its thread cannot hold the process open
//!    after the host has stopped.
//!
//! On SIGHUP the configuration is loaded again from the same sources and
//! applied with [`Host::reload`]: new `[host]` options apply from the next
//! sequence on, services learn of it through [`Host::reloads`] and their
//! [watched](Configuration::watch) sections. The reload is validated as a
//! whole first (`[host]`, `[console]`, every watched section, no new
//! section nobody reads): if anything is invalid, nothing changes, one
//! ERROR log line names the source and key, the old configuration stays in
//! force and the service keeps running. Under systemd the STATUS= line says
//! "reload rejected", but `systemctl reload` still completes (READY=1 is
//! sent either way; systemd has no "reload failed" message), so check the
//! status or the log.
//!
//! Any configuration error (steps 1–4) is printed to stderr as one line naming
//! the source (file or variable), the key and what was expected, and the
//! process exits with 78 (`EX_CONFIG`) **before any service starts**.
//!
//! # Status messages
//!
//! As .NET's `ConsoleLifetime`, at INFO with target `apphost::lifetime`:
//! when the host has started, "Application started. Press Ctrl+C to shut
//! down.", "Hosting environment: {environment}" and "Config directory:
//! {directory}"; when it begins to stop, "Application is shutting down...".
//! They are registered before the host starts, so (callbacks run most recent
//! first) they come after the callbacks that services register. Silence them
//! with `[console] suppress_status_messages = true` or
//! [`ConsoleOptions::suppress_status_messages`].
//!
//! # Exit codes
//!
//! | outcome | code | log |
//! |---|---|---|
//! | graceful stop: a stop request (signal, `stop_application`) and a stop that completed within the budget | 0 | INFO |
//! | the same when the stop signal came during start: the start is cut short, what started stops within the budget | 0 | INFO "the start was cut short by a stop request; stopped gracefully" |
//! | configuration error (file, variable, `[host]`, `[logging]`, `[console]`, `[services.<name>]`, a service's section, a section nobody reads) | 78 | one line on stderr |
//! | failed start, failed or timed-out stop, background failure under `StopHost` | [`HostError::exit_code`]: 1, or 124 (timed out) | ERROR |
//! | a start cut short by signal *n* whose stop then failed or was cut short too | [`HostError::exit_code`]: 1, 124 or 128 + *n* | ERROR |
//! | any other error before the host started (your `configure` failed, two services share a name, no runtime) | 1 | one line on stderr |
//! | third stop signal *n* | 128 + *n*, at once; no report file is written | ERROR |
//!
//! The signal handlers are installed first thing in [`run`], before the
//! configuration is loaded: a SIGHUP during set-up never kills the process,
//! and a stop signal during set-up is honoured (as a stop during start) once
//! the host exists.
//!
//! Logs go to stderr through a writer that ignores write errors, and status
//! messages go through `tracing`, so a closed stdout or stderr (`| head`)
//! never panics the process.
//!
//! # Examples
//!
//! ```no_run
//! use apphost::CancellationToken;
//! use apphost::host::{BackgroundService, Host};
//!
//! #[derive(serde::Deserialize, Default)]
//! #[serde(default)]
//! struct Settings { greeting: String }
//!
//! struct Greeter(Settings);
//! impl BackgroundService for Greeter {
//!     async fn execute(&self, stopping: CancellationToken) -> anyhow::Result<()> {
//!         tracing::info!("{}", self.0.greeting);
//!         stopping.cancelled().await;
//!         Ok(())
//!     }
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     apphost::console::run(|config| {
//!         Ok(Host::builder().add_background_service(Greeter(config.section("greeter")?)))
//!     })
//! }
//! ```

use std::process::ExitCode;

use crate::config::{ConfigError, Configuration};
use crate::host::{BuildError, Host, HostBuilder};
use crate::readiness::ReadinessFile;
use crate::signal::{CaughtSignals, ConsoleLifetime};
use crate::systemd::{SystemdLifetime, SystemdNotifier, Watchdog};

#[cfg(doc)]
use crate::config::ConfigOptions;
#[cfg(doc)]
use crate::host::HostError;

/// The log target of the status messages (.NET's `Microsoft.Hosting.Lifetime`).
const TARGET: &str = "apphost::lifetime";

mod options;
mod steps;

use options::registered;
pub use options::{ConsoleLifetimeOptions, ConsoleOptions};
use steps::{StatusMessages, config_error, fatal, reload, start_and_stop, write_report};

/// Runs a service process to completion and returns its exit code: loads the
/// configuration, sets up logging, calls `configure` to get the host's
/// builder, then starts the host, waits for a stop signal and stops it. See
/// the [module docs](self) for every step and the exit codes.
///
/// `configure` runs inside the tokio runtime (so it may create tokio timers
/// or sockets) and before any service starts. Return an error from it (`?` on
/// [`Configuration::section`] works) to stop there: a [`ConfigError`]
/// anywhere in its chain exits with 78, anything else with 1.
///
/// # Examples
///
/// ```no_run
/// use apphost::host::Host;
///
/// fn main() -> std::process::ExitCode {
///     apphost::console::run(|_config| Ok(Host::builder()))
/// }
/// ```
pub fn run<'a, F>(configure: F) -> ExitCode
where
    F: FnOnce(&Configuration) -> anyhow::Result<HostBuilder<'a>>,
{
    run_with(ConsoleOptions::default(), configure)
}

/// [`run`] with [`ConsoleOptions`].
///
/// # Examples
///
/// ```no_run
/// use apphost::console::{run_with, ConsoleOptions};
/// use apphost::host::Host;
///
/// fn main() -> std::process::ExitCode {
///     run_with(ConsoleOptions::default().suppress_status_messages(true), |_config| {
///         Ok(Host::builder())
///     })
/// }
/// ```
pub fn run_with<'a, F>(options: ConsoleOptions, configure: F) -> ExitCode
where
    F: FnOnce(&Configuration) -> anyhow::Result<HostBuilder<'a>>,
{
    ExitCode::from(run_code(options, configure))
}

fn run_code<'a, F>(mut options: ConsoleOptions, configure: F) -> u8
where
    F: FnOnce(&Configuration) -> anyhow::Result<HostBuilder<'a>>,
{
    // First thing, before anything that takes time: with the default
    // dispositions a SIGHUP in the set-up window (tens of milliseconds of
    // configuration, logging and runtime) would kill the process with 129,
    // and a SIGTERM would skip the graceful stop. Caught now, they are acted
    // on once the host exists.
    let caught = match CaughtSignals::catch() {
        Ok(caught) => caught,
        Err(e) => return fatal(format_args!("cannot install the signal handlers: {e}"), 1),
    };
    options.config = registered(std::mem::take(&mut options.config));
    let config = match options.config.load() {
        Ok(config) => config,
        Err(e) => return config_error(&e),
    };
    if options.init_logging {
        let logging = config
            .logging_options()
            .and_then(|o| crate::logging::init_logging(&o));
        if let Err(e) = logging {
            return config_error(&e);
        }
    }
    match config.section::<ConsoleLifetimeOptions>("console") {
        Ok(console) => options.console = Some(console),
        Err(e) => return config_error(&e),
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fatal(format_args!("cannot start the tokio runtime: {e}"), 1),
    };
    let built = {
        let _entered = runtime.enter();
        match configure(&config) {
            Ok(builder) => builder
                .configuration(config.clone())
                .build()
                .map_err(Setup::Build),
            Err(e) => Err(Setup::Configure(e)),
        }
    };
    let host = match built {
        Ok(host) => host,
        Err(Setup::Build(BuildError::Config(e))) => return config_error(&e),
        Err(Setup::Build(e)) => {
            return fatal(format_args!("cannot build the host: {e}"), e.exit_code());
        }
        Err(Setup::Configure(e)) => {
            // `{:#}` prints the whole chain on one line; a bare ConfigError
            // prints as `config_error` would.
            return if e.chain().any(|c| c.is::<ConfigError>()) {
                fatal(
                    format_args!("configuration error: {e:#}"),
                    ConfigError::EXIT_CODE,
                )
            } else {
                fatal(format_args!("cannot set up the host: {e:#}"), 1)
            };
        }
    };

    let shutdown_timeout = options.runtime_shutdown_timeout;
    let code = runtime.block_on(run_host(options, host, Some(caught)));
    // Tasks the host abandoned (a call blocking its thread) must not keep
    // the process alive: wait a little, then leave them behind. After a stop
    // that ran out of budget (124) the host has already given up on what
    // still runs: exit at once, so the exit stays within the budget.
    tracing::debug!(target: TARGET, exit_code = code, "shutting the runtime down");
    if code == 124 {
        runtime.shutdown_background();
    } else {
        runtime.shutdown_timeout(shutdown_timeout);
    }
    tracing::debug!(target: TARGET, exit_code = code, "runtime shut down; exiting");
    code
}

enum Setup {
    Build(BuildError),
    Configure(anyhow::Error),
}

/// Runs an already-built host as a console process on the caller's runtime:
/// installs the [`ConsoleLifetime`], logs the status messages, starts the
/// host, waits for a stop request and stops it. Returns the exit code as
/// [`run`] does (0 after a graceful stop).
///
/// It does not load configuration or set up logging: build the host with
/// [`HostBuilder::configuration`] to have `[console]` read from it, and call
/// [`init_logging`](crate::logging::init_logging) yourself. Before the host
/// starts it calls [`Configuration::check_unread`] on the host's
/// configuration, as [`run`] does: read (or register) every section first,
/// or load with [`ConfigOptions::allow_unread_sections`]. Needs a
/// multi-thread runtime for the host's guarantees against services that block
/// their thread (see [`crate::host`]).
///
/// # A service that blocks its thread, and `#[tokio::main]`
///
/// The host abandons a stop that blocks its thread past the budget, and
/// `run_async` returns on time — but the thread is still blocked, and
/// dropping a tokio runtime waits for all its threads. At the end of a
/// `#[tokio::main]` function the runtime is dropped, so the process exits
/// only when that thread finishes (seconds later, or never). [`run`] avoids
/// this by shutting its runtime down with a bound
/// ([`ConsoleOptions::runtime_shutdown_timeout`]). With `run_async`, build
/// the runtime yourself and do the same:
///
/// ```no_run
/// use std::time::Duration;
/// use apphost::host::Host;
///
/// fn main() -> std::process::ExitCode {
///     let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
///     let code = runtime.block_on(async {
///         let host = Host::builder().build().expect("no duplicate names");
///         apphost::console::run_async(host).await
///     });
///     // Not `drop(runtime)`: that waits for threads the host abandoned.
///     runtime.shutdown_timeout(Duration::from_millis(100));
///     code
/// }
/// ```
///
/// (`tests/run_async_blocking.rs` checks this pattern with a stop blocked
/// for 10 s.) `#[tokio::main]` is fine when no service blocks its thread.
///
/// `run_async` installs the signal handlers when it is called: a SIGHUP
/// before that, while `main` sets things up, has its default disposition
/// and kills the process. [`run`] installs them first thing.
///
/// # Examples
///
/// ```no_run
/// use apphost::host::Host;
///
/// #[tokio::main]
/// async fn main() -> std::process::ExitCode {
///     let host = Host::builder().build().expect("no duplicate names");
///     apphost::console::run_async(host).await
/// }
/// ```
pub async fn run_async(host: Host) -> ExitCode {
    run_async_with(ConsoleOptions::default(), host).await
}

/// [`run_async`] with [`ConsoleOptions`] (only `suppress_status_messages`
/// applies: the host is already configured and the runtime is yours).
///
/// # Examples
///
/// ```no_run
/// use apphost::console::{run_async_with, ConsoleOptions};
/// use apphost::host::Host;
///
/// #[tokio::main]
/// async fn main() -> std::process::ExitCode {
///     let host = Host::builder().build().expect("no duplicate names");
///     run_async_with(ConsoleOptions::default().suppress_status_messages(true), host).await
/// }
/// ```
pub async fn run_async_with(options: ConsoleOptions, host: Host) -> ExitCode {
    ExitCode::from(run_host(options, host, None).await)
}

async fn run_host(options: ConsoleOptions, host: Host, caught: Option<CaughtSignals>) -> u8 {
    let console_options = match &options.console {
        Some(console) => console.clone(),
        None => match host
            .configuration()
            .section::<ConsoleLifetimeOptions>("console")
        {
            Ok(console) => console,
            Err(e) => return config_error(&e),
        },
    };
    // Every section must have been read by now (`configure` returned, the
    // host is built): one nobody read is a typo that would leave defaults.
    if let Err(e) = host.configuration().check_unread() {
        return config_error(&e);
    }
    let suppress = options
        .suppress_status_messages
        .unwrap_or(console_options.suppress_status_messages);
    let installed = match caught {
        Some(caught) => ConsoleLifetime::install_caught(caught, host.lifetime().clone()),
        None => ConsoleLifetime::install(host.lifetime().clone()),
    };
    let console = match installed {
        Ok(console) => console,
        Err(e) => return fatal(format_args!("cannot install the signal handlers: {e}"), 1),
    };
    // Registered before start: callbacks run most recent first, so these
    // come after the ones services register, as in .NET.
    let _status = (!suppress).then(|| StatusMessages::register(&host));
    let systemd = options
        .systemd
        .unwrap_or(console_options.systemd_notify)
        .then(|| {
            let budget = host.share();
            SystemdLifetime::attach_with_budget(
                host.lifetime(),
                SystemdNotifier::from_env(),
                Watchdog::from_env(),
                move || budget.options().shutdown_timeout,
            )
        });
    let _readiness = console_options
        .readiness_file
        .as_ref()
        .map(|path| ReadinessFile::attach(host.lifetime(), path));
    {
        let config = registered(options.config.clone());
        let (host, systemd) = (host.share(), systemd.clone());
        console.on_reload(move || reload(&host, &config, systemd.as_ref()));
    }

    let code = start_and_stop(&host, console.abandon_token(), console_options.drain_delay).await;
    // A third signal from here on exits at once, without the file: written
    // atomically, it is then absent (or the previous run's), never partial.
    if let Some(path) = host.options().report_file {
        write_report(&host, &path);
    }
    // From here on a stop signal exits the process at once.
    drop(console);
    code
}
