//! Linked sources: one-way propagation, skipped and already-cancelled
//! parents, reasons, order, and unlinking when the child goes away.
//!
//! Ports .NET's `CancellationTokenTests` scenarios 87–89, 96 and 99 (see
//! `shared/reference/dotnet-host.md` section 7 H). The million-deep chains
//! and trees are in `cancel_scale.rs`, the memory bound in `cancel_memory.rs`.

#[macro_use]
mod support;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::thread;

use apphost::{CancelReason, CancellationToken, CancellationTokenSource};
use support::{Counter, Log, OnDrop, WakeCounter, no_hang, panic_text, quiet_panics_containing};

#[test]
fn a_single_parent_cancels_its_child() {
    // .NET scenario 87.
    let parent = CancellationTokenSource::new();
    let child = CancellationTokenSource::linked([&parent.token()]);
    assert!(!child.is_cancelled());
    parent.cancel();
    assert!(child.is_cancelled());
    assert_eq!(child.token().reason(), Some(CancelReason::Requested));
}

#[test]
fn any_one_of_several_parents_cancels_the_child() {
    // .NET scenario 88: two and many parents.
    for count in [2, 3, 10] {
        for which in 0..count {
            let parents: Vec<_> = (0..count).map(|_| CancellationTokenSource::new()).collect();
            let tokens: Vec<_> = parents.iter().map(CancellationTokenSource::token).collect();
            let child = CancellationTokenSource::linked(&tokens);
            parents[which].cancel_with(CancelReason::Signal(which as i32));
            assert!(child.is_cancelled(), "{count} parents, cancelled #{which}");
            assert_eq!(
                child.token().reason(),
                Some(CancelReason::Signal(which as i32))
            );
            for (i, parent) in parents.iter().enumerate() {
                assert_eq!(parent.is_cancelled(), i == which, "siblings are untouched");
            }
        }
    }
}

#[test]
fn cancelling_the_child_never_cancels_a_parent() {
    // .NET scenario 87.
    let (a, b) = (
        CancellationTokenSource::new(),
        CancellationTokenSource::new(),
    );
    let child = CancellationTokenSource::linked([&a.token(), &b.token()]);
    let grandchild = CancellationTokenSource::linked([&child.token()]);
    child.cancel();
    assert!(grandchild.is_cancelled(), "downwards it propagates");
    assert!(
        !a.is_cancelled() && !b.is_cancelled(),
        "upwards it never does"
    );
    // And the parents still work, and still reach other children.
    let other = CancellationTokenSource::linked([&a.token()]);
    a.cancel();
    assert!(other.is_cancelled());
}

#[test]
fn dropping_a_parent_does_not_cancel_the_child() {
    // .NET scenario 87: parent dispose does not cancel the child.
    let parent = CancellationTokenSource::new();
    let child = CancellationTokenSource::linked([&parent.token()]);
    drop(parent);
    assert!(!child.is_cancelled());
    child.cancel();
    assert!(child.is_cancelled());
}

#[test]
fn parents_that_cannot_be_cancelled_are_skipped() {
    let none = CancellationToken::none();
    let only_none = CancellationTokenSource::linked([&none, &CancellationToken::default()]);
    assert!(!only_none.is_cancelled());
    assert!(only_none.token().can_be_cancelled());
    only_none.cancel();
    assert!(only_none.is_cancelled());

    let no_parents = CancellationTokenSource::linked(std::iter::empty());
    assert!(!no_parents.is_cancelled());

    let parent = CancellationTokenSource::new();
    let mixed = CancellationTokenSource::linked([&none, &parent.token(), &none]);
    parent.cancel();
    assert!(mixed.is_cancelled());
}

#[test]
fn an_already_cancelled_parent_cancels_the_child_at_creation() {
    // .NET scenario 89, including through two levels.
    let parent = CancellationTokenSource::new();
    parent.cancel_with(CancelReason::TimedOut);
    let child = CancellationTokenSource::linked([&parent.token()]);
    assert!(child.is_cancelled());
    assert_eq!(child.token().reason(), Some(CancelReason::TimedOut));
    let grandchild = CancellationTokenSource::linked([&child.token()]);
    assert!(grandchild.is_cancelled());
    assert_eq!(grandchild.token().reason(), Some(CancelReason::TimedOut));

    // The cancelled parent may come after live ones; the live ones are not
    // touched, and the child does not stay registered on them.
    let live = CancellationTokenSource::new();
    let runs = Counter::new();
    let late = CancellationTokenSource::linked([&live.token(), &parent.token()]);
    assert!(late.is_cancelled());
    late.token().register(runs.callback()).detach();
    assert_eq!(runs.get(), 1, "inline: already cancelled");
    live.cancel();
    assert_eq!(runs.get(), 1);
}

#[test]
fn a_linked_token_reports_the_reason_of_the_parent_that_cancelled_it() {
    let shutdown = CancellationTokenSource::new();
    let request = CancellationTokenSource::new();
    let both = CancellationTokenSource::linked([&shutdown.token(), &request.token()]);
    let deeper = CancellationTokenSource::linked([&both.token()]);
    request.cancel_with(CancelReason::custom("client went away"));
    shutdown.cancel_with(CancelReason::Signal(15));
    let expected = Some(CancelReason::custom("client went away"));
    assert_eq!(
        both.token().reason(),
        expected,
        "the first parent to cancel"
    );
    assert_eq!(deeper.token().reason(), expected, "and further down");
}

#[test]
fn a_linked_childs_callbacks_run_at_its_links_turn_depth_first() {
    let root = CancellationTokenSource::new();
    let order = Log::new();
    let _a = root.token().register(order.callback("root 1"));
    let child = CancellationTokenSource::linked([&root.token()]);
    let _b = child.token().register(order.callback("child 1"));
    let grandchild = CancellationTokenSource::linked([&child.token()]);
    let _c = grandchild.token().register(order.callback("grandchild"));
    let _d = child.token().register(order.callback("child 2"));
    let _e = root.token().register(order.callback("root 2"));
    root.cancel();
    assert_eq!(
        order.events(),
        ["root 2", "child 2", "grandchild", "child 1", "root 1"]
    );
}

#[test]
fn every_callback_of_the_linked_tree_has_finished_when_cancel_returns() {
    let root = CancellationTokenSource::new();
    let finished = Counter::new();
    let mut sources = vec![root.clone()];
    for i in 1..50 {
        let parent = sources[(i - 1) / 2].token();
        sources.push(CancellationTokenSource::linked([&parent]));
    }
    for source in &sources {
        let finished = finished.clone();
        source
            .token()
            .register(move || {
                thread::yield_now();
                finished.bump();
            })
            .detach();
    }
    let canceller = thread::spawn(move || root.cancel());
    no_hang("join", move || canceller.join().unwrap());
    assert_eq!(finished.get(), 50);
}

#[test]
fn a_concurrent_cancel_of_the_parent_waits_for_the_childs_callbacks() {
    let parent = CancellationTokenSource::new();
    let child = CancellationTokenSource::linked([&parent.token()]);
    let (entered_tx, entered_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let finished = Counter::new();
    let done = finished.clone();
    let _registration = child.token().register(move || {
        entered_tx.send(()).unwrap();
        release_rx.recv().unwrap();
        done.bump();
    });
    let first = {
        let parent = parent.clone();
        thread::spawn(move || parent.cancel())
    };
    entered_rx.recv().unwrap();
    let (returned_tx, returned_rx) = mpsc::channel();
    let second = {
        let (parent, finished) = (parent.clone(), finished.clone());
        thread::spawn(move || {
            parent.cancel();
            returned_tx.send(()).unwrap();
            finished.get()
        })
    };
    assert!(
        returned_rx
            .recv_timeout(std::time::Duration::from_millis(100))
            .is_err(),
        "the second cancel returned while the child's callback still ran"
    );
    release_tx.send(()).unwrap();
    let seen = no_hang("join", move || {
        first.join().unwrap();
        second.join().unwrap()
    });
    assert_eq!(seen, 1, "the child's callback had finished");
}

#[test]
fn a_panic_in_a_linked_childs_callback_resumes_on_the_parents_cancel() {
    // .NET scenario 96, Rust style: the other callbacks still run.
    quiet_panics_containing("child callback failed");
    let parent = CancellationTokenSource::new();
    let order = Log::new();
    let _first = parent.token().register(order.callback("parent"));
    let child = CancellationTokenSource::linked([&parent.token()]);
    let _failing = child.token().register(|| panic!("child callback failed"));
    let _sibling = child.token().register(order.callback("child"));
    let panic = catch_unwind(AssertUnwindSafe(|| parent.cancel())).unwrap_err();
    assert_eq!(panic_text(&*panic), "child callback failed");
    assert_eq!(order.events(), ["child", "parent"]);
    assert!(child.is_cancelled());
}

#[test]
fn linking_the_same_parent_twice_cancels_the_child_once() {
    let parent = CancellationTokenSource::new();
    let token = parent.token();
    let child = CancellationTokenSource::linked([&token, &token.clone(), &parent.token()]);
    let runs = Counter::new();
    child.token().register(runs.callback()).detach();
    parent.cancel();
    assert_eq!(runs.get(), 1);
}

#[test]
fn a_child_reached_through_two_parents_runs_its_callbacks_once() {
    let root = CancellationTokenSource::new();
    let left = CancellationTokenSource::linked([&root.token()]);
    let right = CancellationTokenSource::linked([&root.token()]);
    let diamond = CancellationTokenSource::linked([&left.token(), &right.token()]);
    let runs = Counter::new();
    diamond.token().register(runs.callback()).detach();
    root.cancel();
    assert_eq!(runs.get(), 1);
    assert!(left.is_cancelled() && right.is_cancelled() && diamond.is_cancelled());
}

#[test]
fn a_child_callback_cancelling_its_parent_does_not_deadlock() {
    let parent = CancellationTokenSource::new();
    let child = CancellationTokenSource::linked([&parent.token()]);
    let order = Log::new();
    let upward = parent.clone();
    let log = order.clone();
    let _child_callback = child.token().register(move || {
        upward.cancel_with(CancelReason::custom("from the child"));
        log.push("child");
    });
    let _parent_callback = parent.token().register(order.callback("parent"));
    let canceller = child.clone();
    no_hang("child cancels parent", move || canceller.cancel());
    assert!(parent.is_cancelled());
    assert_eq!(
        parent.token().reason(),
        Some(CancelReason::custom("from the child"))
    );
    assert_eq!(child.token().reason(), Some(CancelReason::Requested));
    assert_eq!(order.events(), ["parent", "child"]);
}

#[test]
fn a_linked_child_of_a_cancelling_token_created_in_a_callback_is_cancelled_at_once() {
    let parent = CancellationTokenSource::new();
    let token = parent.token();
    let (tx, rx) = mpsc::channel();
    let _registration = parent.token().register(move || {
        let child = CancellationTokenSource::linked([&token]);
        tx.send((child.is_cancelled(), child.token().reason()))
            .unwrap();
    });
    parent.cancel_with(CancelReason::TimedOut);
    assert_eq!(rx.recv().unwrap(), (true, Some(CancelReason::TimedOut)));
}

#[test]
fn dropping_a_linked_source_after_its_parent_was_cancelled_and_dropped_is_fine() {
    // .NET scenario 99.
    let parent = CancellationTokenSource::new();
    let child = CancellationTokenSource::linked([&parent.token()]);
    parent.cancel();
    drop(parent);
    assert!(child.is_cancelled());
    drop(child);
}

#[test]
fn a_linked_token_keeps_the_link_after_its_source_handle_is_dropped() {
    let parent = CancellationTokenSource::new();
    let child = CancellationTokenSource::linked([&parent.token()]);
    let token = child.token();
    let (wakes, waker) = WakeCounter::new();
    let mut future = token.clone().cancelled_owned();
    assert_pending!(future, waker);
    drop(child);
    parent.cancel();
    assert!(
        token.is_cancelled(),
        "the token alone keeps the child linked"
    );
    assert_eq!(wakes.wakes(), 1);
    assert_ready!(future, waker);
}

#[test]
fn dropping_the_last_handle_of_a_linked_child_frees_it_and_its_callbacks() {
    let parent = CancellationTokenSource::new();
    let child = CancellationTokenSource::linked([&parent.token()]);
    let (runs, freed) = (Counter::new(), Counter::new());
    let (counter, guard) = (runs.clone(), OnDrop::bump(&freed));
    child
        .token()
        .register(move || {
            let _guard = guard;
            counter.bump();
        })
        .detach();
    let token = child.token();
    drop(child);
    assert_eq!(freed.get(), 0, "the token still holds the child");
    drop(token);
    assert_eq!(
        freed.get(),
        1,
        "the last handle freed the child and its callback"
    );
    parent.cancel();
    assert_eq!(runs.get(), 0, "a freed child is not cancelled");
}

#[test]
fn a_pending_future_is_a_handle_that_keeps_a_linked_child_alive() {
    let parent = CancellationTokenSource::new();
    let (wakes, waker) = WakeCounter::new();
    let mut future = CancellationTokenSource::linked([&parent.token()])
        .token()
        .cancelled_owned();
    assert_pending!(future, waker);
    parent.cancel();
    assert_eq!(wakes.wakes(), 1);
    assert_ready!(future, waker);
}

#[test]
fn a_registration_is_a_handle_that_keeps_a_linked_child_alive() {
    let parent = CancellationTokenSource::new();
    let runs = Counter::new();
    let registration = CancellationTokenSource::linked([&parent.token()])
        .token()
        .register(runs.callback());
    parent.cancel();
    assert_eq!(runs.get(), 1);
    assert!(registration.token().is_cancelled());
}

#[test]
fn cancelling_parent_and_child_concurrently_runs_each_callback_once() {
    for _ in 0..500 {
        let parent = CancellationTokenSource::new();
        let child = CancellationTokenSource::linked([&parent.token()]);
        let runs = Counter::new();
        for _ in 0..4 {
            child.token().register(runs.callback()).detach();
        }
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let other = {
            let (child, barrier) = (child.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                child.cancel();
            })
        };
        barrier.wait();
        parent.cancel();
        other.join().unwrap();
        assert!(child.is_cancelled());
        assert_eq!(runs.get(), 4);
    }
}

#[test]
fn linking_racing_a_parent_cancel_always_ends_cancelled() {
    for _ in 0..500 {
        let parent = CancellationTokenSource::new();
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let canceller = {
            let (parent, barrier) = (parent.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                parent.cancel();
            })
        };
        barrier.wait();
        let child = CancellationTokenSource::linked([&parent.token()]);
        let runs = Counter::new();
        child.token().register(runs.callback()).detach();
        canceller.join().unwrap();
        assert!(
            child.is_cancelled(),
            "linked before or after, it ends cancelled"
        );
        assert_eq!(runs.get(), 1);
    }
}
