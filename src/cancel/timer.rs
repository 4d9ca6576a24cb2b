//! Timers that cancel a source: `with_timeout` and `cancel_after`.
//!
//! Two backends, chosen when a timer is armed:
//! - inside a tokio runtime, a task sleeping on `tokio::time`, so timers obey
//!   the runtime's clock (including a paused test clock) and cost the
//!   runtime's O(1) timer wheel;
//! - elsewhere, one process-wide timer thread over an ordered map of
//!   deadlines: O(log n) to arm and disarm, and no thread per timer.
//!
//! Each armed timer has a [`TimerEntry`] whose state moves once from `ARMED`
//! to either `FIRED` or `DISARMED`; that compare-and-swap is the single point
//! deciding whether the timer cancels the source, so `try_reset` and a firing
//! timer can race safely: exactly one of them wins.
//!
//! If the runtime a timer task lives on shuts down before the deadline, the
//! task's guard moves the timer to the timer thread, so the source still
//! times out.

use std::sync::{Arc, Weak};
use std::time::Duration;
#[cfg(not(loom))]
use std::time::Instant;

use super::state::Inner;
use crate::sync::{AtomicU8, Ordering};

const ARMED: u8 = 0;
const FIRED: u8 = 1;
const DISARMED: u8 = 2;

/// The shared fate of one armed timer.
pub(crate) struct TimerEntry {
    state: AtomicU8,
    /// Weak: dropping every handle of a source disarms its timer rather than
    /// the timer keeping the source alive.
    target: Weak<Inner>,
}

impl TimerEntry {
    /// Claims the timer for firing; false if it was disarmed first.
    fn claim(&self) -> bool {
        self.state
            .compare_exchange(ARMED, FIRED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Fires the timer if nobody disarmed it.
    pub(crate) fn fire(&self) {
        if self.claim() {
            if let Some(target) = self.target.upgrade() {
                target.fire();
            }
        }
    }
}

/// A timer armed on a source, owned by that source's shared state.
pub(crate) struct ArmedTimer {
    entry: Arc<TimerEntry>,
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
    Manual,
}

impl ArmedTimer {
    /// Arms a timer that fires `target` after `delay`. `None` if the deadline
    /// is beyond what the clock can represent: such a timer never fires.
    #[cfg(not(loom))]
    pub(crate) fn arm(target: &Arc<Inner>, delay: Duration) -> Option<ArmedTimer> {
        let deadline = Instant::now().checked_add(delay)?;
        let entry = Arc::new(TimerEntry {
            state: AtomicU8::new(ARMED),
            target: Arc::downgrade(target),
        });
        let backend = match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                tokio::time::Instant::now().checked_add(delay)?;
                let guard = TaskGuard {
                    entry: entry.clone(),
                    deadline,
                };
                Backend::Task(
                    runtime
                        .spawn(async move {
                            tokio::time::sleep(delay).await;
                            guard.entry.fire();
                        })
                        .abort_handle(),
                )
            }
            Err(_) => Backend::Thread(thread::schedule(deadline, entry.clone())),
        };
        Some(ArmedTimer { entry, backend })
    }

    /// Arms a timer that only fires when a loom model calls [`fire`](Self::fire).
    #[cfg(loom)]
    pub(crate) fn arm(target: &Arc<Inner>, _delay: Duration) -> Option<ArmedTimer> {
        Some(ArmedTimer {
            entry: Arc::new(TimerEntry {
                state: AtomicU8::new(ARMED),
                target: Arc::downgrade(target),
            }),
            backend: Backend::Manual,
        })
    }

    /// The entry, for a loom model to fire.
    #[cfg(loom)]
    pub(crate) fn entry(&self) -> Arc<TimerEntry> {
        self.entry.clone()
    }

    /// Disarms the timer. False if it had already fired (it may still be
    /// cancelling the source).
    pub(crate) fn disarm(&self) -> bool {
        match self.entry.state.compare_exchange(
            ARMED,
            DISARMED,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => true,
            Err(state) => state == DISARMED,
        }
    }

    /// Frees the backend's resources (the queue slot or the task). Call after
    /// `disarm`, outside the source's lock where convenient.
    pub(crate) fn release(self) {
        match self.backend {
            #[cfg(not(loom))]
            Backend::Thread(key) => thread::unschedule(key),
            #[cfg(not(loom))]
            Backend::Task(task) => task.abort(),
            #[cfg(loom)]
            Backend::Manual => {}
        }
    }
}

/// Lives inside a timer task. If the task is dropped unfired and nobody
/// disarmed the timer — its runtime shut down — hand it to the timer thread.
#[cfg(not(loom))]
struct TaskGuard {
    entry: Arc<TimerEntry>,
    deadline: Instant,
}

#[cfg(not(loom))]
impl Drop for TaskGuard {
    fn drop(&mut self) {
        if self.entry.state.load(Ordering::Acquire) == ARMED {
            // The queue slot is never unscheduled; a later disarm flips the
            // state and the thread's firing becomes a no-op.
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
    use std::sync::{Arc, Condvar, Mutex, OnceLock};
    use std::time::Instant;

    use super::TimerEntry;
    use crate::sync::lock;

    /// Deadline, then arming order to keep equal deadlines distinct.
    pub(crate) type QueueKey = (Instant, u64);

    struct Queue {
        timers: BTreeMap<QueueKey, Arc<TimerEntry>>,
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
    pub(crate) fn schedule(deadline: Instant, entry: Arc<TimerEntry>) -> QueueKey {
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
            // takes its own lock, and its callbacks may arm timers).
            for entry in due.drain(..) {
                entry.fire();
            }
        }
    }
}
