//! The budget keeper: a thread of the host's own that ends a stop on time
//! when the runtime does not answer.
//!
//! The stop sequence runs as a task on the user's runtime, where services
//! may block every worker thread (and with them tokio's timers, which only
//! those workers drive). So every stop is also *watched* by the keeper: one
//! thread per process, started with the first stop, that waits on the wall
//! clock for each watched stop's deadline, or for the moment its token is
//! cancelled (a second signal), plus [`KEEPER_MARGIN`]. If the sequence has
//! not finished by then, the keeper *takes over*: it claims the [`Record`]
//! (whoever claims it first publishes the result; the other side then does
//! nothing more), cancels every token the stop would have cancelled, fires
//! `stopping()` and `stopped()` on helper threads (waiting [`CALLBACKS`] for
//! `stopped()`), moves the host to `Stopped`, and publishes a result that
//! reports every call still in flight as abandoned while still running.
//! Publishing wakes the callers of `Host::stop` from this thread; a caller
//! polled outside the blocked workers (`block_on` on the main thread, as
//! `console::run` does) returns at once.
//!
//! One thread for every stop, rather than one per stop: starting a thread
//! cost about 0.1 ms of each stop on this project's machine.
//!
//! # Lock order
//!
//! [`WATCHES`] is taken alone: a watch's state is read and written only
//! under it, the keeper drops a watch's token registration only after
//! letting go of it (a running callback takes it), and no user code runs
//! under it. `Record::state` is never held with it.

use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::record::Record;
use crate::cancel::{CancelReason, CancellationRegistration, CancellationToken};
use crate::host::error::{FailureKind, HostError, LifecyclePhase, ServiceFailure};
use crate::host::events::{BudgetOwner, LifecycleEvent, Sequence};
use crate::host::inner::{EntryKind, HostInner, Publisher, lock, publish};
use crate::host::lifetime::HostState;

/// How long after the deadline (or the stop token's cancellation) the keeper
/// takes over: the sequence's own bound (two graces, a few late waits: about
/// 26 ms) and as much slack again for a loaded machine, so that on a
/// runtime that answers the sequence finishes first; and still within the
/// promised deadline + 50 ms.
pub(crate) const KEEPER_MARGIN: Duration = Duration::from_millis(40);

/// How long the keeper waits for the `stopped()` callbacks.
const CALLBACKS: Duration = Duration::from_millis(2);

/// One watched stop.
struct Watch {
    id: u64,
    done: bool,
    cut_at: Option<Instant>,
    clocks: Clocks,
    timeout: Duration,
    inner: Arc<HostInner>,
    record: Arc<Record>,
    publisher: Publisher<Result<(), HostError>>,
    registration: Option<CancellationRegistration>,
}

/// The watched stops, and the keeper thread's wake-up call.
struct Watches {
    list: Mutex<(u64, Vec<Watch>)>,
    wake: Condvar,
}

static WATCHES: OnceLock<Watches> = OnceLock::new();

/// The watches, starting the keeper thread the first time. `None` if no
/// thread can be made (logged): stops are then kept by the runtime alone.
fn watches() -> Option<&'static Watches> {
    static STARTED: OnceLock<bool> = OnceLock::new();
    let watches = WATCHES.get_or_init(|| Watches {
        list: Mutex::new((0, Vec::new())),
        wake: Condvar::new(),
    });
    let started = STARTED.get_or_init(|| {
        let spawned = std::thread::Builder::new()
            .name("apphost-budget-keeper".into())
            .spawn(move || keep(watches));
        if let Err(e) = &spawned {
            tracing::error!(target: "apphost::host", error = %e,
                "cannot start the budget keeper thread; stop budgets are kept by the runtime alone");
        }
        spawned.is_ok()
    });
    started.then_some(watches)
}

/// Starts the keeper thread now (a host does when it is built), so that a
/// stop, a SIGTERM's say, does not pay for starting it.
pub(crate) fn prestart() {
    let _ = watches();
}

/// The sequence's handle on its watch: dropping it (the sequence finished,
/// or its task was dropped) ends the watch.
pub(crate) struct Keeper {
    id: Option<u64>,
}

impl Drop for Keeper {
    fn drop(&mut self) {
        let (Some(id), Some(watches)) = (self.id, WATCHES.get()) else {
            return;
        };
        let mut list = lock(&watches.list);
        if let Some(watch) = list.1.iter_mut().find(|w| w.id == id) {
            watch.done = true;
        }
        drop(list);
        watches.wake.notify_all();
    }
}

/// Watches a stop that began at `began` (or now) with budget `timeout`.
pub(crate) fn spawn(
    inner: Arc<HostInner>,
    record: Arc<Record>,
    publisher: Publisher<Result<(), HostError>>,
    stop_token: CancellationToken,
    began: Option<Instant>,
    timeout: Duration,
) -> Keeper {
    let Some(watches) = watches() else {
        return Keeper { id: None };
    };
    let clocks = Clocks::since(began);
    let id = {
        let mut list = lock(&watches.list);
        list.0 += 1;
        let id = list.0;
        list.1.push(Watch {
            id,
            done: false,
            cut_at: None,
            clocks,
            timeout,
            inner,
            record,
            publisher,
            registration: None,
        });
        id
    };
    // Registered outside the lock: a token already cancelled runs the
    // callback at once, and the callback takes the lock.
    let registration = stop_token.register(move || {
        let mut list = lock(&watches.list);
        if let Some(watch) = list.1.iter_mut().find(|w| w.id == id) {
            watch.cut_at.get_or_insert_with(Instant::now);
        }
        drop(list);
        watches.wake.notify_all();
    });
    let mut list = lock(&watches.list);
    match list.1.iter_mut().find(|w| w.id == id) {
        Some(watch) => watch.registration = Some(registration),
        None => {
            drop(list);
            drop(registration);
        }
    }
    watches.wake.notify_all();
    Keeper { id: Some(id) }
}

/// The keeper thread: ends watches that are done, takes over those that
/// overran, sleeps until the next due time.
fn keep(watches: &'static Watches) {
    loop {
        let mut finished = Vec::new();
        let mut overrun = Vec::new();
        let mut list = lock(&watches.list);
        let mut next: Option<Duration> = None;
        let mut i = 0;
        while i < list.1.len() {
            let watch = &list.1[i];
            if watch.done {
                finished.push(list.1.swap_remove(i));
                continue;
            }
            match watch.overrun() {
                Ok(()) => overrun.push(list.1.swap_remove(i)),
                Err(wait) => {
                    next = match (next, wait) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    i += 1;
                }
            }
        }
        if finished.is_empty() && overrun.is_empty() {
            list = match next {
                None => watches
                    .wake
                    .wait(list)
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
                Some(d) => match watches.wake.wait_timeout(list, d) {
                    Ok((list, _)) => list,
                    Err(poisoned) => poisoned.into_inner().0,
                },
            };
            drop(list);
            continue;
        }
        drop(list);
        // Outside the lock: dropping a registration waits for its callback.
        drop(finished);
        for watch in overrun {
            let Watch {
                inner,
                record,
                publisher,
                registration,
                clocks,
                ..
            } = watch;
            drop(registration);
            take_over(&inner, &record, &publisher, clocks.wall);
        }
    }
}

impl Watch {
    /// `Ok` if the stop overran its bound: the budget (or the moment the
    /// stop token was cut, if earlier) plus [`KEEPER_MARGIN`], on the wall
    /// clock and on the runtime's clock. Else how long to wait before
    /// looking again (`None`: until woken).
    fn overrun(&self) -> Result<(), Option<Duration>> {
        let cut = self
            .cut_at
            .map(|c| c.saturating_duration_since(self.clocks.wall));
        let due = match (
            super::budget::wall_deadline_after(self.clocks.wall, self.timeout),
            cut,
        ) {
            (Some(_), Some(c)) => Some(self.timeout.min(c)),
            (Some(_), None) => Some(self.timeout),
            (None, c) => c,
        }
        .map(|offset| offset.saturating_add(KEEPER_MARGIN));
        let Some(due) = due else {
            return Err(None);
        };
        let wall = self.clocks.wall.elapsed();
        let runtime = self.clocks.runtime_elapsed().unwrap_or(wall);
        if wall >= due && runtime >= due {
            return Ok(());
        }
        // The wall clock's remainder, or a short look again while the
        // runtime's clock lags (paused).
        Err(Some(due.saturating_sub(wall).max(Duration::from_millis(5))))
    }
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

/// Ends the stop from this thread (see the module docs).
fn take_over(
    inner: &Arc<HostInner>,
    record: &Record,
    publisher: &Publisher<Result<(), HostError>>,
    began: Instant,
) {
    if !record.claim() {
        return; // the sequence finished first
    }
    let failures = record.take_failures();
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
    super::sequence_ended(
        events,
        Sequence::Stop,
        result.as_ref().err(),
        [0, 0],
        true,
        began.elapsed(),
    );
    publish(publisher, result);
}
