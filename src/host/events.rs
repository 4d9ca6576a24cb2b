//! What happened, as it happens: the [`LifecycleEvent`]s a host emits.
//! They are received through a subscription
//! ([`LifecycleEvents`](crate::host::LifecycleEvents), from [`Host::events`]
//! or [`HostBuilder::events`]); the host's log lines, systemd's `STATUS=`
//! lines and the [`HostReport`](crate::host::HostReport) are written from
//! the same events (see `host/hub.rs`).
//!
//! [`Host::events`]: crate::host::Host::events
//! [`HostBuilder::events`]: crate::host::HostBuilder::events

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::error::LifecyclePhase;
use super::lifetime::HostState;
use super::report::{CallOutcome, Reason, RunOutcome, ms};
use crate::cancel::CancelReason;

/// One lifecycle fact. Serialized (JSON, …) as an object whose `event`
/// field names the variant in snake case (`"call_ended"`), with durations
/// and offsets in milliseconds (`at_ms`: since the host began starting, or
/// stopping if it never started).
///
/// # Examples
///
/// ```
/// use apphost::CancellationToken;
/// use apphost::host::{Host, HostState, LifecycleEvent};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let host = Host::builder().build().unwrap();
/// let mut events = host.events();
/// host.start(CancellationToken::none()).await.unwrap();
/// let first = events.try_recv().unwrap().unwrap();
/// assert!(matches!(first, LifecycleEvent::StateChanged { state: HostState::Starting, .. }));
/// let json = serde_json::to_string(&first).unwrap();
/// assert!(json.starts_with(r#"{"event":"state_changed","state":"starting""#), "{json}");
/// # host.stop(CancellationToken::none()).await.unwrap();
/// # }
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum LifecycleEvent {
    /// The host moved to `state`.
    StateChanged {
        /// The new state.
        state: HostState,
        /// When.
        #[serde(rename = "at_ms", serialize_with = "ser_ms")]
        at: Duration,
    },
    /// A stop was requested ([`ApplicationLifetime::stopping`] was
    /// cancelled): a signal, `stop_application`, a failing background
    /// service, or the stop sequence itself.
    ///
    /// [`ApplicationLifetime::stopping`]: crate::host::ApplicationLifetime::stopping
    StopRequested {
        /// Why.
        #[serde(serialize_with = "ser_reason")]
        reason: CancelReason,
        /// When.
        #[serde(rename = "at_ms", serialize_with = "ser_ms")]
        at: Duration,
    },
    /// A service call was made (only while someone listens: a
    /// subscription exists, or `host.report_file` is set).
    CallBegan {
        /// The service.
        #[serde(serialize_with = "ser_name")]
        service: Arc<str>,
        /// Which call.
        phase: LifecyclePhase,
        /// When it was made.
        #[serde(rename = "at_ms", serialize_with = "ser_ms")]
        at: Duration,
    },
    /// A service call ended: every call while someone listens, every call
    /// that did not complete always.
    CallEnded {
        /// The service.
        #[serde(serialize_with = "ser_name")]
        service: Arc<str>,
        /// Which call.
        phase: LifecyclePhase,
        /// When it was made.
        #[serde(rename = "at_ms", serialize_with = "ser_ms")]
        at: Duration,
        /// How long it took (zero when not measured: nobody listened).
        #[serde(rename = "duration_ms", serialize_with = "ser_ms")]
        duration: Duration,
        /// How it ended.
        outcome: CallOutcome,
    },
    /// The host gave up on a call (its `CallEnded` follows, except when the
    /// budget keeper took over a blocked stop: then this is the last word).
    Abandoned {
        /// The service.
        #[serde(serialize_with = "ser_name")]
        service: Arc<str>,
        /// Which call.
        phase: LifecyclePhase,
        /// Its task could not be dropped (it blocks its thread).
        still_running: bool,
        /// Reported by the budget keeper, which ended a stop the runtime
        /// could not.
        by_keeper: bool,
        /// When.
        #[serde(rename = "at_ms", serialize_with = "ser_ms")]
        at: Duration,
    },
    /// A budget ran out.
    BudgetExceeded {
        /// Whose.
        budget: BudgetOwner,
        /// When.
        #[serde(rename = "at_ms", serialize_with = "ser_ms")]
        at: Duration,
    },
    /// A sequence's token was cancelled before its deadline: the caller's
    /// token (a second stop signal), or a stop request during start.
    CutShort {
        /// `"start"` or `"stop"`.
        sequence: Sequence,
        /// The token's reason.
        #[serde(serialize_with = "ser_reason")]
        reason: CancelReason,
        /// When.
        #[serde(rename = "at_ms", serialize_with = "ser_ms")]
        at: Duration,
    },
    /// A lifetime callback (registered on [`ApplicationLifetime::started`],
    /// `stopping` or `stopped`) panicked, or the callbacks did not finish
    /// within the budget.
    ///
    /// [`ApplicationLifetime::started`]: crate::host::ApplicationLifetime::started
    CallbackFailed {
        /// Which callbacks: `started_callbacks`, `stopping_callbacks` or
        /// `stopped_callbacks`.
        phase: LifecyclePhase,
        /// `panic` (with its payload) or `timed_out`.
        outcome: CallOutcome,
        /// When.
        #[serde(rename = "at_ms", serialize_with = "ser_ms")]
        at: Duration,
    },
    /// A sequence ended: the start (started, failed, or cut short), or the
    /// stop. The host's summary lines ("host started", "host stopped") are
    /// written from it.
    SequenceEnded {
        /// Which.
        sequence: Sequence,
        /// How, in one word (as the report's `outcome`).
        outcome: RunOutcome,
        /// What went wrong, as one line; none when nothing did.
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// Stop only: the services whose stop completed.
        services_stopped: usize,
        /// Failures other than time-outs and abandonments.
        failed: usize,
        /// Time-outs and abandonments.
        timed_out: usize,
        /// Stop only: the calls that returned for their token's
        /// cancellation (other than a time-out).
        cancelled: usize,
        /// The budget keeper ended it: the runtime did not answer in time.
        by_keeper: bool,
        /// When it ended.
        #[serde(rename = "at_ms", serialize_with = "ser_ms")]
        at: Duration,
        /// How long it took.
        #[serde(rename = "duration_ms", serialize_with = "ser_ms")]
        duration: Duration,
    },
    /// The console runner received a stop signal again while stopping.
    SignalEscalated {
        /// The signal's number.
        signal: i32,
        /// What it did.
        escalation: Escalation,
        /// When.
        #[serde(rename = "at_ms", serialize_with = "ser_ms")]
        at: Duration,
    },
    /// A configuration reload was applied.
    ConfigReloaded {
        /// When.
        #[serde(rename = "at_ms", serialize_with = "ser_ms")]
        at: Duration,
    },
    /// A configuration reload was rejected; the previous one stays in force.
    ConfigReloadRejected {
        /// Why, as the one-line error.
        error: String,
        /// When.
        #[serde(rename = "at_ms", serialize_with = "ser_ms")]
        at: Duration,
    },
}

/// Which sequence.
///
/// # Examples
///
/// ```
/// use apphost::host::Sequence;
/// assert_eq!(serde_json::to_string(&Sequence::Stop).unwrap(), r#""stop""#);
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Sequence {
    /// The start sequence.
    Start,
    /// The stop sequence.
    Stop,
}

/// Whose budget ran out in a [`LifecycleEvent::BudgetExceeded`].
///
/// # Examples
///
/// ```
/// use apphost::host::{BudgetOwner, LifecyclePhase, Sequence};
/// let own = BudgetOwner::Service { service: "db".into(), phase: LifecyclePhase::Stop };
/// assert_eq!(
///     serde_json::to_string(&own).unwrap(),
///     r#"{"kind":"service","service":"db","phase":"stop"}"#
/// );
/// let whole = BudgetOwner::Sequence { sequence: Sequence::Stop };
/// assert_eq!(serde_json::to_string(&whole).unwrap(), r#"{"kind":"sequence","sequence":"stop"}"#);
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BudgetOwner {
    /// The whole sequence's: `startup_timeout` or `shutdown_timeout`.
    Sequence {
        /// Which.
        sequence: Sequence,
    },
    /// A service's own `start_timeout` or `stop_timeout`.
    Service {
        /// The service.
        #[serde(serialize_with = "ser_name")]
        service: Arc<str>,
        /// The call it was in.
        phase: LifecyclePhase,
    },
}

/// What a repeated stop signal did (see [`crate::signal`]).
///
/// # Examples
///
/// ```
/// use apphost::host::Escalation;
/// assert_eq!(serde_json::to_string(&Escalation::Second).unwrap(), r#""second""#);
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Escalation {
    /// The second signal: the graceful stop is cut short.
    Second,
    /// The third: the process exits at once (nothing more is written).
    Third,
}

fn ser_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(ms(*d))
}

fn ser_name<S: serde::Serializer>(n: &Arc<str>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(n)
}

fn ser_reason<S: serde::Serializer>(r: &CancelReason, s: S) -> Result<S::Ok, S::Error> {
    Reason::from(r).serialize(s)
}
