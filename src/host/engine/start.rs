//! The start sequence: `starting` → `start` → `started` over the graph's
//! order, then `started()` fires and background services are launched. On
//! failure nothing more is started, and the host rolls back: it runs the
//! stop sequence, which stops only the services whose `start` completed.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::budget::{Budget, deadline_after};
use super::call::Outcome;
use super::phase::{Phase, Seq};
use super::{fire_lifetime, stop};
use crate::cancel::{CancelReason, CancellationToken, CancellationTokenSource};
use crate::host::adapter::Call;
use crate::host::background::ExecuteContext;
use crate::host::error::{FailureKind, HostError, LifecyclePhase, ServiceFailure};
use crate::host::events::Sequence;
use crate::host::inner::{EntryKind, HostInner, StartFailed};
use crate::host::lifetime::HostState;
use crate::host::report::{CallOutcome, RunOutcome};

const PHASES: [(Call, LifecyclePhase); 3] = [
    (Call::Starting, LifecyclePhase::Starting),
    (Call::Start, LifecyclePhase::Start),
    (Call::Started, LifecyclePhase::Started),
];

/// What a cancellation of `reason` is reported as during start.
fn cut_short(reason: CancelReason) -> FailureKind {
    match reason {
        CancelReason::TimedOut => FailureKind::TimedOut,
        reason => FailureKind::Cancelled(reason),
    }
}

fn cancelled(reason: CancelReason) -> StartFailed {
    let failure = ServiceFailure::new(None, LifecyclePhase::Start, FailureKind::Cancelled(reason));
    StartFailed {
        start: HostError::from_failures(vec![failure]).expect("one failure"),
        rollback: Ok(()),
    }
}

pub(crate) async fn run(
    inner: Arc<HostInner>,
    caller: CancellationToken,
) -> Result<(), StartFailed> {
    let lifetime = &inner.lifetime;
    // A start asked for with a cancelled token, or after a stop request,
    // fails before any phase: nothing starts, `started()` never fires.
    if let Some(reason) = caller.reason().or_else(|| lifetime.stopping().reason()) {
        inner.events.sequence_ended(
            Sequence::Start,
            RunOutcome::Cancelled,
            Some(format!(
                "cancelled before it began ({reason}): nothing started"
            )),
            [0; 4],
            false,
            Duration::ZERO,
        );
        return Err(cancelled(reason));
    }
    if lifetime
        .transition(&[HostState::NotStarted], HostState::Starting)
        .is_err()
    {
        // Stopped before it started: start nothing (the stop fired the tokens).
        let reason = lifetime
            .stopping()
            .reason()
            .unwrap_or(CancelReason::Requested);
        return Err(cancelled(reason));
    }
    let t0 = Instant::now();

    // The start token: the caller's, a stop request, `Host::stop`, the startup timeout.
    let source = CancellationTokenSource::linked([
        &caller,
        &lifetime.stopping(),
        &inner.abort_start.token(),
    ]);
    let options = inner.options();
    let deadline = options
        .startup_timeout
        .and_then(|timeout| deadline_after(t0, timeout));
    let mut budget = Budget::new(source, deadline, Sequence::Start, Arc::clone(&inner.events));
    let mut seq = Seq {
        own: inner.own_start.to_vec(),
        stuck: Vec::new(),
        record: None,
    };

    let mut failures = Vec::new();
    for (call, phase) in PHASES {
        let step = Phase {
            inner: &inner,
            call,
            phase,
            concurrent: options.services_start_concurrently,
            start: true,
            stop_reason: CancelReason::Requested,
        };
        let done = step.run(&inner.graph.order, &mut budget, &mut seq).await;
        for (index, outcome) in done.outcomes {
            let entry = &inner.entries[index];
            let kind = match outcome {
                Outcome::Completed => {
                    if call == Call::Start {
                        entry.started.store(true, Ordering::Release);
                    }
                    continue;
                }
                Outcome::Cancelled(reason) => cut_short(reason),
                Outcome::Failed(kind) => kind,
            };
            failures.push(ServiceFailure::new(
                Some(Arc::clone(&entry.name)),
                phase,
                kind,
            ));
        }
        if failures.is_empty() && done.skipped {
            // Cancelled between two calls: nobody to blame but the cancellation.
            failures.push(ServiceFailure::new(None, phase, cut_short(budget.reason())));
        }
        if !failures.is_empty() {
            break;
        }
    }
    if failures.is_empty() && budget.is_spent() {
        // Every call completed, but the start was cancelled meanwhile.
        failures.push(ServiceFailure::new(
            None,
            LifecyclePhase::Started,
            cut_short(budget.reason()),
        ));
    }

    if failures.is_empty() {
        let notify = lifetime.clone();
        if !fire_lifetime(&mut budget, move || notify.notify_started()).await {
            // Still running after the start was cancelled: the start
            // carries on.
            inner
                .events
                .callback_failed(LifecyclePhase::StartedCallbacks, CallOutcome::TimedOut);
        }
        // Once `started()` has fired, every background service runs, even if
        // a stop was requested meanwhile: its token is cancelled at its turn.
        launch_background_services(&inner);
        let _ = lifetime.transition(&[HostState::Starting], HostState::Started);
        let took = t0.elapsed();
        super::sequence_ended(&inner.events, Sequence::Start, None, [0, 0], false, took);
        return Ok(());
    }

    let start = HostError::from_failures(failures).expect("not empty");
    let took = t0.elapsed();
    super::sequence_ended(
        &inner.events,
        Sequence::Start,
        Some(&start),
        [0, 0],
        false,
        took,
    );
    let _ = lifetime.transition(&[HostState::Starting], HostState::Stopping);
    let rollback = stop::once(&inner).await;
    Err(StartFailed { start, rollback })
}

fn launch_background_services(inner: &HostInner) {
    let mut context = None;
    for &index in inner.graph.order.iter() {
        let entry = &inner.entries[index];
        if let EntryKind::Background(background) = &entry.kind {
            let context = context.get_or_insert_with(|| {
                Arc::new(ExecuteContext {
                    lifetime: inner.lifetime.clone(),
                    events: Arc::clone(&inner.events),
                    failures: Arc::clone(&inner.execute_failures),
                    behavior: inner.options().background_service_exception_behavior,
                })
            });
            background.launch(&entry.name, context);
            entry.started.store(true, Ordering::Release);
        }
    }
}
