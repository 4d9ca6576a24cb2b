//! The shared state of one cancellation source, and the cancel algorithm.
//!
//! # Invariants
//!
//! 1. `state` moves `LIVE → NOTIFYING → CANCELLED` and never back, except
//!    that `try_reset` may run while it is `LIVE`. It is only written with
//!    the lock held, and read without it (`is_cancelled` is one atomic load).
//! 2. An entry is in the list iff it has neither run nor been removed.
//!    Popping it under the lock is the one point that decides "it runs";
//!    removing it under the lock is the one point that decides "it never
//!    runs". So a callback runs exactly once or never, whatever races.
//! 3. No entry is added once `state` is not `LIVE`: `add` checks under the
//!    lock and hands the entry back, and the caller runs it inline.
//! 4. While the notifying thread runs an entry, `executing` holds its key and
//!    `notifier` that thread's id; both are cleared under the lock when the
//!    entry has finished, and waiters are woken. Dropping a registration
//!    whose callback is `executing` on another thread waits for that.
//! 5. No user code (callbacks, wakers, user closures' destructors) runs
//!    while a lock is held.
//! 6. Nothing recurses over the depth of a tree of linked sources: cancelling
//!    walks it with an explicit stack, and dropping walks it with a work list.
//!
//! # Lock order
//!
//! A source's lock may be held while taking the global timer queue's lock
//! (arming and disarming). Never are two sources' locks held at once:
//! linking, cancelling a child and unlinking all release one before taking
//! the other. The timer thread releases its queue lock before it fires.

use std::any::Any;
use std::mem;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant};

use super::CancelReason;
use super::list::{Entry, Key, List};
use super::timer::{ArmedTimer, TimerWord};
use crate::sync::{
    AtomicU8, Condvar, Mutex, MutexGuard, Ordering, ThreadId, current_thread, lock, with_mut,
};

const LIVE: u8 = 0;
const NOTIFYING: u8 = 1;
const CANCELLED: u8 = 2;

/// One source's state, shared by its source handles, tokens, registrations
/// and futures.
pub(crate) struct Inner {
    state: AtomicU8,
    /// Which timer may fire, and whether it has (see `timer.rs`).
    timer_word: TimerWord,
    shared: Mutex<Shared>,
    /// Signalled when cancellation begins, when an entry finishes running
    /// and when notification completes — only if `waiters > 0`.
    changed: Condvar,
}

#[derive(Default)]
struct Shared {
    list: List,
    reason: Option<CancelReason>,
    /// The thread running this source's entries, while `NOTIFYING`.
    notifier: Option<ThreadId>,
    /// The entry that thread is running.
    executing: Option<Key>,
    /// Threads blocked on `changed`; a notify costs a system call, so it is
    /// only made when someone waits.
    waiters: usize,
    timer: Option<ArmedTimer>,
    /// Our registrations on the parents we are linked to.
    parents: Vec<ParentLink>,
}

/// A linked child's registration on one parent.
struct ParentLink {
    parent: Arc<Inner>,
    key: Key,
}

/// What `begin` found.
enum Begin {
    /// This call moved the source to `NOTIFYING`: it must run the entries.
    Notify,
    /// Nothing to do: already cancelled, or cancelling on this very thread.
    Done,
    /// Another thread is running the entries.
    Elsewhere,
}

impl Inner {
    /// A live source.
    pub(crate) fn new() -> Arc<Inner> {
        Arc::new(Inner {
            state: AtomicU8::new(LIVE),
            timer_word: TimerWord::new(),
            shared: Mutex::new(Shared::default()),
            changed: Condvar::new(),
        })
    }

    pub(crate) fn timer_word(&self) -> &TimerWord {
        &self.timer_word
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        lock(&self.shared)
    }

    /// Whether cancellation has been requested (it may still be notifying).
    #[inline]
    pub(crate) fn is_cancelled(&self) -> bool {
        self.state.load(Ordering::Acquire) != LIVE
    }

    /// The reason, once cancelled.
    pub(crate) fn reason(&self) -> Option<CancelReason> {
        if !self.is_cancelled() {
            return None;
        }
        self.lock().reason.clone()
    }

    /// Adds `entry` unless cancellation has begun, in which case it is handed
    /// back for the caller to run inline (invariant 3).
    pub(crate) fn add(&self, entry: Entry) -> Result<Key, Entry> {
        let mut shared = self.lock();
        if self.state.load(Ordering::Relaxed) != LIVE {
            return Err(entry);
        }
        Ok(shared.list.push(entry))
    }

    /// Removes the entry if it has not started; never waits. True if removed.
    pub(crate) fn remove(&self, key: Key) -> bool {
        let removed = self.lock().list.remove(key);
        // Dropped here, outside the lock (invariant 5).
        removed.is_some()
    }

    /// Removes the entry; if it is running on another thread, waits until it
    /// has finished. True if removed before it ran.
    pub(crate) fn remove_and_wait(&self, key: Key) -> bool {
        let mut shared = self.lock();
        if let Some(entry) = shared.list.remove(key) {
            drop(shared);
            drop(entry);
            return true;
        }
        if shared.executing == Some(key) && shared.notifier != Some(current_thread()) {
            shared.waiters += 1;
            while shared.executing == Some(key) {
                shared = self
                    .changed
                    .wait(shared)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            shared.waiters -= 1;
        }
        false
    }

    /// Points a pending future's entry at `waker`. False if the entry is gone
    /// (it was woken by cancellation).
    pub(crate) fn update_waker(&self, key: Key, waker: &Waker) -> bool {
        let mut shared = self.lock();
        match shared.list.get_mut(key) {
            Some(Entry::Waker(current)) if current.will_wake(waker) => true,
            Some(Entry::Waker(_)) => {
                // Cloning a waker is the executor's code: do it unlocked,
                // then swap it in if the entry is still there.
                drop(shared);
                let fresh = waker.clone();
                let mut shared = self.lock();
                match shared.list.get_mut(key) {
                    Some(Entry::Waker(current)) => {
                        let old = mem::replace(current, fresh);
                        drop(shared);
                        drop(old);
                        true
                    }
                    _ => false,
                }
            }
            _ => false,
        }
    }

    /// Blocks the thread until cancellation is requested, or until `deadline`.
    /// True if cancelled.
    pub(crate) fn wait(&self, deadline: Option<Instant>) -> bool {
        if self.is_cancelled() {
            return true;
        }
        let mut shared = self.lock();
        shared.waiters += 1;
        while !self.is_cancelled() {
            match deadline {
                None => {
                    shared = self
                        .changed
                        .wait(shared)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    shared = self
                        .changed
                        .wait_timeout(shared, deadline - now)
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .0;
                }
            }
        }
        shared.waiters -= 1;
        self.is_cancelled()
    }

    /// Replaces the armed timer (the last call wins). `None` disarms.
    pub(crate) fn set_timer(self: &Arc<Self>, delay: Option<Duration>) {
        let mut shared = self.lock();
        if self.is_cancelled() {
            return;
        }
        let old = shared.timer.take();
        shared.timer = delay.and_then(|delay| ArmedTimer::arm(self, delay));
        drop(shared);
        if let Some(old) = old {
            // A no-op when a new generation was armed (that superseded it);
            // needed when the call disarms, or the new delay is infinite.
            old.disarm(self);
            old.release();
        }
    }

    /// The armed timer's entry, for a loom model to fire.
    #[cfg(loom)]
    pub(crate) fn timer_entry(&self) -> Option<super::timer::TimerEntry> {
        self.lock().timer.as_ref().map(ArmedTimer::entry)
    }

    /// Resets a live source: disarms its timer and drops its user callbacks.
    /// False if it is cancelled or its timer may already have fired.
    pub(crate) fn try_reset(&self) -> bool {
        let mut shared = self.lock();
        if self.is_cancelled() {
            return false;
        }
        if self.timer_word.ever_fired() {
            return false;
        }
        if let Some(timer) = &shared.timer {
            if !timer.disarm(self) {
                return false;
            }
        }
        let timer = shared.timer.take();
        // Wakers belong to pending futures and children to linked sources:
        // those are not registrations the user made, and dropping them would
        // leave a future or a child that never hears of a later cancel.
        let dropped = shared
            .list
            .remove_where(|entry| matches!(entry, Entry::Callback(_)));
        drop(shared);
        drop(dropped);
        if let Some(timer) = timer {
            timer.release();
        }
        true
    }

    /// Links `child` to each parent. If a parent is already cancelled, the
    /// child is cancelled now with that parent's reason.
    pub(crate) fn link(child: &Arc<Inner>, parents: impl IntoIterator<Item = Arc<Inner>>) {
        let mut links = Vec::new();
        let mut cancelled_by = None;
        for parent in parents {
            if Arc::ptr_eq(&parent, child)
                || links
                    .iter()
                    .any(|l: &ParentLink| Arc::ptr_eq(&l.parent, &parent))
            {
                continue;
            }
            match parent.add(Entry::Child(Arc::downgrade(child))) {
                Ok(key) => links.push(ParentLink { parent, key }),
                Err(_) => {
                    cancelled_by = Some(parent.reason().unwrap_or(CancelReason::Requested));
                    break;
                }
            }
        }
        match cancelled_by {
            Some(reason) => {
                for link in links {
                    link.parent.remove(link.key);
                }
                child.cancel(reason);
            }
            None => child.lock().parents = links,
        }
    }

    /// Cancels the source and every linked descendant, running their entries
    /// on this thread, newest first, depth first. Returns when all entries
    /// registered before the call have finished — also when another thread
    /// is already cancelling, which this call then waits for. From inside
    /// one of the entries it returns at once.
    ///
    /// A panicking callback does not stop the others; the first panic is
    /// resumed here once all have run.
    pub(crate) fn cancel(self: &Arc<Self>, reason: CancelReason) {
        let me = current_thread();
        match self.begin(reason.clone(), me) {
            Begin::Notify => {}
            Begin::Done => return,
            // Waiting from inside a callback (of any source) could deadlock:
            // two sources whose callbacks cancel each other, cancelled at
            // once on two threads, would each wait for the other.
            Begin::Elsewhere if crate::sync::in_callbacks() => return,
            Begin::Elsewhere => {
                self.wait_until_notified();
                return;
            }
        }
        if let Some(panic) = notify(self.clone(), &reason, me) {
            resume_unwind(panic);
        }
    }

    /// The timer's way in: cancels with `TimedOut`, and never unwinds into
    /// the timer thread or task (a panicking callback is logged instead).
    pub(crate) fn fire(self: &Arc<Self>) {
        if catch_unwind(AssertUnwindSafe(|| self.cancel(CancelReason::TimedOut))).is_err() {
            tracing::error!(target: "apphost::cancel", "a cancellation callback panicked when a timeout fired");
        }
    }

    fn begin(&self, reason: CancelReason, me: ThreadId) -> Begin {
        let mut shared = self.lock();
        match self.state.load(Ordering::Relaxed) {
            LIVE => {
                shared.reason = Some(reason);
                shared.notifier = Some(me);
                self.state.store(NOTIFYING, Ordering::Release);
                let timer = shared.timer.take();
                if shared.waiters > 0 {
                    self.changed.notify_all();
                }
                drop(shared);
                if let Some(timer) = timer {
                    timer.disarm(self);
                    timer.release();
                }
                Begin::Notify
            }
            NOTIFYING if shared.notifier == Some(me) => Begin::Done,
            NOTIFYING => Begin::Elsewhere,
            _ => Begin::Done,
        }
    }

    fn wait_until_notified(&self) {
        let mut shared = self.lock();
        shared.waiters += 1;
        while self.state.load(Ordering::Relaxed) != CANCELLED {
            shared = self
                .changed
                .wait(shared)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        shared.waiters -= 1;
    }

    /// Marks the previous entry finished and takes the next step, in one
    /// lock: a run of wakers (moved into `wakers`, woken by the caller
    /// unlocked), then possibly one entry to run. With nothing left, completes
    /// the notification.
    fn next_step(&self, wakers: &mut Vec<Waker>) -> Step {
        let mut shared = self.lock();
        shared.executing = None;
        while let Some((key, entry)) = shared.list.pop() {
            match entry {
                // Wakers are batched: nothing waits for a waker to finish,
                // and a future dropped meanwhile tolerates a stale wake.
                Entry::Waker(waker) => {
                    wakers.push(waker);
                    if wakers.len() == WAKER_BATCH {
                        break;
                    }
                }
                entry => {
                    shared.executing = Some(key);
                    if shared.waiters > 0 {
                        self.changed.notify_all();
                    }
                    return Step::Run(entry);
                }
            }
        }
        if shared.waiters > 0 {
            self.changed.notify_all();
        }
        if !wakers.is_empty() {
            return Step::Continue;
        }
        shared.notifier = None;
        self.state.store(CANCELLED, Ordering::Release);
        // The slab is empty for good: give its memory back.
        let list = mem::take(&mut shared.list);
        drop(shared);
        drop(list);
        Step::Done
    }
}

/// How many wakers one lock may move out of the list.
const WAKER_BATCH: usize = 64;

/// What the notifying thread does next.
enum Step {
    /// Run this entry (after waking the batched wakers).
    Run(Entry),
    /// Wake the batched wakers, then ask again.
    Continue,
    /// All entries have run; the source is `CANCELLED`.
    Done,
}

/// Runs the entries of `root` and of every linked descendant it reaches,
/// depth first with an explicit stack (invariant 6). Returns the first panic.
fn notify(root: Arc<Inner>, reason: &CancelReason, me: ThreadId) -> Option<Box<dyn Any + Send>> {
    let _notifying = crate::sync::CallbacksGuard::enter();
    let mut current = root;
    let mut suspended: Vec<Arc<Inner>> = Vec::new();
    let mut wakers = Vec::new();
    let mut first_panic = None;
    loop {
        let step = current.next_step(&mut wakers);
        for waker in wakers.drain(..) {
            wake(waker, &mut first_panic);
        }
        match step {
            Step::Run(Entry::Callback(callback)) => {
                if let Err(panic) = catch_unwind(AssertUnwindSafe(callback)) {
                    first_panic.get_or_insert(panic);
                }
            }
            Step::Run(Entry::Child(child)) => {
                if let Some(child) = child.upgrade() {
                    // A child cancelled elsewhere is left to that thread:
                    // waiting for it could deadlock with a callback of its
                    // that cancels us.
                    if let Begin::Notify = child.begin(reason.clone(), me) {
                        suspended.push(mem::replace(&mut current, child));
                    }
                }
            }
            Step::Run(Entry::Waker(waker)) => wake(waker, &mut first_panic),
            Step::Continue => {}
            Step::Done => match suspended.pop() {
                Some(parent) => current = parent,
                None => return first_panic,
            },
        }
    }
}

/// Wakes `waker`, keeping a panic like a callback's: a waker is the
/// executor's code, and unwinding out of `notify` would leave the source
/// `NOTIFYING` for good, its popped entry never run and its `executing` key
/// set, so a later `cancel` or registration drop on another thread would
/// wait forever.
fn wake(waker: Waker, first_panic: &mut Option<Box<dyn Any + Send>>) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| waker.wake())) {
        first_panic.get_or_insert(panic);
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let (timer, mut links) = with_mut(&mut self.shared, |shared| {
            (shared.timer.take(), mem::take(&mut shared.parents))
        });
        if let Some(timer) = timer {
            timer.disarm(self);
            timer.release();
        }
        // Unlink from our parents. Dropping our reference to a parent may
        // drop the parent too, and its parents after it: walk that chain
        // with a work list instead of recursing (invariant 6).
        while let Some(ParentLink { parent, key }) = links.pop() {
            parent.remove(key);
            if let Some(mut parent) = Arc::into_inner(parent) {
                with_mut(&mut parent.shared, |shared| {
                    links.append(&mut shared.parents)
                });
                // `parent` drops here with no parents left: no recursion.
            }
        }
    }
}
