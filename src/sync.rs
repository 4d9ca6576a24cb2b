//! The synchronization primitives the cancel module uses, swapped for loom's
//! model-checked versions under `cfg(loom)`.
//!
//! `Arc`/`Weak` stay std's in both builds: loom's `Arc` has no `Weak`, and the
//! reference counts are std's own correctness, not ours. What loom explores is
//! every interleaving of our mutex, condition variable and atomics.

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::{Condvar, Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::thread::ThreadId;

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU8, AtomicU64, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard};
#[cfg(loom)]
pub(crate) use loom::thread::ThreadId;

/// The id of the calling thread.
#[cfg(not(loom))]
pub(crate) fn current_thread() -> ThreadId {
    std::thread::current().id()
}

/// The id of the calling (loom) thread.
#[cfg(loom)]
pub(crate) fn current_thread() -> ThreadId {
    loom::thread::current().id()
}

/// Locks `mutex`, ignoring poisoning.
///
/// No user code ever runs while one of our locks is held (see the invariants in
/// `cancel/state.rs`), so a poisoned lock can only come from a panic inside our
/// own bookkeeping, whose state is consistent at every unwind point.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs `f` on the contents of a mutex we own exclusively (in `Drop`).
#[cfg(not(loom))]
pub(crate) fn with_mut<T, R>(mutex: &mut Mutex<T>, f: impl FnOnce(&mut T) -> R) -> R {
    f(mutex
        .get_mut()
        .unwrap_or_else(std::sync::PoisonError::into_inner))
}

/// Runs `f` on the contents of a mutex we own exclusively (in `Drop`).
#[cfg(loom)]
pub(crate) fn with_mut<T, R>(mutex: &mut Mutex<T>, f: impl FnOnce(&mut T) -> R) -> R {
    f(&mut lock(mutex))
}

#[cfg(not(loom))]
std::thread_local! {
    /// How many `cancel()` notifications this thread is running (nested).
    static IN_CALLBACKS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

#[cfg(loom)]
loom::thread_local! {
    /// How many `cancel()` notifications this thread is running (nested).
    static IN_CALLBACKS: std::cell::Cell<u32> = std::cell::Cell::new(0);
}

/// Whether this thread is running cancellation callbacks, of any source.
pub(crate) fn in_callbacks() -> bool {
    IN_CALLBACKS.with(|depth| depth.get() > 0)
}

/// Marks this thread as running callbacks while it lives.
pub(crate) struct CallbacksGuard(());

impl CallbacksGuard {
    pub(crate) fn enter() -> CallbacksGuard {
        IN_CALLBACKS.with(|depth| depth.set(depth.get() + 1));
        CallbacksGuard(())
    }
}

impl Drop for CallbacksGuard {
    fn drop(&mut self) {
        IN_CALLBACKS.with(|depth| depth.set(depth.get() - 1));
    }
}

/// Runs `work` on a new thread named `name`, or on this thread if no thread
/// can be made: used where work (user callbacks) must not run on a thread
/// that has to stay responsive, but must not be lost either.
pub(crate) fn run_on_new_thread(name: &str, work: impl FnOnce() + Send + 'static) {
    // The closure is shared so that a failed spawn can hand it back.
    let slot = std::sync::Arc::new(std::sync::Mutex::new(Some(work)));
    let take = |slot: &std::sync::Mutex<Option<_>>| slot.lock().ok().and_then(|mut w| w.take());
    let on_thread = std::sync::Arc::clone(&slot);
    let spawned = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            if let Some(work) = take(&on_thread) {
                work();
            }
        });
    if spawned.is_err() {
        if let Some(work) = take(&slot) {
            work();
        }
    }
}
