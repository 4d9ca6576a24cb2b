//! The start sequence. Runs once, in its own task (see `run.rs`, invariant 4).
//!
//! `starting` (all) → `start` (all) → `started` (all), in registration order or
//! concurrently; then `started()` fires and background services are launched.
//! On failure nothing more is started, and the host rolls back: it runs the
//! stop sequence, which stops only the services whose `start` completed.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::time::Instant;

use super::adapter::Call;
use super::background::ExecuteContext;
use super::error::{FailureKind, HostError, LifecyclePhase, ServiceFailure};
use super::lifetime::HostState;
use super::phase::{Outcome, Phase};
use super::run::{Budget, EntryKind, HostInner, StartFailed, fire_lifetime};
use super::stop;
use crate::cancel::{CancelReason, CancellationToken, CancellationTokenSource};

const PHASES: [(Call, LifecyclePhase); 3] = [
    (Call::Starting, LifecyclePhase::Starting),
    (Call::Start, LifecyclePhase::Start),
    (Call::Started, LifecyclePhase::Started),
];

/// What a cancellation of `reason` is reported as.
pub(crate) fn cut_short(reason: CancelReason) -> FailureKind {
    match reason {
        CancelReason::TimedOut => FailureKind::TimedOut,
        reason => FailureKind::Cancelled(reason),
    }
}

pub(crate) async fn run(
    inner: Arc<HostInner>,
    caller: CancellationToken,
) -> Result<(), StartFailed> {
    let lifetime = &inner.lifetime;
    if lifetime
        .transition(&[HostState::NotStarted], HostState::Starting)
        .is_err()
    {
        // Stopped before it started: start nothing (the stop already fired the tokens).
        let reason = lifetime
            .stopping()
            .reason()
            .unwrap_or(CancelReason::Requested);
        let failure =
            ServiceFailure::new(None, LifecyclePhase::Start, FailureKind::Cancelled(reason));
        return Err(StartFailed {
            start: HostError::from_failures(vec![failure]).expect("one failure"),
            rollback: Ok(()),
        });
    }
    let t0 = Instant::now();
    tracing::info!(target: "apphost::host", services = inner.entries.len(), "host starting");

    // The start token: the caller's, a stop request, `Host::stop`, and the startup timeout.
    let source = CancellationTokenSource::linked([
        &caller,
        &lifetime.stopping(),
        &inner.abort_start.token(),
    ]);
    let deadline = inner.options().startup_timeout.map(|timeout| t0 + timeout);
    let mut budget = Budget::new(source, deadline, "start");

    let order: Arc<[usize]> = (0..inner.entries.len()).collect();
    let mut failures = Vec::new();
    for (call, phase) in PHASES {
        let step = Phase {
            inner: &inner,
            call,
            phase,
            concurrent: inner.options().services_start_concurrently,
            stop_early: true,
        };
        let (outcomes, skipped) = step
            .run(Arc::clone(&order), &mut budget, &CancelReason::Requested)
            .await;
        for (index, outcome) in outcomes {
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
        if failures.is_empty() && skipped {
            // Cancelled between two calls: nobody to blame but the cancellation.
            failures.push(ServiceFailure::new(None, phase, budget.cut_short()));
        }
        if !failures.is_empty() {
            break;
        }
    }

    if failures.is_empty() {
        let notify = lifetime.clone();
        if !fire_lifetime(&mut budget, move || notify.notify_started()).await {
            tracing::warn!(target: "apphost::host", "started callbacks still running after start was cancelled; start carries on");
        }
        // Once `started()` has fired, every background service runs, even if
        // a stop was requested meanwhile: its token is cancelled at its turn.
        launch_background_services(&inner);
        let _ = lifetime.transition(&[HostState::Starting], HostState::Started);
        tracing::info!(target: "apphost::host", elapsed_ms = t0.elapsed().as_millis() as u64, "host started");
        return Ok(());
    }

    let start = HostError::from_failures(failures).expect("not empty");
    tracing::error!(target: "apphost::host", error = %start, "host failed to start; stopping the services that started");
    let _ = lifetime.transition(&[HostState::Starting], HostState::Stopping);
    let rollback = stop::once(&inner).await;
    Err(StartFailed { start, rollback })
}

fn launch_background_services(inner: &HostInner) {
    let mut context = None;
    for entry in inner.entries.iter() {
        if let EntryKind::Background(background) = &entry.kind {
            let context = context.get_or_insert_with(|| {
                Arc::new(ExecuteContext {
                    lifetime: inner.lifetime.clone(),
                    failures: Arc::clone(&inner.execute_failures),
                    behavior: inner.options().background_service_exception_behavior,
                })
            });
            background.launch(&entry.name, context);
            entry.started.store(true, Ordering::Release);
        }
    }
}
