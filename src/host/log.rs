//! The host's log lines, written from its [`LifecycleEvent`]s: every line
//! the host writes about its lifecycle comes from here, fed by the event
//! hub ([`super::hub`]), so the log, the `STATUS=` lines, the report and the
//! subscribers can never tell different stories.
//!
//! Targets: `apphost::host` for the host, `apphost::lifetime` for signal
//! escalations (as the signal handler's own lines). Every line about a
//! call names its service and its phase as fields of its own: the call's
//! DEBUG span is hidden at INFO.
//!
//! | event | level | message |
//! |---|---|---|
//! | state `starting` / `stopping` | INFO | `host starting` (`services`) / `host stopping` |
//! | stop requested | INFO (DEBUG for a signal: the handler said it) | `stop requested` |
//! | call began | TRACE | `service call began` |
//! | call ended `ok` | DEBUG | `service call finished` (`elapsed_ms`) |
//! | call ended `cancelled` | INFO | `service call cancelled` |
//! | call ended `timed_out` | WARN | `service call timed out` |
//! | call ended `error` / `panic` | ERROR | `service call failed` / `service call panicked` (`background service …` for `execute`) |
//! | abandoned | WARN | `service call … abandoned …` |
//! | budget exceeded | WARN | `stop budget spent: …` / `service's own budget spent: …` |
//! | cut short | DEBUG | `sequence cut short` |
//! | lifetime callback failed | ERROR / WARN | `lifetime callback panicked` / `lifetime callbacks did not finish in time` |
//! | sequence ended | INFO / ERROR | `host started`, `host start cut short`, `host failed to start`, `host stopped` |
//! | signal escalated | WARN / ERROR | `received … again: abandoning the graceful stop …` |
//! | configuration reloaded / rejected | INFO / ERROR | `configuration reloaded` / `configuration reload rejected: …` |

use std::time::Duration;

use tracing::level_filters::{LevelFilter, STATIC_MAX_LEVEL};
use tracing::{Level, debug, error, info, trace, warn};

use super::error::LifecyclePhase;
use super::events::{BudgetOwner, Escalation, LifecycleEvent, Sequence};
use super::lifetime::HostState;
use super::report::{CallOutcome, RunOutcome};
use crate::cancel::CancelReason;

const HOST: &str = "apphost::host";

/// Whether the DEBUG lines of calls can be shown: then every call is
/// emitted (and timed), as when someone subscribes.
#[inline]
pub(crate) fn calls_enabled() -> bool {
    Level::DEBUG <= STATIC_MAX_LEVEL && Level::DEBUG <= LevelFilter::current()
}

fn ms(d: Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX)
}

/// Writes `event`'s line, if it has one; `services` is the host's count.
#[inline]
pub(crate) fn write(event: &LifecycleEvent, services: usize) {
    // The hot path: a call's beginning or successful end, whose lines are
    // TRACE and DEBUG, while those are off (one load instead of a call and
    // two callsite checks per event: BENCHMARKS.md).
    let quiet = match event {
        LifecycleEvent::CallBegan { .. } => true,
        LifecycleEvent::CallEnded { outcome, phase, .. } => {
            *outcome == CallOutcome::Ok && *phase != LifecyclePhase::Execute
        }
        _ => false,
    };
    if quiet && !calls_enabled() {
        return;
    }
    write_line(event, services);
}

fn write_line(event: &LifecycleEvent, services: usize) {
    match event {
        LifecycleEvent::StateChanged { state, .. } => match state {
            HostState::Starting => info!(target: HOST, services, "host starting"),
            HostState::Stopping => info!(target: HOST, "host stopping"),
            // Started and stopped are told by `SequenceEnded`, with figures.
            _ => {}
        },
        LifecycleEvent::StopRequested { reason, .. } => {
            if matches!(reason, CancelReason::Signal(_)) {
                debug!(target: HOST, %reason, "stop requested");
            } else {
                info!(target: HOST, %reason, "stop requested");
            }
        }
        LifecycleEvent::CallBegan { service, phase, .. } => {
            trace!(target: HOST, service = &**service, %phase, "service call began");
        }
        LifecycleEvent::CallEnded {
            service,
            phase,
            duration,
            outcome,
            ..
        } => call_ended(service, *phase, *duration, outcome),
        LifecycleEvent::Abandoned {
            service,
            phase,
            still_running,
            by_keeper,
            ..
        } => {
            let service = &**service;
            if *by_keeper {
                warn!(target: HOST, service, %phase, still_running,
                    "service call abandoned by the budget keeper while still running");
            } else if *still_running {
                warn!(target: HOST, service, %phase, still_running,
                    "service call did not finish in time and blocks its thread: abandoned while still running");
            } else {
                warn!(target: HOST, service, %phase, still_running,
                    "service call did not finish in time: abandoned (its task was dropped)");
            }
        }
        LifecycleEvent::BudgetExceeded { budget, .. } => match budget {
            BudgetOwner::Sequence { sequence } => {
                let what = sequence_name(*sequence);
                warn!(target: HOST, "{what} budget spent: cancelling with TimedOut");
            }
            BudgetOwner::Service { service, phase } => {
                warn!(target: HOST, service = &**service, %phase,
                    "service's own budget spent: cancelling its token with TimedOut");
            }
        },
        LifecycleEvent::CutShort {
            sequence, reason, ..
        } => {
            debug!(target: HOST, sequence = sequence_name(*sequence), %reason, "sequence cut short");
        }
        LifecycleEvent::CallbackFailed { phase, outcome, .. } => match outcome {
            CallOutcome::Panic { payload, location } => {
                let location = location.as_deref().unwrap_or("unknown");
                error!(target: HOST, %phase, panic = %payload, location, "lifetime callback panicked");
            }
            _ => warn!(target: HOST, %phase, "lifetime callbacks did not finish in time"),
        },
        LifecycleEvent::SequenceEnded {
            sequence,
            outcome,
            error,
            services_stopped,
            failed,
            timed_out,
            cancelled,
            by_keeper,
            duration,
            ..
        } => {
            let elapsed_ms = ms(*duration);
            let error = error.as_deref().unwrap_or("");
            match (sequence, outcome) {
                (Sequence::Start, RunOutcome::Ok) => {
                    info!(target: HOST, elapsed_ms, "host started");
                }
                (Sequence::Start, RunOutcome::Cancelled) => {
                    info!(target: HOST, reason = error, "host start cut short; stopping the services that started");
                }
                (Sequence::Start, _) => {
                    error!(target: HOST, error, "host failed to start; stopping the services that started");
                }
                (_, _) if *by_keeper => {
                    error!(target: HOST, services_stopped, failed, timed_out, cancelled, elapsed_ms,
                        "the stop overran its budget and the runtime did not answer in time: the budget keeper ended the stop");
                }
                (_, _) => {
                    info!(target: HOST, services_stopped, failed, timed_out, cancelled, elapsed_ms, "host stopped");
                }
            }
        }
        LifecycleEvent::SignalEscalated {
            signal, escalation, ..
        } => {
            let name = CancelReason::Signal(*signal);
            match escalation {
                Escalation::Second => warn!(target: "apphost::lifetime",
                    "received {name} again: abandoning the graceful stop (a third signal exits at once)"),
                _ => error!(target: "apphost::lifetime",
                    "received {name}: third stop signal; exiting now with status {}", 128 + signal),
            }
        }
        LifecycleEvent::ConfigReloaded { .. } => info!(target: HOST, "configuration reloaded"),
        LifecycleEvent::ConfigReloadRejected { error, .. } => error!(target: HOST,
            "configuration reload rejected: {error}; the previous configuration stays in force"),
    }
}

fn call_ended(service: &str, phase: LifecyclePhase, took: Duration, outcome: &CallOutcome) {
    let execute = phase == LifecyclePhase::Execute;
    let elapsed_ms = ms(took);
    match outcome {
        CallOutcome::Ok if execute => info!(target: HOST, service, %phase,
            "background service finished before it was asked to stop; the host keeps running"),
        CallOutcome::Ok => {
            debug!(target: HOST, service, %phase, elapsed_ms, "service call finished")
        }
        CallOutcome::Error { error } if execute => {
            error!(target: HOST, service, %phase, error, "background service failed");
        }
        CallOutcome::Error { error } => {
            error!(target: HOST, service, %phase, error, "service call failed");
        }
        CallOutcome::Panic { payload, location } => {
            let location = location.as_deref().unwrap_or("unknown");
            let message = if execute {
                "background service panicked"
            } else {
                "service call panicked"
            };
            error!(target: HOST, service, %phase, panic = %payload, location, "{message}");
        }
        CallOutcome::TimedOut => {
            warn!(target: HOST, service, %phase, elapsed_ms, "service call timed out");
        }
        CallOutcome::Cancelled { reason } => {
            info!(target: HOST, service, %phase, reason = %reason_text(reason), "service call cancelled");
        }
        // Its `Abandoned` event said it.
        CallOutcome::Abandoned { .. } => {}
    }
}

fn reason_text(reason: &super::report::Reason) -> String {
    use super::report::Reason;
    match reason {
        Reason::Requested => CancelReason::Requested.to_string(),
        Reason::TimedOut => CancelReason::TimedOut.to_string(),
        Reason::Signal { signal } => CancelReason::Signal(*signal).to_string(),
        Reason::Custom { text } => text.clone(),
    }
}

fn sequence_name(sequence: Sequence) -> &'static str {
    match sequence {
        Sequence::Start => "start",
        Sequence::Stop => "stop",
    }
}
