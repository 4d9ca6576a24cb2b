//! The host: hosted services, lifetime tokens, ordered start and bounded stop.
//!
//! A [`Host`] starts and stops the services registered with its
//! [`HostBuilder`], exposes the application's started / stopping / stopped
//! tokens through [`ApplicationLifetime`], and guarantees that a stop ends
//! within its budget even when a service misbehaves. It models .NET's Generic
//! Host (`IHostedService`, `IHostedLifecycleService`, `BackgroundService`,
//! `IHostApplicationLifetime`, `HostOptions`).
//!
//! # Lifecycle order
//!
//! The order is the contract. Services run in the *start order*: the
//! registration order, except that a service's dependencies
//! ([`ServiceOptions::depends_on`]) are placed just before it (see
//! [`HostBuilder::configure_service`]). Stops use the reverse. With services
//! `A, B, C` registered in that order and no dependencies ("all" = every
//! service, one after the other, or when
//! [`HostOptions::services_start_concurrently`] / `services_stop_concurrently`
//! is set, every call whose predecessors in that phase have ended, all at
//! once; the next step waits for the whole phase):
//!
//! **Start** ([`Host::start`])
//! 1. `starting` hooks: A, B, C;
//! 2. `start`: A, B, C;
//! 3. `started` hooks: A, B, C;
//! 4. [`ApplicationLifetime::started`] is cancelled; start waits for its callbacks;
//! 5. background services' `execute` is launched as tasks (start never waits for it).
//!
//! **Stop** ([`Host::stop`])
//! 1. `stopping` hooks: C, B, A;
//! 2. [`ApplicationLifetime::stopping`] is cancelled; stop waits until all its
//!    callbacks have finished (when the stop follows a stop request, as in
//!    [`Host::run`], the request already cancelled it, before step 1);
//! 3. `stop`: C, B, A (a background service: its token is cancelled at its
//!    turn, then stop waits for `execute` to return);
//! 4. `stopped` hooks: C, B, A;
//! 5. [`ApplicationLifetime::stopped`] is cancelled; stop returns once its
//!    callbacks have run.
//!
//! With dependencies, in a concurrent phase a service's call begins only
//! after the same phase's calls of every service it depends on have ended
//! (start phases), or of every service that depends on it (stop phases).
//! Per service the order always holds: `stopping` → `stop` → `stopped`.
//!
//! Every stop phase runs even if an earlier one failed, and all failures are
//! collected. Only services whose `start` completed take part in the stop
//! phases; a hook left at its default is not called at all. A service whose
//! dependency failed to start is never started.
//!
//! # Tokens
//!
//! - The **start token** is linked to the caller's token, to
//!   [`ApplicationLifetime::stopping`] (a stop request during start cancels the
//!   start) and to [`HostOptions::startup_timeout`]. A start asked for with a
//!   cancelled token, or after a stop request, fails before any phase.
//! - The **stop token** is linked to the token of every caller of
//!   [`Host::stop`] (an OS-signal layer passes its "second signal" token here)
//!   and is cancelled with [`CancelReason::TimedOut`]
//!   when [`HostOptions::shutdown_timeout`] runs out.
//! - A service with its own budget ([`ServiceOptions::start_timeout`],
//!   [`ServiceOptions::stop_timeout`]) gets a token of its own, linked to the
//!   sequence's, cancelled with `TimedOut` at its own deadline.
//!
//! # Failures
//!
//! - **Start**: the first failing call (error, panic, cancellation or timeout)
//!   ends the start: no later call is made, `started()` never fires, and the
//!   host stops, in reverse order and within the shutdown budget, every service
//!   whose `start` completed; `stopping()` and `stopped()` fire. In a
//!   concurrent start, the calls still in flight have their token cancelled
//!   with a reason that names the failed service, get the grace period, and
//!   are reported as what they did (cancelled, or abandoned); those that
//!   completed are rolled back. The [`HostError`] names the service.
//! - **Cooperative cancellation**: a call that returns an error whose root
//!   cause is [`OperationCanceled`](crate::OperationCanceled) for its token is
//!   not a failure of the service's own. During start it still ends the start
//!   (reported as [`FailureKind::Cancelled`], or [`FailureKind::TimedOut`] for
//!   a timeout); during stop it is a failure only if it was for a timeout
//!   ([`FailureKind::TimedOut`]).
//! - **Panics** in any service method or lifetime callback are caught, logged
//!   with their payload, and reported as [`FailureKind::Panic`]; the host's
//!   state is never poisoned.
//! - **Background services**: see [`BackgroundService`] and
//!   [`BackgroundServiceExceptionBehavior`].
//!
//! # The stop budget is enforced
//!
//! Unlike .NET, the host never waits past the budget, whatever the services
//! do (the lifecycle engine, `src/host/engine/`, states every wait). Once
//! the deadline passes (or the caller's token is cancelled) the stop token
//! is cancelled, and calls still running get a grace period of 10 ms; a call
//! still running then is *abandoned*: its task is aborted and its drop
//! awaited for 10 ms more, so what it held is released before the services
//! it depends on stop ([`FailureKind::Abandoned`] `{ still_running: false }`).
//! A call that cannot be dropped because it blocks its thread is reported
//! `{ still_running: true }`, and the host moves on without it (that service
//! gets no later call). Calls made after the budget is spent get their first
//! poll only. A service's own `stop_timeout` works the same way at its own
//! deadline.
//!
//! The deadline is also kept by a thread of the host's own (the *budget
//! keeper*), on the wall clock: if services block every worker thread of the
//! runtime, so that the host's own task cannot run, the keeper ends the stop
//! at the deadline + 40 ms: it cancels every token, fires `stopping()` and
//! `stopped()` on threads of its own, marks the host stopped and wakes the
//! callers of [`Host::stop`], reporting the calls in flight as abandoned
//! while still running. So `Host::stop` awaited from a thread that services
//! cannot block — `block_on` on the main thread, as
//! [`console::run`](crate::console::run) does — returns by
//! `shutdown_timeout` + 50 ms whatever the services do. **Awaited from a task
//! of the same runtime**, it returns then only if that task's worker is not
//! one of those blocked; and on a current-thread runtime a service that
//! blocks the thread blocks the caller too (the keeper still marks the host
//! stopped and fires `stopped()` on time).
//!
//! # Tracing
//!
//! Target `apphost::host`. One `service` span (DEBUG) per service per call,
//! with fields `service`, `phase` and `elapsed_ms`; failures are events at
//! ERROR (errors, panics) or WARN (abandoned calls), each with `service` and
//! `phase` fields of its own (the span is DEBUG, so not shown at INFO), the
//! error as its chain (`error = "connect: refused"`); `host starting`, `host
//! started`, `host stopping` and the summary `host stopped` (fields
//! `services_stopped`, `failed`, `timed_out`, `cancelled`, `elapsed_ms`) are
//! INFO events.
//!
//! # Events and the report
//!
//! Every lifecycle fact is also a [`LifecycleEvent`], received through
//! [`Host::events`] (or [`HostBuilder::events`], from the first instant);
//! a slow subscriber never slows the host, it misses events and learns how
//! many. Once the host has stopped, [`Host::report`] (and
//! [`HostError::report`]) gives a [`HostReport`] folded from the same
//! events: every service's calls with their timings and outcomes, the
//! service that held the stop's deadline, and the exit code
//! ([`HostReport::exit_code_for`]).
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use apphost::CancellationToken;
//! use apphost::host::{BackgroundService, Host, HostedService};
//!
//! struct Db;
//! impl HostedService for Db {
//!     async fn start(&self, _token: CancellationToken) -> anyhow::Result<()> { Ok(()) }
//!     async fn stop(&self, _token: CancellationToken) -> anyhow::Result<()> { Ok(()) }
//! }
//!
//! struct Worker;
//! impl BackgroundService for Worker {
//!     async fn execute(&self, stopping: CancellationToken) -> anyhow::Result<()> {
//!         stopping.cancelled().await;
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), apphost::host::HostError> {
//! let host = Host::builder()
//!     .add_hosted_service(Db)
//!     .add_background_service(Worker)
//!     .configure_options(|o| o.shutdown_timeout = Duration::from_secs(3))
//!     .build()
//!     .unwrap();
//! let lifetime = host.lifetime().clone();
//! let running = tokio::spawn(host.run());
//! // ... later, from anywhere:
//! lifetime.started().cancelled().await;
//! lifetime.stop_application();
//! running.await.unwrap()
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use crate::cancel::{CancelReason, CancellationToken};
use crate::config::{ConfigError, Configuration};

mod adapter;
mod background;
mod build_error;
mod builder;
mod engine;
mod error;
mod events;
mod graph;
mod hub;
mod inner;
mod lifetime;
mod log;
mod options;
mod panics;
mod plan;
mod recorder;
mod reload;
mod report;
mod service;
mod service_options;
mod subscription;

pub use build_error::BuildError;
pub use builder::HostBuilder;
pub use error::{FailureKind, HostError, LifecyclePhase, ServiceFailure};
pub use events::{BudgetOwner, Escalation, LifecycleEvent, Sequence};
pub use lifetime::{ApplicationLifetime, HostState};
pub use options::{BackgroundServiceExceptionBehavior, HostOptions};
pub use panics::CaughtPanic;
pub use reload::ConfigReloads;
pub use report::{
    Budgets, CallOutcome, CallReport, FailureReport, HostReport, Reason, RunOutcome, ServiceKind,
    ServiceReport,
};
pub use service::{BackgroundService, HostedService};
pub use service_options::ServiceOptions;
pub use subscription::{LifecycleEvents, RecvError};

use inner::{HostInner, StartFailed};

/// A host of services: starts them in order, stops them in reverse within a
/// budget. Made by [`Host::builder`]; see the [module docs](self) for the
/// exact order and guarantees.
///
/// All of its futures are `Send` (so `tokio::spawn(host.run())` works) and
/// must be polled inside a tokio runtime: the host spawns its sequences and
/// the service calls as tasks.
///
/// Dropping a host does not stop its hosted services (call
/// [`stop`](Self::stop)), but does cancel the tokens of its running background
/// services.
///
/// # Examples
///
/// ```
/// use apphost::CancellationToken;
/// use apphost::host::Host;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), apphost::host::HostError> {
/// let host = Host::builder().build().unwrap();
/// host.start(CancellationToken::none()).await?;
/// host.stop(CancellationToken::none()).await?;
/// # Ok(())
/// # }
/// ```
#[must_use = "a host does nothing until started"]
pub struct Host {
    inner: Arc<HostInner>,
}

impl Host {
    /// A builder with no services and default options.
    ///
    /// # Examples
    ///
    /// ```
    /// let host = apphost::host::Host::builder().build().unwrap();
    /// # drop(host);
    /// ```
    pub fn builder<'a>() -> HostBuilder<'a> {
        HostBuilder::new()
    }

    fn from_inner(inner: Arc<HostInner>) -> Self {
        Host { inner }
    }

    /// Another handle on this host, for the console runner's reload thread.
    pub(crate) fn share(&self) -> Host {
        Host {
            inner: Arc::clone(&self.inner),
        }
    }

    /// The configuration in force: the one given to
    /// [`HostBuilder::configuration`], or the last one applied by
    /// [`reload`](Self::reload); an empty one (all defaults, environment
    /// `production`) if the host was built without.
    ///
    /// # Examples
    ///
    /// ```
    /// let host = apphost::host::Host::builder().build().unwrap();
    /// assert!(host.configuration().sources().is_empty());
    /// assert_eq!(host.configuration().environment(), "production");
    /// ```
    pub fn configuration(&self) -> Arc<Configuration> {
        self.inner.reloads.current()
    }

    /// The handle through which services see the current configuration and
    /// learn of each reload (also available from
    /// [`HostBuilder::reloads`], before the host is built).
    ///
    /// # Examples
    ///
    /// ```
    /// let host = apphost::host::Host::builder().build().unwrap();
    /// assert_eq!(host.reloads().count(), 0);
    /// ```
    pub fn reloads(&self) -> ConfigReloads {
        self.inner.reloads.clone()
    }

    /// Applies a reloaded configuration (what SIGHUP does under
    /// [`console::run`](crate::console::run)): its `[host]` options are used
    /// from now on — a new `shutdown_timeout` bounds the next stop — except
    /// for values set in code with [`HostBuilder::configure_options`], which
    /// keep winning; then [`ConfigReloads::token`] is cancelled so services
    /// can re-read their sections.
    ///
    /// # Errors
    ///
    /// The configuration's `[host]` section or a [watched](crate::config::Watch)
    /// section is invalid, or it holds a section the program does not read.
    /// Nothing changes: the old configuration, options and watched values
    /// stay in force.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use apphost::config::ConfigOptions;
    ///
    /// let host = apphost::Host::builder()
    ///     .configure_options(|o| o.services_stop_concurrently = true) // set in code
    ///     .build()
    ///     .unwrap();
    /// let reloaded = ConfigOptions::default()
    ///     .env_vars([
    ///         ("APPHOST__HOST__SHUTDOWN_TIMEOUT", "20s"),
    ///         ("APPHOST__HOST__SERVICES_STOP_CONCURRENTLY", "false"),
    ///     ])
    ///     .load()
    ///     .unwrap();
    /// host.reload(reloaded).unwrap();
    /// assert_eq!(host.options().shutdown_timeout, Duration::from_secs(20));
    /// assert!(host.options().services_stop_concurrently, "code wins");
    /// ```
    pub fn reload(&self, configuration: Configuration) -> Result<(), ConfigError> {
        let applied = self.inner.reloads.apply(configuration, &self.inner.options);
        match &applied {
            Ok(()) => {
                let options = self.inner.options();
                self.inner
                    .events
                    .set_report_file(options.report_file.is_some());
                self.inner
                    .events
                    .emit_at(|at| events::LifecycleEvent::ConfigReloaded { at });
            }
            Err(error) => self.reload_rejected(error),
        }
        applied
    }

    /// Records a reload rejected before it reached [`reload`](Self::reload)
    /// (the console runner's: the files did not load).
    pub(crate) fn reload_rejected(&self, error: &dyn std::fmt::Display) {
        let error = error.to_string();
        self.inner
            .events
            .emit_at(|at| events::LifecycleEvent::ConfigReloadRejected { error, at });
    }

    /// A subscription to this host's [`LifecycleEvent`]s, from now on (use
    /// [`HostBuilder::events`] to see every event from the first). A slow
    /// subscriber never slows the host: it misses events, and learns how
    /// many ([`RecvError::Lagged`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use apphost::CancellationToken;
    /// use apphost::host::{Host, HostState, LifecycleEvent};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let host = Host::builder().build().unwrap();
    /// let mut events = host.events();
    /// host.start(CancellationToken::none()).await.unwrap();
    /// host.stop(CancellationToken::none()).await.unwrap();
    /// let mut states = Vec::new();
    /// while let Ok(Some(event)) = events.try_recv() {
    ///     if let LifecycleEvent::StateChanged { state, .. } = event {
    ///         states.push(state);
    ///     }
    /// }
    /// use HostState::*;
    /// assert_eq!(states, [Starting, Started, Stopping, Stopped]);
    /// # }
    /// ```
    pub fn events(&self) -> LifecycleEvents {
        self.inner.events.subscribe()
    }

    /// What the run did, once the host has stopped (`None` before): see
    /// [`HostReport`]. The same report as [`HostError::report`] of the
    /// error that [`run`](Self::run) returned, if it returned one. Every
    /// call is in it, timed, when the calls were recorded in detail (a
    /// subscription to the events, `host.report_file`, or
    /// [`HostBuilder::record_every_call`]); otherwise only the calls that
    /// did not complete are.
    ///
    /// # Examples
    ///
    /// ```
    /// # use apphost::CancellationToken;
    /// # use apphost::host::{Host, RunOutcome};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let host = Host::builder().build().unwrap();
    /// assert!(host.report().is_none(), "not stopped yet");
    /// host.start(CancellationToken::none()).await.unwrap();
    /// host.stop(CancellationToken::none()).await.unwrap();
    /// assert_eq!(host.report().unwrap().outcome, RunOutcome::Ok);
    /// # }
    /// ```
    pub fn report(&self) -> Option<HostReport> {
        report_of(&self.inner)
    }

    /// The application's lifetime: its tokens, stop requests, and state.
    ///
    /// # Examples
    ///
    /// ```
    /// let host = apphost::host::Host::builder().build().unwrap();
    /// let lifetime = host.lifetime().clone(); // hand it to whoever may stop the app
    /// assert!(!lifetime.stopping().is_cancelled());
    /// ```
    pub fn lifetime(&self) -> &ApplicationLifetime {
        &self.inner.lifetime
    }

    /// The options in force: those the host was built with, or as changed
    /// by the last [`reload`](Self::reload). A sequence reads them when it
    /// begins.
    ///
    /// # Examples
    ///
    /// ```
    /// let host = apphost::host::Host::builder().build().unwrap();
    /// assert_eq!(host.options().shutdown_timeout, std::time::Duration::from_secs(5));
    /// ```
    pub fn options(&self) -> HostOptions {
        self.inner.options()
    }

    /// Starts the host: the start phases, then `started()`, then background
    /// services (see the [module docs](self)). `token` cancels the start.
    ///
    /// Start runs once: a second call waits for the first one's result and
    /// ignores its token. Start runs in a task of its own, so dropping this
    /// future does not interrupt it.
    ///
    /// # Errors
    ///
    /// If a call fails, panics, is cancelled or times out, or the host was
    /// already stopped: the [`HostError`] lists that failure, then whatever
    /// failed while the host stopped the services that had started.
    ///
    /// # Examples
    ///
    /// ```
    /// # use apphost::CancellationToken;
    /// # use apphost::host::Host;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let host = Host::builder().build().unwrap();
    /// let cancelled = CancellationToken::none(); // or a token of yours
    /// host.start(cancelled).await.unwrap();
    /// assert!(host.lifetime().started().is_cancelled());
    /// # }
    /// ```
    pub fn start(
        &self,
        token: CancellationToken,
    ) -> impl Future<Output = Result<(), HostError>> + Send + 'static {
        let inner = Arc::clone(&self.inner);
        async move {
            start_shared(&inner, token)
                .await
                .map_err(|failed| attach(&inner, failed.combined()))
        }
    }

    /// Stops the host: the stop phases in reverse order, within
    /// [`HostOptions::shutdown_timeout`] (see the [module docs](self)).
    /// Cancelling `token` cuts the stop short: the stop token is cancelled
    /// with `token`'s reason, and calls get only the grace period.
    ///
    /// Stop runs once: a later call does no work again, waits for the first
    /// one and returns its result (with its token linked in while it waits).
    /// Called during start, it cancels the start, waits for it to settle, and
    /// stops what started. Called before start, it calls no service and fires
    /// `stopping()` and `stopped()`. Stop runs in a task of its own, so
    /// dropping this future does not interrupt it.
    ///
    /// # Errors
    ///
    /// Every failure of the stop phases, every background service failure
    /// recorded under `StopHost`, and every lifetime callback panic.
    ///
    /// # Examples
    ///
    /// ```
    /// # use apphost::{CancellationToken, CancellationTokenSource};
    /// # use apphost::host::Host;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let host = Host::builder().build().unwrap();
    /// host.start(CancellationToken::none()).await.unwrap();
    /// let force = CancellationTokenSource::new(); // e.g. cancelled by a second Ctrl+C
    /// host.stop(force.token()).await.unwrap();
    /// host.stop(CancellationToken::none()).await.unwrap(); // no work done twice
    /// # }
    /// ```
    pub fn stop(
        &self,
        token: CancellationToken,
    ) -> impl Future<Output = Result<(), HostError>> + Send + 'static {
        self.stop_counted_from(token, None)
    }

    /// [`stop`](Self::stop), with the budget counted from `requested` (the
    /// stop request, on the wall clock) rather than from now: the console
    /// runner's drain delay is spent from the same, single budget.
    pub(crate) fn stop_from(
        &self,
        token: CancellationToken,
        requested: std::time::Instant,
    ) -> impl Future<Output = Result<(), HostError>> + Send + 'static {
        self.stop_counted_from(token, Some(requested))
    }

    fn stop_counted_from(
        &self,
        token: CancellationToken,
        began: Option<std::time::Instant>,
    ) -> impl Future<Output = Result<(), HostError>> + Send + 'static {
        let inner = Arc::clone(&self.inner);
        async move {
            // Link the caller's token for as long as the caller waits. The
            // callback holds a clone of `token` to read its reason; the cycle
            // ends when the registration is dropped or the callback runs.
            let source = inner.stop_source.clone();
            let caller = token.clone();
            let link = token.register(move || {
                source.cancel_with(caller.reason().unwrap_or(CancelReason::Requested));
            });
            let result = engine::stop::once_from(&inner, began).await;
            drop(link);
            result.map_err(|e| attach(&inner, e))
        }
    }

    /// Waits until a stop is requested ([`ApplicationLifetime::stopping`] is
    /// cancelled), then [`stop`](Self::stop)s the host with no extra token.
    ///
    /// # Errors
    ///
    /// As [`stop`](Self::stop).
    ///
    /// # Examples
    ///
    /// ```
    /// # use apphost::CancellationToken;
    /// # use apphost::host::Host;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let host = Host::builder().build().unwrap();
    /// host.start(CancellationToken::none()).await.unwrap();
    /// host.lifetime().stop_application();
    /// host.wait_for_shutdown().await.unwrap();
    /// # }
    /// ```
    pub fn wait_for_shutdown(
        &self,
    ) -> impl Future<Output = Result<(), HostError>> + Send + 'static {
        let stopping = self.inner.lifetime.stopping();
        let host = Host {
            inner: Arc::clone(&self.inner),
        };
        async move {
            stopping.cancelled().await;
            host.stop(CancellationToken::none()).await
        }
    }

    /// Runs the host to completion: [`start`](Self::start), wait for a stop
    /// request, [`stop`](Self::stop).
    ///
    /// A start cut short by a stop request (say a service's `start` called
    /// [`ApplicationLifetime::stop_application`]) is not an error: `run`
    /// returns how stopping what had started went.
    ///
    /// # Errors
    ///
    /// A failed start (with the failures of the rollback), or the failures of
    /// the stop, including background services that failed under
    /// [`BackgroundServiceExceptionBehavior::StopHost`]. Use
    /// [`HostError::exit_code`] for the process's exit code.
    ///
    /// # Examples
    ///
    /// ```
    /// # use apphost::host::Host;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let host = Host::builder().build().unwrap();
    /// let lifetime = host.lifetime().clone();
    /// let running = tokio::spawn(host.run());
    /// lifetime.started().cancelled().await;
    /// lifetime.stop_application();
    /// assert!(running.await.unwrap().is_ok());
    /// # }
    /// ```
    pub async fn run(self) -> Result<(), HostError> {
        match start_shared(&self.inner, CancellationToken::none()).await {
            Ok(()) => self.wait_for_shutdown().await,
            Err(failed) => final_result(failed).map_err(|e| attach(&self.inner, e)),
        }
    }
}

/// What a run whose start failed returns: a start cut short by a stop
/// request is not an error, the rollback's result is.
fn final_result(failed: StartFailed) -> Result<(), HostError> {
    if failed.start.is_only_cancellation() {
        failed.rollback
    } else {
        Err(failed.combined())
    }
}

/// The report, once the host has stopped: of the failed start and its
/// rollback, or of the stop.
fn report_of(inner: &Arc<HostInner>) -> Option<HostReport> {
    if inner.lifetime.state() != HostState::Stopped {
        return None;
    }
    let result = match inner.start_once.peek() {
        Some(Err(failed)) => final_result(failed),
        _ => inner.stop_once.peek()?,
    };
    let failures = result.as_ref().err().map_or(&[][..], HostError::failures);
    Some(inner.events.recorder().recorder.report(inner, failures))
}

/// `error` with the report attached, if the host has stopped.
fn attach(inner: &Arc<HostInner>, error: HostError) -> HostError {
    if inner.lifetime.state() != HostState::Stopped {
        return error;
    }
    let report = inner
        .events
        .recorder()
        .recorder
        .report(inner, error.failures());
    error.with_report(Some(report))
}

/// Runs the start sequence the first time; every call gets its result.
fn start_shared(
    inner: &Arc<HostInner>,
    token: CancellationToken,
) -> impl Future<Output = Result<(), StartFailed>> + Send + 'static {
    let for_task = Arc::clone(inner);
    inner.start_once.run(
        move |publisher| {
            tokio::spawn(tokio::task::unconstrained(async move {
                let result = engine::start::run(for_task, token).await;
                inner::publish(&publisher, result);
            }));
        },
        || {
            Err(StartFailed {
                start: engine::stop::lost(),
                rollback: Ok(()),
            })
        },
    )
}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.inner.entries.iter().map(|e| &*e.name).collect();
        f.debug_struct("Host")
            .field("state", &self.inner.lifetime.state())
            .field("services", &names)
            .field("options", &self.inner.options())
            .finish()
    }
}
