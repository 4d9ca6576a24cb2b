//! One phase of a sequence: a call on each service, in order or all at once,
//! within the sequence's [`Budget`].
//!
//! # How calls are run
//!
//! - **In order** (the default), the calls of a phase run one after the other
//!   inside one spawned *runner* task, which awaits each call in turn: one
//!   task per phase, not per call, which is what makes starting and stopping
//!   10,000 services cost little more than spawning 10,000 tasks. The
//!   orchestrator only watches the runner, within the budget. If the budget
//!   runs out while a call is still running (it ignores its token, or blocks
//!   the runner's thread), the orchestrator *supersedes* the runner: the call
//!   in flight is reported as timed out, the runner is aborted, and the
//!   remaining calls are made as below.
//! - **All at once** (concurrent phases, and every call made once the budget
//!   is spent), each call is its own task, and the orchestrator waits for each
//!   within the budget.
//!
//! Either way a panic is caught per call, and no service code ever runs on
//! the orchestrator's task (`run.rs`, invariant 1).
//!
//! # Runner protocol
//!
//! The runner and the orchestrator share a [`Progress`] under one mutex
//! (never held across an `.await` or around service code). The runner claims
//! the next call (`next`, `in_flight`) before making it and records its
//! outcome after, unless `superseded` was set meanwhile; the orchestrator sets
//! `superseded` and takes over from `next`, reporting `in_flight`. So every
//! call's outcome is recorded exactly once, by whichever side owns it.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::{JoinError, JoinHandle};
use tokio::time::{Instant, sleep_until};
use tracing::{Instrument, Span};

use super::error::{FailureKind, LifecyclePhase};
use super::run::{Budget, CatchUnwind, Entry, HostInner, is_cooperative, lock, panic_message};
use super::service::{BoxFuture, Call};
use crate::cancel::{CancelReason, CancellationToken};

/// How one call ended.
pub(crate) enum Outcome {
    Completed,
    /// Cooperative cancellation: the call returned `OperationCanceled` while
    /// its token was cancelled for this reason.
    Cancelled(CancelReason),
    Failed(FailureKind),
}

/// One phase: `call` on each service of an order that has something to do.
pub(crate) struct Phase<'a> {
    pub(crate) inner: &'a Arc<HostInner>,
    pub(crate) call: Call,
    pub(crate) phase: LifecyclePhase,
    pub(crate) concurrent: bool,
    /// Start phases: stop at the first call that does not complete, and make
    /// no call once the budget is spent. Stop phases make every call.
    pub(crate) stop_early: bool,
}

/// What the runner and the orchestrator share (see the module docs).
struct Progress {
    state: Mutex<ProgressState>,
}

#[derive(Default)]
struct ProgressState {
    /// Position in the order of the next call to claim.
    next: usize,
    /// Position of the call running now.
    in_flight: Option<usize>,
    outcomes: Vec<(usize, Outcome)>,
    superseded: bool,
    skipped: bool,
}

impl Phase<'_> {
    /// Runs the phase over `order` (indices into the entries). Returns each
    /// call's outcome, in the order the calls ended, and whether calls were
    /// skipped because the budget was spent (start phases only).
    pub(crate) async fn run(
        &self,
        order: Arc<[usize]>,
        budget: &mut Budget,
        stop_reason: &CancelReason,
    ) -> (Vec<(usize, Outcome)>, bool) {
        let mut from = 0;
        let mut outcomes = Vec::new();
        if !self.concurrent && !budget.is_spent() {
            let progress = Arc::new(Progress {
                state: Mutex::new(ProgressState::default()),
            });
            let mut runner = tokio::spawn(run_in_order(
                Arc::clone(self.inner),
                Arc::clone(&order),
                self.call,
                self.phase,
                budget.token().clone(),
                stop_reason.clone(),
                self.stop_early,
                Arc::clone(&progress),
            ));
            let finished = budget.wait(&mut runner).await;
            let mut state = lock(&progress.state);
            if finished.is_none() || state.in_flight.is_some() {
                // Given up on (or the runner itself died): take over.
                state.superseded = true;
                runner.abort();
                if let Some(position) = state.in_flight.take() {
                    let name = &self.inner.entries[order[position]].name;
                    tracing::warn!(target: "apphost::host", service = %name, phase = %self.phase,
                        "service call did not finish in time: abandoned");
                    state
                        .outcomes
                        .push((order[position], Outcome::Failed(FailureKind::TimedOut)));
                }
            }
            outcomes = std::mem::take(&mut state.outcomes);
            from = state.next;
            if state.skipped
                || (self.stop_early
                    && outcomes
                        .iter()
                        .any(|(_, o)| !matches!(o, Outcome::Completed)))
            {
                return (outcomes, state.skipped);
            }
        }
        let (rest, skipped) = self.run_spawned(&order[from..], budget, stop_reason).await;
        outcomes.extend(rest);
        (outcomes, skipped)
    }

    /// Each call in its own task: all at once when the phase is concurrent
    /// or the budget is spent, else one after the other.
    async fn run_spawned(
        &self,
        order: &[usize],
        budget: &mut Budget,
        stop_reason: &CancelReason,
    ) -> (Vec<(usize, Outcome)>, bool) {
        let entries = &self.inner.entries;
        let mut outcomes = Vec::new();
        let mut pending = Vec::new();
        let mut skipped = false;
        for &index in order {
            let entry = &entries[index];
            let Some(fut) = entry.future(self.call, budget.token(), stop_reason) else {
                continue;
            };
            if self.stop_early && budget.is_spent() {
                // Not polled, so never run: a service whose call is skipped
                // never sees it.
                skipped = true;
                break;
            }
            let running = spawn_call(entry, index, self.phase, fut, budget.is_spent());
            // Once the budget is spent there is no time to keep order: the
            // remaining calls are all made at once and share the grace period.
            if self.concurrent || budget.is_spent() {
                pending.push(running);
                continue;
            }
            let (index, outcome) = finish(entries, running, budget).await;
            let failed = !matches!(outcome, Outcome::Completed);
            outcomes.push((index, outcome));
            if failed && self.stop_early {
                break;
            }
        }
        for running in pending {
            outcomes.push(finish(entries, running, budget).await);
        }
        (outcomes, skipped)
    }
}

// ===== in order, in one runner task =====

#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
async fn run_in_order(
    inner: Arc<HostInner>,
    order: Arc<[usize]>,
    call: Call,
    phase: LifecyclePhase,
    token: CancellationToken,
    stop_reason: CancelReason,
    stop_early: bool,
    progress: Arc<Progress>,
) {
    loop {
        // Claim the next call that does something.
        let (index, fut) = {
            let mut state = lock(&progress.state);
            loop {
                if state.superseded {
                    return;
                }
                let Some(&index) = order.get(state.next) else {
                    return;
                };
                // Boxing the future runs no service code (nothing is polled).
                let Some(fut) = inner.entries[index].future(call, &token, &stop_reason) else {
                    state.next += 1;
                    continue;
                };
                if stop_early && token.is_cancelled() {
                    state.skipped = true;
                    return;
                }
                state.in_flight = Some(state.next);
                state.next += 1;
                break (index, fut);
            }
        };
        let entry = &inner.entries[index];
        let span = call_span(entry, phase);
        let t0 = Instant::now();
        let result = CatchUnwind(fut).instrument(span.clone()).await;
        let outcome = match result {
            Ok(result) => classify(result, t0.elapsed(), &token, &span),
            Err(payload) => panicked(panic_message(payload.as_ref()), &span, &entry.name),
        };
        let mut state = lock(&progress.state);
        if state.superseded {
            return; // the orchestrator reported this call
        }
        state.in_flight = None;
        let failed = !matches!(outcome, Outcome::Completed);
        state.outcomes.push((index, outcome));
        if failed && stop_early {
            return;
        }
    }
}

fn call_span(entry: &Entry, phase: LifecyclePhase) -> Span {
    tracing::debug_span!(target: "apphost::host", "service", service = %entry.name, %phase, elapsed_ms = tracing::field::Empty)
}

/// Classifies a call's result, records its duration and logs it.
fn classify(
    result: anyhow::Result<()>,
    took: Duration,
    token: &CancellationToken,
    span: &Span,
) -> Outcome {
    let elapsed_ms = took.as_millis() as u64;
    span.record("elapsed_ms", elapsed_ms);
    match result {
        Ok(()) => {
            tracing::debug!(target: "apphost::host", parent: span, elapsed_ms, "service call finished");
            Outcome::Completed
        }
        Err(error) if is_cooperative(&error, token) => {
            let reason = token.reason().unwrap_or(CancelReason::Requested);
            tracing::info!(target: "apphost::host", parent: span, %reason, "service call cancelled");
            Outcome::Cancelled(reason)
        }
        Err(error) => {
            tracing::error!(target: "apphost::host", parent: span, error = format!("{error:#}"), "service call failed");
            Outcome::Failed(FailureKind::Error(Arc::new(error)))
        }
    }
}

fn panicked(message: String, span: &Span, name: &str) -> Outcome {
    tracing::error!(target: "apphost::host", parent: span, service = %name, panic = %message, "service call panicked");
    Outcome::Failed(FailureKind::Panic(message))
}

// ===== each call in its own task =====

type CallOutput = (anyhow::Result<()>, Duration);

/// A spawned call.
struct Running {
    index: usize,
    handle: JoinHandle<CallOutput>,
    /// For a call made after the budget was spent: fires if its first poll
    /// left it pending (closed if that poll completed it).
    first_pending: Option<oneshot::Receiver<()>>,
    span: Span,
}

/// How waiting for a spawned call ended.
enum Waited<T> {
    Done(T),
    /// Given up on; abort its task unless it may not have been polled yet.
    GaveUp {
        abort: bool,
    },
}

/// Reports, once, whether the first poll left the call pending.
struct FirstPoll {
    fut: BoxFuture,
    tx: Option<oneshot::Sender<()>>,
}

impl Future for FirstPoll {
    type Output = anyhow::Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let poll = self.fut.as_mut().poll(cx);
        if let Some(tx) = self.tx.take() {
            if poll.is_pending() {
                let _ = tx.send(());
            }
        }
        poll
    }
}

fn spawn_call(
    entry: &Entry,
    index: usize,
    phase: LifecyclePhase,
    fut: BoxFuture,
    observe: bool,
) -> Running {
    let span = call_span(entry, phase);
    let (fut, first_pending): (BoxFuture, _) = if observe {
        let (tx, rx) = oneshot::channel();
        (Box::pin(FirstPoll { fut, tx: Some(tx) }), Some(rx))
    } else {
        (fut, None)
    };
    let timed = async move {
        let t0 = Instant::now();
        let result = fut.await;
        (result, t0.elapsed())
    };
    let handle = tokio::spawn(timed.instrument(span.clone()));
    Running {
        index,
        handle,
        first_pending,
        span,
    }
}

/// Waits for a spawned call within the budget (see `Budget`: running calls
/// get until `grace_end`; calls made after it, their first poll).
async fn wait_call(
    budget: &mut Budget,
    running: &mut Running,
) -> Waited<Result<CallOutput, JoinError>> {
    if let Some(out) = budget.until_spent(&mut running.handle).await {
        return Waited::Done(out);
    }
    if let Ok(out) = tokio::time::timeout_at(budget.grace_end(), &mut running.handle).await {
        return Waited::Done(out);
    }
    let Some(first_pending) = running.first_pending.as_mut() else {
        return Waited::GaveUp { abort: true };
    };
    let hard_end = budget.hard_end();
    tokio::select! {
        biased;
        out = &mut running.handle => Waited::Done(out),
        pending = first_pending => match pending {
            // Polled once and still running: it ignores its token.
            Ok(()) => Waited::GaveUp { abort: true },
            // Its first poll completed it: the output is on its way.
            Err(_) => match tokio::time::timeout_at(hard_end, &mut running.handle).await {
                Ok(out) => Waited::Done(out),
                Err(_) => Waited::GaveUp { abort: true },
            },
        },
        // Not polled yet, or blocking its thread in its first poll: leave it
        // be (aborting an unpolled task would take its call away).
        () = sleep_until(hard_end) => Waited::GaveUp { abort: false },
    }
}

/// Waits for `running` within `budget`, logs how it ended, and classifies it.
async fn finish(entries: &[Entry], mut running: Running, budget: &mut Budget) -> (usize, Outcome) {
    let name = &entries[running.index].name;
    let span = running.span.clone();
    let outcome = match wait_call(budget, &mut running).await {
        Waited::Done(Ok((result, took))) => classify(result, took, budget.token(), &span),
        Waited::Done(Err(join)) => match join.try_into_panic() {
            Ok(payload) => panicked(panic_message(payload.as_ref()), &span, name),
            // Only abandoned tasks are aborted, and those are not joined.
            Err(_) => Outcome::Failed(FailureKind::TimedOut),
        },
        Waited::GaveUp { abort } => {
            if abort {
                running.handle.abort();
            }
            tracing::warn!(target: "apphost::host", parent: &span, service = %name,
                "service call did not finish in time: abandoned");
            Outcome::Failed(FailureKind::TimedOut)
        }
    };
    (running.index, outcome)
}
