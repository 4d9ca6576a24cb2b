//! Timers that cancel a source: `with_timeout` and `cancel_after`.
//!
//! Two backends, chosen when a timer is armed:
//! - inside a tokio runtime, a task sleeping on `tokio::time`, so timers obey
//!   the runtime's clock (including a paused test clock) and cost the
//!   runtime's O(1) timer wheel;
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
//! If the runtime a timer task lives on shuts down before the deadline, the
//! task's guard moves the timer to the timer thread, so the source still
//! times out.

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
    /// A task on a tokio runtime.
    #[cfg(not(loom))]
    Task(tokio::task::AbortHandle),
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
            Some(runtime) => {
                let guard = TaskGuard { entry, deadline };
                Backend::Task(
                    runtime
                        .spawn(async move {
                            tokio::time::sleep(delay).await;
                            guard.entry.fire();
                        })
                        .abort_handle(),
                )
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
            Backend::Task(task) => task.abort(),
            #[cfg(loom)]
            Backend::Manual(_) => {}
        }
    }
}

/// Lives inside a timer task. If the task is dropped unfired and nobody
/// disarmed the timer — its runtime shut down — hand it to the timer thread.
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

    /// Runs the closure in `slot` if nobody has yet.
    fn take_and_run<F: FnOnce()>(slot: &std::sync::Mutex<Option<F>>) {
        let taken = slot.lock().ok().and_then(|mut f| f.take());
        if let Some(run) = taken {
            run();
        }
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
            let fire = move || batch.into_iter().for_each(|entry| entry.fire());
            let fire = std::sync::Arc::new(std::sync::Mutex::new(Some(fire)));
            let on_thread = fire.clone();
            let spawned = std::thread::Builder::new()
                .name("apphost-timer-fire".into())
                .spawn(move || take_and_run(&on_thread));
            if spawned.is_err() {
                take_and_run(&fire);
            }
        }
    }
}
