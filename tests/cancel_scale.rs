//! Scale: chains and trees of a million linked sources, and a million
//! callbacks or futures on one token, cancelled and dropped on a 256 KiB
//! stack. Anything recursive over the depth or the count would overflow that
//! stack (which aborts the binary); anything quadratic would not finish
//! within the hang bound.
//!
//! The heavy tests take a shared lock so they run one at a time. Each takes a
//! few seconds in a debug build.

#[macro_use]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use apphost::{CancelReason, CancellationToken, CancellationTokenSource};
use support::{Counter, OnDrop, WakeCounter, heavy, on_small_stack};

const MILLION: usize = 1_000_000;

/// A deterministic pseudo-random sequence (64-bit LCG, high bits).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, bound: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) as usize) % bound
    }

    /// The indices `0..n` in a shuffled order.
    fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            order.swap(i, self.below(i + 1));
        }
        order
    }
}

/// A chain `sources[0] <- sources[1] <- ... <- sources[n-1]`: each source is
/// linked to the one before it. Every source gets a detached callback that
/// bumps `ran` when it runs, and whose captures bump `freed` when they are
/// dropped (when the callback has run, or when its source is freed).
fn chain(n: usize, ran: &Counter, freed: &Counter) -> Vec<CancellationTokenSource> {
    let mut sources: Vec<CancellationTokenSource> = Vec::with_capacity(n);
    for i in 0..n {
        let source = match i {
            0 => CancellationTokenSource::new(),
            _ => CancellationTokenSource::linked([&sources[i - 1].token()]),
        };
        watch(&source.token(), ran, freed);
        sources.push(source);
    }
    sources
}

fn watch(token: &CancellationToken, ran: &Counter, freed: &Counter) {
    let (ran, guard) = (ran.clone(), OnDrop::bump(freed));
    token
        .register(move || {
            let _guard = guard;
            ran.bump();
        })
        .detach();
}

/// Drops the sources in the given order of indices.
fn drop_in_order(sources: Vec<CancellationTokenSource>, order: impl IntoIterator<Item = usize>) {
    let mut slots: Vec<Option<CancellationTokenSource>> = sources.into_iter().map(Some).collect();
    for index in order {
        drop(slots[index].take().expect("each index once"));
    }
    assert!(slots.iter().all(Option::is_none));
}

#[test]
fn cancelling_the_root_of_a_million_deep_chain_reaches_the_leaf_on_a_small_stack() {
    let _heavy = heavy();
    on_small_stack("cancel a million-deep chain", || {
        let (ran, freed) = (Counter::new(), Counter::new());
        let sources = chain(MILLION, &ran, &freed);
        let leaf = sources[MILLION - 1].token();
        assert!(!leaf.is_cancelled());

        sources[0].cancel_with(CancelReason::custom("root"));

        assert!(leaf.is_cancelled());
        assert_eq!(leaf.reason(), Some(CancelReason::custom("root")));
        assert_eq!(ran.get(), MILLION, "every link's callback ran once");
        assert_eq!(
            freed.get(),
            MILLION,
            "each callback was consumed by running"
        );
        drop(sources);
        drop(leaf);
    });
}

#[test]
fn a_million_deep_chain_drops_root_first_on_a_small_stack() {
    let _heavy = heavy();
    on_small_stack("drop a chain root first", || {
        let (ran, freed) = (Counter::new(), Counter::new());
        let sources = chain(MILLION, &ran, &freed);
        drop_in_order(sources, 0..MILLION);
        assert_eq!(ran.get(), 0, "dropping never cancels");
        assert_eq!(freed.get(), MILLION, "every source was freed");
    });
}

#[test]
fn a_million_deep_chain_drops_leaf_first_on_a_small_stack() {
    let _heavy = heavy();
    on_small_stack("drop a chain leaf first", || {
        let (ran, freed) = (Counter::new(), Counter::new());
        let sources = chain(MILLION, &ran, &freed);
        drop_in_order(sources, (0..MILLION).rev());
        assert_eq!(ran.get(), 0);
        assert_eq!(freed.get(), MILLION);
    });
}

#[test]
fn a_million_deep_chain_drops_middle_first_then_in_a_shuffled_order_on_a_small_stack() {
    let _heavy = heavy();
    on_small_stack("drop a chain middle first", || {
        let (ran, freed) = (Counter::new(), Counter::new());
        let sources = chain(MILLION, &ran, &freed);
        let middle = MILLION / 2;
        let rest = Lcg(7)
            .permutation(MILLION)
            .into_iter()
            .filter(|&i| i != middle);
        drop_in_order(sources, std::iter::once(middle).chain(rest));
        assert_eq!(ran.get(), 0);
        assert_eq!(freed.get(), MILLION);
    });
}

#[test]
fn a_million_deep_chain_held_only_by_its_leaf_frees_everything_on_a_small_stack() {
    let _heavy = heavy();
    on_small_stack("drop a chain held by its leaf", || {
        let (ran, freed) = (Counter::new(), Counter::new());
        let mut leaf = CancellationTokenSource::new().token();
        watch(&leaf, &ran, &freed);
        for _ in 1..MILLION {
            // The previous link is kept alive only by its child's link.
            leaf = CancellationTokenSource::linked([&leaf]).token();
            watch(&leaf, &ran, &freed);
        }
        assert_eq!(
            freed.get(),
            0,
            "every link is still alive through its child"
        );
        drop(leaf);
        assert_eq!(
            freed.get(),
            MILLION,
            "dropping the leaf freed the whole chain"
        );
        assert_eq!(ran.get(), 0);
    });
}

#[test]
fn a_cancelled_million_deep_chain_drops_in_any_order_on_a_small_stack() {
    let _heavy = heavy();
    on_small_stack("drop a cancelled chain", || {
        let (ran, freed) = (Counter::new(), Counter::new());
        let sources = chain(MILLION, &ran, &freed);
        sources[MILLION / 2].cancel();
        assert_eq!(
            ran.get(),
            MILLION - MILLION / 2,
            "only the lower half was cancelled"
        );
        assert!(!sources[0].is_cancelled(), "linking is one way");
        sources[0].cancel();
        assert_eq!(
            ran.get(),
            MILLION,
            "the upper half was cancelled by the root"
        );
        drop_in_order(sources, Lcg(11).permutation(MILLION));
        assert_eq!(freed.get(), MILLION);
    });
}

#[test]
fn a_million_node_tree_cancels_every_node_once_and_drops_in_any_order_on_a_small_stack() {
    let _heavy = heavy();
    on_small_stack("cancel a million-node tree", || {
        let (ran, freed) = (Counter::new(), Counter::new());
        let mut rng = Lcg(3);
        let mut sources: Vec<CancellationTokenSource> = Vec::with_capacity(MILLION);
        sources.push(CancellationTokenSource::new());
        watch(&sources[0].token(), &ran, &freed);
        for i in 1..MILLION {
            // Mostly deep (a chain), sometimes branching off anywhere above.
            let parent = if rng.below(4) == 0 {
                rng.below(i)
            } else {
                i - 1
            };
            let source = CancellationTokenSource::linked([&sources[parent].token()]);
            watch(&source.token(), &ran, &freed);
            sources.push(source);
        }
        sources[0].cancel_with(CancelReason::Signal(15));
        assert_eq!(ran.get(), MILLION, "every node's callback ran exactly once");
        assert!(sources.iter().all(CancellationTokenSource::is_cancelled));
        assert_eq!(
            sources[MILLION - 1].token().reason(),
            Some(CancelReason::Signal(15))
        );
        drop_in_order(sources, rng.permutation(MILLION));
        assert_eq!(freed.get(), MILLION);
    });
}

#[test]
fn a_million_node_graph_with_two_parents_each_runs_every_callback_once_on_a_small_stack() {
    let _heavy = heavy();
    on_small_stack("cancel a million-node DAG", || {
        let (ran, freed) = (Counter::new(), Counter::new());
        let mut rng = Lcg(5);
        let mut sources: Vec<CancellationTokenSource> = Vec::with_capacity(MILLION);
        sources.push(CancellationTokenSource::new());
        watch(&sources[0].token(), &ran, &freed);
        for i in 1..MILLION {
            let other = rng.below(i);
            let source =
                CancellationTokenSource::linked([&sources[i - 1].token(), &sources[other].token()]);
            watch(&source.token(), &ran, &freed);
            sources.push(source);
        }
        sources[0].cancel();
        assert_eq!(
            ran.get(),
            MILLION,
            "a node reached through two parents runs once"
        );
        drop_in_order(sources, (0..MILLION).rev());
        assert_eq!(freed.get(), MILLION);
    });
}

#[test]
fn a_million_callbacks_on_one_token_run_once_each_newest_first_on_a_small_stack() {
    let _heavy = heavy();
    on_small_stack("a million callbacks", || {
        let source = CancellationTokenSource::new();
        let token = source.token();
        // Each callback checks that it runs in turn: newest first.
        let next = Arc::new(AtomicUsize::new(MILLION));
        let registrations: Vec<_> = (0..MILLION)
            .map(|i| {
                let next = next.clone();
                token.register(move || {
                    let turn = next.fetch_sub(1, Ordering::SeqCst) - 1;
                    assert_eq!(turn, i, "callbacks run newest first");
                })
            })
            .collect();
        source.cancel();
        assert_eq!(next.load(Ordering::SeqCst), 0, "every callback ran");
        assert!(registrations.iter().all(|r| !r.unregister()));
        drop(registrations);
    });
}

#[test]
fn a_million_pending_futures_on_one_token_are_woken_once_each_on_a_small_stack() {
    let _heavy = heavy();
    on_small_stack("a million futures", || {
        let source = CancellationTokenSource::new();
        let (wakes, waker) = WakeCounter::new();
        let mut futures: Vec<_> = (0..MILLION)
            .map(|_| source.token().cancelled_owned())
            .collect();
        for future in &mut futures {
            assert_pending!(*future, waker);
        }
        assert_eq!(wakes.wakes(), 0);
        source.cancel();
        assert_eq!(
            wakes.wakes(),
            MILLION,
            "each pending future woken exactly once"
        );
        for future in &mut futures {
            assert_ready!(*future, waker);
        }
        assert_eq!(wakes.wakes(), MILLION, "no further wake-ups");
    });
}

#[test]
fn a_million_pending_futures_dropped_before_cancel_are_never_woken() {
    let _heavy = heavy();
    on_small_stack("a million dropped futures", || {
        let source = CancellationTokenSource::new();
        let token = source.token();
        let (wakes, waker) = WakeCounter::new();
        let mut futures: Vec<_> = (0..MILLION).map(|_| token.cancelled()).collect();
        for future in &mut futures {
            assert_pending!(*future, waker);
        }
        drop(futures);
        source.cancel();
        assert_eq!(
            wakes.wakes(),
            0,
            "dropped futures deregistered their wakers"
        );
    });
}
