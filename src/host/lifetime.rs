//! [`ApplicationLifetime`]: the application's started / stopping / stopped
//! tokens, the stop request, and the host's [`HostState`].

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::error::{FailureKind, LifecyclePhase, ServiceFailure};
use super::events::LifecycleEvent;
use super::hub::Hub;
use super::inner::lock;
use super::panics::CaughtPanic;
use super::report::CallOutcome;
use crate::cancel::{CancelReason, CancellationToken, CancellationTokenSource};

/// Where the host is in its life. Read it with [`ApplicationLifetime::state`].
///
/// The state only moves forward: `NotStarted → Starting → Started → Stopping →
/// Stopped`, skipping `Starting`/`Started` when the host is stopped before it
/// started, and skipping `Started` when start fails (the host then goes
/// straight to `Stopping` to stop what did start).
///
/// # Examples
///
/// ```
/// use apphost::host::{Host, HostState};
///
/// let host = Host::builder().build().unwrap();
/// assert_eq!(host.lifetime().state(), HostState::NotStarted);
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HostState {
    /// `start` has not been called.
    NotStarted,
    /// The start phases are running.
    Starting,
    /// Every service started and `started()` fired.
    Started,
    /// The stop phases are running.
    Stopping,
    /// The stop sequence finished and `stopped()` fired.
    Stopped,
}

/// The application's lifetime, shared by everything in a [`Host`](crate::host::Host):
/// the .NET `IHostApplicationLifetime`.
///
/// - [`started()`](Self::started) is cancelled once every service has started;
/// - [`stopping()`](Self::stopping) is cancelled when a stop is requested (by
///   [`stop_application`](Self::stop_application), a signal, a failing
///   background service, or the host's own stop sequence);
/// - [`stopped()`](Self::stopped) is cancelled when the stop sequence is over.
///
/// Callbacks registered on these tokens run synchronously, most recent first,
/// on the thread that cancels the token. The host cancels them on a blocking
/// thread and waits for the callbacks to finish, within its budget. A callback
/// that panics is caught and logged, the others still run, and the panic is
/// reported in the host's stop result.
///
/// `Clone` is cheap and every clone is the same lifetime.
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
/// let lifetime = host.lifetime().clone();
/// lifetime.started().register(|| println!("started")).detach();
/// lifetime.stopping().register(|| println!("stopping")).detach();
///
/// host.start(CancellationToken::none()).await?;
/// lifetime.stop_application(); // e.g. from a service, or another thread
/// host.wait_for_shutdown().await?;
/// assert!(lifetime.stopped().is_cancelled());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ApplicationLifetime {
    inner: Arc<LifetimeInner>,
}

struct LifetimeInner {
    started: CancellationTokenSource,
    stopping: CancellationTokenSource,
    stopped: CancellationTokenSource,
    state: watch::Sender<HostState>,
    /// Panics of lifetime callbacks, wherever they were cancelled from; the
    /// stop sequence drains them into its report.
    callback_failures: Mutex<Vec<ServiceFailure>>,
    /// A stop was requested (the first request emits the event).
    requested: AtomicBool,
    /// The host's events.
    events: Arc<Hub>,
}

impl ApplicationLifetime {
    pub(crate) fn new(events: Arc<Hub>) -> Self {
        ApplicationLifetime {
            inner: Arc::new(LifetimeInner {
                started: CancellationTokenSource::new(),
                stopping: CancellationTokenSource::new(),
                stopped: CancellationTokenSource::new(),
                state: watch::Sender::new(HostState::NotStarted),
                callback_failures: Mutex::new(Vec::new()),
                requested: AtomicBool::new(false),
                events,
            }),
        }
    }

    /// Cancelled once every service has started (after the `started` hooks).
    /// Never cancelled if start fails.
    ///
    /// # Examples
    ///
    /// ```
    /// # use apphost::CancellationToken;
    /// # use apphost::host::Host;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), apphost::host::HostError> {
    /// let host = Host::builder().build().unwrap();
    /// let started = host.lifetime().started();
    /// assert!(!started.is_cancelled());
    /// host.start(CancellationToken::none()).await?;
    /// assert!(started.is_cancelled());
    /// # host.stop(CancellationToken::none()).await
    /// # }
    /// ```
    pub fn started(&self) -> CancellationToken {
        self.inner.started.token()
    }

    /// Cancelled when a stop is requested; its reason says why
    /// ([`CancelReason::Requested`] unless given). The host's stop sequence
    /// waits for its callbacks before stopping services.
    ///
    /// # Examples
    ///
    /// ```
    /// # use apphost::CancelReason;
    /// # use apphost::host::Host;
    /// let host = Host::builder().build().unwrap();
    /// host.lifetime().stop_application_with(CancelReason::Signal(15));
    /// assert_eq!(host.lifetime().stopping().reason(), Some(CancelReason::Signal(15)));
    /// ```
    pub fn stopping(&self) -> CancellationToken {
        self.inner.stopping.token()
    }

    /// Cancelled when the stop sequence is over (after the `stopped` hooks).
    ///
    /// # Examples
    ///
    /// ```
    /// # use apphost::CancellationToken;
    /// # use apphost::host::Host;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), apphost::host::HostError> {
    /// let host = Host::builder().build().unwrap();
    /// host.stop(CancellationToken::none()).await?;
    /// assert!(host.lifetime().stopped().is_cancelled());
    /// # Ok(())
    /// # }
    /// ```
    pub fn stopped(&self) -> CancellationToken {
        self.inner.stopped.token()
    }

    /// Requests a stop of the application with reason
    /// [`CancelReason::Requested`]: cancels [`stopping()`](Self::stopping).
    ///
    /// It does not stop any service itself: [`Host::run`](crate::host::Host::run)
    /// and [`Host::wait_for_shutdown`](crate::host::Host::wait_for_shutdown) see the
    /// request and run the stop sequence. During start, the request cancels the
    /// start token.
    ///
    /// Safe to call from anywhere, any number of times: from any thread, from
    /// a service's `start`, from inside a callback of `stopping()` itself
    /// (returns at once). The first call runs the `stopping()` callbacks on its
    /// thread; a concurrent call on another thread waits until they are done.
    /// A callback's panic is caught and logged, never propagated.
    ///
    /// # Examples
    ///
    /// ```
    /// # use apphost::host::Host;
    /// let host = Host::builder().build().unwrap();
    /// let lifetime = host.lifetime();
    /// lifetime.stop_application();
    /// lifetime.stop_application(); // idempotent
    /// assert!(lifetime.stopping().is_cancelled());
    /// ```
    pub fn stop_application(&self) {
        self.stop_application_with(CancelReason::Requested);
    }

    /// Like [`stop_application`](Self::stop_application), with the reason
    /// `stopping()` carries, e.g. [`CancelReason::Signal`] from a signal
    /// handler. Only the first request's reason is kept.
    ///
    /// # Examples
    ///
    /// ```
    /// # use apphost::CancelReason;
    /// # use apphost::host::Host;
    /// let host = Host::builder().build().unwrap();
    /// host.lifetime().stop_application_with(CancelReason::custom("config changed"));
    /// host.lifetime().stop_application(); // too late: the first reason stays
    /// assert_eq!(host.lifetime().stopping().reason(), Some(CancelReason::custom("config changed")));
    /// ```
    pub fn stop_application_with(&self, reason: CancelReason) {
        if !self.inner.requested.swap(true, Ordering::AcqRel) {
            let events = &self.inner.events;
            events.emit_at(|at| LifecycleEvent::StopRequested {
                reason: reason.clone(),
                at,
            });
        }
        self.fire(
            &self.inner.stopping,
            reason,
            LifecyclePhase::StoppingCallbacks,
        );
    }

    /// Where the host is in its life.
    ///
    /// # Examples
    ///
    /// ```
    /// # use apphost::CancellationToken;
    /// # use apphost::host::{Host, HostState};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), apphost::host::HostError> {
    /// let host = Host::builder().build().unwrap();
    /// host.start(CancellationToken::none()).await?;
    /// assert_eq!(host.lifetime().state(), HostState::Started);
    /// host.stop(CancellationToken::none()).await?;
    /// assert_eq!(host.lifetime().state(), HostState::Stopped);
    /// # Ok(())
    /// # }
    /// ```
    pub fn state(&self) -> HostState {
        *self.inner.state.borrow()
    }

    // ===== host-internal =====

    /// The host's event hub.
    pub(crate) fn events(&self) -> &Arc<Hub> {
        &self.inner.events
    }

    /// Fires `started()`; callback panics are logged and recorded.
    pub(crate) fn notify_started(&self) {
        self.fire(
            &self.inner.started,
            CancelReason::Requested,
            LifecyclePhase::StartedCallbacks,
        );
    }

    /// Fires `stopped()`; callback panics are logged and recorded.
    pub(crate) fn notify_stopped(&self) {
        self.fire(
            &self.inner.stopped,
            CancelReason::Requested,
            LifecyclePhase::StoppedCallbacks,
        );
    }

    /// Cancels `source`. The cancel module runs the callbacks inline, resumes
    /// the first panic after all ran; catching here turns it into a log line
    /// and a recorded failure, so a callback can never unwind into the host.
    fn fire(&self, source: &CancellationTokenSource, reason: CancelReason, phase: LifecyclePhase) {
        // The first panic is resumed without the hook: its location is
        // claimed only if no other callback panicked (see `host/panics.rs`).
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| source.cancel_with(reason))) {
            let panic = CaughtPanic::caught(payload.as_ref());
            self.inner
                .events
                .callback_failed(phase, CallOutcome::from(&panic));
            lock(&self.inner.callback_failures).push(ServiceFailure::new(
                None,
                phase,
                FailureKind::Panic(panic),
            ));
        }
    }

    /// Moves the state from one of `from` to `to`; returns the state before,
    /// or `Err(current)` when the state was not one of `from`. Atomic with
    /// respect to other transitions (the watch channel's lock).
    pub(crate) fn transition(
        &self,
        from: &[HostState],
        to: HostState,
    ) -> Result<HostState, HostState> {
        let mut outcome = Err(to);
        self.inner.state.send_if_modified(|state| {
            if from.contains(state) {
                outcome = Ok(*state);
                *state = to;
                // In the channel's lock: events follow the order of states.
                let events = &self.inner.events;
                if matches!(to, HostState::Starting | HostState::Stopping) {
                    events.begin();
                }
                events.emit_at(|at| LifecycleEvent::StateChanged { state: to, at });
                true
            } else {
                outcome = Err(*state);
                false
            }
        });
        outcome
    }

    /// A receiver to wait for state changes.
    pub(crate) fn watch_state(&self) -> watch::Receiver<HostState> {
        self.inner.state.subscribe()
    }

    pub(crate) fn take_callback_failures(&self) -> Vec<ServiceFailure> {
        std::mem::take(&mut *lock(&self.inner.callback_failures))
    }
}

impl fmt::Debug for ApplicationLifetime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApplicationLifetime")
            .field("state", &self.state())
            .field("started", &self.inner.started.is_cancelled())
            .field("stopping", &self.inner.stopping.is_cancelled())
            .field("stopped", &self.inner.stopped.is_cancelled())
            .finish()
    }
}
