//! Running [`BackgroundService`](crate::host::BackgroundService)s: launching
//! `execute` once the host has started, watching how it ends, and stopping it.
//!
//! Each background service gets its own token source, not linked to the
//! application's `stopping()` (as in .NET): the stop sequence cancels it when
//! it reaches the service, in reverse registration order, so services
//! registered later are stopped first whatever their kind.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;

use super::adapter::DynBackground;
use super::error::{FailureKind, LifecyclePhase, ServiceFailure};
use super::inner::{is_cooperative, lock};
use super::lifetime::ApplicationLifetime;
use super::options::BackgroundServiceExceptionBehavior;
use super::report::CallOutcome;
use crate::cancel::{CancelReason, CancellationToken, CancellationTokenSource};

/// A registered background service and, once launched, its execution.
pub(crate) struct Background {
    service: Arc<dyn DynBackground>,
    execution: Mutex<Option<Execution>>,
}

struct Execution {
    source: CancellationTokenSource,
    handle: JoinHandle<()>,
}

/// What an `execute` task needs to report how it ended.
pub(crate) struct ExecuteContext {
    pub(crate) lifetime: ApplicationLifetime,
    pub(crate) events: Arc<super::hub::Hub>,
    pub(crate) failures: Arc<Mutex<Vec<ServiceFailure>>>,
    pub(crate) behavior: BackgroundServiceExceptionBehavior,
}

impl Background {
    pub(crate) fn new(service: Arc<dyn DynBackground>) -> Self {
        Background {
            service,
            execution: Mutex::new(None),
        }
    }

    /// Spawns `execute`; start does not wait for it.
    pub(crate) fn launch(&self, name: &Arc<str>, context: &Arc<ExecuteContext>) {
        let source = CancellationTokenSource::new();
        let token = source.token();
        let handle = Arc::clone(&self.service).spawn(token, Arc::clone(name), Arc::clone(context));
        *lock(&self.execution) = Some(Execution { source, handle });
    }

    /// Takes the execution for the engine to stop: the token's source (the
    /// engine cancels it at the service's turn) and `execute`'s task. `None`
    /// if it was never launched, or already taken.
    pub(crate) fn take(&self) -> Option<(CancellationTokenSource, JoinHandle<()>)> {
        let Execution { source, handle } = lock(&self.execution).take()?;
        Some((source, handle))
    }

    /// Cancels the token of an execution not yet taken (the budget keeper's
    /// takeover: a loop that polls its token ends).
    pub(crate) fn cancel(&self, reason: CancelReason) {
        if let Some(execution) = &*lock(&self.execution) {
            execution.source.cancel_with(reason);
        }
    }
}

impl Drop for Background {
    /// A host dropped without being stopped still tells its background
    /// services to end, rather than leaving them running unowned.
    fn drop(&mut self) {
        if let Some(execution) = lock(&self.execution).take() {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                execution.source.cancel()
            }));
        }
    }
}

impl ExecuteContext {
    /// Logs how `execute` ended; a failure is recorded and stops the host
    /// under [`BackgroundServiceExceptionBehavior::StopHost`].
    pub(crate) fn report(
        &self,
        name: &Arc<str>,
        token: &CancellationToken,
        outcome: Result<anyhow::Result<()>, Box<super::panics::CaughtPanic>>,
    ) {
        // Ending because it was asked to is told by its stop call; only an
        // end of its own is an event here (always: it is rare, and says
        // something). `execute` is not timed: it runs for the host's life.
        let kind = match outcome {
            Ok(Ok(())) if token.is_cancelled() => return,
            Ok(Err(error)) if is_cooperative(&error, token) => return,
            Ok(Ok(())) => {
                let events = &self.events;
                events.call_ended(
                    name,
                    LifecyclePhase::Execute,
                    None,
                    Duration::ZERO,
                    false,
                    || CallOutcome::Ok,
                );
                return;
            }
            Ok(Err(error)) => FailureKind::Error(Arc::new(error)),
            Err(panic) => FailureKind::Panic(*panic),
        };
        self.events.call_ended(
            name,
            LifecyclePhase::Execute,
            None,
            Duration::ZERO,
            false,
            || CallOutcome::from(&kind),
        );
        if self.behavior == BackgroundServiceExceptionBehavior::Ignore {
            return;
        }
        // The stop request is an event; its reason names the service (set
        // `background_service_exception_behavior = "Ignore"` to keep running).
        lock(&self.failures).push(ServiceFailure::new(
            Some(Arc::clone(name)),
            LifecyclePhase::Execute,
            kind,
        ));
        let lifetime = self.lifetime.clone();
        let reason = CancelReason::custom(format!("background service `{name}` failed"));
        // The stop request runs `stopping()` callbacks: off this worker thread.
        drop(tokio::task::spawn_blocking(move || {
            lifetime.stop_application_with(reason)
        }));
    }
}
