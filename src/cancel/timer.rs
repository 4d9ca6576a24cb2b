//! Timers that cancel a source: `with_timeout` and `cancel_after`.
//!
//! Two backends, chosen when a timer is armed:
//! - inside a tokio runtime, the runtime's own timer driver: one task per
//!   runtime (found by its id) sleeping on `tokio::time` until the earliest
//!   of an ordered map of deadlines, so timers obey the runtime's clock
//!   (including a paused test clock) at O(log n) per timer, with no task
//!   per timer; a due timer fires in a task of its own;
//! - elsewhere, one process-wide timer thread over an ordered map of
//!   deadlines: O(log n) to arm and disarm, and no thread per timer.
//!
//! Each source has a [`TimerWord`]: the generation of its current timer and
//! that timer's state, which moves once from `ARMED` to `FIRED` or
//! `DISARMED`. That compare-and-swap is the single point deciding whether a
//! timer cancels the source, so `try_reset`, re-arming and a firing timer can
//! race safely: exactly one of them wins, and arming a new generation
//! silently disarms the old one. Keeping the word in the source (rather than
//! in a shared allocation per timer) makes arming allocation-free apart from
//! the queue's own node.
//!
//! If a runtime shuts down before a deadline, its driver's guard moves the
//! timers it held to the timer thread, so the sources still time out.

use std::sync::{Arc, Weak};
use std::time::Duration;
#[cfg(not(loom))]
use std::time::Instant;

use super::state::Inner;
use crate::sync::{AtomicU64, Ordering};

const ARMED: u64 = 0;
const FIRED: u64 = 1;
const DISARMED: u64 = 2;
const STATE_BITS: u32 = 2;
/// Sticky: some timer of this source has fired. A fired timer is about to
/// cancel the source, so `try_reset` must fail from then on — even if the
/// source was re-armed in between (.NET's `_everQueued`).
const EVER_FIRED: u64 = 1 << 63;

/// A source's current timer: `EVER_FIRED | generation << 2 | state`.
pub(crate) struct TimerWord(AtomicU64);

impl TimerWord {
    pub(crate) fn new() -> Self {
        TimerWord(AtomicU64::new(DISARMED))
    }

    fn word(generation: u64, state: u64) -> u64 {
        (generation << STATE_BITS | state) & !EVER_FIRED
    }

    /// Starts a new generation, armed. Called with the source's lock held,
    /// so arms never race each other; any older generation is disarmed by it.
    fn arm(&self) -> u64 {
        let mut old = self.0.load(Ordering::Acquire);
        loop {
            let generation = ((old & !EVER_FIRED) >> STATE_BITS).wrapping_add(1);
            let new = (old & EVER_FIRED) | Self::word(generation, ARMED);
            match self
                .0
                .compare_exchange_weak(old, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return (new & !EVER_FIRED) >> STATE_BITS,
                Err(now) => old = now,
            }
        }
    }

    /// Moves `generation` from armed to `to` (setting `extra` bits); the
    /// state found otherwise.
    fn transition(&self, generation: u64, to: u64, extra: u64) -> Result<(), u64> {
        let armed = Self::word(generation, ARMED);
        let mut old = self.0.load(Ordering::Acquire);
        loop {
            if old & !EVER_FIRED != armed {
                return Err(old & !EVER_FIRED);
            }
            let new = (old & EVER_FIRED) | extra | Self::word(generation, to);
            match self
                .0
                .compare_exchange_weak(old, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(()),
                Err(now) => old = now,
            }
        }
    }

    /// Claims generation `generation` for firing; false if it was disarmed
    /// or superseded first.
    fn claim(&self, generation: u64) -> bool {
        self.transition(generation, FIRED, EVER_FIRED).is_ok()
    }

    /// Disarms `generation`. False only if it already fired.
    fn disarm(&self, generation: u64) -> bool {
        match self.transition(generation, DISARMED, 0) {
            Ok(()) => true,
            Err(now) => now != Self::word(generation, FIRED),
        }
    }

    /// Whether any timer of the source has fired.
    pub(crate) fn ever_fired(&self) -> bool {
        self.0.load(Ordering::Acquire) & EVER_FIRED != 0
    }

    #[cfg(not(loom))]
    fn is_armed(&self, generation: u64) -> bool {
        self.0.load(Ordering::Acquire) & !EVER_FIRED == Self::word(generation, ARMED)
    }
}

/// What a timer backend holds: which source, and which of its timers.
#[derive(Clone)]
pub(crate) struct TimerEntry {
    /// Weak: dropping every handle of a source disarms its timer rather than
    /// the timer keeping the source alive.
    target: Weak<Inner>,
    generation: u64,
}

impl TimerEntry {
    /// Fires the timer unless it was disarmed or superseded.
    pub(crate) fn fire(&self) {
        if let Some(target) = self.target.upgrade() {
            if target.timer_word().claim(self.generation) {
                target.fire();
            }
        }
    }

    #[cfg(not(loom))]
    fn is_armed(&self) -> bool {
        self.target
            .upgrade()
            .is_some_and(|target| target.timer_word().is_armed(self.generation))
    }
}

/// A timer armed on a source, owned by that source's shared state.
pub(crate) struct ArmedTimer {
    generation: u64,
    backend: Backend,
}

enum Backend {
    /// On the timer thread's queue, under this key.
    #[cfg(not(loom))]
    Thread(QueueKey),
    /// On the queue of a tokio runtime's timer driver, under this key.
    #[cfg(not(loom))]
    Runtime(Arc<runtime::RuntimeTimers>, runtime::RuntimeKey),
    /// Fired by hand (loom models).
    #[cfg(loom)]
    Manual(TimerEntry),
}

impl ArmedTimer {
    /// Arms a timer that fires `target` after `delay`, superseding any
    /// earlier one. `None` if the deadline is beyond what the clock can
    /// represent: such a timer never fires. Call with `target`'s lock held.
    #[cfg(not(loom))]
    pub(crate) fn arm(target: &Arc<Inner>, delay: Duration) -> Option<ArmedTimer> {
        let deadline = Instant::now().checked_add(delay)?;
        let in_runtime = tokio::runtime::Handle::try_current().ok();
        if in_runtime.is_some() {
            tokio::time::Instant::now().checked_add(delay)?;
        }
        let generation = target.timer_word().arm();
        let entry = TimerEntry {
            target: Arc::downgrade(target),
            generation,
        };
        let backend = match in_runtime {
            Some(handle) => {
                // checked above: representable on the runtime's clock
                let at = tokio::time::Instant::now() + delay;
                match runtime::schedule(&handle, at, deadline, entry) {
                    Ok((timers, key)) => Backend::Runtime(timers, key),
                    // The runtime is shutting down: the timer thread keeps it.
                    Err(entry) => Backend::Thread(thread::schedule(deadline, entry)),
                }
            }
            None => Backend::Thread(thread::schedule(deadline, entry)),
        };
        Some(ArmedTimer {
            generation,
            backend,
        })
    }

    /// Arms a timer that only fires when a loom model fires its entry.
    #[cfg(loom)]
    pub(crate) fn arm(target: &Arc<Inner>, _delay: Duration) -> Option<ArmedTimer> {
        let generation = target.timer_word().arm();
        Some(ArmedTimer {
            generation,
            backend: Backend::Manual(TimerEntry {
                target: Arc::downgrade(target),
                generation,
            }),
        })
    }

    /// The entry, for a loom model to fire.
    #[cfg(loom)]
    pub(crate) fn entry(&self) -> TimerEntry {
        match &self.backend {
            Backend::Manual(entry) => entry.clone(),
        }
    }

    /// Disarms the timer of `target`. False if it had already fired (it may
    /// still be cancelling the source).
    pub(crate) fn disarm(&self, target: &Inner) -> bool {
        target.timer_word().disarm(self.generation)
    }

    /// Frees the backend's resources (the queue node or the task). Call after
    /// `disarm`, outside the source's lock where convenient.
    pub(crate) fn release(self) {
        match self.backend {
            #[cfg(not(loom))]
            Backend::Thread(key) => thread::unschedule(key),
            #[cfg(not(loom))]
            Backend::Runtime(timers, key) => timers.unschedule(key),
            #[cfg(loom)]
            Backend::Manual(_) => {}
        }
    }
}

/// Lives inside a task that fires a timer. If the task is dropped unfired
/// and nobody disarmed the timer — its runtime shut down — hand it to the
/// timer thread.
#[cfg(not(loom))]
struct TaskGuard {
    entry: TimerEntry,
    deadline: Instant,
}

#[cfg(not(loom))]
impl Drop for TaskGuard {
    fn drop(&mut self) {
        if self.entry.is_armed() {
            // The queue node is never unscheduled; a later disarm flips the
            // word and the thread's firing becomes a no-op.
            thread::schedule(self.deadline, self.entry.clone());
        }
    }
}

#[cfg(not(loom))]
use thread::QueueKey;

/// The process-wide timer thread.
#[cfg(not(loom))]
mod thread {
    use std::collections::BTreeMap;
    use std::sync::{Condvar, Mutex, OnceLock};
    use std::time::Instant;

    use super::TimerEntry;
    use crate::sync::lock;

    /// Deadline, then arming order to keep equal deadlines distinct.
    pub(crate) type QueueKey = (Instant, u64);

    struct Queue {
        timers: BTreeMap<QueueKey, TimerEntry>,
        next_id: u64,
        /// When the thread will next wake by itself; `None` if it sleeps
        /// until notified. Arming a later deadline needs no wake-up.
        wakes_at: Option<Instant>,
        started: bool,
    }

    struct TimerThread {
        queue: Mutex<Queue>,
        changed: Condvar,
    }

    fn timers() -> &'static TimerThread {
        static TIMERS: OnceLock<TimerThread> = OnceLock::new();
        TIMERS.get_or_init(|| TimerThread {
            queue: Mutex::new(Queue {
                timers: BTreeMap::new(),
                next_id: 0,
                wakes_at: None,
                started: false,
            }),
            changed: Condvar::new(),
        })
    }

    /// Queues `entry` to fire at `deadline`.
    pub(crate) fn schedule(deadline: Instant, entry: TimerEntry) -> QueueKey {
        let timers = timers();
        let mut queue = lock(&timers.queue);
        let key = (deadline, queue.next_id);
        queue.next_id += 1;
        queue.timers.insert(key, entry);
        if !queue.started {
            queue.started = true;
            std::thread::Builder::new()
                .name("apphost-timer".into())
                .spawn(run)
                .expect("failed to start the apphost timer thread");
        } else if queue.wakes_at.is_none_or(|wakes_at| deadline < wakes_at) {
            timers.changed.notify_one();
        }
        key
    }

    /// Removes a queued timer, if still queued.
    pub(crate) fn unschedule(key: QueueKey) {
        let removed = lock(&timers().queue).timers.remove(&key);
        drop(removed);
    }

    fn run() {
        let timers = timers();
        let mut due = Vec::new();
        loop {
            {
                let mut queue = lock(&timers.queue);
                loop {
                    let now = Instant::now();
                    while let Some(entry) = queue.timers.first_entry() {
                        if entry.key().0 > now {
                            break;
                        }
                        due.push(entry.remove());
                    }
                    if !due.is_empty() {
                        break;
                    }
                    let next = queue.timers.first_key_value().map(|(key, _)| key.0);
                    queue.wakes_at = next;
                    queue = match next {
                        Some(deadline) => {
                            timers
                                .changed
                                .wait_timeout(queue, deadline.saturating_duration_since(now))
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .0
                        }
                        None => timers
                            .changed
                            .wait(queue)
                            .unwrap_or_else(std::sync::PoisonError::into_inner),
                    };
                    queue.wakes_at = None;
                }
            }
            // Fired with the queue unlocked (lock order: a firing source
            // takes its own lock, and its callbacks may arm timers), and on a
            // thread of their own: a callback that blocks — say, waiting for
            // a timeout of its own — must not stall every other timer.
            let batch = std::mem::take(&mut due);
            crate::sync::run_on_new_thread("apphost-timer-fire", move || {
                batch.into_iter().for_each(|entry| entry.fire())
            });
        }
    }
}

/// The per-runtime timer drivers.
#[cfg(not(loom))]
mod runtime {
    use std::cell::RefCell;
    use std::collections::{BTreeMap, HashMap};
    use std::sync::{Arc, Mutex, OnceLock, Weak};
    use std::time::Instant;

    use tokio::runtime::{Handle, Id};
    use tokio::sync::Notify;

    use super::{TaskGuard, TimerEntry, thread};
    use crate::sync::lock;

    /// Deadline on the runtime's clock, then arming order.
    pub(crate) type RuntimeKey = (tokio::time::Instant, u64);

    /// The timers of one runtime, kept by its driver task.
    pub(crate) struct RuntimeTimers {
        id: Id,
        queue: Mutex<Queue>,
        /// Wakes the driver when a new earliest deadline arrives.
        changed: Notify,
    }

    struct Queue {
        /// Each timer with its wall-clock deadline, for the fallback.
        timers: BTreeMap<RuntimeKey, (TimerEntry, Instant)>,
        next_id: u64,
        /// False once the driver is gone (the runtime shut down).
        alive: bool,
        /// The driver died panicking: the runtime has no time driver
        /// (`enable_time` was not called). Its timers go to the timer thread
        /// without starting, and panicking, another driver.
        timers_disabled: bool,
    }

    fn registry() -> &'static Mutex<HashMap<Id, Arc<RuntimeTimers>>> {
        static REGISTRY: OnceLock<Mutex<HashMap<Id, Arc<RuntimeTimers>>>> = OnceLock::new();
        REGISTRY.get_or_init(Mutex::default)
    }

    std::thread_local! {
        /// The driver this thread last used: worker threads belong to one
        /// runtime, so this skips the registry's lock almost always.
        static CACHED: RefCell<Option<(Id, Weak<RuntimeTimers>)>> = const { RefCell::new(None) };
    }

    /// The driver of `handle`'s runtime, started on first use.
    fn driver(handle: &Handle) -> Arc<RuntimeTimers> {
        let id = handle.id();
        let cached = CACHED.with(|cached| match &*cached.borrow() {
            Some((cached_id, timers)) if *cached_id == id => timers.upgrade(),
            _ => None,
        });
        if let Some(timers) = cached {
            return timers;
        }
        let timers = {
            let mut registry = lock(registry());
            match registry.get(&id) {
                Some(timers)
                    if {
                        let queue = lock(&timers.queue);
                        queue.alive || queue.timers_disabled
                    } =>
                {
                    Arc::clone(timers)
                }
                _ => {
                    let timers = Arc::new(RuntimeTimers {
                        id,
                        queue: Mutex::new(Queue {
                            timers: BTreeMap::new(),
                            next_id: 0,
                            alive: true,
                            timers_disabled: false,
                        }),
                        changed: Notify::new(),
                    });
                    registry.insert(id, Arc::clone(&timers));
                    drop(handle.spawn(drive(DriverGuard(Arc::clone(&timers)))));
                    timers
                }
            }
        };
        CACHED.with(|cached| *cached.borrow_mut() = Some((id, Arc::downgrade(&timers))));
        timers
    }

    /// Queues `entry` on `handle`'s runtime to fire at `at` (runtime clock);
    /// `deadline` is the same moment on the wall clock. Hands the entry back
    /// if that runtime's driver is gone.
    pub(crate) fn schedule(
        handle: &Handle,
        at: tokio::time::Instant,
        deadline: Instant,
        entry: TimerEntry,
    ) -> Result<(Arc<RuntimeTimers>, RuntimeKey), TimerEntry> {
        let mut timers = driver(handle);
        let mut queue = lock(&timers.queue);
        if !queue.alive {
            // A dead driver cached for a runtime id now reused by another
            // runtime: look it up again (a runtime that is itself shutting
            // down gets a dead driver again, and the timer thread).
            if queue.timers_disabled {
                return Err(entry);
            }
            drop(queue);
            CACHED.with(|cached| *cached.borrow_mut() = None);
            timers = driver(handle);
            queue = lock(&timers.queue);
            if !queue.alive {
                return Err(entry);
            }
        }
        let key = (at, queue.next_id);
        queue.next_id += 1;
        queue.timers.insert(key, (entry, deadline));
        let earliest = queue
            .timers
            .first_key_value()
            .is_some_and(|(first, _)| *first == key);
        drop(queue);
        if earliest {
            timers.changed.notify_one();
        }
        Ok((timers, key))
    }

    impl RuntimeTimers {
        /// Removes a queued timer, if still queued.
        pub(crate) fn unschedule(&self, key: RuntimeKey) {
            let removed = lock(&self.queue).timers.remove(&key);
            drop(removed);
        }
    }

    /// The driver: sleeps until the earliest deadline, then fires what is
    /// due, each in a task of its own (a blocking callback must not stall
    /// the runtime's other timers).
    async fn drive(guard: DriverGuard) {
        let timers = &guard.0;
        loop {
            let now = tokio::time::Instant::now();
            let (due, next) = {
                let mut queue = lock(&timers.queue);
                let mut due = Vec::new();
                while let Some(first) = queue.timers.first_entry() {
                    if first.key().0 > now {
                        break;
                    }
                    due.push(first.remove());
                }
                (due, queue.timers.first_key_value().map(|(key, _)| key.0))
            };
            for (entry, deadline) in due {
                let guard = TaskGuard { entry, deadline };
                drop(tokio::spawn(async move { guard.entry.fire() }));
            }
            match next {
                Some(at) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = timers.changed.notified() => {}
                    }
                }
                None => timers.changed.notified().await,
            }
        }
    }

    /// Dropped with the driver task (its runtime shut down, or timers are
    /// disabled on it): hands every queued timer to the timer thread.
    struct DriverGuard(Arc<RuntimeTimers>);

    impl Drop for DriverGuard {
        fn drop(&mut self) {
            // Unwinding: `sleep_until` panicked, the runtime has no timers.
            // Keep this dead driver registered so that later timers of the
            // runtime go straight to the timer thread (one panic message per
            // runtime, not one per timer).
            let timers_disabled = std::thread::panicking();
            let orphans = {
                let mut queue = lock(&self.0.queue);
                queue.alive = false;
                queue.timers_disabled = timers_disabled;
                std::mem::take(&mut queue.timers)
            };
            if !timers_disabled {
                let mut registry = lock(registry());
                if registry
                    .get(&self.0.id)
                    .is_some_and(|t| Arc::ptr_eq(t, &self.0))
                {
                    registry.remove(&self.0.id);
                }
            }
            for (entry, deadline) in orphans.into_values() {
                if entry.is_armed() {
                    thread::schedule(deadline, entry);
                }
            }
        }
    }
}
