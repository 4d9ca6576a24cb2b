//! A test fixture, not a tutorial: the service that the process-level tests
//! (`tests/process_*.rs`) and the SIGTERM latency bench
//! (`benches/sigterm_latency.rs`) start, signal and watch.
//!
//! It is an ordinary `apphost::console::run` program whose services are
//! described by the `[probe]` section of its configuration (so
//! `APPHOST__PROBE__…` variables work too):
//!
//! ```toml
//! [probe]
//! # Services that print their phases, in registration order, each
//! # `name` or `name:behaviour`, where behaviour is one of
//! #   slow_start    start waits `delay`, or until its token is cancelled
//! #   fail_start    start fails
//! #   slow_stop     stop waits `delay`, or until its token is cancelled
//! #   ignore_token  stop waits `delay` and ignores its token
//! #   block         stop blocks its thread for `delay`
//! services = "A,B,C"
//! # Silent services whose start and stop return at once, registered after those.
//! trivial = 0
//! # Background services whose `execute` blocks its thread for `delay`,
//! # ignoring its token (a synchronous loop that never yields).
//! blocking_workers = 0
//! # How long the slow behaviours take.
//! delay = "30s"
//! ```
//!
//! It prints, on both stdout and stderr (ignoring write errors, so a closed
//! pipe is fine), one line per event with the prefix `probe: `:
//! `start X` / `started X` / `start-cancelled X` when `start` begins, ends or
//! gives up, `stop X` / `stopped X` / `stop-cancelled X` likewise for `stop`,
//! `hook-starting X`, `hook-started X`, `hook-stopping X` and `hook-stopped X`
//! from the lifecycle hooks,
//! `main` first thing in `main`,
//! `READY` once the host has started (from a background service, so after the
//! status messages), and `lifetime-stopping` / `lifetime-stopped` from
//! callbacks on the application lifetime. A test that sees no `probe: start`
//! line knows no service started.
//!
//! With `PROBE_RUNTIME=current_thread` it runs the host with
//! `apphost::console::run_async` on a current-thread runtime instead: there a
//! service that blocks its thread blocks the host too, which is how the tests
//! reach the third-signal exit.
//!
//! ```text
//! cargo run --example probe_service            # Ctrl+C: exit 0
//! APPHOST__PROBE__SERVICES=A:ignore_token APPHOST__HOST__SHUTDOWN_TIMEOUT=1s \
//!     cargo run --example probe_service        # Ctrl+C: exit 124 after 1 s
//! ```

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use apphost::config::{ConfigOptions, Configuration};
use apphost::host::{BackgroundService, Host, HostBuilder, HostedService};
use apphost::{CancellationRegistration, CancellationToken, OperationCanceled};

#[derive(Debug, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ProbeOptions {
    services: String,
    trivial: usize,
    blocking_workers: usize,
    #[serde(deserialize_with = "apphost::config::deserialize_duration")]
    delay: Duration,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            services: "A,B,C".to_owned(),
            trivial: 0,
            blocking_workers: 0,
            delay: Duration::from_secs(30),
        }
    }
}

/// Prints `probe: {line}` to stdout and stderr; a closed pipe is ignored.
fn mark(line: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stdout().lock(), "probe: {line}");
    let _ = writeln!(std::io::stderr().lock(), "probe: {line}");
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    Normal,
    SlowStart,
    FailStart,
    SlowStop,
    IgnoreToken,
    Block,
}

/// A service that prints its phases and misbehaves as told.
struct Recorded {
    name: String,
    behaviour: Behaviour,
    delay: Duration,
}

impl Recorded {
    /// Waits `delay`; `false` if `token` was cancelled first.
    async fn wait(&self, token: &CancellationToken) -> bool {
        token
            .run_until_cancelled(tokio::time::sleep(self.delay))
            .await
            .is_ok()
    }
}

impl HostedService for Recorded {
    async fn start(&self, token: CancellationToken) -> anyhow::Result<()> {
        mark(format_args!("start {}", self.name));
        let finished = match self.behaviour {
            Behaviour::SlowStart => self.wait(&token).await,
            Behaviour::FailStart => anyhow::bail!("{} was told to fail", self.name),
            _ => true,
        };
        if !finished {
            mark(format_args!("start-cancelled {}", self.name));
            return Err(OperationCanceled::new(token).into());
        }
        mark(format_args!("started {}", self.name));
        Ok(())
    }

    async fn stop(&self, token: CancellationToken) -> anyhow::Result<()> {
        mark(format_args!("stop {}", self.name));
        let finished = match self.behaviour {
            Behaviour::SlowStop => self.wait(&token).await,
            Behaviour::IgnoreToken => {
                tokio::time::sleep(self.delay).await;
                true
            }
            Behaviour::Block => {
                std::thread::sleep(self.delay);
                true
            }
            _ => true,
        };
        if !finished {
            mark(format_args!("stop-cancelled {}", self.name));
            return Err(OperationCanceled::new(token).into());
        }
        mark(format_args!("stopped {}", self.name));
        Ok(())
    }

    async fn starting(&self, _: CancellationToken) -> anyhow::Result<()> {
        mark(format_args!("hook-starting {}", self.name));
        Ok(())
    }

    async fn started(&self, _: CancellationToken) -> anyhow::Result<()> {
        mark(format_args!("hook-started {}", self.name));
        Ok(())
    }

    async fn stopping(&self, _: CancellationToken) -> anyhow::Result<()> {
        mark(format_args!("hook-stopping {}", self.name));
        Ok(())
    }

    async fn stopped(&self, _: CancellationToken) -> anyhow::Result<()> {
        mark(format_args!("hook-stopped {}", self.name));
        Ok(())
    }

    fn name(&self) -> &str {
        &self.name
    }
}

/// Starts and stops at once, silently.
struct Trivial(String);

impl HostedService for Trivial {
    async fn start(&self, _: CancellationToken) -> anyhow::Result<()> {
        Ok(())
    }

    async fn stop(&self, _: CancellationToken) -> anyhow::Result<()> {
        Ok(())
    }

    fn name(&self) -> &str {
        &self.0
    }
}

/// A background service whose `execute` blocks its thread, token or not.
struct Blocking(String, Duration);

impl BackgroundService for Blocking {
    async fn execute(&self, _: CancellationToken) -> anyhow::Result<()> {
        std::thread::sleep(self.1);
        Ok(())
    }

    fn name(&self) -> &str {
        &self.0
    }
}

/// Prints `READY` once the host has started; holds the lifetime callbacks.
struct Ready {
    _callbacks: [CancellationRegistration; 2],
}

impl BackgroundService for Ready {
    async fn execute(&self, stopping: CancellationToken) -> anyhow::Result<()> {
        mark(format_args!("READY"));
        stopping.cancelled().await;
        Ok(())
    }
}

fn configure(config: &Configuration) -> anyhow::Result<HostBuilder<'static>> {
    let options: ProbeOptions = config.section("probe")?;
    let mut builder = Host::builder();
    for spec in options
        .services
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let (name, behaviour) = spec.split_once(':').unwrap_or((spec, "normal"));
        let behaviour = match behaviour {
            "normal" => Behaviour::Normal,
            "slow_start" => Behaviour::SlowStart,
            "fail_start" => Behaviour::FailStart,
            "slow_stop" => Behaviour::SlowStop,
            "ignore_token" => Behaviour::IgnoreToken,
            "block" => Behaviour::Block,
            other => anyhow::bail!("probe.services: unknown behaviour {other:?} of {name}"),
        };
        let service = Recorded {
            name: name.to_owned(),
            behaviour,
            delay: options.delay,
        };
        builder = builder.add_hosted_service(service);
    }
    for i in 0..options.trivial {
        builder = builder.add_hosted_service(Trivial(format!("trivial-{i}")));
    }
    for i in 0..options.blocking_workers {
        builder = builder.add_background_service(Blocking(format!("blocking-{i}"), options.delay));
    }
    let lifetime = builder.lifetime();
    let callbacks = [
        lifetime
            .stopping()
            .register(|| mark(format_args!("lifetime-stopping"))),
        lifetime
            .stopped()
            .register(|| mark(format_args!("lifetime-stopped"))),
    ];
    Ok(builder.add_background_service(Ready {
        _callbacks: callbacks,
    }))
}

fn main() -> ExitCode {
    // The first thing the process does: tests that signal the set-up window
    // (before `console::run` has loaded anything) wait for this line.
    mark(format_args!("main"));
    if std::env::var("PROBE_RUNTIME").as_deref() == Ok("current_thread") {
        return current_thread();
    }
    apphost::console::run(configure)
}

/// The same host, on a current-thread runtime of the fixture's own, through
/// `run_async`.
fn current_thread() -> ExitCode {
    let config = match ConfigOptions::default().load() {
        Ok(config) => config,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "probe_service: configuration error: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    if let Ok(logging) = config.logging_options() {
        let _ = apphost::logging::init_logging(&logging);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime");
    let host = {
        let _entered = runtime.enter();
        configure(&config).and_then(|b| Ok(b.configuration(config.clone()).build()?))
    };
    match host {
        Ok(host) => runtime.block_on(apphost::console::run_async(host)),
        Err(e) => {
            let config = e.chain().any(|c| c.is::<apphost::config::ConfigError>());
            let _ = writeln!(std::io::stderr(), "probe_service: {e:#}");
            ExitCode::from(if config { 78 } else { 1 })
        }
    }
}
