//! The host's shared state ([`HostInner`], one [`Entry`] per service) and
//! small helpers used across the host. The sequencing itself is in
//! `engine/`.
//!
//! Locks here are never held across an `.await` or around user code, and a
//! poisoned lock is used as is ([`lock`]): the state they guard is valid after
//! every statement, so a panic elsewhere cannot make it unusable.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::panics::CaughtPanic;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::watch;

use super::adapter::{BoxFuture, Call, DynHosted, Hooks};
use super::background::Background;
use super::error::{HostError, ServiceFailure};
use super::graph::Graph;
use super::lifetime::ApplicationLifetime;
use super::options::HostOptions;
use crate::cancel::{CancellationToken, CancellationTokenSource, OperationCanceled};

/// Locks `mutex`, ignoring poisoning (invariant 3).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
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
    /// The future of `call` on this hosted service, or `None` if the call
    /// does nothing (a lifecycle hook left at its default; a background
    /// service, whose stop the engine makes itself).
    pub(crate) fn future(&self, call: Call, token: &CancellationToken) -> Option<BoxFuture> {
        match &self.kind {
            EntryKind::Hosted { service, hooks } => hooks
                .has(call)
                .then(|| Arc::clone(service).call(call, token.clone())),
            EntryKind::Background(_) => None,
        }
    }

    /// Whether `call` can do anything on this service (so a phase can leave
    /// the service out).
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
    pub(crate) entries: Vec<Entry>,
    /// The services' dependency graph (order, edges).
    pub(crate) graph: Graph,
    /// Per service, its own `start_timeout`; empty when no service has one.
    pub(crate) own_start: Box<[Option<Duration>]>,
    /// Per service, its own `stop_timeout`; empty when no service has one.
    pub(crate) own_stop: Box<[Option<Duration>]>,
    /// Linked into the start token: `stop` cancels it to cut a running start short.
    pub(crate) abort_start: CancellationTokenSource,
    /// The source of the stop token; callers' tokens are linked to it by
    /// registration while they wait (see `Host::stop`).
    pub(crate) stop_source: CancellationTokenSource,
    pub(crate) start_once: Once<Result<(), StartFailed>>,
    pub(crate) stop_once: Once<Result<(), HostError>>,
    /// Failures of background services' `execute` under `StopHost`.
    pub(crate) execute_failures: Arc<Mutex<Vec<ServiceFailure>>>,
    /// Where lifecycle events go (the lifetime's hub).
    pub(crate) events: Arc<super::hub::Hub>,
}

impl HostInner {
    /// The options in force.
    pub(crate) fn options(&self) -> HostOptions {
        lock(&self.options).clone()
    }
}

/// Where a sequence's result is published: the first publication wins, and
/// every waiter sees it. Sending on a `watch` channel wakes waiters directly,
/// from any thread, without a runtime's drivers (the budget keeper relies on
/// this).
pub(crate) type Publisher<T> = Arc<watch::Sender<Option<T>>>;

/// Publishes `value` unless a result is already there; `true` if it was first.
pub(crate) fn publish<T>(publisher: &watch::Sender<Option<T>>, value: T) -> bool {
    let mut value = Some(value);
    publisher.send_if_modified(|slot| {
        if slot.is_none() {
            *slot = value.take();
            true
        } else {
            false
        }
    })
}

/// A sequence that runs once, whose result every caller gets: callers only
/// wait for the shared result, so dropping a caller's future never leaves a
/// sequence half done, and a second caller gets the first one's result.
pub(crate) struct Once<T> {
    slot: Mutex<Option<watch::Receiver<Option<T>>>>,
}

impl<T: Clone + Send + Sync + 'static> Once<T> {
    pub(crate) fn new() -> Self {
        Once {
            slot: Mutex::new(None),
        }
    }

    /// The result, if the sequence ran and published one.
    pub(crate) fn peek(&self) -> Option<T> {
        lock(&self.slot).as_ref()?.borrow().clone()
    }

    /// Calls `begin(publisher)` the first time (it must see to it that a
    /// result is published: it spawns the sequence); every call waits for the
    /// result. `on_lost` is the result if every publisher was dropped without
    /// one (a bug in the host), so waiters never hang.
    pub(crate) fn run(
        &self,
        begin: impl FnOnce(Publisher<T>),
        on_lost: impl FnOnce() -> T + Send + 'static,
    ) -> impl Future<Output = T> + Send + 'static {
        let mut rx = {
            let mut slot = lock(&self.slot);
            match &*slot {
                Some(rx) => rx.clone(),
                None => {
                    let (tx, rx) = watch::channel(None);
                    *slot = Some(rx.clone());
                    begin(Arc::new(tx));
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

/// Whether `error` is cooperative cancellation for `token`: its root cause is
/// [`OperationCanceled`] for that token, or for any token while that one is
/// cancelled (a token linked to it).
pub(crate) fn is_cooperative(error: &anyhow::Error, token: &CancellationToken) -> bool {
    error
        .root_cause()
        .downcast_ref::<OperationCanceled>()
        .is_some_and(|oc| oc.token() == token || token.is_cancelled())
}

// ===== catching panics of a future =====

/// Polls a future, turning a panic into `Err` with its payload and, where
/// the host's hook saw it, its location (see `host/panics.rs`).
pub(crate) struct CatchUnwind<F>(pub(crate) F);

impl<F: Future + Unpin> Future for CatchUnwind<F> {
    /// Boxed: a call's result moves through the runner and the task
    /// table, and an unboxed panic made it 40 bytes larger (100
    /// instructions a service at 10,000 services, BENCHMARKS.md).
    type Output = Result<F::Output, Box<CaughtPanic>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match catch_unwind(AssertUnwindSafe(|| Pin::new(&mut self.0).poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Err(payload) => Poll::Ready(Err(Box::new(CaughtPanic::caught(payload.as_ref())))),
        }
    }
}
