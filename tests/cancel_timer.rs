//! Timers (`with_timeout`, `cancel_after`) with and without a tokio runtime,
//! and `try_reset`.
//!
//! Inside a runtime the tests use tokio's paused clock, so they are exact and
//! instant. Without one, the timer thread runs on real time, and those tests
//! only assert that a timer fired within a generous bound, or did not fire
//! while it had no reason to. Ports .NET's `CancellationTokenTests` scenarios
//! 100–103 and 112 (see `shared/reference/dotnet-host.md` section 7 H).

#[macro_use]
mod support;

use std::time::Duration;

use apphost::{CancelReason, CancellationTokenSource};
use std::sync::mpsc;
use support::{Counter, OnDrop, WakeCounter, bounded, no_hang, quiet_panics_containing};
use tokio::time::Instant;

/// Generous: a plain-thread timer must have fired well within this.
const EVENTUALLY: Duration = Duration::from_secs(10);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);
/// A plain-thread timer that a test expects to replace or disarm before it
/// fires: long enough that a busy machine does not fire it first.
const SHORT: Duration = Duration::from_millis(250);

// ---- without a runtime: the timer thread ----

#[test]
fn with_timeout_fires_on_a_plain_thread_without_a_runtime() {
    no_hang("plain-thread timeout", || {
        assert!(tokio::runtime::Handle::try_current().is_err());
        let source = CancellationTokenSource::with_timeout(Duration::from_millis(20));
        assert!(
            source.token().wait_timeout(EVENTUALLY),
            "timed out by itself"
        );
        assert_eq!(source.token().reason(), Some(CancelReason::TimedOut));
    });
}

#[test]
fn a_timer_runs_the_callbacks_on_another_thread() {
    no_hang("timer callbacks", || {
        let source = CancellationTokenSource::new();
        let (tx, rx) = std::sync::mpsc::channel();
        source
            .token()
            .register(move || tx.send(std::thread::current().id()).unwrap())
            .detach();
        source.cancel_after(Duration::from_millis(10));
        let ran_on = rx
            .recv_timeout(EVENTUALLY)
            .expect("the timer ran the callback");
        assert_ne!(ran_on, std::thread::current().id());
    });
}

#[test]
fn a_shorter_timer_armed_after_a_longer_one_fires_first() {
    no_hang("timer ordering", || {
        let long = CancellationTokenSource::with_timeout(HOUR);
        let short = CancellationTokenSource::with_timeout(Duration::from_millis(20));
        assert!(short.token().wait_timeout(EVENTUALLY));
        assert!(!long.is_cancelled());
    });
}

#[test]
fn many_plain_thread_timers_all_fire() {
    no_hang("many timers", || {
        let sources: Vec<_> = (0..200)
            .map(|i| CancellationTokenSource::with_timeout(Duration::from_millis(1 + (i * 7) % 50)))
            .collect();
        for source in &sources {
            assert!(source.token().wait_timeout(EVENTUALLY));
        }
    });
}

#[test]
fn cancel_after_rearms_and_the_last_call_wins_on_plain_threads() {
    // .NET scenario 100: CancelAfter(long) then CancelAfter(1) fires.
    no_hang("re-armed timer", || {
        let source = CancellationTokenSource::new();
        source.cancel_after(HOUR);
        source.cancel_after(Duration::from_millis(1));
        assert!(source.token().wait_timeout(EVENTUALLY));
        assert_eq!(source.token().reason(), Some(CancelReason::TimedOut));

        // (The first delay leaves ample room for this thread to be
        // descheduled between the two calls.)
        let source = CancellationTokenSource::new();
        source.cancel_after(SHORT);
        source.cancel_after(HOUR);
        // The short timer was replaced: nothing cancels it meanwhile.
        assert!(!source.token().wait_timeout(2 * SHORT));
    });
}

#[test]
fn a_panicking_timer_callback_does_not_stop_the_timer_thread() {
    quiet_panics_containing("timer callback failed");
    no_hang("panicking timer callback", || {
        let first = CancellationTokenSource::new();
        let after = Counter::new();
        first.token().register(after.callback()).detach();
        first
            .token()
            .register(|| panic!("timer callback failed"))
            .detach();
        first.cancel_after(Duration::from_millis(5));
        assert!(first.token().wait_timeout(EVENTUALLY));
        let second = CancellationTokenSource::with_timeout(Duration::from_millis(5));
        assert!(second.token().wait_timeout(EVENTUALLY), "timers still fire");
        assert_eq!(after.get(), 1, "the other callback still ran");
    });
}

#[test]
fn dropping_every_handle_disarms_the_timer_and_frees_its_callbacks() {
    // A deliberate difference from .NET, where the timer keeps the source
    // alive: here a source nobody can observe any more is freed at once.
    let (runs, freed) = (Counter::new(), Counter::new());
    let source = CancellationTokenSource::with_timeout(HOUR);
    let (counter, guard) = (runs.clone(), OnDrop::bump(&freed));
    source
        .token()
        .register(move || {
            let _guard = guard;
            counter.bump();
        })
        .detach();
    drop(source);
    assert_eq!(
        freed.get(),
        1,
        "freed with the last handle, without running"
    );
    assert_eq!(runs.get(), 0);
}

#[test]
fn a_timer_armed_in_a_runtime_that_shuts_down_still_fires() {
    no_hang("timer outliving its runtime", || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let source = runtime
            .block_on(async { CancellationTokenSource::with_timeout(Duration::from_millis(30)) });
        drop(runtime);
        assert!(
            source.token().wait_timeout(EVENTUALLY),
            "moved to the timer thread when its runtime went away"
        );
        assert_eq!(source.token().reason(), Some(CancelReason::TimedOut));
    });
}

#[test]
fn a_timer_armed_in_a_multi_thread_runtime_fires_while_a_plain_thread_waits() {
    no_hang("runtime timer, plain waiter", || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let source = runtime
            .block_on(async { CancellationTokenSource::with_timeout(Duration::from_millis(20)) });
        let token = source.token();
        let waiter = std::thread::spawn(move || token.wait_timeout(EVENTUALLY));
        assert!(waiter.join().unwrap());
        drop(runtime);
    });
}

#[test]
fn a_timer_rearmed_outside_the_runtime_that_armed_it_fires_on_the_timer_thread() {
    no_hang("re-arm across backends", || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let source = runtime.block_on(async { CancellationTokenSource::with_timeout(HOUR) });
        source.cancel_after(Duration::from_millis(10));
        assert!(source.token().wait_timeout(EVENTUALLY));
        drop(runtime);
    });
}

#[test]
fn a_timer_rearmed_inside_a_runtime_replaces_a_timer_thread_timer() {
    no_hang("re-arm across backends", || {
        let source = CancellationTokenSource::with_timeout(HOUR);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(async {
            let start = Instant::now();
            source.cancel_after(Duration::from_secs(30));
            source.token().cancelled().await;
            assert_eq!(
                start.elapsed(),
                Duration::from_secs(30),
                "the paused-clock timer won"
            );
        });
    });
}

#[tokio::test(start_paused = true)]
async fn paused_clock_timers_fire_in_deadline_order() {
    let start = Instant::now();
    let order = support::Log::new();
    let sources: Vec<_> = [30, 10, 20]
        .into_iter()
        .map(|secs| {
            let source = CancellationTokenSource::with_timeout(Duration::from_secs(secs));
            source.token().register(order.callback(secs)).detach();
            source
        })
        .collect();
    for source in &sources {
        source.token().cancelled().await;
    }
    assert_eq!(order.events(), [10, 20, 30]);
    assert_eq!(start.elapsed(), Duration::from_secs(30));
}

// ---- zero and huge delays ----

#[test]
fn a_zero_delay_cancels_at_once_with_timed_out() {
    // .NET scenario 112.
    let source = CancellationTokenSource::with_timeout(Duration::ZERO);
    assert!(source.is_cancelled());
    assert_eq!(source.token().reason(), Some(CancelReason::TimedOut));

    let source = CancellationTokenSource::new();
    let runs = Counter::new();
    source.token().register(runs.callback()).detach();
    source.cancel_after(HOUR);
    source.cancel_after(Duration::ZERO);
    assert!(source.is_cancelled(), "synchronously, in cancel_after");
    assert_eq!(runs.get(), 1, "callbacks ran before cancel_after returned");
    assert_eq!(source.token().reason(), Some(CancelReason::TimedOut));
}

#[test]
fn huge_delays_never_fire_and_do_not_panic() {
    // .NET scenario 100–101: an infinite timeout; range errors do not exist
    // here, every Duration is accepted.
    let huge = [
        Duration::MAX,
        Duration::from_secs(u64::MAX),
        Duration::from_secs(u64::MAX / 2),
        Duration::from_secs(100 * 365 * 86_400),
        Duration::from_millis(u64::from(u32::MAX) - 1),
    ];
    for delay in huge {
        let source = CancellationTokenSource::with_timeout(delay);
        source.cancel_after(delay);
        assert!(!source.is_cancelled(), "{delay:?}");
        assert!(source.try_reset());
    }
    let source = CancellationTokenSource::with_timeout(Duration::MAX);
    assert!(!source.token().wait_timeout(Duration::from_millis(50)));
}

#[tokio::test(start_paused = true)]
async fn huge_delays_never_fire_on_the_paused_clock() {
    let sources: Vec<_> = [
        Duration::MAX,
        Duration::from_secs(u64::MAX / 2),
        Duration::from_secs(100 * 365 * 86_400),
    ]
    .into_iter()
    .map(CancellationTokenSource::with_timeout)
    .collect();
    tokio::time::sleep(10 * 365 * DAY).await;
    for source in &sources {
        assert!(!source.is_cancelled());
    }
}

#[test]
fn duration_max_after_a_short_timer_disarms_it() {
    // As .NET's CancelAfter(-1) (infinite): the last call wins.
    let source = CancellationTokenSource::new();
    source.cancel_after(SHORT);
    source.cancel_after(Duration::MAX);
    assert!(!source.token().wait_timeout(2 * SHORT));
}

// ---- inside a runtime: the paused clock ----

#[tokio::test(start_paused = true)]
async fn with_timeout_follows_the_paused_clock() {
    let start = Instant::now();
    let source = CancellationTokenSource::with_timeout(Duration::from_secs(60));
    source.token().cancelled().await;
    assert_eq!(start.elapsed(), Duration::from_secs(60));
    assert_eq!(source.token().reason(), Some(CancelReason::TimedOut));
}

#[tokio::test(start_paused = true)]
async fn a_timer_does_not_fire_before_its_deadline() {
    let source = CancellationTokenSource::with_timeout(Duration::from_secs(60));
    tokio::time::sleep(Duration::from_secs(59)).await;
    assert!(!source.is_cancelled(), "at 59 s");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(source.is_cancelled(), "at 61 s");
}

#[tokio::test(start_paused = true)]
async fn cancel_after_longer_replaces_a_shorter_timer() {
    let start = Instant::now();
    let source = CancellationTokenSource::new();
    source.cancel_after(Duration::from_secs(10));
    source.cancel_after(Duration::from_secs(60));
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(!source.is_cancelled(), "the 10 s timer was replaced");
    source.token().cancelled().await;
    assert_eq!(start.elapsed(), Duration::from_secs(60));
}

#[tokio::test(start_paused = true)]
async fn cancel_after_shorter_replaces_a_longer_timer() {
    let start = Instant::now();
    let source = CancellationTokenSource::with_timeout(HOUR);
    source.cancel_after(Duration::from_secs(5));
    source.token().cancelled().await;
    assert_eq!(start.elapsed(), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn cancel_after_rearmed_later_counts_from_the_new_call() {
    let start = Instant::now();
    let source = CancellationTokenSource::with_timeout(Duration::from_secs(10));
    tokio::time::sleep(Duration::from_secs(8)).await;
    source.cancel_after(Duration::from_secs(10));
    source.token().cancelled().await;
    assert_eq!(start.elapsed(), Duration::from_secs(18));
}

#[tokio::test(start_paused = true)]
async fn cancel_after_does_nothing_once_cancelled() {
    let source = CancellationTokenSource::new();
    source.cancel();
    source.cancel_after(Duration::ZERO);
    source.cancel_after(Duration::from_secs(1));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(source.token().reason(), Some(CancelReason::Requested));
}

#[tokio::test(start_paused = true)]
async fn a_manual_cancel_before_the_deadline_keeps_its_reason() {
    let source = CancellationTokenSource::with_timeout(Duration::from_secs(10));
    source.cancel_with(CancelReason::Signal(2));
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(source.token().reason(), Some(CancelReason::Signal(2)));
}

#[tokio::test(start_paused = true)]
async fn a_linked_timeout_reports_timed_out_and_a_linked_shutdown_reports_its_reason() {
    // The Azure SDK article's pattern: a per-download timeout linked with a
    // shutdown source.
    let shutdown = CancellationTokenSource::new();
    let download = CancellationTokenSource::linked([&shutdown.token()]);
    download.cancel_after(Duration::from_secs(30));
    let error = download
        .token()
        .run_until_cancelled(std::future::pending::<()>())
        .await
        .unwrap_err();
    assert_eq!(error.reason(), &CancelReason::TimedOut);
    assert!(!shutdown.is_cancelled(), "the timeout stays in the child");

    let download = CancellationTokenSource::linked([&shutdown.token()]);
    download.cancel_after(Duration::from_secs(30));
    let token = download.token();
    let waiting = tokio::spawn(async move {
        token
            .run_until_cancelled(std::future::pending::<()>())
            .await
            .unwrap_err()
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    shutdown.cancel_with(CancelReason::Signal(2));
    let error = waiting.await.unwrap();
    assert_eq!(error.reason(), &CancelReason::Signal(2));
}

#[tokio::test(start_paused = true)]
async fn a_panicking_callback_on_a_runtime_timer_does_not_panic_the_task() {
    quiet_panics_containing("runtime timer callback failed");
    let source = CancellationTokenSource::with_timeout(Duration::from_secs(1));
    let after = Counter::new();
    source.token().register(after.callback()).detach();
    source
        .token()
        .register(|| panic!("runtime timer callback failed"))
        .detach();
    source.token().cancelled().await;
    assert_eq!(after.get(), 1);
    let next = CancellationTokenSource::with_timeout(Duration::from_secs(1));
    next.token().cancelled().await;
}

// ---- try_reset ----

#[test]
fn try_reset_is_false_once_cancelled_and_the_source_stays_cancelled() {
    // .NET scenario 102.
    let source = CancellationTokenSource::new();
    source.cancel();
    assert!(!source.try_reset());
    assert!(source.is_cancelled());
    assert_eq!(source.token().reason(), Some(CancelReason::Requested));
}

#[test]
fn try_reset_succeeds_repeatedly_without_a_timer() {
    // .NET scenario 102.
    let source = CancellationTokenSource::new();
    for _ in 0..3 {
        assert!(source.try_reset());
        assert!(!source.is_cancelled());
    }
}

#[tokio::test(start_paused = true)]
async fn try_reset_disarms_a_pending_day_long_timer() {
    // .NET scenario 102.
    let source = CancellationTokenSource::with_timeout(DAY);
    assert!(source.try_reset());
    tokio::time::sleep(2 * DAY).await;
    assert!(!source.is_cancelled(), "the timer was disarmed");
    // And the source can be armed again.
    let start = Instant::now();
    source.cancel_after(Duration::from_secs(5));
    source.token().cancelled().await;
    assert_eq!(start.elapsed(), Duration::from_secs(5));
}

#[test]
fn try_reset_disarms_a_plain_thread_timer() {
    let source = CancellationTokenSource::with_timeout(SHORT);
    assert!(source.try_reset());
    assert!(!source.token().wait_timeout(2 * SHORT));
}

#[test]
fn try_reset_drops_earlier_registrations_which_never_run() {
    // .NET scenario 103.
    let source = CancellationTokenSource::new();
    let (old_runs, old_freed) = (Counter::new(), Counter::new());
    let (counter, guard) = (old_runs.clone(), OnDrop::bump(&old_freed));
    let old = source.token().register(move || {
        let _guard = guard;
        counter.bump();
    });
    assert!(source.try_reset());
    assert_eq!(old_freed.get(), 1, "the reset dropped the callback");
    assert!(!old.unregister(), "its unregister returns false");
    assert_eq!(
        old.token(),
        &source.token(),
        "its token still equals the source's"
    );

    let new_runs = Counter::new();
    let new = source.token().register(new_runs.callback());
    source.cancel();
    assert_eq!(old_runs.get(), 0);
    assert_eq!(new_runs.get(), 1, "only the new registration fired");
    drop(old);
    drop(new);
}

#[test]
fn a_stale_registration_never_removes_a_newer_one_in_its_slot() {
    let source = CancellationTokenSource::new();
    let old = source.token().register(|| {});
    assert!(source.try_reset());
    let runs = Counter::new();
    let new = source.token().register(runs.callback());
    assert!(!old.unregister());
    drop(old);
    source.cancel();
    assert_eq!(runs.get(), 1, "the stale key did not remove the new entry");
    drop(new);
}

#[test]
fn try_reset_keeps_pending_futures_and_linked_children_attached() {
    let source = CancellationTokenSource::new();
    let child = CancellationTokenSource::linked([&source.token()]);
    let (wakes, waker) = WakeCounter::new();
    let mut future = source.token().cancelled_owned();
    assert_pending!(future, waker);
    assert!(source.try_reset());
    source.cancel();
    assert_eq!(wakes.wakes(), 1);
    assert_ready!(future, waker);
    assert!(child.is_cancelled());
}

#[test]
fn try_reset_is_false_after_the_timer_fired() {
    let source = CancellationTokenSource::with_timeout(Duration::from_millis(1));
    assert!(source.token().wait_timeout(EVENTUALLY));
    assert!(!source.try_reset());
    assert_eq!(source.token().reason(), Some(CancelReason::TimedOut));
}

#[test]
fn try_reset_racing_a_plain_thread_timer_is_consistent() {
    // Whatever the race: a reset that succeeded leaves a source the timer
    // never cancels, and a reset that failed means the timer fired.
    no_hang("try_reset racing the timer", || {
        let (mut reset, mut fired) = (0, 0);
        for i in 0..200u32 {
            let source = CancellationTokenSource::with_timeout(Duration::from_micros(500));
            let spin = std::time::Instant::now() + Duration::from_micros(u64::from(i % 20) * 50);
            while std::time::Instant::now() < spin {
                std::hint::spin_loop();
            }
            if source.try_reset() {
                reset += 1;
                assert!(
                    !source.token().wait_timeout(Duration::from_millis(5)),
                    "iteration {i}"
                );
            } else {
                fired += 1;
                assert!(source.token().wait_timeout(EVENTUALLY), "iteration {i}");
                assert_eq!(source.token().reason(), Some(CancelReason::TimedOut));
            }
        }
        eprintln!("try_reset raced the timer: {reset} reset, {fired} fired");
    });
}

#[tokio::test(start_paused = true)]
async fn try_reset_at_the_deadline_on_the_paused_clock_is_consistent() {
    let source = CancellationTokenSource::with_timeout(Duration::from_secs(10));
    // The deadline passes, but the timer task has not run yet.
    tokio::time::advance(Duration::from_secs(10)).await;
    let reset = source.try_reset();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(
        source.is_cancelled(),
        !reset,
        "reset = {reset}: a successful reset means the timer never cancels"
    );
}

/// Plain-thread timers are kept by one process-wide thread, but fired on a
/// thread of their own: a callback that blocks (here, waiting for a 10 ms
/// timeout of its own) does not stall the other timers.
///
/// Realistic shape: a shutdown timeout whose callback stops services and
/// waits (bounded by another `with_timeout`) for them.
#[test]
fn a_timer_armed_inside_a_blocking_timer_callback_still_fires() {
    let fired_inside = bounded("nested timers", Duration::from_secs(10), || {
        let outer = CancellationTokenSource::with_timeout(Duration::from_millis(10));
        let (tx, rx) = mpsc::channel();
        outer
            .token()
            .register(move || {
                let inner = CancellationTokenSource::with_timeout(Duration::from_millis(10));
                // A token only plain threads use must time out (semantics 8).
                tx.send(inner.token().wait_timeout(Duration::from_secs(3)))
                    .unwrap();
            })
            .detach();
        rx.recv().unwrap()
    });
    assert!(
        fired_inside,
        "the inner 10 ms timer did not fire within 3 s: the timer thread was busy running the outer callback"
    );
}
