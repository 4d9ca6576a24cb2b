//! [`Record`]: what a stop has done so far, kept where the budget keeper
//! can read it if it takes over (see `keeper.rs`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

use crate::host::error::{LifecyclePhase, ServiceFailure};
use crate::host::inner::lock;

/// What a stop has recorded so far, for the keeper to report if it takes
/// over. The sequence writes only what the keeper could not know otherwise:
/// failures, and calls that did not end on their first poll.
pub(crate) struct Record {
    claimed: AtomicBool,
    /// The call a runner is polling now: `(index + 1) << 8 | phase`, or 0.
    /// An atomic, not the mutex: it changes twice per call.
    polling: AtomicU64,
    /// Per service: the phase of its call in flight (as in `polling`, + 1),
    /// or 0. One byte a service, no lock: a concurrent stop of 10,000
    /// services sets and clears every one.
    in_flight: Box<[AtomicU8]>,
    state: Mutex<RecordState>,
}

/// The stop phases, as they are packed into [`Record::polling`].
const PHASES: [LifecyclePhase; 3] = [
    LifecyclePhase::Stopping,
    LifecyclePhase::Stop,
    LifecyclePhase::Stopped,
];

#[derive(Default)]
struct RecordState {
    failures: Vec<ServiceFailure>,
}

fn phase_code(phase: LifecyclePhase) -> u8 {
    PHASES.iter().position(|&p| p == phase).unwrap_or(1) as u8
}

impl Record {
    /// The record of a stop of `services` services.
    pub(crate) fn new(services: usize) -> Record {
        Record {
            claimed: AtomicBool::new(false),
            polling: AtomicU64::new(0),
            in_flight: (0..services).map(|_| AtomicU8::new(0)).collect(),
            state: Mutex::default(),
        }
    }

    /// The keeper took over (or the sequence finished): do nothing more.
    pub(crate) fn taken_over(&self) -> bool {
        self.claimed.load(Ordering::Acquire)
    }

    /// Claims the right to publish the result; `false` if already claimed.
    pub(crate) fn claim(&self) -> bool {
        !self.claimed.swap(true, Ordering::AcqRel)
    }

    /// A runner is making the first poll of `index`'s call.
    pub(crate) fn polling(&self, index: usize, phase: LifecyclePhase) {
        let code = PHASES.iter().position(|&p| p == phase).unwrap_or(1) as u64;
        self.polling
            .store(((index as u64 + 1) << 8) | code, Ordering::Release);
    }

    /// That first poll returned.
    pub(crate) fn polled(&self) {
        self.polling.store(0, Ordering::Release);
    }

    fn polling_now(&self) -> Option<(usize, LifecyclePhase)> {
        let packed = self.polling.load(Ordering::Acquire);
        let index = (packed >> 8).checked_sub(1)? as usize;
        Some((index, PHASES[(packed & 0xff) as usize % PHASES.len()]))
    }

    pub(crate) fn flying(&self, index: usize, phase: LifecyclePhase) {
        if let Some(slot) = self.in_flight.get(index) {
            slot.store(phase_code(phase) + 1, Ordering::Release);
        }
    }

    pub(crate) fn landed(&self, index: usize) {
        if let Some(slot) = self.in_flight.get(index) {
            slot.store(0, Ordering::Release);
        }
    }

    /// The calls in flight now, by service index.
    pub(crate) fn flying_now(&self) -> HashMap<usize, LifecyclePhase> {
        let mut calls: HashMap<usize, LifecyclePhase> = self
            .in_flight
            .iter()
            .enumerate()
            .filter_map(|(i, slot)| {
                let code = slot.load(Ordering::Acquire).checked_sub(1)?;
                Some((i, PHASES[usize::from(code) % PHASES.len()]))
            })
            .collect();
        if let Some((index, phase)) = self.polling_now() {
            calls.insert(index, phase);
        }
        calls
    }

    pub(crate) fn fail(&self, failure: ServiceFailure) {
        lock(&self.state).failures.push(failure);
    }

    pub(crate) fn take_failures(&self) -> Vec<ServiceFailure> {
        std::mem::take(&mut lock(&self.state).failures)
    }
}
