//! Memory stays flat under churn on long-lived tokens: millions of linked
//! children created and dropped under long-lived parents, and millions of
//! register/unregister and poll/drop cycles on a live token.
//!
//! Measured as the process's resident set size (`VmRSS` in
//! `/proc/self/status`) after a warm-up, with a generous bound: a leak of
//! even one small allocation per cycle would be hundreds of megabytes here.
//! The tests of this binary take a shared lock, so no other test allocates
//! while one measures. Linux only (elsewhere they pass without measuring).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use apphost::CancellationTokenSource;
use support::{WakeCounter, heavy, rss_bytes};

/// The allowed growth of the resident set across the measured cycles.
const BOUND: usize = 48 * 1024 * 1024;

/// Runs `cycle` `warm_up` times, measures the resident set, runs it
/// `cycles` more times and asserts the resident set grew by less than
/// [`BOUND`].
fn assert_flat(what: &str, warm_up: usize, cycles: usize, mut cycle: impl FnMut(usize)) {
    for i in 0..warm_up {
        cycle(i);
    }
    let before = rss_bytes();
    let start = Instant::now();
    for i in 0..cycles {
        cycle(i);
    }
    let after = rss_bytes();
    eprintln!(
        "{what}: {cycles} cycles in {:?}, RSS {:?} -> {:?} KiB",
        start.elapsed(),
        before.map(|b| b / 1024),
        after.map(|b| b / 1024)
    );
    if let (Some(before), Some(after)) = (before, after) {
        assert!(
            after < before + BOUND,
            "{what}: RSS grew from {} KiB to {} KiB over {cycles} cycles",
            before / 1024,
            after / 1024
        );
    }
}

#[test]
fn a_long_lived_parent_does_not_grow_with_millions_of_short_lived_linked_children() {
    let _heavy = heavy();
    let parent = CancellationTokenSource::new();
    let token = parent.token();
    assert_flat("linked children of one parent", 100_000, 2_000_000, |_| {
        let child = CancellationTokenSource::linked([&token]);
        drop(child);
    });
    // The parent still works, and reaches a child made now.
    let child = CancellationTokenSource::linked([&token]);
    parent.cancel();
    assert!(child.is_cancelled());
}

#[test]
fn dropping_a_child_linked_to_two_parents_unregisters_it_from_both() {
    let _heavy = heavy();
    let (a, b) = (
        CancellationTokenSource::new(),
        CancellationTokenSource::new(),
    );
    let (ta, tb) = (a.token(), b.token());
    assert_flat("children linked to two parents", 100_000, 2_000_000, |_| {
        drop(CancellationTokenSource::linked([&ta, &tb]))
    });
}

#[test]
fn linked_children_freed_through_their_last_token_or_future_unregister_too() {
    let _heavy = heavy();
    let parent = CancellationTokenSource::new();
    let token = parent.token();
    let (_, waker) = WakeCounter::new();
    assert_flat(
        "linked children dropped through other handles",
        100_000,
        2_000_000,
        |i| {
            let child = CancellationTokenSource::linked([&token]);
            if i % 2 == 0 {
                let child_token = child.token();
                drop(child);
                drop(child_token);
            } else {
                let mut future = child.token().cancelled_owned();
                drop(child);
                assert!(support::poll_once(&mut future, &waker).is_pending());
                drop(future);
            }
        },
    );
}

#[test]
fn register_unregister_churn_on_a_live_token_keeps_memory_flat() {
    // Ten million cycles: about 3 s in a debug build.
    let _heavy = heavy();
    let source = CancellationTokenSource::new();
    let token = source.token();
    let _long_lived = token.register(|| {});
    let runs = Arc::new(AtomicUsize::new(0));
    assert_flat("register/unregister churn", 100_000, 10_000_000, |i| {
        let runs = runs.clone();
        let registration = token.register(move || {
            runs.fetch_add(1, Ordering::Relaxed);
        });
        if i % 2 == 0 {
            assert!(registration.unregister());
        }
        drop(registration);
    });
    source.cancel();
    assert_eq!(runs.load(Ordering::Relaxed), 0, "no churned callback ran");
}

#[test]
fn poll_and_drop_churn_of_futures_on_a_live_token_keeps_memory_flat() {
    let _heavy = heavy();
    let source = CancellationTokenSource::new();
    let token = source.token();
    let (wakes, waker) = WakeCounter::new();
    assert_flat("cancelled() poll/drop churn", 100_000, 10_000_000, |_| {
        let mut future = token.cancelled();
        assert!(support::poll_once(&mut future, &waker).is_pending());
    });
    source.cancel();
    assert_eq!(wakes.wakes(), 0, "no dropped future was woken");
}

#[test]
fn a_cancelled_source_gives_its_registration_memory_back() {
    let _heavy = heavy();
    assert_flat(
        "sources with a thousand callbacks, cancelled",
        200,
        5_000,
        |_| {
            let source = CancellationTokenSource::new();
            let registrations: Vec<_> =
                (0..1_000).map(|_| source.token().register(|| {})).collect();
            source.cancel();
            drop(registrations);
        },
    );
}
