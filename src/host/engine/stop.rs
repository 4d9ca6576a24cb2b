//! The stop sequence, whether asked for by `Host::stop` or by a failed
//! start's rollback: `stopping` hooks → `stopping()` fires → `stop` →
//! `stopped` hooks → `stopped()` fires, over the graph's order reversed.
//! Every phase runs whatever happened before it; only the services whose
//! start completed take part.

use std::future::Future;
use std::sync::Arc;

use tokio::time::Instant;

use super::budget::{Budget, deadline_after};
use super::call::Outcome;
use super::fire_lifetime;
use super::keeper;
use super::phase::{Phase, Seq};
use super::record::Record;
use crate::cancel::CancelReason;
use crate::host::adapter::Call;
use crate::host::error::{FailureKind, HostError, LifecyclePhase, ServiceFailure};
use crate::host::events::Sequence;
use crate::host::inner::{HostInner, lock, publish};
use crate::host::lifetime::HostState;
use crate::host::panics::CaughtPanic;
use crate::host::report::CallOutcome;

/// Runs the stop sequence the first time; every call gets its result.
///
/// The deadline is computed here, once, when the stop begins; the sequence
/// (tokio's clock) and its keeper (the wall clock) both count from it.
pub(crate) fn once(
    inner: &Arc<HostInner>,
) -> impl Future<Output = Result<(), HostError>> + Send + 'static {
    once_from(inner, None)
}

/// As [`once`], counting the budget from `began` (a moment in the past, on
/// the wall clock) instead of now: the console runner counts it from the
/// stop request, so its drain delay is spent from the same budget.
pub(crate) fn once_from(
    inner: &Arc<HostInner>,
    began: Option<std::time::Instant>,
) -> impl Future<Output = Result<(), HostError>> + Send + 'static {
    inner.stop_once.run(
        move |publisher| {
            let timeout = inner.options().shutdown_timeout;
            let start = began.map_or_else(Instant::now, Instant::from_std);
            let deadline = deadline_after(start, timeout);
            let record = Arc::new(Record::new(inner.entries.len()));
            let keeper = keeper::spawn(
                Arc::clone(inner),
                Arc::clone(&record),
                Arc::clone(&publisher),
                inner.stop_source.token(),
                began,
                timeout,
            );
            let for_task = Arc::clone(inner);
            tokio::spawn(tokio::task::unconstrained(async move {
                let result = run(&for_task, deadline, &record).await;
                if record.claim() {
                    publish(&publisher, result);
                }
                drop(keeper);
            }));
        },
        || Err(lost()),
    )
}

/// The result of a sequence whose task ended without one (a bug in the host).
pub(crate) fn lost() -> HostError {
    let failure = ServiceFailure::new(
        None,
        LifecyclePhase::Stop,
        FailureKind::Panic(CaughtPanic::new(
            "the host's orchestration task ended without a result",
        )),
    );
    HostError::from_failures(vec![failure]).expect("one failure")
}

/// Tallies for the summary event.
#[derive(Default)]
struct Tally {
    stopped: usize,
    cancelled: usize,
}

async fn run(
    inner: &Arc<HostInner>,
    deadline: Option<Instant>,
    record: &Arc<Record>,
) -> Result<(), HostError> {
    let t0 = Instant::now();
    let lifetime = &inner.lifetime;
    let mut budget = Budget::new(
        inner.stop_source.clone(),
        deadline,
        Sequence::Stop,
        Arc::clone(&inner.events),
    );

    let services_ran = match lifetime.transition(
        &[HostState::NotStarted, HostState::Started],
        HostState::Stopping,
    ) {
        Ok(before) => before == HostState::Started,
        Err(HostState::Starting) => {
            // Cut the start short and let it settle: it stops making calls,
            // and what already started is stopped below.
            inner.abort_start.cancel();
            let mut states = lifetime.watch_state();
            let mut settled = Box::pin(async move {
                states
                    .wait_for(|state| *state != HostState::Starting)
                    .await
                    .is_ok()
            });
            // If it does not settle in time (the budget ran out, which is
            // an event), what has started is stopped all the same.
            let _ = budget.wait(&mut settled).await;
            drop(settled);
            let _ = lifetime.transition(
                &[HostState::Starting, HostState::Started],
                HostState::Stopping,
            );
            true
        }
        // `Stopping`: the rollback of a failed start.
        Err(_) => true,
    };

    let order: Vec<usize> = if services_ran {
        inner
            .graph
            .order
            .iter()
            .rev()
            .copied()
            .filter(|&i| inner.entries[i].is_started())
            .collect()
    } else {
        Vec::new()
    };
    let mut seq = Seq {
        own: inner.own_stop.to_vec(),
        stuck: vec![false; inner.entries.len()],
        record: Some(record),
    };
    let mut tally = Tally::default();
    let concurrent = inner.options().services_stop_concurrently;
    let phase = |call, phase, stop_reason| Phase {
        inner,
        call,
        phase,
        concurrent,
        start: false,
        stop_reason,
    };

    let done = phase(
        Call::Stopping,
        LifecyclePhase::Stopping,
        CancelReason::Requested,
    )
    .run(&order, &mut budget, &mut seq)
    .await;
    tally_up(LifecyclePhase::Stopping, done.outcomes, &mut tally);

    let notify = lifetime.clone();
    if !fire_lifetime(&mut budget, move || notify.stop_application()).await {
        inner
            .events
            .callback_failed(LifecyclePhase::StoppingCallbacks, CallOutcome::TimedOut);
        record.fail(ServiceFailure::new(
            None,
            LifecyclePhase::StoppingCallbacks,
            FailureKind::TimedOut,
        ));
    }
    // Background services' tokens carry the reason the application is stopping.
    let reason = lifetime
        .stopping()
        .reason()
        .unwrap_or(CancelReason::Requested);

    let done = phase(Call::Stop, LifecyclePhase::Stop, reason.clone())
        .run(&order, &mut budget, &mut seq)
        .await;
    tally_up(LifecyclePhase::Stop, done.outcomes, &mut tally);

    let done = phase(Call::Stopped, LifecyclePhase::Stopped, reason)
        .run(&order, &mut budget, &mut seq)
        .await;
    tally_up(LifecyclePhase::Stopped, done.outcomes, &mut tally);

    if record.taken_over() {
        return Err(lost()); // not published: the keeper's result stands
    }
    let _ = lifetime.transition(&[HostState::Stopping], HostState::Stopped);
    // The last step, fired here rather than on a blocking thread: nothing
    // comes after it to protect, a thread could take longer to start than
    // the time left, and if a callback blocks, the keeper ends the stop at
    // its bound (invariant 1) and reports it.
    lifetime.notify_stopped();
    if record.taken_over() {
        return Err(lost());
    }

    // Report order: what failed while running, then the stop phases, then callbacks.
    let mut all = std::mem::take(&mut *lock(&inner.execute_failures));
    all.append(&mut record.take_failures());
    all.append(&mut lifetime.take_callback_failures());

    let result = HostError::from_failures(all).map_or(Ok(()), Err);
    super::sequence_ended(
        &inner.events,
        Sequence::Stop,
        result.as_ref().err(),
        [tally.stopped, tally.cancelled],
        false,
        t0.elapsed(),
    );
    result
}

/// Tallies a stop phase's outcomes (the failures were recorded as they
/// happened, see `phase.rs`).
fn tally_up(phase: LifecyclePhase, outcomes: Vec<(usize, Outcome)>, tally: &mut Tally) {
    for (_, outcome) in outcomes {
        match outcome {
            Outcome::Completed if phase == LifecyclePhase::Stop => tally.stopped += 1,
            Outcome::Cancelled(reason) if reason != CancelReason::TimedOut => tally.cancelled += 1,
            _ => {}
        }
    }
}
