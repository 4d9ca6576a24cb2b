//! Calls made each in a task of its own: the calls of a phase once its
//! budget is spent (see `phase.rs`), waited for by the orchestrator within
//! what is left of the budget.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::{JoinError, JoinHandle};
use tokio::time::{Instant, sleep_until};
use tracing::{Instrument, Span};

use super::adapter::CallFuture;
use super::error::{FailureKind, LifecyclePhase};
use super::phase::{Outcome, call_span, classify, panicked};
use super::run::{Budget, Entry, panic_message};

type CallOutput = (anyhow::Result<()>, Duration);

/// A spawned call.
pub(crate) struct Running {
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

/// Reports, once, whether the first poll left the call pending (if asked to:
/// `tx` is `None` otherwise).
struct FirstPoll {
    fut: CallFuture,
    tx: Option<oneshot::Sender<()>>,
}

impl Future for FirstPoll {
    type Output = anyhow::Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let poll = Pin::new(&mut self.fut).poll(cx);
        if let Some(tx) = self.tx.take() {
            if poll.is_pending() {
                let _ = tx.send(());
            }
        }
        poll
    }
}

pub(crate) fn spawn_call(
    entry: &Entry,
    index: usize,
    phase: LifecyclePhase,
    fut: CallFuture,
    observe: bool,
) -> Running {
    let span = call_span(entry, phase);
    let (tx, first_pending) = if observe {
        let (tx, rx) = oneshot::channel();
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    let fut = FirstPoll { fut, tx };
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
pub(crate) async fn finish(
    entries: &[Entry],
    mut running: Running,
    budget: &mut Budget,
) -> (usize, Outcome) {
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
