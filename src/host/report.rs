//! [`HostReport`]: what a run did, machine-readable, folded from the host's
//! [`LifecycleEvent`](crate::host::LifecycleEvent)s; and [`HostReport::exit_code_for`], the one function
//! that turns what failed into the process's exit code.
//!
//! The schema is documented in the README ("The shutdown report").

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::engine::call::Outcome;
use super::error::{FailureKind, LifecyclePhase};
use super::panics::CaughtPanic;
use crate::cancel::CancelReason;

/// Milliseconds, with microseconds as the fraction (from whole seconds and
/// microseconds: `as_micros` is a `u128`, whose conversion to `f64` cost
/// 90 instructions per event).
pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs() as f64 * 1000.0 + f64::from(d.subsec_micros()) / 1000.0
}

/// A [`CancelReason`], as the report and the events write it: an object
/// whose `kind` is `requested`, `timed_out`, `signal` (with `signal`, its
/// number) or `custom` (with `text`).
///
/// # Examples
///
/// ```
/// use apphost::CancelReason;
/// use apphost::host::Reason;
/// let reason = Reason::from(&CancelReason::Signal(15));
/// assert_eq!(serde_json::to_string(&reason).unwrap(), r#"{"kind":"signal","signal":15}"#);
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// [`CancelReason::Requested`].
    Requested,
    /// [`CancelReason::TimedOut`].
    TimedOut,
    /// [`CancelReason::Signal`].
    Signal {
        /// The signal's number.
        signal: i32,
    },
    /// [`CancelReason::Custom`].
    Custom {
        /// Its text.
        text: String,
    },
}

impl From<&CancelReason> for Reason {
    fn from(reason: &CancelReason) -> Self {
        match reason {
            CancelReason::Requested => Reason::Requested,
            CancelReason::TimedOut => Reason::TimedOut,
            CancelReason::Signal(n) => Reason::Signal { signal: *n },
            CancelReason::Custom(text) => Reason::Custom {
                text: text.to_string(),
            },
        }
    }
}

/// How one call ended, as an object whose `kind` says which.
///
/// # Examples
///
/// ```
/// use apphost::host::CallOutcome;
/// let json = serde_json::to_string(&CallOutcome::Abandoned { still_running: true }).unwrap();
/// assert_eq!(json, r#"{"kind":"abandoned","still_running":true}"#);
/// assert_eq!(serde_json::to_string(&CallOutcome::Ok).unwrap(), r#"{"kind":"ok"}"#);
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CallOutcome {
    /// It returned `Ok`.
    Ok,
    /// It returned an error: the chain, outermost first, `": "`-separated.
    Error {
        /// The error chain as text.
        error: String,
    },
    /// It panicked.
    Panic {
        /// The payload (`Box<dyn Any>` if it was not a string).
        payload: String,
        /// Where it began (`file:line:column`), when the host's panic hook
        /// saw it (absent otherwise).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        location: Option<String>,
    },
    /// Its budget ran out (or it returned for a `TimedOut` cancellation).
    TimedOut,
    /// The host gave up on it.
    Abandoned {
        /// Its task could not be dropped (it blocks its thread).
        still_running: bool,
    },
    /// It returned for its token's cancellation.
    Cancelled {
        /// The token's reason.
        reason: Reason,
    },
}

impl From<&FailureKind> for CallOutcome {
    fn from(kind: &FailureKind) -> Self {
        match kind {
            FailureKind::Error(e) => CallOutcome::Error {
                error: format!("{e:#}"),
            },
            FailureKind::Panic(panic) => panic.into(),
            FailureKind::TimedOut | FailureKind::Cancelled(CancelReason::TimedOut) => {
                CallOutcome::TimedOut
            }
            FailureKind::Cancelled(reason) => CallOutcome::Cancelled {
                reason: reason.into(),
            },
            FailureKind::Abandoned { still_running } => CallOutcome::Abandoned {
                still_running: *still_running,
            },
        }
    }
}

impl From<&CaughtPanic> for CallOutcome {
    fn from(panic: &CaughtPanic) -> Self {
        CallOutcome::Panic {
            payload: panic.message().to_owned(),
            location: panic.location().map(str::to_owned),
        }
    }
}

impl From<&Outcome> for CallOutcome {
    fn from(outcome: &Outcome) -> Self {
        match outcome {
            Outcome::Completed => CallOutcome::Ok,
            Outcome::Cancelled(CancelReason::TimedOut) => CallOutcome::TimedOut,
            Outcome::Cancelled(reason) => CallOutcome::Cancelled {
                reason: reason.into(),
            },
            Outcome::Failed(kind) => kind.into(),
        }
    }
}

/// How the run ended, in one word.
///
/// # Examples
///
/// ```
/// use apphost::host::RunOutcome;
/// assert_eq!(serde_json::to_string(&RunOutcome::TimedOut).unwrap(), r#""timed_out""#);
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// Nothing failed.
    Ok,
    /// A call failed or panicked.
    Failed,
    /// A budget ran out (exit code 124).
    TimedOut,
    /// Only cancellations: a start cut short, or a stop forced by a second
    /// signal.
    Cancelled,
}

/// Whether a service is a hosted or a background service.
///
/// # Examples
///
/// ```
/// use apphost::host::ServiceKind;
/// assert_eq!(serde_json::to_string(&ServiceKind::Background).unwrap(), r#""background""#);
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceKind {
    /// A [`HostedService`](crate::host::HostedService).
    Hosted,
    /// A [`BackgroundService`](crate::host::BackgroundService).
    Background,
}

/// One call of a service, in a [`ServiceReport`].
///
/// # Examples
///
/// ```
/// use apphost::host::{CallOutcome, CallReport};
/// let call: CallReport = serde_json::from_str(
///     r#"{"phase":"stop","offset_ms":12.0,"duration_ms":3.5,"outcome":{"kind":"ok"}}"#,
/// ).unwrap();
/// assert_eq!(call.outcome, CallOutcome::Ok);
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallReport {
    /// Which call.
    pub phase: LifecyclePhase,
    /// When it was made, in ms since the host began starting.
    pub offset_ms: f64,
    /// How long it took, in ms (0 when it was not measured).
    pub duration_ms: f64,
    /// How it ended.
    pub outcome: CallOutcome,
}

/// One service, in a [`HostReport`].
///
/// # Examples
///
/// ```
/// use apphost::host::{ServiceKind, ServiceReport};
/// let service: ServiceReport = serde_json::from_str(
///     r#"{"name":"db","kind":"hosted","depends_on":[],"calls":[]}"#,
/// ).unwrap();
/// assert_eq!(service.kind, ServiceKind::Hosted);
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceReport {
    /// Its name.
    pub name: String,
    /// Hosted or background.
    pub kind: ServiceKind,
    /// The services it depends on.
    pub depends_on: Vec<String>,
    /// Its own start budget, in ms, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_timeout_ms: Option<f64>,
    /// Its own stop budget, in ms, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout_ms: Option<f64>,
    /// Its calls, in the order they ended.
    pub calls: Vec<CallReport>,
}

/// One failure, as [`HostError::failures`](crate::host::HostError::failures)
/// lists it.
///
/// # Examples
///
/// ```
/// use apphost::host::{CallOutcome, FailureReport, HostReport};
/// let failure: FailureReport = serde_json::from_str(
///     r#"{"service":"db","phase":"stop","outcome":{"kind":"timed_out"}}"#,
/// ).unwrap();
/// assert_eq!(failure.outcome, CallOutcome::TimedOut);
/// assert_eq!(HostReport::exit_code_for([&failure.outcome]), 124);
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureReport {
    /// The service; `None` for the host itself (a lifetime callback, a
    /// budget the runtime overran).
    pub service: Option<String>,
    /// Where.
    pub phase: LifecyclePhase,
    /// What happened.
    pub outcome: CallOutcome,
}

/// The budgets in force.
///
/// # Examples
///
/// ```
/// use apphost::host::Budgets;
/// let budgets: Budgets = serde_json::from_str(r#"{"shutdown_timeout_ms":5000.0}"#).unwrap();
/// assert_eq!(budgets.startup_timeout_ms, None);
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Budgets {
    /// `host.shutdown_timeout`, in ms.
    pub shutdown_timeout_ms: f64,
    /// `host.startup_timeout`, in ms, if there is one.
    #[serde(default)]
    pub startup_timeout_ms: Option<f64>,
}

/// What a run did: returned by [`Host::report`](crate::host::Host::report)
/// once the host has stopped, carried by
/// [`HostError::report`](crate::host::HostError::report), written by
/// [`console::run`](crate::console::run) to `host.report_file`. Built from
/// the host's [`LifecycleEvent`](crate::host::LifecycleEvent)s.
///
/// Every call that did not complete is in it. Calls that completed, and
/// call durations, are in it when someone listened: a subscription to
/// [`Host::events`](crate::host::Host::events) existed, or
/// `host.report_file` was set (reading the clock twice per call costs
/// what 10,000 trivial services do not otherwise spend).
///
/// # Examples
///
/// ```
/// use apphost::CancellationToken;
/// use apphost::host::{Host, HostReport, RunOutcome};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let host = Host::builder().build().unwrap();
/// host.start(CancellationToken::none()).await.unwrap();
/// host.stop(CancellationToken::none()).await.unwrap();
/// let report = host.report().unwrap();
/// assert_eq!((report.exit_code, report.outcome), (0, RunOutcome::Ok));
/// let json = serde_json::to_string_pretty(&report).unwrap();
/// let back: HostReport = serde_json::from_str(&json).unwrap();
/// assert_eq!(back, report);
/// # }
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostReport {
    /// The exit code: [`HostReport::exit_code_for`] of the failures.
    pub exit_code: u8,
    /// In one word.
    pub outcome: RunOutcome,
    /// Why the host stopped: the stop request's reason.
    pub stop_reason: Option<Reason>,
    /// The stop was cut short before its deadline (a second signal): why.
    #[serde(default)]
    pub forced: Option<Reason>,
    /// How long the start sequence took, in ms, if it ran.
    pub start_ms: Option<f64>,
    /// How long the stop sequence took, in ms.
    pub stop_ms: Option<f64>,
    /// The budgets in force.
    pub budgets: Budgets,
    /// The service that held the stop's deadline: the first one abandoned,
    /// or else the last to finish.
    pub held_stop_deadline: Option<String>,
    /// Every service, in registration order.
    pub services: Vec<ServiceReport>,
    /// Every failure, as the host's error lists them.
    pub failures: Vec<FailureReport>,
}

impl HostReport {
    /// The process exit code of a run whose failures ended with `outcomes`
    /// (the only rule; [`HostError::exit_code`](crate::host::HostError::exit_code)
    /// and [`console::run`](crate::console::run) use it):
    ///
    /// | outcomes | code |
    /// |---|---|
    /// | none | 0 |
    /// | any error or panic | 1 |
    /// | otherwise, any timeout or abandoned call | 124 (as `timeout(1)`) |
    /// | otherwise, cancelled by signal *n* | 128 + *n*, at most 255 |
    /// | otherwise (cancelled for another reason) | 1 |
    ///
    /// # Examples
    ///
    /// ```
    /// use apphost::host::{CallOutcome, HostReport, Reason};
    /// assert_eq!(HostReport::exit_code_for([]), 0);
    /// let term = CallOutcome::Cancelled { reason: Reason::Signal { signal: 15 } };
    /// assert_eq!(HostReport::exit_code_for([&term]), 143);
    /// assert_eq!(HostReport::exit_code_for([&term, &CallOutcome::TimedOut]), 124);
    /// ```
    pub fn exit_code_for<'a>(outcomes: impl IntoIterator<Item = &'a CallOutcome>) -> u8 {
        let outcomes: Vec<&CallOutcome> = outcomes.into_iter().collect();
        if outcomes.is_empty() {
            return 0;
        }
        let any = |f: fn(&CallOutcome) -> bool| outcomes.iter().any(|o| f(o));
        if any(|o| matches!(o, CallOutcome::Error { .. } | CallOutcome::Panic { .. })) {
            return 1;
        }
        if any(|o| matches!(o, CallOutcome::TimedOut | CallOutcome::Abandoned { .. })) {
            return 124;
        }
        for outcome in &outcomes {
            if let CallOutcome::Cancelled {
                reason: Reason::Signal { signal },
            } = outcome
            {
                return u8::try_from(128 + i64::from(*signal)).unwrap_or(255);
            }
        }
        1
    }
}
