//! The report's recorder: folds the event stream into what a
//! [`HostReport`] needs, as the events are emitted.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::error::{LifecyclePhase, ServiceFailure};
use super::events::{Escalation, LifecycleEvent, Sequence};
use super::inner::{EntryKind, HostInner};
use super::lifetime::HostState;
use super::options::HostOptions;
use super::report::{
    Budgets, CallOutcome, CallReport, FailureReport, HostReport, Reason, RunOutcome, ServiceKind,
    ServiceReport, ms,
};

/// One call that ended, as compact as the hot path wants it (48 bytes:
/// 20,000 of them for a start and stop of 10,000 services).
struct Call {
    service: Arc<str>,
    phase: LifecyclePhase,
    /// When it was made and how long it took, in nanoseconds.
    at: u64,
    took: u64,
    /// `None`: it returned `Ok` (nothing to allocate).
    outcome: Option<Box<CallOutcome>>,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Folds the event stream into what the report needs.
#[derive(Default)]
pub(crate) struct Recorder {
    /// Calls, in the order they ended.
    calls: Vec<Call>,
    /// Calls made: the key of each ([`key`]) and when, in the order made.
    /// Read only for a call the budget keeper abandons (its `Abandoned`
    /// event is its only end): pushing here costs a fraction of keeping a
    /// map of open calls on every call.
    began: Vec<(usize, u64)>,
    /// `began` as a map, made when the keeper abandons its first call (it
    /// may abandon thousands: a scan each would be quadratic).
    began_index: Option<HashMap<usize, u64>>,
    starting: Option<Duration>,
    started: Option<Duration>,
    stopping: Option<Duration>,
    stopped: Option<Duration>,
    stop_reason: Option<Reason>,
    forced: Option<Reason>,
}

impl Recorder {
    pub(crate) fn apply(&mut self, event: &LifecycleEvent) {
        match event {
            LifecycleEvent::StateChanged { state, at } => {
                let slot = match state {
                    HostState::Starting => &mut self.starting,
                    HostState::Started => &mut self.started,
                    HostState::Stopping => &mut self.stopping,
                    HostState::Stopped => &mut self.stopped,
                    _ => return,
                };
                slot.get_or_insert(*at);
            }
            LifecycleEvent::StopRequested { reason, .. } => {
                self.stop_reason.get_or_insert_with(|| reason.into());
            }
            // Only a stop's calls can be abandoned by the budget keeper.
            LifecycleEvent::CallBegan { service, phase, at } if is_stop(*phase) => {
                self.began.push((key(service, *phase), nanos(*at)));
            }
            LifecycleEvent::CallEnded {
                service,
                phase,
                at,
                duration,
                outcome,
            } => self.calls.push(Call {
                service: Arc::clone(service),
                phase: *phase,
                at: nanos(*at),
                took: nanos(*duration),
                outcome: (*outcome != CallOutcome::Ok).then(|| Box::new(outcome.clone())),
            }),
            LifecycleEvent::Abandoned {
                service,
                phase,
                still_running,
                by_keeper: true,
                at,
            } => {
                let at = nanos(*at);
                let began = self
                    .began_index
                    .get_or_insert_with(|| self.began.iter().copied().collect());
                let offset = began.get(&key(service, *phase)).copied().unwrap_or(at);
                self.calls.push(Call {
                    service: Arc::clone(service),
                    phase: *phase,
                    at: offset,
                    took: at.saturating_sub(offset),
                    outcome: Some(Box::new(CallOutcome::Abandoned {
                        still_running: *still_running,
                    })),
                });
            }
            LifecycleEvent::CutShort {
                sequence: Sequence::Stop,
                reason,
                ..
            } => {
                self.forced.get_or_insert_with(|| reason.into());
            }
            LifecycleEvent::SignalEscalated {
                signal,
                escalation: Escalation::Second,
                ..
            } => {
                self.forced = Some(Reason::Signal { signal: *signal });
            }
            _ => {}
        }
    }

    /// The report of `inner`'s run, which ended with `failures`.
    pub(crate) fn report(&self, inner: &HostInner, failures: &[ServiceFailure]) -> HostReport {
        let options: HostOptions = inner.options();
        let failures: Vec<FailureReport> = failures
            .iter()
            .map(|f| FailureReport {
                service: f.service().map(str::to_owned),
                phase: f.phase(),
                outcome: f.kind().into(),
            })
            .collect();
        let exit_code = HostReport::exit_code_for(failures.iter().map(|f| &f.outcome));
        let outcome = match exit_code {
            0 if self.forced.is_some() => RunOutcome::Cancelled,
            0 => RunOutcome::Ok,
            124 => RunOutcome::TimedOut,
            _ if failures
                .iter()
                .all(|f| matches!(f.outcome, CallOutcome::Cancelled { .. })) =>
            {
                RunOutcome::Cancelled
            }
            _ => RunOutcome::Failed,
        };
        let index: HashMap<&str, usize> = inner
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (&*e.name, i))
            .collect();
        let own =
            |budgets: &[Option<Duration>], i: usize| budgets.get(i).copied().flatten().map(ms);
        let mut services: Vec<ServiceReport> = inner
            .entries
            .iter()
            .enumerate()
            .map(|(i, entry)| ServiceReport {
                name: entry.name.to_string(),
                kind: match entry.kind {
                    EntryKind::Hosted { .. } => ServiceKind::Hosted,
                    EntryKind::Background(_) => ServiceKind::Background,
                },
                depends_on: inner
                    .graph
                    .deps(i)
                    .iter()
                    .map(|&d| inner.entries[d as usize].name.to_string())
                    .collect(),
                start_timeout_ms: own(&inner.own_start[..], i),
                stop_timeout_ms: own(&inner.own_stop[..], i),
                calls: Vec::new(),
            })
            .collect();
        for call in &self.calls {
            if let Some(&i) = index.get(&*call.service) {
                services[i].calls.push(call.report());
            }
        }
        let span = |a: Option<Duration>, b: Option<Duration>| Some(ms(b?.saturating_sub(a?)));
        HostReport {
            exit_code,
            outcome,
            stop_reason: self.stop_reason.clone(),
            forced: self.forced.clone(),
            start_ms: span(self.starting, self.started.or(self.stopping)),
            stop_ms: span(self.stopping, self.stopped),
            budgets: Budgets {
                shutdown_timeout_ms: ms(options.shutdown_timeout),
                startup_timeout_ms: options.startup_timeout.map(ms),
            },
            held_stop_deadline: self.held_stop_deadline(),
            services,
            failures,
        }
    }

    /// The first stop call abandoned, or else the last to end.
    fn held_stop_deadline(&self) -> Option<String> {
        let stop_calls = || self.calls.iter().filter(|c| is_stop(c.phase));
        let abandoned = stop_calls()
            .find(|c| matches!(c.outcome.as_deref(), Some(CallOutcome::Abandoned { .. })));
        let last = || stop_calls().max_by_key(|c| c.at.saturating_add(c.took));
        abandoned.or_else(last).map(|c| c.service.to_string())
    }
}

impl Call {
    fn report(&self) -> CallReport {
        CallReport {
            phase: self.phase,
            offset_ms: ms(Duration::from_nanos(self.at)),
            duration_ms: ms(Duration::from_nanos(self.took)),
            outcome: self.outcome.as_deref().cloned().unwrap_or(CallOutcome::Ok),
        }
    }
}

/// A call's key in [`Recorder::began`]: the name's address, with the phase
/// in the top bits (a user-space address fits in the low 57 bits on every
/// 64-bit target Rust supports; on 32-bit targets the phase shares the
/// address's bits, where a rare collision only loses an offset).
fn key(service: &Arc<str>, phase: LifecyclePhase) -> usize {
    let address = Arc::as_ptr(service).cast::<u8>() as usize;
    address ^ ((phase as usize) << (usize::BITS - 5))
}

/// A call of the stop sequence.
fn is_stop(phase: LifecyclePhase) -> bool {
    matches!(
        phase,
        LifecyclePhase::Stopping | LifecyclePhase::Stop | LifecyclePhase::Stopped
    )
}
