//! The report's recorder: folds the event stream into what a
//! [`HostReport`] needs, as the events are emitted.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::engine::tasks::IndexMap;
use super::error::{LifecyclePhase, ServiceFailure};
use super::events::{Escalation, LifecycleEvent, Sequence};
use super::inner::{EntryKind, HostInner};
use super::lifetime::HostState;
use super::options::HostOptions;
use super::report::{
    Budgets, CallOutcome, CallReport, FailureReport, HostReport, Reason, RunOutcome, ServiceKind,
    ServiceReport, ms,
};

/// Folds the event stream into what the report needs.
#[derive(Default)]
pub(crate) struct Recorder {
    /// Calls, in the order they ended.
    calls: Vec<(Arc<str>, CallReport)>,
    /// Calls made and not yet ended: when they were made (for a call the
    /// budget keeper abandons: its `Abandoned` event is its only end).
    /// Keyed by the name's address and the phase ([`key`]): every event of
    /// a service carries a clone of the same `Arc` (the host's entry), so
    /// no string is hashed, and the key is hashed by one multiplication
    /// (SipHash here cost 1,000 instructions per call: BENCHMARKS.md).
    open: IndexMap<Duration>,
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
            LifecycleEvent::CallBegan { service, phase, at } => {
                self.open.insert(key(service, *phase), *at);
            }
            LifecycleEvent::CallEnded {
                service,
                phase,
                at,
                duration,
                outcome,
            } => {
                self.open.remove(&key(service, *phase));
                self.calls.push((
                    Arc::clone(service),
                    CallReport {
                        phase: *phase,
                        offset_ms: ms(*at),
                        duration_ms: ms(*duration),
                        outcome: outcome.clone(),
                    },
                ));
            }
            LifecycleEvent::Abandoned {
                service,
                phase,
                still_running,
                by_keeper: true,
                at,
            } => {
                let began = self.open.remove(&key(service, *phase));
                let offset = began.unwrap_or(*at);
                self.calls.push((
                    Arc::clone(service),
                    CallReport {
                        phase: *phase,
                        offset_ms: ms(offset),
                        duration_ms: ms(at.saturating_sub(offset)),
                        outcome: CallOutcome::Abandoned {
                            still_running: *still_running,
                        },
                    },
                ));
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
        for (name, call) in &self.calls {
            if let Some(&i) = index.get(&**name) {
                services[i].calls.push(call.clone());
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
        let stop_calls = || {
            self.calls.iter().filter(|(_, c)| {
                matches!(
                    c.phase,
                    LifecyclePhase::Stopping | LifecyclePhase::Stop | LifecyclePhase::Stopped
                )
            })
        };
        let abandoned =
            stop_calls().find(|(_, c)| matches!(c.outcome, CallOutcome::Abandoned { .. }));
        let last = || {
            stop_calls().max_by(|(_, a), (_, b)| {
                (a.offset_ms + a.duration_ms).total_cmp(&(b.offset_ms + b.duration_ms))
            })
        };
        abandoned.or_else(last).map(|(name, _)| name.to_string())
    }
}

/// A call's key in [`Recorder::open`]: the name's address, with the phase
/// in the top bits (a user-space address fits in the low 57 bits on every
/// 64-bit target Rust supports; on 32-bit targets the phase shares the
/// address's bits, where a rare collision only loses an offset).
fn key(service: &Arc<str>, phase: LifecyclePhase) -> usize {
    let address = Arc::as_ptr(service).cast::<u8>() as usize;
    address ^ ((phase as usize) << (usize::BITS - 5))
}
