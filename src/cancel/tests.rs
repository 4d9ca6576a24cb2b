//! Loom models of the cancel module's concurrent paths.
//!
//! Run with `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --lib --release cancel::tests`.

use std::sync::Arc;

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

use super::{CancelReason, CancellationTokenSource};

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

/// Register racing cancel: the callback runs exactly once, and it has
/// finished when both sides are done.
#[test]
fn register_vs_cancel_runs_exactly_once() {
    loom::model(|| {
        let source = CancellationTokenSource::new();
        let runs = counter();
        let canceller = {
            let source = source.clone();
            thread::spawn(move || source.cancel())
        };
        let count = runs.clone();
        let registration = source.token().register(move || {
            count.fetch_add(1, Ordering::SeqCst);
        });
        canceller.join().unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(!registration.unregister());
    });
}

/// Dropping a registration racing cancel: afterwards the callback is not
/// running, ran at most once, and never runs later.
#[test]
fn drop_registration_vs_cancel_never_leaves_it_running() {
    loom::model(|| {
        let source = CancellationTokenSource::new();
        let runs = counter();
        let running = counter();
        let (count, active) = (runs.clone(), running.clone());
        let registration = source.token().register(move || {
            active.fetch_add(1, Ordering::SeqCst);
            count.fetch_add(1, Ordering::SeqCst);
            active.fetch_sub(1, Ordering::SeqCst);
        });
        let canceller = {
            let source = source.clone();
            thread::spawn(move || source.cancel())
        };
        drop(registration);
        assert_eq!(
            running.load(Ordering::SeqCst),
            0,
            "still running after drop"
        );
        let after_drop = runs.load(Ordering::SeqCst);
        canceller.join().unwrap();
        assert!(after_drop <= 1);
        assert_eq!(
            runs.load(Ordering::SeqCst),
            after_drop,
            "ran after drop returned"
        );
    });
}

/// Two cancellers: whichever returns, the callback has finished; it ran once.
#[test]
fn two_cancellers_both_wait_for_the_callbacks() {
    loom::model(|| {
        let source = CancellationTokenSource::new();
        let runs = counter();
        let count = runs.clone();
        source
            .token()
            .register(move || {
                count.fetch_add(1, Ordering::SeqCst);
            })
            .detach();
        let other = {
            let (source, runs) = (source.clone(), runs.clone());
            thread::spawn(move || {
                source.cancel_with(CancelReason::TimedOut);
                assert_eq!(runs.load(Ordering::SeqCst), 1);
            })
        };
        source.cancel();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        other.join().unwrap();
        assert!(source.token().reason().is_some());
    });
}

/// Creating a linked child while its parent is cancelled: the child always
/// ends up cancelled, with the parent's reason.
#[test]
fn linked_child_creation_vs_parent_cancel() {
    loom::model(|| {
        let parent = CancellationTokenSource::new();
        let canceller = {
            let parent = parent.clone();
            thread::spawn(move || parent.cancel_with(CancelReason::Signal(15)))
        };
        let child = CancellationTokenSource::linked([&parent.token()]);
        canceller.join().unwrap();
        assert!(child.is_cancelled());
        assert_eq!(child.token().reason(), Some(CancelReason::Signal(15)));
    });
}

/// Dropping a linked child while the parent cancels: no panic, and the
/// parent's callbacks still all run.
#[test]
fn linked_child_drop_vs_parent_cancel() {
    loom::model(|| {
        let parent = CancellationTokenSource::new();
        let runs = counter();
        let count = runs.clone();
        parent
            .token()
            .register(move || {
                count.fetch_add(1, Ordering::SeqCst);
            })
            .detach();
        let child = CancellationTokenSource::linked([&parent.token()]);
        let canceller = {
            let parent = parent.clone();
            thread::spawn(move || parent.cancel())
        };
        drop(child);
        canceller.join().unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    });
}

/// A timer firing races `cancel` and `try_reset`: exactly one outcome holds —
/// reset succeeded and the source is live, or the source is cancelled.
#[test]
fn timer_fire_vs_cancel_vs_try_reset() {
    loom::model(|| {
        let source = CancellationTokenSource::new();
        source.cancel_after(std::time::Duration::from_secs(1));
        let entry = source.inner.timer_entry().expect("armed");
        let timer = thread::spawn(move || entry.fire());
        let reset = source.try_reset();
        timer.join().unwrap();
        if reset {
            assert!(
                !source.is_cancelled(),
                "a successful reset disarmed the timer"
            );
        } else {
            assert_eq!(source.token().reason(), Some(CancelReason::TimedOut));
        }
    });
}

/// A timer firing races a manual cancel: one reason wins, and it sticks.
#[test]
fn timer_fire_vs_cancel() {
    loom::model(|| {
        let source = CancellationTokenSource::new();
        source.cancel_after(std::time::Duration::from_secs(1));
        let entry = source.inner.timer_entry().expect("armed");
        let timer = thread::spawn(move || entry.fire());
        source.cancel();
        timer.join().unwrap();
        let reason = source.token().reason().expect("cancelled");
        assert!(reason == CancelReason::Requested || reason == CancelReason::TimedOut);
    });
}

/// A blocked `wait()` is released by a cancel on another thread.
#[test]
fn wait_vs_cancel() {
    loom::model(|| {
        let source = CancellationTokenSource::new();
        let token = source.token();
        let waiter = thread::spawn(move || token.wait());
        source.cancel();
        waiter.join().unwrap();
    });
}

/// The old timer fires while the source is re-armed and reset: a reset that
/// succeeds leaves the source live for good (the fired timer is not allowed
/// to cancel it afterwards).
#[test]
fn fire_vs_rearm_then_try_reset() {
    loom::model(|| {
        let source = CancellationTokenSource::new();
        source.cancel_after(std::time::Duration::from_secs(1));
        let entry = source.inner.timer_entry().expect("armed");
        let timer = thread::spawn(move || entry.fire());
        source.cancel_after(std::time::Duration::from_secs(2));
        let reset = source.try_reset();
        timer.join().unwrap();
        if reset {
            assert!(!source.is_cancelled(), "cancelled after a successful reset");
        }
    });
}

/// Two sources whose callbacks cancel each other, cancelled at once on two
/// threads: both cancels return (no deadlock), and both are cancelled.
#[test]
fn cross_cancelling_callbacks_do_not_deadlock() {
    loom::model(|| {
        let p = CancellationTokenSource::new();
        let q = CancellationTokenSource::new();
        let other = q.clone();
        p.token().register(move || other.cancel()).detach();
        let other = p.clone();
        q.token().register(move || other.cancel()).detach();
        let t = {
            let q = q.clone();
            thread::spawn(move || q.cancel())
        };
        p.cancel();
        t.join().unwrap();
        assert!(p.is_cancelled() && q.is_cancelled());
    });
}
