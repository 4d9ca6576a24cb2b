//! How a call ended ([`Outcome`]), how long it took ([`Clock`]), and the
//! call's DEBUG span (its line is written from its `CallEnded` event, see
//! `host/log.rs`).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::Span;

use crate::cancel::{CancelReason, CancellationToken};
use crate::host::error::{FailureKind, LifecyclePhase};
use crate::host::inner::{Entry, is_cooperative};
use crate::host::panics::CaughtPanic;

/// How one call ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    Completed,
    /// Cooperative cancellation: the call returned `OperationCanceled` while
    /// its token was cancelled for this reason.
    Cancelled(CancelReason),
    Failed(FailureKind),
}

impl Outcome {
    pub(crate) fn is_completed(&self) -> bool {
        matches!(self, Outcome::Completed)
    }

    /// Abandoned while its task still ran: the service's later calls in
    /// this sequence are not made (they would overlap it).
    pub(crate) fn is_stuck(&self) -> bool {
        matches!(
            self,
            Outcome::Failed(FailureKind::Abandoned {
                still_running: true
            })
        )
    }
}

pub(crate) type Caught = Result<anyhow::Result<()>, Box<CaughtPanic>>;

pub(crate) fn outcome(
    caught: Caught,
    took: Duration,
    token: &CancellationToken,
    span: &Span,
) -> Outcome {
    span.record("elapsed_ms", took.as_millis() as u64);
    match caught {
        Ok(result) => classify(result, token),
        Err(panic) => panicked(*panic),
    }
}

/// When a call began, if its duration is needed: it is recorded on the
/// call's DEBUG span and event, and taken from the service's own budget; when
/// neither applies the clock is not read (twice per call adds up at 10,000
/// services).
#[derive(Clone, Copy)]
pub(crate) struct Clock(Option<Instant>);

impl Clock {
    /// Reads the clock if DEBUG can show the duration, or if `needed` (the
    /// service has its own budget, which the duration is taken from).
    pub(crate) fn start_if(needed: bool) -> Self {
        let debug = tracing::Level::DEBUG <= tracing::level_filters::STATIC_MAX_LEVEL
            && tracing::Level::DEBUG <= tracing::level_filters::LevelFilter::current();
        Clock((needed || debug).then(Instant::now))
    }

    /// When it started, if the clock was read.
    pub(crate) fn instant(&self) -> Option<Instant> {
        self.0
    }

    /// Time since it started; zero if it was not read.
    pub(crate) fn elapsed(&self) -> Duration {
        self.0.map_or(Duration::ZERO, |t0| t0.elapsed())
    }
}

pub(crate) fn call_span(entry: &Entry, phase: LifecyclePhase) -> Span {
    tracing::debug_span!(target: "apphost::host", "service", service = %entry.name, %phase, elapsed_ms = tracing::field::Empty)
}

/// Classifies a call's result.
fn classify(result: anyhow::Result<()>, token: &CancellationToken) -> Outcome {
    match result {
        Ok(()) => Outcome::Completed,
        Err(error) if is_cooperative(&error, token) => {
            Outcome::Cancelled(token.reason().unwrap_or(CancelReason::Requested))
        }
        Err(error) => Outcome::Failed(FailureKind::Error(Arc::new(error))),
    }
}

pub(crate) fn panicked(panic: CaughtPanic) -> Outcome {
    Outcome::Failed(FailureKind::Panic(panic))
}
