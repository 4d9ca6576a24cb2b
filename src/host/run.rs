//! Machinery shared by the start and stop sequences: the host's shared state,
//! the budget that bounds every wait, and small helpers. The calls of one
//! phase are made by `phase.rs` (and `spawned.rs`).
//!
//! # Invariants
//!
//! 1. **The orchestrator never runs service code.** Service calls run in
//!    spawned tasks (a phase's runner, or a task per call), and lifetime
//!    tokens are cancelled (their callbacks run synchronously) on a
//!    `spawn_blocking` thread. The orchestrator only waits on join handles, so
//!    a service that blocks its thread cannot stall it (on a multi-thread
//!    runtime; on a current-thread runtime a blocked thread is the only
//!    thread, and nothing can preempt it).
//! 2. **Every wait is bounded by the sequence's [`Budget`].** Until the budget
//!    is spent, a wait ends with the call, at the deadline, or when the
//!    sequence's token is cancelled. Once it is spent, calls already running
//!    and calls made during the grace period are waited for until `grace_end`
//!    (the moment it was spent + [`GRACE`]); a call made after that gets its
//!    first poll, and at most until `hard_end` (`grace_end` + [`GRACE`]);
//!    lifetime callbacks are waited for likewise. So a
//!    sequence never runs longer than its deadline + 2 × `GRACE` (plus
//!    scheduling), whatever its services do. A call given up on is
//!    *abandoned*: its task is aborted (unless it may not have been polled
//!    yet: it keeps its call) and it is reported as timed out.
//! 3. **Locks are never held across an `.await` or around user code**, and a
//!    poisoned lock is used as is ([`lock`]): the state they guard is valid
//!    after every statement, so a panic elsewhere cannot make it unusable.
//! 4. **Each sequence runs once, in its own task** ([`Once`]): callers only
//!    wait for the shared result, so dropping a caller's future never leaves a
//!    sequence half done, and a second caller gets the first one's result.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Instant, Sleep, sleep_until};

use super::adapter::{Call, CallFuture, DynHosted, Hooks};
use super::background::Background;
use super::error::{FailureKind, HostError, ServiceFailure};
use super::lifetime::ApplicationLifetime;
use super::options::HostOptions;
use crate::cancel::{CancelReason, CancellationToken, CancellationTokenSource, OperationCanceled};

/// How long calls still get once a budget is spent (deadline reached, or the
/// sequence's token cancelled), before they are abandoned. Long enough for a
/// service that honours its token to return; short enough to keep a stop
/// within `shutdown_timeout` + 50 ms.
pub(crate) const GRACE: Duration = Duration::from_millis(20);

/// Locks `mutex`, ignoring poisoning (invariant 3).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "Box<dyn Any>".to_owned()
    }
}

// ===== shared host state =====

/// One registered service.
pub(crate) struct Entry {
    pub(crate) name: Arc<str>,
    pub(crate) kind: EntryKind,
    /// `start` completed (hosted), or `execute` was launched (background): the
    /// service takes part in the stop phases.
    pub(crate) started: AtomicBool,
}

pub(crate) enum EntryKind {
    Hosted {
        service: Arc<dyn DynHosted>,
        hooks: Hooks,
    },
    Background(Background),
}

impl Entry {
    /// The future of `call` on this service, or `None` if the call does nothing
    /// (a lifecycle hook left at its default; any call but `stop` on a
    /// background service).
    pub(crate) fn future(
        &self,
        call: Call,
        token: &CancellationToken,
        stop_reason: &CancelReason,
    ) -> Option<CallFuture> {
        match &self.kind {
            EntryKind::Hosted { service, hooks } => hooks
                .has(call)
                .then(|| CallFuture::Boxed(Arc::clone(service).call(call, token.clone()))),
            EntryKind::Background(bg) if call == Call::Stop => {
                bg.stop(stop_reason.clone()).map(CallFuture::Background)
            }
            EntryKind::Background(_) => None,
        }
    }

    /// Whether `call` can do anything on this service: `false` if
    /// [`future`](Self::future) returns `None` whatever the state (so a phase
    /// can leave the service out of its order).
    pub(crate) fn takes_part(&self, call: Call) -> bool {
        match &self.kind {
            EntryKind::Hosted { hooks, .. } => hooks.has(call),
            EntryKind::Background(_) => call == Call::Stop,
        }
    }

    pub(crate) fn is_started(&self) -> bool {
        self.started.load(Ordering::Acquire)
    }
}

/// Why start failed, and how the rollback (stopping what did start) went.
#[derive(Debug, Clone)]
pub(crate) struct StartFailed {
    pub(crate) start: HostError,
    pub(crate) rollback: Result<(), HostError>,
}

impl StartFailed {
    /// Start failures followed by rollback failures.
    pub(crate) fn combined(self) -> HostError {
        let mut failures = self.start.into_failures();
        if let Err(rollback) = self.rollback {
            failures.extend(rollback.into_failures());
        }
        HostError::from_failures(failures).expect("a start failure is never empty")
    }
}

/// Everything a [`Host`](crate::host::Host) shares with its sequences.
pub(crate) struct HostInner {
    /// Read once per sequence; replaced by a configuration reload.
    pub(crate) options: Mutex<HostOptions>,
    pub(crate) reloads: super::reload::ConfigReloads,
    pub(crate) lifetime: ApplicationLifetime,
    pub(crate) entries: Box<[Entry]>,
    /// Linked into the start token: `stop` cancels it to cut a running start short.
    pub(crate) abort_start: CancellationTokenSource,
    /// The source of the stop token; callers' tokens are linked to it by
    /// registration while they wait (see `Host::stop`).
    pub(crate) stop_source: CancellationTokenSource,
    pub(crate) start_once: Once<Result<(), StartFailed>>,
    pub(crate) stop_once: Once<Result<(), HostError>>,
    /// Failures of background services' `execute` under `StopHost`.
    pub(crate) execute_failures: Arc<Mutex<Vec<ServiceFailure>>>,
}

impl HostInner {
    /// The options in force.
    pub(crate) fn options(&self) -> HostOptions {
        lock(&self.options).clone()
    }
}

/// A sequence that runs once in its own task, whose result every caller gets
/// (invariant 4).
pub(crate) struct Once<T> {
    slot: Mutex<Option<watch::Receiver<Option<T>>>>,
}

impl<T: Clone + Send + Sync + 'static> Once<T> {
    pub(crate) fn new() -> Self {
        Once {
            slot: Mutex::new(None),
        }
    }

    /// Spawns `make()` the first time; every call waits for its result.
    /// `on_lost` is the result if the task died without one (a bug in the
    /// host: a panic in the orchestrator), so waiters never hang.
    pub(crate) fn run<F>(
        &self,
        make: impl FnOnce() -> F,
        on_lost: impl FnOnce() -> T + Send + 'static,
    ) -> impl Future<Output = T> + Send + 'static
    where
        F: Future<Output = T> + Send + 'static,
    {
        let mut rx = {
            let mut slot = lock(&self.slot);
            match &*slot {
                Some(rx) => rx.clone(),
                None => {
                    let (tx, rx) = watch::channel(None);
                    let fut = make();
                    tokio::spawn(async move {
                        let result = fut.await;
                        tx.send_replace(Some(result));
                    });
                    *slot = Some(rx.clone());
                    rx
                }
            }
        };
        async move {
            match rx.wait_for(Option::is_some).await {
                Ok(result) => result.clone().expect("waited for Some"),
                Err(_) => on_lost(),
            }
        }
    }
}

// ===== budget =====

/// Bounds the waits of one sequence (invariant 2). The token it hands out is
/// cancelled at the deadline with [`CancelReason::TimedOut`].
///
/// Once spent (deadline passed, or token cancelled) it has two more marks:
/// - `grace_end` = spent + [`GRACE`]: calls that were running, and calls
///   made since, are waited for until then;
/// - `hard_end` = `grace_end` + [`GRACE`]: a call made after `grace_end`
///   (a later phase) is waited for until its first poll returns, at most
///   until then. So a later call that honours its cancelled token at once
///   still completes, and one that does not is given up on at once.
pub(crate) struct Budget {
    source: CancellationTokenSource,
    token: CancellationToken,
    /// `token.cancelled_owned()`, kept across waits (boxed as a trait object
    /// so the host does not depend on where the cancel module puts its type).
    tripped: Pin<Box<dyn Future<Output = ()> + Send>>,
    deadline: Option<Pin<Box<Sleep>>>,
    grace_end: Option<Instant>,
    timed_out: bool,
    what: &'static str,
}

enum Woke<T> {
    Done(T),
    Tripped,
    Deadline,
}

impl Budget {
    pub(crate) fn new(
        source: CancellationTokenSource,
        deadline: Option<Instant>,
        what: &'static str,
    ) -> Self {
        let token = source.token();
        Budget {
            tripped: Box::pin(token.clone().cancelled_owned()),
            token,
            source,
            deadline: deadline.map(|d| Box::pin(sleep_until(d))),
            grace_end: None,
            timed_out: false,
            what,
        }
    }

    /// The token handed to the sequence's calls.
    pub(crate) fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// The deadline passed, or the token was cancelled.
    pub(crate) fn is_spent(&self) -> bool {
        self.grace_end.is_some() || self.token.is_cancelled()
    }

    /// What a call cut short by this budget is reported as.
    pub(crate) fn cut_short(&self) -> FailureKind {
        match self.token.reason() {
            _ if self.timed_out => FailureKind::TimedOut,
            Some(CancelReason::TimedOut) => FailureKind::TimedOut,
            Some(reason) => FailureKind::Cancelled(reason),
            None => FailureKind::Cancelled(CancelReason::Requested),
        }
    }

    /// Waits for `fut` until the budget is spent; `None` if it was spent first.
    pub(crate) async fn until_spent<F: Future + Unpin>(
        &mut self,
        fut: &mut F,
    ) -> Option<F::Output> {
        if self.grace_end.is_some() {
            return None;
        }
        let sleep = self.deadline.as_mut().map(Pin::as_mut);
        let deadline = async move {
            match sleep {
                Some(sleep) => sleep.await,
                None => std::future::pending().await,
            }
        };
        let tripped = self.tripped.as_mut();
        let woke = tokio::select! {
            biased;
            out = &mut *fut => Woke::Done(out),
            () = tripped => Woke::Tripped,
            () = deadline => Woke::Deadline,
        };
        match woke {
            Woke::Done(out) => return Some(out),
            Woke::Tripped => {}
            Woke::Deadline => {
                self.timed_out = true;
                tracing::warn!(target: "apphost::host", "{} budget spent: cancelling with TimedOut", self.what);
                // Cancelling runs the token's callbacks: off this thread (invariant 1).
                let source = self.source.clone();
                drop(tokio::task::spawn_blocking(move || {
                    let _ = catch_unwind(AssertUnwindSafe(|| {
                        source.cancel_with(CancelReason::TimedOut)
                    }));
                }));
            }
        }
        self.grace_end = Some(Instant::now() + GRACE);
        None
    }

    pub(crate) fn grace_end(&self) -> Instant {
        self.grace_end.expect("the budget is spent")
    }

    pub(crate) fn hard_end(&self) -> Instant {
        self.grace_end() + GRACE
    }

    /// Waits for `fut` (not a service call: a lifetime token's callbacks, the
    /// start settling) within the budget: begun before `grace_end`, at most
    /// until then; begun after, at most until `hard_end`. `None` if it was
    /// given up on.
    pub(crate) async fn wait<F: Future + Unpin>(&mut self, fut: &mut F) -> Option<F::Output> {
        let began = Instant::now();
        if let Some(out) = self.until_spent(fut).await {
            return Some(out);
        }
        let end = if began < self.grace_end() {
            self.grace_end()
        } else {
            self.hard_end()
        };
        tokio::time::timeout_at(end, fut).await.ok()
    }
}

/// Whether `error` is cooperative cancellation for `token`: its root cause is
/// [`OperationCanceled`] for that token, or for any token while that one is
/// cancelled (a token linked to it).
pub(crate) fn is_cooperative(error: &anyhow::Error, token: &CancellationToken) -> bool {
    error
        .root_cause()
        .downcast_ref::<OperationCanceled>()
        .is_some_and(|oc| oc.token() == token || token.is_cancelled())
}

/// Runs `f` (which cancels a lifetime token, running its callbacks) on a
/// blocking thread and waits for it within `budget`; `false` if given up on.
pub(crate) async fn fire_lifetime(budget: &mut Budget, f: impl FnOnce() + Send + 'static) -> bool {
    let mut handle = tokio::task::spawn_blocking(f);
    budget.wait(&mut handle).await.is_some()
}

// ===== catching panics of a future =====

/// Polls a future, turning a panic into `Err(payload)`.
pub(crate) struct CatchUnwind<F>(pub(crate) F);

impl<F: Future + Unpin> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match catch_unwind(AssertUnwindSafe(|| Pin::new(&mut self.0).poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}
