//! The budget keeper: a thread of the host's own that ends a stop on time
//! when the runtime does not answer.
//!
//! The stop sequence runs as a task on the user's runtime, where services
//! may block every worker thread (and with them tokio's timers, which only
//! those workers drive). So each stop also starts a keeper thread, which
//! waits on the wall clock for the stop's deadline, or for the moment its
//! token is cancelled (a second signal), plus [`KEEPER_MARGIN`]. If the
//! sequence has not finished by then, the keeper *takes over*: it claims the
//! [`Record`] (whoever claims it first publishes the result; the other side
//! then does nothing more), cancels every token the stop would have
//! cancelled, fires `stopping()` and `stopped()` on a helper thread (waiting
//! [`CALLBACKS`] for them), moves the host to `Stopped`, and publishes a
//! result that reports every call still in flight as abandoned while still
//! running. Publishing wakes the callers of `Host::stop` from this thread;
//! a caller polled outside the blocked workers (`block_on` on the main
//! thread, as `console::run` does) returns at once.
//!
//! # Lock order
//!
//! `Keeper::state` and `Record::state` are never held together; neither is
//! held while user code runs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::budget::{GRACE, LATE};
use crate::cancel::{CancelReason, CancellationToken};
use crate::host::error::{FailureKind, HostError, LifecyclePhase, ServiceFailure};
use crate::host::events::{BudgetOwner, LifecycleEvent, Sequence};
use crate::host::inner::{EntryKind, HostInner, Publisher, lock, publish};
use crate::host::lifetime::HostState;

/// How long after the deadline (or the stop token's cancellation) the keeper
/// takes over: the sequence's own bound (two graces, a few late waits) and
/// a little slack, so that on a responsive runtime the sequence finishes
/// first.
pub(crate) const KEEPER_MARGIN: Duration =
    Duration::from_millis(2 * GRACE.as_millis() as u64 + 4 * LATE.as_millis() as u64);

/// How long the keeper waits for the lifetime tokens' callbacks.
const CALLBACKS: Duration = Duration::from_millis(2);

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
    fn flying_now(&self) -> HashMap<usize, LifecyclePhase> {
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

/// The keeper's own state: the sequence says when it is done, the stop
/// token says when it was cancelled.
#[derive(Default)]
struct KeeperState {
    done: bool,
    cut_at: Option<Instant>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<KeeperState>,
    wake: Condvar,
}

/// The sequence's handle on its keeper: dropping it (the sequence finished,
/// or its task was dropped) lets the thread end.
pub(crate) struct Keeper {
    shared: Arc<Shared>,
}

impl Drop for Keeper {
    fn drop(&mut self) {
        lock(&self.shared.state).done = true;
        self.shared.wake.notify_all();
    }
}

/// Starts the keeper of a stop that began at `began` with budget `timeout`.
/// If no thread can be made, the stop runs without one (logged): the budget
/// is then kept by the runtime alone.
pub(crate) fn spawn(
    inner: Arc<HostInner>,
    record: Arc<Record>,
    publisher: Publisher<Result<(), HostError>>,
    stop_token: CancellationToken,
    began: Option<Instant>,
    timeout: Duration,
) -> Keeper {
    let shared = Arc::new(Shared::default());
    let keeper = Keeper {
        shared: Arc::clone(&shared),
    };
    let clocks = Clocks::since(began);
    let spawned = std::thread::Builder::new()
        .name("apphost-budget-keeper".into())
        .spawn(move || {
            let on_cut = Arc::clone(&shared);
            let registration = stop_token.register(move || {
                let mut state = lock(&on_cut.state);
                state.cut_at.get_or_insert_with(Instant::now);
                drop(state);
                on_cut.wake.notify_all();
            });
            let overrun = wait(&shared, &clocks, timeout);
            drop(registration);
            if overrun {
                take_over(&inner, &record, &publisher);
            }
        });
    if let Err(e) = spawned {
        tracing::error!(target: "apphost::host", error = %e,
            "cannot start the budget keeper thread; the stop budget is kept by the runtime alone");
    }
    keeper
}

/// When the stop began, on the wall clock and on the runtime's clock.
///
/// The keeper counts on the wall clock, which services cannot stop. But a
/// test may run the host on tokio's paused clock, where a budget of a second
/// passes in microseconds, or in more wall time than that on a loaded
/// machine: the keeper then takes over only once the runtime's clock has
/// also passed the bound. (With the paused clock and a blocked runtime,
/// that clock never advances, and the keeper never takes over: paused-clock
/// tests prove order and logic, not wall-clock bounds.)
struct Clocks {
    wall: Instant,
    runtime: Option<(tokio::runtime::Handle, tokio::time::Instant)>,
}

impl Clocks {
    /// From `began` (in the past, on the wall clock), or from now.
    fn since(began: Option<Instant>) -> Clocks {
        let runtime = tokio::runtime::Handle::try_current().ok().map(|handle| {
            let start =
                began.map_or_else(tokio::time::Instant::now, tokio::time::Instant::from_std);
            (handle, start)
        });
        Clocks {
            wall: began.unwrap_or_else(Instant::now),
            runtime,
        }
    }

    /// How long the runtime's clock says has passed since the stop began.
    fn runtime_elapsed(&self) -> Option<Duration> {
        let (handle, began) = self.runtime.as_ref()?;
        let _entered = handle.enter();
        Some(tokio::time::Instant::now().saturating_duration_since(*began))
    }
}

/// Waits until the sequence is done (`false`) or overran its bound (`true`):
/// the budget (or the moment the stop token was cut, if earlier) plus
/// [`KEEPER_MARGIN`], on the wall clock and on the runtime's clock.
fn wait(shared: &Shared, clocks: &Clocks, timeout: Duration) -> bool {
    let mut state = lock(&shared.state);
    loop {
        if state.done {
            return false;
        }
        let cut = state
            .cut_at
            .map(|c| c.saturating_duration_since(clocks.wall));
        let due = match (
            super::budget::wall_deadline_after(clocks.wall, timeout),
            cut,
        ) {
            (Some(_), Some(c)) => Some(timeout.min(c)),
            (Some(_), None) => Some(timeout),
            (None, c) => c,
        }
        .map(|offset| offset.saturating_add(KEEPER_MARGIN));
        let wait_for = match due {
            None => None,
            Some(due) => {
                let wall = clocks.wall.elapsed();
                let runtime = clocks.runtime_elapsed().unwrap_or(wall);
                if wall >= due && runtime >= due {
                    return true;
                }
                // The wall clock's remainder, or a short look again while
                // the runtime's clock lags (paused).
                Some(due.saturating_sub(wall).max(Duration::from_millis(5)))
            }
        };
        state = match wait_for {
            None => shared
                .wake
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner),
            Some(d) => match shared.wake.wait_timeout(state, d) {
                Ok((state, _)) => state,
                Err(poisoned) => poisoned.into_inner().0,
            },
        };
    }
}

/// Ends the stop from this thread (see the module docs).
fn take_over(
    inner: &Arc<HostInner>,
    record: &Record,
    publisher: &Publisher<Result<(), HostError>>,
) {
    if !record.claim() {
        return; // the sequence finished first
    }
    tracing::error!(target: "apphost::host",
        "the stop overran its budget and the runtime did not answer in time: the budget keeper ends the stop");
    let failures = std::mem::take(&mut lock(&record.state).failures);
    let in_flight = record.flying_now();
    // Cancelling runs user callbacks, and firing the lifetime tokens does:
    // on helper threads, waited for a moment only. `stopped()` gets a thread
    // of its own, so a blocked `stopping()` callback cannot keep it from
    // firing.
    let for_cancel = Arc::clone(inner);
    let _ = std::thread::Builder::new()
        .name("apphost-budget-keeper-cancel".into())
        .spawn(move || {
            let inner = for_cancel;
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                inner.stop_source.cancel_with(CancelReason::TimedOut);
                for entry in inner.entries.iter() {
                    if let EntryKind::Background(background) = &entry.kind {
                        background.cancel(CancelReason::TimedOut);
                    }
                }
            }));
            inner.lifetime.stop_application_with(CancelReason::TimedOut);
        });
    let _ = inner.lifetime.transition(
        &[
            HostState::NotStarted,
            HostState::Starting,
            HostState::Started,
            HostState::Stopping,
        ],
        HostState::Stopped,
    );
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let for_stopped = Arc::clone(inner);
    let helper = std::thread::Builder::new()
        .name("apphost-budget-keeper-stopped".into())
        .spawn(move || {
            for_stopped.lifetime.notify_stopped();
            let _ = tx.send(());
        });
    let callbacks_done = helper.is_ok() && rx.recv_timeout(CALLBACKS).is_ok();

    let mut all = std::mem::take(&mut *lock(&inner.execute_failures));
    all.extend(failures);
    let mut stuck: Vec<(usize, LifecyclePhase)> = in_flight.into_iter().collect();
    stuck.sort_unstable_by_key(|&(index, _)| index);
    let events = &inner.events;
    events.emit_at(|at| LifecycleEvent::BudgetExceeded {
        budget: BudgetOwner::Sequence {
            sequence: Sequence::Stop,
        },
        at,
    });
    for (index, phase) in stuck {
        let name = &inner.entries[index].name;
        tracing::warn!(target: "apphost::host", service = %name, %phase,
            "service call abandoned by the budget keeper while still running");
        events.emit_at(|at| LifecycleEvent::Abandoned {
            service: Arc::clone(name),
            phase,
            still_running: true,
            by_keeper: true,
            at,
        });
        all.push(ServiceFailure::new(
            Some(Arc::clone(name)),
            phase,
            FailureKind::Abandoned {
                still_running: true,
            },
        ));
    }
    if !callbacks_done {
        all.push(ServiceFailure::new(
            None,
            LifecyclePhase::StoppedCallbacks,
            FailureKind::Abandoned {
                still_running: true,
            },
        ));
    }
    all.append(&mut inner.lifetime.take_callback_failures());
    // The stop did overrun its budget: say so even if no call was in flight
    // (the runtime itself did not answer).
    all.push(ServiceFailure::new(
        None,
        LifecyclePhase::Stop,
        FailureKind::TimedOut,
    ));
    let result = HostError::from_failures(all).map_or(Ok(()), Err);
    tracing::info!(target: "apphost::host", "host stopped (by the budget keeper)");
    publish(publisher, result);
}
