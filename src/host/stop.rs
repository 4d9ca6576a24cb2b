//! The stop sequence. Runs once, in its own task (see `run.rs`, invariant 4),
//! whether it was asked for by `Host::stop` or by a failed start's rollback.
//!
//! `stopping` hooks (reverse) → `stopping()` fires, callbacks finish → `stop`
//! (reverse, or concurrently) → `stopped` hooks (reverse) → `stopped()` fires,
//! callbacks finish. Every phase runs whatever happened before it; only the
//! services whose start completed take part. The whole sequence is bounded by
//! the budget (`shutdown_timeout` from the moment it began, + the grace).

use std::future::Future;
use std::sync::Arc;

use tokio::time::Instant;

use super::adapter::Call;
use super::error::{FailureKind, HostError, LifecyclePhase, ServiceFailure};
use super::lifetime::HostState;
use super::phase::{Outcome, Phase};
use super::run::{Budget, HostInner, fire_lifetime, lock};
use crate::cancel::CancelReason;

/// Runs the stop sequence the first time; every call gets its result.
pub(crate) fn once(
    inner: &Arc<HostInner>,
) -> impl Future<Output = Result<(), HostError>> + Send + 'static {
    let for_task = Arc::clone(inner);
    inner.stop_once.run(
        move || {
            let deadline = Instant::now() + for_task.options().shutdown_timeout;
            run(for_task, deadline)
        },
        || Err(lost()),
    )
}

/// The result of a sequence whose task ended without one (a bug in the host).
pub(crate) fn lost() -> HostError {
    let failure = ServiceFailure::new(
        None,
        LifecyclePhase::Stop,
        FailureKind::Panic("the host's orchestration task ended without a result".to_owned()),
    );
    HostError::from_failures(vec![failure]).expect("one failure")
}

/// Tallies for the summary event.
#[derive(Default)]
struct Tally {
    stopped: usize,
    cancelled: usize,
}

async fn run(inner: Arc<HostInner>, deadline: Instant) -> Result<(), HostError> {
    let t0 = Instant::now();
    let lifetime = &inner.lifetime;
    let mut budget = Budget::new(inner.stop_source.clone(), Some(deadline), "stop");

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
            let mut settled = Box::pin(states.wait_for(|state| *state != HostState::Starting));
            if budget.wait(&mut settled).await.is_none() {
                tracing::warn!(target: "apphost::host", "start did not settle in time; stopping what has started");
            }
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
    tracing::info!(target: "apphost::host", "host stopping");

    let order: Arc<[usize]> = if services_ran {
        (0..inner.entries.len())
            .rev()
            .filter(|&i| inner.entries[i].is_started())
            .collect()
    } else {
        Arc::from([])
    };
    let mut failures = Vec::new();
    let mut tally = Tally::default();

    let phase = |call, phase| Phase {
        inner: &inner,
        call,
        phase,
        concurrent: inner.options().services_stop_concurrently,
        stop_early: false,
    };

    let step = phase(Call::Stopping, LifecyclePhase::Stopping);
    let (outcomes, _) = step
        .run(Arc::clone(&order), &mut budget, &CancelReason::Requested)
        .await;
    record(
        &inner,
        LifecyclePhase::Stopping,
        outcomes,
        &mut failures,
        &mut tally,
    );

    let notify = lifetime.clone();
    if !fire_lifetime(&mut budget, move || notify.stop_application()).await {
        tracing::warn!(target: "apphost::host", "stopping callbacks did not finish in time: abandoned");
        failures.push(ServiceFailure::new(
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

    let step = phase(Call::Stop, LifecyclePhase::Stop);
    let (outcomes, _) = step.run(Arc::clone(&order), &mut budget, &reason).await;
    record(
        &inner,
        LifecyclePhase::Stop,
        outcomes,
        &mut failures,
        &mut tally,
    );

    let step = phase(Call::Stopped, LifecyclePhase::Stopped);
    let (outcomes, _) = step.run(Arc::clone(&order), &mut budget, &reason).await;
    record(
        &inner,
        LifecyclePhase::Stopped,
        outcomes,
        &mut failures,
        &mut tally,
    );

    let _ = lifetime.transition(&[HostState::Stopping], HostState::Stopped);
    let notify = lifetime.clone();
    if !fire_lifetime(&mut budget, move || notify.notify_stopped()).await {
        tracing::warn!(target: "apphost::host", "stopped callbacks did not finish in time: abandoned");
        failures.push(ServiceFailure::new(
            None,
            LifecyclePhase::StoppedCallbacks,
            FailureKind::TimedOut,
        ));
    }

    // Report order: what failed while running, then the stop phases, then callbacks.
    let mut all = std::mem::take(&mut *lock(&inner.execute_failures));
    all.append(&mut failures);
    all.append(&mut lifetime.take_callback_failures());

    let timed_out = all
        .iter()
        .filter(|f| matches!(f.kind(), FailureKind::TimedOut))
        .count();
    tracing::info!(
        target: "apphost::host",
        services_stopped = tally.stopped,
        failed = all.len() - timed_out,
        timed_out,
        cancelled = tally.cancelled,
        elapsed_ms = t0.elapsed().as_millis() as u64,
        "host stopped"
    );
    match HostError::from_failures(all) {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// Turns a stop phase's outcomes into failures and tallies. Cooperative
/// cancellation is a failure only when the budget ran out (it is then a
/// timeout); cancelled by the caller's token, it is what was asked for.
fn record(
    inner: &HostInner,
    phase: LifecyclePhase,
    outcomes: Vec<(usize, Outcome)>,
    failures: &mut Vec<ServiceFailure>,
    tally: &mut Tally,
) {
    for (index, outcome) in outcomes {
        let kind = match outcome {
            Outcome::Completed => {
                if phase == LifecyclePhase::Stop {
                    tally.stopped += 1;
                }
                continue;
            }
            Outcome::Cancelled(CancelReason::TimedOut) => FailureKind::TimedOut,
            Outcome::Cancelled(_) => {
                tally.cancelled += 1;
                continue;
            }
            Outcome::Failed(kind) => kind,
        };
        failures.push(ServiceFailure::new(
            Some(Arc::clone(&inner.entries[index].name)),
            phase,
            kind,
        ));
    }
}
