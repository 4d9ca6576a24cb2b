//! The host's run errors: [`HostError`] (start, stop and run), the
//! [`ServiceFailure`]s it lists, and the [`LifecyclePhase`] each names
//! (a builder's errors are in `build_error.rs`).

use std::fmt;
use std::sync::Arc;

use super::panics::CaughtPanic;
use super::report::{CallOutcome, HostReport};
use crate::cancel::CancelReason;

/// Where in the host's life a failure happened.
///
/// # Examples
///
/// ```
/// use apphost::host::LifecyclePhase;
///
/// assert_eq!(LifecyclePhase::Stop.to_string(), "stop");
/// assert_eq!(LifecyclePhase::StoppingCallbacks.to_string(), "stopping callbacks");
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LifecyclePhase {
    /// [`HostedService::starting`](crate::host::HostedService::starting).
    Starting,
    /// [`HostedService::start`](crate::host::HostedService::start).
    Start,
    /// [`HostedService::started`](crate::host::HostedService::started).
    Started,
    /// Callbacks registered on [`ApplicationLifetime::started`](crate::host::ApplicationLifetime::started).
    StartedCallbacks,
    /// [`BackgroundService::execute`](crate::host::BackgroundService::execute).
    Execute,
    /// [`HostedService::stopping`](crate::host::HostedService::stopping).
    Stopping,
    /// Callbacks registered on [`ApplicationLifetime::stopping`](crate::host::ApplicationLifetime::stopping).
    StoppingCallbacks,
    /// [`HostedService::stop`](crate::host::HostedService::stop), or stopping a background service.
    Stop,
    /// [`HostedService::stopped`](crate::host::HostedService::stopped).
    Stopped,
    /// Callbacks registered on [`ApplicationLifetime::stopped`](crate::host::ApplicationLifetime::stopped).
    StoppedCallbacks,
}

impl fmt::Display for LifecyclePhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LifecyclePhase::Starting => "starting",
            LifecyclePhase::Start => "start",
            LifecyclePhase::Started => "started",
            LifecyclePhase::StartedCallbacks => "started callbacks",
            LifecyclePhase::Execute => "execute",
            LifecyclePhase::Stopping => "stopping",
            LifecyclePhase::StoppingCallbacks => "stopping callbacks",
            LifecyclePhase::Stop => "stop",
            LifecyclePhase::Stopped => "stopped",
            LifecyclePhase::StoppedCallbacks => "stopped callbacks",
        })
    }
}

/// What went wrong in one [`ServiceFailure`].
///
/// # Examples
///
/// ```
/// use apphost::CancelReason;
/// use apphost::host::FailureKind;
///
/// let kind = FailureKind::Cancelled(CancelReason::Signal(15));
/// assert_eq!(kind.to_string(), format!("was cancelled ({})", CancelReason::Signal(15)));
/// assert_eq!(FailureKind::TimedOut.to_string(), "timed out");
/// ```
#[non_exhaustive]
#[derive(Debug, Clone)]
pub enum FailureKind {
    /// The call returned this error.
    Error(Arc<anyhow::Error>),
    /// The call or callback panicked: its payload as text (non-string
    /// payloads are shown as `Box<dyn Any>`) and, where the host's panic
    /// hook saw it, where ([`CaughtPanic::location`]).
    Panic(CaughtPanic),
    /// The budget (`startup_timeout` or `shutdown_timeout`) ran out: the call
    /// was abandoned, or it gave up because its token was cancelled for that
    /// reason.
    TimedOut,
    /// The call was cancelled (its token carried this reason: the caller's
    /// token, a stop request, a sibling's start failure) and returned for it.
    Cancelled(CancelReason),
    /// The host gave up on the call: it did not return within the grace
    /// period after its token was cancelled, and its task was aborted.
    /// `still_running` is true when the task could not even be dropped
    /// within the grace (it blocks its thread): it runs on, unowned, and the
    /// engine moved on without it.
    Abandoned {
        /// The task was still running when the engine moved on.
        still_running: bool,
    },
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // `{:#}` prints anyhow's whole chain on one line.
            FailureKind::Error(e) => write!(f, "failed: {e:#}"),
            FailureKind::Panic(msg) => write!(f, "panicked: {msg}"),
            FailureKind::TimedOut => f.write_str("timed out"),
            FailureKind::Cancelled(reason) => write!(f, "was cancelled ({reason})"),
            FailureKind::Abandoned {
                still_running: true,
            } => f.write_str("was abandoned (still running: it blocks its thread)"),
            FailureKind::Abandoned {
                still_running: false,
            } => f.write_str("was abandoned"),
        }
    }
}

/// One failure: which service, in which phase, and what happened.
///
/// # Examples
///
/// ```
/// use apphost::CancellationToken;
/// use apphost::host::{Host, HostedService, LifecyclePhase};
///
/// struct Db;
/// impl HostedService for Db {
///     async fn start(&self, _: CancellationToken) -> anyhow::Result<()> {
///         anyhow::bail!("connection refused")
///     }
///     async fn stop(&self, _: CancellationToken) -> anyhow::Result<()> { Ok(()) }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let host = Host::builder().add_hosted_service(Db).build().unwrap();
/// let err = host.start(CancellationToken::none()).await.unwrap_err();
/// let failure = &err.failures()[0];
/// assert_eq!(failure.service(), Some("Db"));
/// assert_eq!(failure.phase(), LifecyclePhase::Start);
/// assert_eq!(failure.to_string(), "start of `Db` failed: connection refused");
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ServiceFailure {
    service: Option<Arc<str>>,
    phase: LifecyclePhase,
    kind: FailureKind,
}

impl ServiceFailure {
    pub(crate) fn new(service: Option<Arc<str>>, phase: LifecyclePhase, kind: FailureKind) -> Self {
        ServiceFailure {
            service,
            phase,
            kind,
        }
    }

    /// The failing service's name; `None` when the host itself is meant (a
    /// lifetime callback, or start cancelled between two services).
    ///
    /// # Examples
    ///
    /// ```
    /// # use apphost::CancellationToken;
    /// # use apphost::host::Host;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let host = Host::builder().build().unwrap();
    /// host.lifetime().stopped().register(|| panic!("bug in a callback")).detach();
    /// let error = host.stop(CancellationToken::none()).await.unwrap_err();
    /// assert_eq!(error.failures()[0].service(), None);
    /// # }
    /// ```
    pub fn service(&self) -> Option<&str> {
        self.service.as_deref()
    }

    /// The phase the failure happened in.
    ///
    /// # Examples
    ///
    /// ```
    /// # use apphost::CancellationToken;
    /// # use apphost::host::{Host, LifecyclePhase};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let host = Host::builder().build().unwrap();
    /// host.lifetime().stopping().register(|| panic!("bug in a callback")).detach();
    /// let error = host.stop(CancellationToken::none()).await.unwrap_err();
    /// assert_eq!(error.failures()[0].phase(), LifecyclePhase::StoppingCallbacks);
    /// # }
    /// ```
    pub fn phase(&self) -> LifecyclePhase {
        self.phase
    }

    /// What happened.
    ///
    /// # Examples
    ///
    /// ```
    /// # use apphost::CancellationToken;
    /// # use apphost::host::{FailureKind, Host};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let host = Host::builder().build().unwrap();
    /// host.lifetime().stopped().register(|| panic!("bug in a callback")).detach();
    /// let error = host.stop(CancellationToken::none()).await.unwrap_err();
    /// assert!(matches!(error.failures()[0].kind(), FailureKind::Panic(m) if m == "bug in a callback"));
    /// # }
    /// ```
    pub fn kind(&self) -> &FailureKind {
        &self.kind
    }
}

impl fmt::Display for ServiceFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.service {
            Some(name) => write!(f, "{} of `{name}` {}", self.phase, self.kind),
            None => write!(f, "{} {}", self.phase, self.kind),
        }
    }
}

/// The error of [`Host::start`](crate::host::Host::start), [`Host::stop`](crate::host::Host::stop)
/// and [`Host::run`](crate::host::Host::run): every failure, in the order it was
/// recorded (phase order).
///
/// A failed start lists the start failure(s) followed by whatever failed while
/// the host rolled back (stopped the services that had started). A stop lists
/// failed `execute`s of background services first, then each stop phase's
/// failures, then lifetime callback panics.
///
/// `Clone` is cheap (errors are shared), which lets a second call to `stop`
/// return the first call's result.
///
/// # Examples
///
/// ```
/// use apphost::CancellationToken;
/// use apphost::host::{BackgroundService, Host, LifecyclePhase};
///
/// struct Crashes;
/// impl BackgroundService for Crashes {
///     async fn execute(&self, _: CancellationToken) -> anyhow::Result<()> {
///         anyhow::bail!("disk full")
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let host = Host::builder().add_background_service(Crashes).build().unwrap();
/// // The failure requests a stop, and `run` reports it.
/// let err = host.run().await.unwrap_err();
/// assert_eq!(err.failures()[0].phase(), LifecyclePhase::Execute);
/// assert_eq!(err.exit_code(), 1);
/// assert_eq!(err.to_string(), "execute of `Crashes` failed: disk full");
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct HostError {
    failures: Vec<ServiceFailure>,
    report: Option<Arc<HostReport>>,
}

impl HostError {
    /// `None` when there is nothing to report.
    pub(crate) fn from_failures(failures: Vec<ServiceFailure>) -> Option<HostError> {
        (!failures.is_empty()).then_some(HostError {
            failures,
            report: None,
        })
    }

    /// This error with `report` attached.
    pub(crate) fn with_report(mut self, report: Option<HostReport>) -> HostError {
        self.report = report.map(Arc::new);
        self
    }

    /// What the run did, once the host has stopped: the report of the
    /// failed start (with its rollback) or of the stop that returned this
    /// error. `None` for an error returned while the host had not stopped
    /// (it is still running, or the stop was taken over by the budget
    /// keeper and has not published its result yet).
    ///
    /// # Examples
    ///
    /// ```
    /// # use apphost::CancellationToken;
    /// # use apphost::host::{CallOutcome, Host, HostedService, LifecyclePhase, RunOutcome};
    /// struct Db;
    /// impl HostedService for Db {
    ///     async fn start(&self, _: CancellationToken) -> anyhow::Result<()> { anyhow::bail!("no disk") }
    ///     async fn stop(&self, _: CancellationToken) -> anyhow::Result<()> { Ok(()) }
    /// }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let host = Host::builder().add_hosted_service(Db).build().unwrap();
    /// let error = host.run().await.unwrap_err();
    /// let report = error.report().unwrap();
    /// assert_eq!((report.exit_code, report.outcome), (1, RunOutcome::Failed));
    /// let call = &report.services[0].calls[0];
    /// assert_eq!(call.phase, LifecyclePhase::Start);
    /// assert_eq!(call.outcome, CallOutcome::Error { error: "no disk".into() });
    /// # }
    /// ```
    pub fn report(&self) -> Option<&HostReport> {
        self.report.as_deref()
    }

    /// Every failure, in the order recorded. Never empty.
    ///
    /// # Examples
    ///
    /// ```
    /// # use apphost::CancellationToken;
    /// # use apphost::host::Host;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let host = Host::builder().build().unwrap();
    /// host.lifetime().stopping().register(|| panic!("one")).detach();
    /// host.lifetime().stopped().register(|| panic!("two")).detach();
    /// let error = host.stop(CancellationToken::none()).await.unwrap_err();
    /// for failure in error.failures() {
    ///     eprintln!("{failure}");
    /// }
    /// assert_eq!(error.failures().len(), 2);
    /// # }
    /// ```
    pub fn failures(&self) -> &[ServiceFailure] {
        &self.failures
    }

    /// The process exit code this error suggests:
    /// [`HostReport::exit_code_for`] of its failures, never 0:
    ///
    /// | failures | code |
    /// |---|---|
    /// | any error or panic | 1 |
    /// | otherwise, any timeout or abandoned call | 124 (as `timeout(1)`) |
    /// | otherwise, start cancelled by signal *n* | 128 + *n* (as a shell reports a signal death), at most 255 |
    /// | otherwise (start cancelled for another reason) | 1 |
    ///
    /// # Examples
    ///
    /// ```
    /// # use apphost::CancellationToken;
    /// # use apphost::host::{Host, HostedService};
    /// # struct Db;
    /// # impl HostedService for Db {
    /// #     async fn start(&self, _: CancellationToken) -> anyhow::Result<()> { anyhow::bail!("no") }
    /// #     async fn stop(&self, _: CancellationToken) -> anyhow::Result<()> { Ok(()) }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let host = Host::builder().add_hosted_service(Db).build().unwrap();
    /// let code = match host.run().await {
    ///     Ok(()) => 0,
    ///     Err(e) => e.exit_code(),
    /// };
    /// assert_eq!(code, 1);
    /// // In `main`: std::process::ExitCode::from(code)
    /// # }
    /// ```
    pub fn exit_code(&self) -> u8 {
        let outcomes: Vec<CallOutcome> = self.failures.iter().map(|f| (&f.kind).into()).collect();
        HostReport::exit_code_for(&outcomes)
    }

    /// Whether every failure is a cancellation that was not a timeout: start
    /// was cancelled by a stop request or the caller, and nothing else went
    /// wrong.
    pub(crate) fn is_only_cancellation(&self) -> bool {
        self.failures
            .iter()
            .all(|f| matches!(&f.kind, FailureKind::Cancelled(r) if *r != CancelReason::TimedOut))
    }

    pub(crate) fn into_failures(self) -> Vec<ServiceFailure> {
        self.failures
    }
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let [only] = self.failures.as_slice() {
            return write!(f, "{only}");
        }
        write!(f, "{} failures: ", self.failures.len())?;
        for (i, failure) in self.failures.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{failure}")?;
        }
        Ok(())
    }
}

impl std::error::Error for HostError {
    /// The first service error, if any failure is an error (panics, timeouts
    /// and cancellations have no source).
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.failures.iter().find_map(|f| match &f.kind {
            FailureKind::Error(e) => Some(AsRef::<dyn std::error::Error>::as_ref(&**e)),
            _ => None,
        })
    }
}
