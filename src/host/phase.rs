//! One phase of a sequence: a call on each service, in order or all at once,
//! within the sequence's [`Budget`].
//!
//! # How calls are run
//!
//! Until the budget is spent, all the calls of a phase are made by one
//! spawned *runner* task, not one task per call; that is what makes starting
//! and stopping 10,000 services cost about as much as spawning 10,000 tasks.
//! In order (the default), the runner awaits each call in turn; all at once
//! (a concurrent phase), it polls them together ([`JoinAll`]), giving each
//! its first poll in order. The orchestrator only watches the runner, within
//! the budget. If the budget runs out while calls are still running (they
//! ignore their token, or block the runner's thread), the orchestrator
//! *supersedes* the runner: the calls in flight are reported as timed out,
//! the runner is aborted, and the remaining calls are made as below.
//!
//! Calls made once the budget is spent each get a task of their own, all at
//! once, and the orchestrator waits for each within what is left.
//!
//! Either way a panic is caught per call, and no service code ever runs on
//! the orchestrator's task (`run.rs`, invariant 1).
//!
//! # Runner protocol
//!
//! The runner and the orchestrator share a [`Progress`] under one mutex,
//! never held across an `.await` or around service code. The runner claims a
//! call (advances `next`) before creating and polling its future, and
//! records its outcome (sets `done`) after, unless `superseded` was set
//! meanwhile. The orchestrator sets `superseded`, reports every claimed call
//! not `done`, and makes the calls from `next` on. So every call is made
//! once, and its outcome recorded once, by whichever side owns it.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;
use tracing::instrument::Instrumented;
use tracing::{Instrument, Span};

use super::adapter::{Call, CallFuture};
use super::error::{FailureKind, LifecyclePhase};
use super::join_all::JoinAll;
use super::run::{Budget, CatchUnwind, Entry, HostInner, is_cooperative, lock, panic_message};
use super::spawned::{finish, spawn_call};
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

struct ProgressState {
    /// Position in the order of the next call to claim.
    next: usize,
    /// By position: the call finished, or there was none to make.
    done: Vec<bool>,
    outcomes: Vec<(usize, Outcome)>,
    superseded: bool,
    skipped: bool,
}

impl Progress {
    fn new(len: usize) -> Arc<Self> {
        let state = ProgressState {
            next: 0,
            done: vec![false; len],
            outcomes: Vec::new(),
            superseded: false,
            skipped: false,
        };
        Arc::new(Progress {
            state: Mutex::new(state),
        })
    }
}

/// What a runner needs; owned, as the runner is a spawned task.
struct Runner {
    inner: Arc<HostInner>,
    order: Arc<[usize]>,
    call: Call,
    phase: LifecyclePhase,
    token: CancellationToken,
    stop_reason: CancelReason,
    stop_early: bool,
    progress: Arc<Progress>,
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
        // Leave out the services the call does nothing for (background
        // services in every phase but `stop`, hooks left at their default):
        // the runner would only skip them, one lock each.
        let entries = &self.inner.entries;
        let order: Arc<[usize]> = if order.iter().all(|&i| entries[i].takes_part(self.call)) {
            order
        } else {
            order
                .iter()
                .copied()
                .filter(|&i| entries[i].takes_part(self.call))
                .collect()
        };
        if order.is_empty() {
            return (Vec::new(), false);
        }
        let mut from = 0;
        let mut outcomes = Vec::new();
        if !budget.is_spent() {
            let progress = Progress::new(order.len());
            let runner = Runner {
                inner: Arc::clone(self.inner),
                order: Arc::clone(&order),
                call: self.call,
                phase: self.phase,
                token: budget.token().clone(),
                stop_reason: stop_reason.clone(),
                stop_early: self.stop_early,
                progress: Arc::clone(&progress),
            };
            let mut task = if self.concurrent {
                // Unconstrained: under tokio's cooperative budget, the
                // runner could only complete ~128 calls per poll while
                // re-polling every woken one, which is quadratic in N.
                tokio::spawn(tokio::task::unconstrained(runner.all_at_once()))
            } else {
                tokio::spawn(runner.in_order())
            };
            let finished = matches!(budget.wait(&mut task).await, Some(Ok(())));
            let mut state = lock(&progress.state);
            let claimed = state.next;
            if !finished || state.done[..claimed].contains(&false) {
                // Given up on (or the runner died): take over.
                state.superseded = true;
                task.abort();
                let abandoned: Vec<usize> = (0..claimed).filter(|&p| !state.done[p]).collect();
                for position in abandoned {
                    let name = &self.inner.entries[order[position]].name;
                    tracing::warn!(target: "apphost::host", service = %name, phase = %self.phase,
                        "service call did not finish in time: abandoned");
                    let outcome = Outcome::Failed(FailureKind::TimedOut);
                    state.outcomes.push((order[position], outcome));
                }
            }
            outcomes = std::mem::take(&mut state.outcomes);
            from = claimed;
            let failed = outcomes
                .iter()
                .any(|(_, o)| !matches!(o, Outcome::Completed));
            if state.skipped || (self.stop_early && failed) {
                return (outcomes, state.skipped);
            }
        }
        let (rest, skipped) = self.run_spawned(&order[from..], budget, stop_reason).await;
        outcomes.extend(rest);
        (outcomes, skipped)
    }

    /// Each call in its own task (the budget is spent, or the runner was
    /// superseded): all at once once the budget is spent, else in order.
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

// ===== the runner task =====

/// A claimed call: its position, entry index and future.
type Claimed = (usize, usize, CallFuture);

impl Runner {
    /// Claims the next call that does something; `None` when there is none
    /// left, the runner was superseded, or (start phases) the token is
    /// cancelled.
    fn claim(&self) -> Option<Claimed> {
        let mut state = lock(&self.progress.state);
        loop {
            if state.superseded {
                return None;
            }
            let position = state.next;
            let &index = self.order.get(position)?;
            state.next += 1;
            // Boxing the future runs no service code (nothing is polled).
            let entry = &self.inner.entries[index];
            let Some(fut) = entry.future(self.call, &self.token, &self.stop_reason) else {
                state.done[position] = true;
                continue;
            };
            if self.stop_early && self.token.is_cancelled() {
                state.next -= 1; // not made: the orchestrator reports the skip
                state.skipped = true;
                return None;
            }
            return Some((position, index, fut));
        }
    }

    /// Records a call's outcome; `false` if the runner must stop (it was
    /// superseded, or a start phase just failed).
    fn record(&self, position: usize, index: usize, outcome: Outcome) -> bool {
        let mut state = lock(&self.progress.state);
        if state.superseded {
            return false; // the orchestrator reported this call
        }
        state.done[position] = true;
        let failed = !matches!(outcome, Outcome::Completed);
        state.outcomes.push((index, outcome));
        !(failed && self.stop_early)
    }

    fn outcome(&self, index: usize, result: CaughtResult, took: Duration, span: &Span) -> Outcome {
        match result {
            Ok(result) => classify(result, took, &self.token, span),
            Err(payload) => panicked(
                panic_message(payload.as_ref()),
                span,
                &self.inner.entries[index].name,
            ),
        }
    }

    /// Makes the calls one after the other.
    async fn in_order(self) {
        while let Some((position, index, fut)) = self.claim() {
            let span = call_span(&self.inner.entries[index], self.phase);
            let t0 = Clock::start();
            let result = CatchUnwind(fut).instrument(span.clone()).await;
            let outcome = self.outcome(index, result, t0.elapsed(), &span);
            if !self.record(position, index, outcome) {
                return;
            }
        }
    }

    /// Makes every call, first polls in order, and waits for them all.
    async fn all_at_once(self) {
        // At most one call per position: sized once, never grown.
        let mut calls = JoinAll::with_capacity(self.order.len());
        let mut claiming = true;
        std::future::poll_fn(|cx| {
            while claiming {
                let Some((position, index, fut)) = self.claim() else {
                    claiming = false;
                    break;
                };
                let span = call_span(&self.inner.entries[index], self.phase);
                let call = Tracked {
                    position,
                    index,
                    t0: Clock::start(),
                    fut: CatchUnwind(fut).instrument(span),
                };
                if let Ok(ended) = calls.push_and_poll(call, cx) {
                    if !self.ended(ended) {
                        return Poll::Ready(());
                    }
                }
            }
            let mut go_on = true;
            calls.poll_woken(cx, |_, ended| go_on &= self.ended(ended));
            if !go_on || calls.len() == 0 {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }

    /// Records a call of a concurrent phase that ended; `false` if the
    /// runner must stop (see [`record`](Self::record)).
    fn ended(&self, (position, index, t0, span, result): Ended) -> bool {
        let outcome = self.outcome(index, result, t0.elapsed(), &span);
        self.record(position, index, outcome)
    }
}

/// A call of a concurrent phase, carrying what its outcome needs (so the
/// runner keeps nothing else per call).
struct Tracked {
    position: usize,
    index: usize,
    t0: Clock,
    fut: Instrumented<CatchUnwind<CallFuture>>,
}

/// How a [`Tracked`] call ended: position, entry index, start, span, result.
type Ended = (usize, usize, Clock, Span, CaughtResult);

impl Future for Tracked {
    type Output = Ended;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Ended> {
        let this = self.get_mut();
        Pin::new(&mut this.fut).poll(cx).map(|result| {
            let span = this.fut.span().clone();
            (this.position, this.index, this.t0, span, result)
        })
    }
}

/// When a call began, if its duration can be seen at all: it is only
/// recorded on the call's DEBUG span and event, so while DEBUG is off
/// everywhere the clock is not read (twice per call adds up at 10,000
/// services).
#[derive(Clone, Copy)]
pub(crate) struct Clock(Option<Instant>);

impl Clock {
    pub(crate) fn start() -> Self {
        let debug = tracing::Level::DEBUG <= tracing::level_filters::STATIC_MAX_LEVEL
            && tracing::Level::DEBUG <= tracing::level_filters::LevelFilter::current();
        Clock(debug.then(Instant::now))
    }

    /// Time since [`start`](Self::start); zero if it was not read (nothing
    /// can show it).
    pub(crate) fn elapsed(&self) -> Duration {
        self.0.map_or(Duration::ZERO, |t0| t0.elapsed())
    }
}

type CaughtResult = Result<anyhow::Result<()>, Box<dyn std::any::Any + Send>>;

pub(crate) fn call_span(entry: &Entry, phase: LifecyclePhase) -> Span {
    tracing::debug_span!(target: "apphost::host", "service", service = %entry.name, %phase, elapsed_ms = tracing::field::Empty)
}

/// Classifies a call's result, records its duration and logs it.
pub(crate) fn classify(
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

pub(crate) fn panicked(message: String, span: &Span, name: &str) -> Outcome {
    tracing::error!(target: "apphost::host", parent: span, service = %name, panic = %message, "service call panicked");
    Outcome::Failed(FailureKind::Panic(message))
}
