//! Callbacks: when and where they run, in which order, with panics, and
//! registrations racing cancellation.
//!
//! Ports .NET's `CancellationTokenTests` scenarios 83–85, 90, 91, 93, 94,
//! 98 and 105–109 where they apply (see `shared/reference/dotnet-host.md`
//! section 7 H). Threads are ordered with channels and barriers; the few
//! short sleeps only give a wrong implementation the chance to show itself,
//! never decide whether a correct one passes.

#[macro_use]
mod support;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::Duration;

use apphost::{CancelReason, CancellationRegistration, CancellationToken, CancellationTokenSource};
use support::{
    Counter, Log, OnDrop, WakeCounter, bounded, no_hang, panic_text, quiet_panics_containing,
};

/// How long a test gives a wrong implementation to show itself (a cancel or
/// a drop returning while it should still wait). Never needed to pass.
const GRACE: Duration = Duration::from_millis(100);

// ---- semantics 1: is_cancelled before any callback ----

#[test]
fn is_cancelled_is_already_true_inside_every_callback() {
    let source = CancellationTokenSource::new();
    let seen = Log::new();
    let registrations: Vec<_> = (0..3)
        .map(|_| {
            let (token, seen) = (source.token(), seen.clone());
            token
                .clone()
                .register(move || seen.push((token.is_cancelled(), token.reason())))
        })
        .collect();
    source.cancel_with(CancelReason::TimedOut);
    assert_eq!(
        seen.events(),
        vec![(true, Some(CancelReason::TimedOut)); 3],
        "each callback saw the token cancelled, with its reason"
    );
    drop(registrations);
}

#[test]
fn other_threads_see_is_cancelled_while_callbacks_still_run() {
    let source = CancellationTokenSource::new();
    let (entered_tx, entered_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let finished = Arc::new(AtomicBool::new(false));
    let done = finished.clone();
    let _registration = source.token().register(move || {
        entered_tx.send(()).unwrap();
        release_rx.recv().unwrap();
        done.store(true, Ordering::SeqCst);
    });
    let canceller = {
        let source = source.clone();
        thread::spawn(move || source.cancel())
    };
    entered_rx.recv().unwrap();
    // The callback is blocked: cancellation is still notifying.
    assert!(source.is_cancelled());
    assert!(source.token().is_cancelled());
    assert_eq!(source.token().reason(), Some(CancelReason::Requested));
    assert!(!finished.load(Ordering::SeqCst));
    release_tx.send(()).unwrap();
    no_hang("join the canceller", move || canceller.join().unwrap());
    assert!(finished.load(Ordering::SeqCst));
}

// ---- semantics 2: synchronous, on the cancelling thread, newest first ----

#[test]
fn a_registered_callback_runs_on_cancel() {
    // .NET scenario 83.
    let source = CancellationTokenSource::new();
    let runs = Counter::new();
    let _registration = source.token().register(runs.callback());
    assert_eq!(runs.get(), 0);
    source.cancel();
    assert_eq!(runs.get(), 1);
    source.cancel();
    assert_eq!(runs.get(), 1, "a callback runs once");
}

#[test]
fn callbacks_run_newest_first() {
    // .NET scenario 90.
    let source = CancellationTokenSource::new();
    let order = Log::new();
    let registrations: Vec<_> = (1..=5)
        .map(|i| source.token().register(order.callback(i)))
        .collect();
    source.cancel();
    assert_eq!(order.events(), [5, 4, 3, 2, 1]);
    drop(registrations);
}

#[test]
fn callbacks_run_on_the_cancelling_thread_and_have_finished_when_cancel_returns() {
    let source = CancellationTokenSource::new();
    let threads = Log::new();
    let finished = Counter::new();
    let registrations: Vec<_> = (0..4)
        .map(|_| {
            let (threads, finished) = (threads.clone(), finished.clone());
            source.token().register(move || {
                threads.push(thread::current().id());
                thread::sleep(Duration::from_millis(5));
                finished.bump();
            })
        })
        .collect();
    let canceller = {
        let source = source.clone();
        thread::spawn(move || {
            source.cancel();
            thread::current().id()
        })
    };
    let cancelling = canceller.thread().id();
    let returned_on = canceller.join().unwrap();
    assert_eq!(returned_on, cancelling);
    assert_eq!(threads.events(), vec![cancelling; 4]);
    assert_eq!(
        finished.get(),
        4,
        "all callbacks finished before cancel returned"
    );
    drop(registrations);
}

#[test]
fn a_second_concurrent_cancel_waits_until_the_first_has_run_every_callback() {
    let source = CancellationTokenSource::new();
    let (entered_tx, entered_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let finished = Arc::new(AtomicBool::new(false));
    let done = finished.clone();
    let _registration = source.token().register(move || {
        entered_tx.send(()).unwrap();
        release_rx.recv().unwrap();
        done.store(true, Ordering::SeqCst);
    });
    let first = {
        let source = source.clone();
        thread::spawn(move || source.cancel())
    };
    entered_rx.recv().unwrap();

    let (returned_tx, returned_rx) = mpsc::channel();
    let second = {
        let (source, finished) = (source.clone(), finished.clone());
        thread::spawn(move || {
            source.cancel_with(CancelReason::TimedOut);
            let saw_finished = finished.load(Ordering::SeqCst);
            returned_tx.send(()).unwrap();
            saw_finished
        })
    };
    assert_eq!(
        returned_rx.recv_timeout(GRACE),
        Err(RecvTimeoutError::Timeout),
        "the second cancel returned while the first was still running a callback"
    );
    release_tx.send(()).unwrap();
    let saw_finished = no_hang("join the cancellers", move || {
        first.join().unwrap();
        second.join().unwrap()
    });
    assert!(
        saw_finished,
        "when the second cancel returned, the callback had finished"
    );
    assert_eq!(
        source.token().reason(),
        Some(CancelReason::Requested),
        "the first reason wins"
    );
}

#[test]
fn cancel_from_inside_a_callback_returns_at_once() {
    let source = CancellationTokenSource::new();
    let order = Log::new();
    let _older = source.token().register(order.callback("older"));
    let inner = source.clone();
    let log = order.clone();
    let _reentrant = source.token().register(move || {
        inner.cancel_with(CancelReason::TimedOut);
        inner.cancel();
        log.push("reentrant cancel returned");
    });
    let _newer = source.token().register(order.callback("newer"));
    no_hang("cancel with a re-entrant callback", move || source.cancel());
    assert_eq!(
        order.events(),
        ["newer", "reentrant cancel returned", "older"],
        "the nested cancel returned at once and the others still ran"
    );
}

#[test]
fn a_callback_can_cancel_another_source_registered_early_or_late() {
    // .NET scenario 91.
    for late in [false, true] {
        let first = CancellationTokenSource::new();
        let second = CancellationTokenSource::new();
        let order = Log::new();
        let _second_callback = second.token().register(order.callback("second"));
        let mut registrations = Vec::new();
        if late {
            registrations.push(first.token().register(order.callback("first")));
        }
        let target = second.clone();
        registrations.push(first.token().register(move || target.cancel()));
        if !late {
            registrations.push(first.token().register(order.callback("first")));
        }
        first.cancel();
        assert!(second.is_cancelled());
        let expected = if late {
            ["second", "first"]
        } else {
            ["first", "second"]
        };
        assert_eq!(order.events(), expected, "late = {late}");
    }
}

// ---- semantics 3: panics ----

#[test]
fn a_panicking_callback_does_not_stop_the_others_and_its_panic_resumes_after_all_ran() {
    // .NET scenario 93 (Cancel(false): every callback runs), Rust style.
    quiet_panics_containing("callback 2 failed");
    let source = CancellationTokenSource::new();
    let order = Log::new();
    let registrations = vec![
        source.token().register(order.callback(1)),
        source.token().register({
            let order = order.clone();
            move || {
                order.push(2);
                panic!("callback 2 failed");
            }
        }),
        source.token().register(order.callback(3)),
    ];
    let canceller = source.clone();
    let panic = catch_unwind(AssertUnwindSafe(move || canceller.cancel()))
        .expect_err("cancel resumes the callback's panic");
    assert_eq!(panic_text(&*panic), "callback 2 failed");
    assert_eq!(order.events(), [3, 2, 1], "every callback ran, in order");
    drop(registrations);
}

#[test]
fn the_first_panic_to_happen_is_the_one_resumed() {
    quiet_panics_containing("panic number");
    let source = CancellationTokenSource::new();
    let registrations: Vec<_> = (1..=3)
        .map(|i| source.token().register(move || panic!("panic number {i}")))
        .collect();
    let panic = catch_unwind(AssertUnwindSafe(|| source.cancel())).unwrap_err();
    assert_eq!(
        panic_text(&*panic),
        "panic number 3",
        "the newest callback runs first, so its panic is the first"
    );
    drop(registrations);
}

#[test]
fn the_panic_resumes_on_the_cancelling_thread() {
    quiet_panics_containing("on the cancelling thread");
    let source = CancellationTokenSource::new();
    let _registration = source
        .token()
        .register(|| panic!("on the cancelling thread"));
    let canceller = source.clone();
    let joined = thread::spawn(move || canceller.cancel()).join();
    let panic = joined.expect_err("the cancelling thread panicked");
    assert_eq!(panic_text(&*panic), "on the cancelling thread");
}

#[test]
fn the_token_keeps_working_after_a_callback_panicked() {
    quiet_panics_containing("poison attempt");
    let source = CancellationTokenSource::new();
    let token = source.token();
    let pending_registration = token.register(|| panic!("poison attempt"));
    let (wakes, waker) = WakeCounter::new();
    let mut future = token.clone().cancelled_owned();
    assert_pending!(future, waker);
    let canceller = source.clone();
    assert!(catch_unwind(AssertUnwindSafe(move || canceller.cancel())).is_err());

    no_hang("use the token after a panic", move || {
        // No lock was left poisoned or held: every operation still works.
        assert!(token.is_cancelled());
        assert_eq!(token.reason(), Some(CancelReason::Requested));
        assert_eq!(wakes.wakes(), 1, "wakers were still woken");
        assert_ready!(future, waker);
        let runs = Counter::new();
        let inline = token.register(runs.callback());
        assert_eq!(runs.get(), 1, "late registration runs inline");
        assert!(!inline.unregister());
        assert!(!pending_registration.unregister());
        drop(pending_registration);
        token.wait();
        assert!(token.wait_timeout(Duration::ZERO));
        let child = CancellationTokenSource::linked([&token]);
        assert!(child.is_cancelled());
        source.cancel();
        assert!(!source.try_reset());
        source.cancel_after(Duration::from_millis(1));
    });
}

#[test]
fn a_panic_inside_an_inline_callback_propagates_out_of_register() {
    quiet_panics_containing("inline failure");
    let source = CancellationTokenSource::new();
    source.cancel();
    let token = source.token();
    let panic = catch_unwind(AssertUnwindSafe(|| {
        token.register(|| panic!("inline failure")).detach();
    }))
    .unwrap_err();
    assert_eq!(panic_text(&*panic), "inline failure");
    let runs = Counter::new();
    token.register(runs.callback()).detach();
    assert_eq!(runs.get(), 1);
}

/// A waker whose `wake` panics (an executor bug, but not ours to die of).
struct PanickingWaker;

impl std::task::Wake for PanickingWaker {
    fn wake(self: Arc<Self>) {
        panic!("waker failed");
    }
}

#[test]
fn a_panicking_waker_does_not_stop_the_callbacks_or_wedge_the_source() {
    quiet_panics_containing("waker failed");
    // Bounded as a whole: on failure, even unwinding could block on the
    // wedged source.
    bounded("panicking waker", Duration::from_secs(10), || {
        let source = CancellationTokenSource::new();
        let runs = Counter::new();
        // Older than the future, so it runs after the waker is woken.
        let registration = source.token().register(runs.callback());
        let waker = std::task::Waker::from(Arc::new(PanickingWaker));
        let mut future = source.token().cancelled_owned();
        assert_pending!(future, waker);

        let canceller = source.clone();
        let cancelled = thread::spawn(move || canceller.cancel()).join();
        let panic = cancelled.expect_err("the waker's panic resumes on the cancelling thread");
        assert_eq!(panic_text(&*panic), "waker failed");
        assert_eq!(runs.get(), 1, "the callback after the waker still ran");
        drop(registration);
        source.cancel();
    });
}

// ---- semantics 4: registering ----

#[test]
fn register_on_a_cancelled_token_runs_inline_and_returns_an_inert_registration() {
    // .NET scenario 85.
    let source = CancellationTokenSource::new();
    source.cancel();
    let token = source.token();
    let ran_on = Arc::new(Mutex::new(None));
    let record = ran_on.clone();
    let registration = token.register(move || {
        *record.lock().unwrap() = Some(thread::current().id());
    });
    assert_eq!(
        *ran_on.lock().unwrap(),
        Some(thread::current().id()),
        "ran before register returned, on this thread"
    );
    assert!(!registration.unregister(), "inert");
    assert_eq!(registration.token(), &token);
    assert!(format!("{registration:?}").contains("inert: true"));
    drop(registration);
}

#[test]
fn register_on_a_zero_timeout_source_runs_inline_every_time() {
    // .NET scenario 112.
    let source = CancellationTokenSource::with_timeout(Duration::ZERO);
    assert!(source.is_cancelled());
    assert_eq!(source.token().reason(), Some(CancelReason::TimedOut));
    let runs = Counter::new();
    for expected in 1..=3 {
        source.token().register(runs.callback()).detach();
        assert_eq!(runs.get(), expected);
    }
}

#[test]
fn register_on_none_never_runs_and_returns_an_inert_registration() {
    // .NET scenarios 106–107 for the dummy registration.
    let none = CancellationToken::none();
    let dropped = Counter::new();
    let guard = OnDrop::bump(&dropped);
    let registration = none.register(move || {
        let _guard = guard;
        unreachable!("none is never cancelled");
    });
    assert_eq!(
        dropped.get(),
        1,
        "the callback was dropped at once, not kept"
    );
    assert!(!registration.unregister());
    assert_eq!(registration.token(), &CancellationToken::none());
}

#[test]
fn a_callback_registered_during_cancellation_runs_inline() {
    let source = CancellationTokenSource::new();
    let order = Log::new();
    let token = source.token();
    let log = order.clone();
    let _registration = source.token().register(move || {
        log.push("outer start");
        let nested = token.register(log.callback("nested"));
        assert!(!nested.unregister(), "inert: it already ran");
        log.push("outer end");
    });
    source.cancel();
    assert_eq!(order.events(), ["outer start", "nested", "outer end"]);
}

#[test]
fn register_racing_cancel_runs_the_callback_exactly_once() {
    // Semantics 4, as .NET's scenario 109 races its threads.
    const ITERATIONS: usize = 10_000;
    no_hang("register racing cancel", || {
        let barrier = Arc::new(Barrier::new(2));
        let (sources_tx, sources_rx) = mpsc::channel::<CancellationTokenSource>();
        let canceller = {
            let barrier = barrier.clone();
            thread::spawn(move || {
                for source in sources_rx {
                    barrier.wait();
                    source.cancel();
                    barrier.wait();
                }
            })
        };
        let mut inline = 0;
        for i in 0..ITERATIONS {
            let source = CancellationTokenSource::new();
            sources_tx.send(source.clone()).unwrap();
            let runs = Counter::new();
            barrier.wait();
            let registration = source.token().register(runs.callback());
            if runs.get() == 1 {
                inline += 1;
            }
            barrier.wait(); // the cancel has returned
            assert_eq!(runs.get(), 1, "iteration {i}: ran {} times", runs.get());
            assert!(!registration.unregister());
        }
        drop(sources_tx);
        canceller.join().unwrap();
        eprintln!("register raced cancel: {inline} of {ITERATIONS} ran inline");
    });
}

#[test]
fn register_and_unregister_racing_cancel_either_removes_or_runs_the_callback() {
    // .NET scenario 109: exactly one of "unregistered" and "invoked".
    const ITERATIONS: usize = 10_000;
    no_hang("unregister racing cancel", || {
        let barrier = Arc::new(Barrier::new(2));
        let (sources_tx, sources_rx) = mpsc::channel::<CancellationTokenSource>();
        let canceller = {
            let barrier = barrier.clone();
            thread::spawn(move || {
                for source in sources_rx {
                    barrier.wait();
                    source.cancel();
                    barrier.wait();
                }
            })
        };
        let (mut removed_count, mut invoked_count) = (0, 0);
        for i in 0..ITERATIONS {
            let source = CancellationTokenSource::new();
            sources_tx.send(source.clone()).unwrap();
            let runs = Counter::new();
            barrier.wait();
            let registration = source.token().register(runs.callback());
            let removed = registration.unregister();
            barrier.wait(); // the cancel has returned
            let invoked = runs.get() == 1;
            assert!(runs.get() <= 1);
            assert!(
                removed != invoked,
                "iteration {i}: removed = {removed}, invoked = {invoked}"
            );
            removed_count += usize::from(removed);
            invoked_count += usize::from(invoked);
        }
        drop(sources_tx);
        canceller.join().unwrap();
        eprintln!("unregister raced cancel: {removed_count} removed, {invoked_count} invoked");
    });
}

// ---- unregistering ----

#[test]
fn unregister_returns_true_once_and_the_callback_never_runs() {
    // .NET scenario 107.
    let source = CancellationTokenSource::new();
    let runs = Counter::new();
    let registration = source.token().register(runs.callback());
    assert!(registration.unregister());
    assert!(!registration.unregister());
    source.cancel();
    assert_eq!(runs.get(), 0);
    drop(registration);
}

#[test]
fn dropping_a_registration_before_cancel_means_it_never_runs() {
    let source = CancellationTokenSource::new();
    let runs = Counter::new();
    let freed = Counter::new();
    let guard = OnDrop::bump(&freed);
    let counter = runs.clone();
    let registration = source.token().register(move || {
        let _guard = guard;
        counter.bump();
    });
    drop(registration);
    assert_eq!(freed.get(), 1, "the callback was freed on drop");
    source.cancel();
    assert_eq!(runs.get(), 0);
}

#[test]
fn the_same_callback_registered_four_times_runs_once_after_dropping_three() {
    // .NET scenario 84.
    let source = CancellationTokenSource::new();
    let runs = Counter::new();
    let shared = Arc::new({
        let runs = runs.clone();
        move || runs.bump()
    });
    let mut registrations: Vec<CancellationRegistration> = (0..4)
        .map(|_| {
            let callback = shared.clone();
            source.token().register(move || callback())
        })
        .collect();
    registrations.truncate(1);
    source.cancel();
    assert_eq!(runs.get(), 1);
}

#[test]
fn unregister_then_drop_is_fine() {
    // .NET scenario 94 (disposing twice), as close as Rust gets.
    let source = CancellationTokenSource::new();
    let registration = source.token().register(|| {});
    assert!(registration.unregister());
    drop(registration);
    source.cancel();
    let registration = source.token().register(|| {});
    assert!(!registration.unregister());
    drop(registration);
}

#[test]
fn unregister_while_its_callback_runs_returns_false_without_waiting() {
    // .NET scenario 108.
    let source = CancellationTokenSource::new();
    let (entered_tx, entered_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let registration = source.token().register(move || {
        entered_tx.send(()).unwrap();
        release_rx.recv().unwrap();
    });
    let canceller = {
        let source = source.clone();
        thread::spawn(move || source.cancel())
    };
    entered_rx.recv().unwrap();
    let registration = no_hang("unregister a running callback", move || {
        assert!(!registration.unregister(), "it is running: not removed");
        registration
    });
    release_tx.send(()).unwrap();
    canceller.join().unwrap();
    drop(registration);
}

#[test]
fn a_registration_removed_from_another_thread_while_an_earlier_callback_runs_is_skipped() {
    // .NET scenario 105: unregistered and dropped variants.
    for by_drop in [false, true] {
        let source = CancellationTokenSource::new();
        let skipped_runs = Counter::new();
        let skipped = source.token().register(skipped_runs.callback());
        let (entered_tx, entered_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        // Registered later, so it runs first and holds up the one above.
        let _blocker = source.token().register(move || {
            entered_tx.send(()).unwrap();
            release_rx.recv().unwrap();
        });
        let canceller = {
            let source = source.clone();
            thread::spawn(move || source.cancel())
        };
        entered_rx.recv().unwrap();
        no_hang("remove a pending registration", move || {
            if by_drop {
                drop(skipped);
            } else {
                assert!(skipped.unregister());
            }
        });
        release_tx.send(()).unwrap();
        canceller.join().unwrap();
        assert_eq!(skipped_runs.get(), 0, "by_drop = {by_drop}");
    }
}

// ---- semantics 5: dropping a registration ----

#[test]
fn dropping_a_registration_waits_for_its_callback_running_on_another_thread() {
    let source = CancellationTokenSource::new();
    let (entered_tx, entered_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let finished = Arc::new(AtomicBool::new(false));
    let done = finished.clone();
    let registration = source.token().register(move || {
        entered_tx.send(()).unwrap();
        release_rx.recv().unwrap();
        done.store(true, Ordering::SeqCst);
    });
    let canceller = {
        let source = source.clone();
        thread::spawn(move || source.cancel())
    };
    entered_rx.recv().unwrap();

    let (returned_tx, returned_rx) = mpsc::channel();
    let dropper = {
        let finished = finished.clone();
        thread::spawn(move || {
            drop(registration);
            let saw_finished = finished.load(Ordering::SeqCst);
            returned_tx.send(()).unwrap();
            saw_finished
        })
    };
    assert_eq!(
        returned_rx.recv_timeout(GRACE),
        Err(RecvTimeoutError::Timeout),
        "drop returned while the callback was still running"
    );
    release_tx.send(()).unwrap();
    let saw_finished = no_hang("join the dropper", move || {
        canceller.join().unwrap();
        dropper.join().unwrap()
    });
    assert!(
        saw_finished,
        "when drop returned, the callback had finished"
    );
}

#[test]
fn dropping_a_registration_waits_for_its_running_callback_even_if_it_panics() {
    quiet_panics_containing("fails while dropped");
    let source = CancellationTokenSource::new();
    let (entered_tx, entered_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let registration = source.token().register(move || {
        entered_tx.send(()).unwrap();
        release_rx.recv().unwrap();
        panic!("fails while dropped");
    });
    let canceller = {
        let source = source.clone();
        thread::spawn(move || source.cancel())
    };
    entered_rx.recv().unwrap();
    let dropper = thread::spawn(move || drop(registration));
    release_tx.send(()).unwrap();
    no_hang("drop a registration whose callback panics", move || {
        dropper.join().unwrap();
        assert!(canceller.join().is_err(), "the panic resumed in cancel");
    });
}

#[test]
fn dropping_a_registration_from_inside_its_own_callback_returns_at_once() {
    let source = CancellationTokenSource::new();
    let slot: Arc<Mutex<Option<CancellationRegistration>>> = Arc::new(Mutex::new(None));
    let runs = Counter::new();
    let (inner_slot, counter) = (slot.clone(), runs.clone());
    let registration = source.token().register(move || {
        let own = inner_slot.lock().unwrap().take();
        drop(own); // must not wait for itself
        counter.bump();
    });
    *slot.lock().unwrap() = Some(registration);
    no_hang("self-dropping callback", move || source.cancel());
    assert_eq!(runs.get(), 1);
    assert!(slot.lock().unwrap().is_none());
}

#[test]
fn dropping_a_registration_from_inside_another_callback_does_not_deadlock_and_skips_it() {
    // .NET scenario 98.
    let source = CancellationTokenSource::new();
    let later_runs = Counter::new();
    let target = source.token().register(later_runs.callback());
    let slot = Arc::new(Mutex::new(Some(target)));
    let inner_slot = slot.clone();
    let _dropper = source
        .token()
        .register(move || drop(inner_slot.lock().unwrap().take()));
    no_hang("drop from another callback", move || source.cancel());
    assert_eq!(later_runs.get(), 0, "the dropped registration never ran");
}

#[test]
fn after_drop_returns_the_callback_is_not_running_and_never_will() {
    // Drop racing cancel, many times: once `drop` returns, the callback is
    // not running, and it does not start later.
    const ITERATIONS: usize = 2_000;
    no_hang("drop racing cancel", || {
        let barrier = Arc::new(Barrier::new(2));
        let (sources_tx, sources_rx) = mpsc::channel::<CancellationTokenSource>();
        let canceller = {
            let barrier = barrier.clone();
            thread::spawn(move || {
                for source in sources_rx {
                    barrier.wait();
                    source.cancel();
                    barrier.wait();
                }
            })
        };
        let mut ran = 0;
        for i in 0..ITERATIONS {
            let source = CancellationTokenSource::new();
            let runs = Arc::new(AtomicUsize::new(0));
            let running = Arc::new(AtomicUsize::new(0));
            let (count, active) = (runs.clone(), running.clone());
            let registration = source.token().register(move || {
                active.fetch_add(1, Ordering::SeqCst);
                spin(i % 200);
                count.fetch_add(1, Ordering::SeqCst);
                active.fetch_sub(1, Ordering::SeqCst);
            });
            sources_tx.send(source).unwrap();
            barrier.wait();
            // Vary who gets there first.
            spin((i % 97) * 30);
            drop(registration);
            assert_eq!(
                running.load(Ordering::SeqCst),
                0,
                "iteration {i}: still running"
            );
            let after_drop = runs.load(Ordering::SeqCst);
            barrier.wait(); // the cancel has returned
            assert!(after_drop <= 1);
            assert_eq!(
                runs.load(Ordering::SeqCst),
                after_drop,
                "iteration {i}: ran after drop"
            );
            ran += after_drop;
        }
        drop(sources_tx);
        canceller.join().unwrap();
        eprintln!("drop raced cancel: the callback ran in {ran} of {ITERATIONS}");
    });
}

/// Busy-waits for roughly `n` short steps.
fn spin(n: usize) {
    for _ in 0..n {
        std::hint::spin_loop();
    }
}

// ---- registrations as values ----

#[test]
fn detach_keeps_the_callback_registered_for_the_life_of_the_token() {
    let source = CancellationTokenSource::new();
    let runs = Counter::new();
    source.token().register(runs.callback()).detach();
    source.cancel();
    assert_eq!(runs.get(), 1);
}

#[test]
fn registration_token_equals_the_source_token_and_outlives_the_source() {
    // .NET scenario 106.
    let source = CancellationTokenSource::new();
    let registration = source.token().register(|| {});
    assert_eq!(registration.token(), &source.token());
    let token = source.token();
    drop(source);
    assert_eq!(registration.token(), &token);
    assert!(!registration.token().is_cancelled());
    assert!(registration.unregister());
}

/// Two sources whose callbacks cancel each other, cancelled at the same
/// time on two threads: a `cancel()` made from inside a callback does not
/// wait for another thread's notification, so neither thread deadlocks.
#[test]
fn sources_cancelling_each_other_from_callbacks_on_two_threads_do_not_deadlock() {
    bounded("cross cancel", Duration::from_secs(10), || {
        let (p, q) = (
            CancellationTokenSource::new(),
            CancellationTokenSource::new(),
        );
        // Both callbacks start before either cancels the other source.
        let barrier = Arc::new(Barrier::new(2));
        let (b, other) = (barrier.clone(), q.clone());
        p.token()
            .register(move || {
                b.wait();
                other.cancel();
            })
            .detach();
        let (b, other) = (barrier.clone(), p.clone());
        q.token()
            .register(move || {
                b.wait();
                other.cancel();
            })
            .detach();
        let (tx, rx) = mpsc::channel();
        for source in [p, q] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                source.cancel();
                tx.send(()).unwrap();
            });
        }
        for _ in 0..2 {
            rx.recv_timeout(Duration::from_secs(5))
                .expect("both cancels return");
        }
    });
}
