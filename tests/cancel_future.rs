//! The `cancelled()` and `cancelled_owned()` futures: exact wake accounting
//! with a counting waker, cancel safety, deregistration on drop, and use
//! from tokio tasks. The million-future variants are in `cancel_scale.rs`.

#[macro_use]
mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use apphost::cancel::CancelledOwned;
use apphost::{CancellationToken, CancellationTokenSource};
use support::{WakeCounter, no_hang};

#[test]
fn cancelled_is_pending_until_cancel_then_woken_once_and_ready() {
    let source = CancellationTokenSource::new();
    let token = source.token();
    let (wakes, waker) = WakeCounter::new();
    let mut future = token.cancelled();
    assert_pending!(future, waker);
    assert_eq!(wakes.wakes(), 0);
    source.cancel();
    assert_eq!(wakes.wakes(), 1);
    assert_ready!(future, waker);
    assert_eq!(wakes.wakes(), 1);
}

#[test]
fn cancelled_owned_is_pending_until_cancel_then_woken_once_and_ready() {
    let source = CancellationTokenSource::new();
    let (wakes, waker) = WakeCounter::new();
    let mut future: CancelledOwned = source.token().cancelled_owned();
    assert_pending!(future, waker);
    source.cancel();
    assert_eq!(wakes.wakes(), 1);
    assert_ready!(future, waker);
}

#[test]
fn polling_again_with_the_same_waker_still_wakes_only_once() {
    let source = CancellationTokenSource::new();
    let token = source.token();
    let (wakes, waker) = WakeCounter::new();
    let mut future = token.cancelled();
    for _ in 0..5 {
        assert_pending!(future, waker);
    }
    source.cancel();
    assert_eq!(wakes.wakes(), 1, "one registration, however often polled");
}

#[test]
fn only_the_most_recent_waker_is_woken() {
    let source = CancellationTokenSource::new();
    let token = source.token();
    let (old_wakes, old_waker) = WakeCounter::new();
    let (new_wakes, new_waker) = WakeCounter::new();
    let mut future = token.cancelled();
    assert_pending!(future, old_waker);
    assert_pending!(future, new_waker);
    source.cancel();
    assert_eq!(old_wakes.wakes(), 0, "the replaced waker is not woken");
    assert_eq!(new_wakes.wakes(), 1);
    assert_ready!(future, new_waker);
}

#[test]
fn a_future_created_after_cancel_is_ready_at_once_without_a_wake() {
    let source = CancellationTokenSource::new();
    source.cancel();
    let token = source.token();
    let (wakes, waker) = WakeCounter::new();
    let mut future = token.cancelled();
    assert_ready!(future, waker);
    let mut owned = token.clone().cancelled_owned();
    assert_ready!(owned, waker);
    assert_eq!(wakes.wakes(), 0);
}

#[test]
fn a_completed_future_stays_ready() {
    let source = CancellationTokenSource::new();
    let token = source.token();
    let (_, waker) = WakeCounter::new();
    let mut future = token.cancelled();
    assert_pending!(future, waker);
    source.cancel();
    assert_ready!(future, waker);
    assert_ready!(future, waker);
}

#[test]
fn dropping_a_pending_future_deregisters_its_waker() {
    let source = CancellationTokenSource::new();
    let token = source.token();
    let (dropped_wakes, dropped_waker) = WakeCounter::new();
    let (kept_wakes, kept_waker) = WakeCounter::new();
    let mut dropped = token.cancelled();
    let mut kept = token.cancelled();
    assert_pending!(dropped, dropped_waker);
    assert_pending!(kept, kept_waker);
    drop(dropped);
    let mut owned = token.clone().cancelled_owned();
    assert_pending!(owned, dropped_waker);
    drop(owned);
    source.cancel();
    assert_eq!(dropped_wakes.wakes(), 0, "dropped futures are never woken");
    assert_eq!(kept_wakes.wakes(), 1);
    assert_ready!(kept, kept_waker);
}

#[test]
fn a_future_never_polled_registers_nothing() {
    let source = CancellationTokenSource::new();
    let token = source.token();
    let future = token.cancelled();
    drop(future);
    source.cancel();
}

#[test]
fn cancelled_on_none_stays_pending_and_is_never_woken() {
    let none = CancellationToken::none();
    let (wakes, waker) = WakeCounter::new();
    let mut future = none.cancelled();
    assert_pending!(future, waker);
    assert_pending!(future, waker);
    let mut owned = CancellationToken::none().cancelled_owned();
    assert_pending!(owned, waker);
    assert_eq!(wakes.wakes(), 0);
}

#[test]
fn a_future_dropped_by_a_callback_during_cancellation_is_harmless() {
    let source = CancellationTokenSource::new();
    let (wakes, waker) = WakeCounter::new();
    let slot: Arc<Mutex<Option<CancelledOwned>>> = Arc::new(Mutex::new(None));
    let mut future = source.token().cancelled_owned();
    assert_pending!(future, waker);
    *slot.lock().unwrap() = Some(future);
    let inner = slot.clone();
    // Registered after the future: runs before its waker is reached.
    let _registration = source
        .token()
        .register(move || drop(inner.lock().unwrap().take()));
    no_hang("cancel", move || source.cancel());
    assert!(slot.lock().unwrap().is_none());
    assert!(wakes.wakes() <= 1, "at most a stale wake-up");
}

#[test]
fn a_future_racing_cancel_on_another_thread_is_woken_or_ready() {
    // Polling (registering) racing cancellation: never a lost wake-up.
    no_hang("poll racing cancel", || {
        for i in 0..2_000 {
            let source = CancellationTokenSource::new();
            let barrier = Arc::new(std::sync::Barrier::new(2));
            let canceller = {
                let (source, barrier) = (source.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    source.cancel();
                })
            };
            let (wakes, waker) = WakeCounter::new();
            let mut future = source.token().cancelled_owned();
            barrier.wait();
            let ready = support::poll_once(&mut future, &waker).is_ready();
            canceller.join().unwrap();
            assert!(ready || wakes.wakes() == 1, "iteration {i}: lost wake-up");
            assert_ready!(future, waker);
        }
    });
}

#[tokio::test]
async fn cancelled_is_cancel_safe_in_a_select_loop() {
    let source = CancellationTokenSource::new();
    let token = source.token();
    let mut ticks = 0;
    loop {
        tokio::select! {
            () = token.cancelled() => break,
            () = tokio::task::yield_now() => {
                ticks += 1;
                if ticks == 100 {
                    source.cancel();
                }
            }
        }
    }
    assert_eq!(ticks, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_task_awaiting_the_token_completes_on_cancel() {
    let source = CancellationTokenSource::new();
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let token = source.token();
            tokio::spawn(async move {
                if i % 2 == 0 {
                    token.cancelled().await;
                } else {
                    token.cancelled_owned().await;
                }
                i
            })
        })
        .collect();
    tokio::task::yield_now().await;
    source.cancel();
    let mut finished = 0;
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("a task was not woken")
            .unwrap();
        finished += 1;
    }
    assert_eq!(finished, 100);
}

#[tokio::test]
async fn a_linked_child_future_completes_when_the_parent_is_cancelled() {
    let parent = CancellationTokenSource::new();
    let child = CancellationTokenSource::linked([&parent.token()]);
    let waiting = tokio::spawn(child.token().cancelled_owned());
    tokio::task::yield_now().await;
    parent.cancel();
    tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .expect("woken through the link")
        .unwrap();
}

#[test]
fn a_future_can_be_awaited_from_a_plain_thread_with_a_small_executor() {
    // No runtime at all: a blocking executor on the counting waker.
    let source = CancellationTokenSource::new();
    let token = source.token();
    let waiter = std::thread::spawn(move || {
        let (wakes, waker) = WakeCounter::new();
        let mut future = token.cancelled_owned();
        while support::poll_once(&mut future, &waker).is_pending() {
            std::thread::yield_now();
        }
        wakes.wakes()
    });
    source.cancel();
    let wakes = no_hang("join", move || waiter.join().unwrap());
    assert!(wakes <= 1);
}
