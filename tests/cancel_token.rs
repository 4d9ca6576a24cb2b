//! The token and the source as values: state, equality, reasons, errors,
//! blocking waits and `run_until_cancelled`.
//!
//! Ports .NET's `CancellationTokenTests` scenarios 77–82, 86, 97 and 112
//! where they apply (see `shared/reference/dotnet-host.md` section 7 H).

#[macro_use]
mod support;

use std::collections::HashSet;
use std::future::{Future, pending};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::thread;
use std::time::Duration;

use apphost::{
    CancelReason, CancellationRegistration, CancellationToken, CancellationTokenSource,
    OperationCanceled,
};
use support::{Counter, OnDrop, WakeCounter, no_hang};

#[test]
fn new_source_is_live_and_its_token_can_be_cancelled() {
    let source = CancellationTokenSource::new();
    let token = source.token();
    assert!(!source.is_cancelled());
    assert!(!token.is_cancelled());
    assert!(token.can_be_cancelled());
    assert_eq!(token.reason(), None);
    assert!(token.error_if_cancelled().is_ok());
}

#[test]
fn is_cancelled_flips_on_cancel_and_never_turns_back() {
    // .NET scenario 82.
    let source = CancellationTokenSource::new();
    let token = source.token();
    let clone = token.clone();
    source.cancel();
    assert!(source.is_cancelled());
    assert!(token.is_cancelled());
    assert!(clone.is_cancelled(), "clones observe the same source");
    assert!(source.token().is_cancelled(), "tokens made later too");
    source.cancel();
    assert!(!source.try_reset(), "a cancelled source cannot be reset");
    source.cancel_after(Duration::from_secs(1));
    assert!(token.is_cancelled(), "nothing turns it back");
}

#[test]
fn the_first_reason_wins() {
    let source = CancellationTokenSource::new();
    source.cancel_with(CancelReason::custom("maintenance"));
    source.cancel_with(CancelReason::TimedOut);
    source.cancel();
    assert_eq!(
        source.token().reason(),
        Some(CancelReason::custom("maintenance"))
    );
}

#[test]
fn cancel_reports_requested() {
    let source = CancellationTokenSource::new();
    source.cancel();
    assert_eq!(source.token().reason(), Some(CancelReason::Requested));
}

#[test]
fn none_token_is_never_cancelled_and_equals_default() {
    let none = CancellationToken::none();
    assert!(!none.can_be_cancelled());
    assert!(!none.is_cancelled());
    assert_eq!(none.reason(), None);
    assert!(none.error_if_cancelled().is_ok());
    assert_eq!(none, CancellationToken::default());
    const NONE: CancellationToken = CancellationToken::none();
    assert_eq!(NONE, none, "none() is usable in a const");
}

#[test]
fn source_default_is_a_live_source() {
    let source = CancellationTokenSource::default();
    assert!(!source.is_cancelled());
    assert!(source.token().can_be_cancelled());
    assert_ne!(source.token(), CancellationTokenSource::default().token());
}

#[test]
fn tokens_are_equal_when_they_observe_the_same_source() {
    // .NET scenarios 77 and 112.
    let a = CancellationTokenSource::new();
    let b = CancellationTokenSource::new();
    assert_eq!(CancellationToken::none(), CancellationToken::none());
    assert_eq!(a.token(), a.token());
    assert_eq!(a.token(), a.token().clone());
    assert_eq!(
        a.clone().token(),
        a.token(),
        "source clones share the source"
    );
    assert_ne!(a.token(), b.token());
    assert_ne!(a.token(), CancellationToken::none());
    assert_ne!(CancellationToken::none(), a.token());

    // A source created cancelled (zero timeout) is not none, and two such
    // sources are different sources.
    let zero_a = CancellationTokenSource::with_timeout(Duration::ZERO);
    let zero_b = CancellationTokenSource::with_timeout(Duration::ZERO);
    assert!(zero_a.is_cancelled() && zero_b.is_cancelled());
    assert_ne!(zero_a.token(), CancellationToken::none());
    assert_ne!(zero_a.token(), zero_b.token());
    assert_eq!(zero_a.token(), zero_a.token());
}

#[test]
// Tokens hash by the identity of their source, which never changes, so
// their interior mutability does not matter to a set.
#[allow(clippy::mutable_key_type)]
fn token_hash_is_consistent_with_equality() {
    // .NET scenario 78.
    let a = CancellationTokenSource::new();
    let b = CancellationTokenSource::new();
    let mut set = HashSet::new();
    assert!(set.insert(CancellationToken::none()));
    assert!(
        !set.insert(CancellationToken::default()),
        "none() == default()"
    );
    assert!(set.insert(a.token()));
    assert!(
        !set.insert(a.token().clone()),
        "a clone hashes as the original"
    );
    assert!(!set.insert(a.clone().token()));
    assert!(set.insert(b.token()));
    a.cancel();
    assert!(
        set.contains(&a.token()),
        "cancelling does not change identity"
    );
    assert_eq!(set.len(), 3);
}

#[test]
fn cancel_reason_displays_for_people() {
    assert_eq!(
        CancelReason::Requested.to_string(),
        "cancellation requested"
    );
    assert_eq!(CancelReason::TimedOut.to_string(), "timed out");
    assert_eq!(CancelReason::Signal(15).to_string(), "signal 15 (SIGTERM)");
    assert_eq!(CancelReason::Signal(2).to_string(), "signal 2 (SIGINT)");
    assert_eq!(CancelReason::Signal(1).to_string(), "signal 1 (SIGHUP)");
    assert_eq!(CancelReason::Signal(64).to_string(), "signal 64");
    assert_eq!(
        CancelReason::custom("dependency failed").to_string(),
        "dependency failed"
    );
    assert_eq!(CancelReason::custom("x"), CancelReason::Custom("x".into()));
}

#[test]
fn error_if_cancelled_is_ok_until_cancelled_then_carries_that_token() {
    // .NET scenario 97.
    let source = CancellationTokenSource::new();
    let token = source.token();
    assert!(token.error_if_cancelled().is_ok());
    source.cancel_with(CancelReason::Signal(2));
    let error = token.error_if_cancelled().unwrap_err();
    assert_eq!(error.token(), &token);
    assert_eq!(error.reason(), &CancelReason::Signal(2));
    assert_eq!(error.to_string(), "operation cancelled: signal 2 (SIGINT)");
}

fn step(token: &CancellationToken) -> anyhow::Result<u32> {
    token.error_if_cancelled()?;
    Ok(1)
}

#[test]
fn operation_canceled_is_found_through_anyhow_downcast() {
    let source = CancellationTokenSource::new();
    assert_eq!(step(&source.token()).unwrap(), 1);
    source.cancel_with(CancelReason::TimedOut);

    let error = step(&source.token()).unwrap_err();
    let cancelled = error
        .downcast_ref::<OperationCanceled>()
        .expect("an OperationCanceled inside the anyhow::Error");
    assert_eq!(cancelled.token(), &source.token());
    assert_eq!(cancelled.reason(), &CancelReason::TimedOut);

    // Context on top keeps it findable; an ordinary failure is not one.
    let wrapped = step(&source.token())
        .map_err(|e| e.context("while downloading"))
        .unwrap_err();
    assert!(wrapped.downcast_ref::<OperationCanceled>().is_some());
    let failure = anyhow::anyhow!("disk full");
    assert!(failure.downcast_ref::<OperationCanceled>().is_none());
}

#[test]
fn operation_canceled_new_uses_the_token_reason_or_requested() {
    let source = CancellationTokenSource::new();
    let early = OperationCanceled::new(source.token());
    assert_eq!(early.reason(), &CancelReason::Requested);
    source.cancel_with(CancelReason::custom("shutdown"));
    let late = OperationCanceled::new(source.token());
    assert_eq!(late.reason(), &CancelReason::custom("shutdown"));
    assert_eq!(late.token(), &source.token());
    assert_eq!(late.clone().token(), late.token());
}

#[test]
fn linked_token_error_carries_the_child_token_and_the_parent_reason() {
    let parent = CancellationTokenSource::new();
    let child = CancellationTokenSource::linked([&parent.token()]);
    parent.cancel_with(CancelReason::Signal(15));
    assert_eq!(child.token().reason(), Some(CancelReason::Signal(15)));
    let error = child.token().error_if_cancelled().unwrap_err();
    assert_eq!(error.token(), &child.token(), "the child's token, as .NET");
    assert_ne!(error.token(), &parent.token());
    assert_eq!(error.reason(), &CancelReason::Signal(15));
}

#[test]
fn wait_returns_when_cancelled_before_the_wait_starts() {
    // .NET scenario 86, first half.
    let source = CancellationTokenSource::new();
    source.cancel();
    let token = source.token();
    no_hang("wait on a cancelled token", move || token.wait());
    assert!(source.token().wait_timeout(Duration::ZERO));
}

#[test]
fn wait_returns_when_cancelled_after_the_wait_started() {
    // .NET scenario 86, second half.
    let source = CancellationTokenSource::new();
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let token = source.token();
    let waiter = thread::spawn(move || {
        started_tx.send(()).unwrap();
        token.wait();
        token.reason()
    });
    started_rx.recv().unwrap();
    source.cancel_with(CancelReason::custom("go"));
    let reason = no_hang("join the waiter", move || waiter.join().unwrap());
    assert_eq!(reason, Some(CancelReason::custom("go")));
}

#[test]
fn wait_releases_every_blocked_thread() {
    let source = CancellationTokenSource::new();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(9));
    let waiters: Vec<_> = (0..8)
        .map(|_| {
            let (token, barrier) = (source.token(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                token.wait();
                token.is_cancelled()
            })
        })
        .collect();
    barrier.wait();
    source.cancel();
    let released = no_hang("join the waiters", move || {
        waiters
            .into_iter()
            .map(|w| w.join().unwrap())
            .collect::<Vec<_>>()
    });
    assert_eq!(released, vec![true; 8]);
}

#[test]
fn wait_timeout_reports_false_when_the_time_runs_out() {
    let source = CancellationTokenSource::new();
    let token = source.token();
    assert!(!token.wait_timeout(Duration::ZERO));
    assert!(!token.wait_timeout(Duration::from_millis(20)));
    assert!(!source.is_cancelled(), "waiting does not cancel");
}

#[test]
fn wait_timeout_returns_true_when_cancelled_from_another_thread() {
    let source = CancellationTokenSource::new();
    let token = source.token();
    let canceller = thread::spawn(move || source.cancel());
    assert!(token.wait_timeout(Duration::from_secs(30)));
    canceller.join().unwrap();
}

#[test]
fn wait_timeout_on_none_waits_then_returns_false() {
    // .NET scenario 86: None's wait handle is valid and never set.
    let none = CancellationToken::none();
    assert!(!none.wait_timeout(Duration::ZERO));
    assert!(!none.wait_timeout(Duration::from_millis(10)));
}

#[test]
fn token_keeps_working_after_its_source_is_dropped() {
    // .NET scenarios 79–81 (after Dispose), where they apply: a token
    // outliving every source handle stays readable and usable.
    let source = CancellationTokenSource::new();
    let token = source.token();
    drop(source);
    assert!(!token.is_cancelled());
    assert!(token.can_be_cancelled());
    let runs = Counter::new();
    let registration = token.register(runs.callback());
    let child = CancellationTokenSource::linked([&token]);
    assert!(!child.is_cancelled());
    assert!(!token.wait_timeout(Duration::from_millis(1)));
    assert!(registration.unregister());
    drop(registration);
    assert_eq!(runs.get(), 0);

    // A cancelled source's token keeps its state and reason.
    let source = CancellationTokenSource::new();
    let token = source.token();
    source.cancel_with(CancelReason::TimedOut);
    drop(source);
    assert!(token.is_cancelled());
    assert_eq!(token.reason(), Some(CancelReason::TimedOut));
}

#[test]
fn debug_output_shows_the_state() {
    let source = CancellationTokenSource::new();
    let registration: CancellationRegistration = source.token().register(|| {});
    assert!(format!("{source:?}").contains("is_cancelled: false"));
    assert!(format!("{:?}", source.token()).contains("can_be_cancelled: true"));
    assert!(format!("{registration:?}").contains("inert: false"));
    source.cancel();
    assert!(format!("{:?}", source.token()).contains("is_cancelled: true"));
    assert!(format!("{:?}", source.token().cancelled()).contains("Cancelled"));
    assert!(format!("{:?}", source.token().cancelled_owned()).contains("CancelledOwned"));
    let error = source.token().error_if_cancelled().unwrap_err();
    assert!(format!("{error:?}").contains("Requested"));
}

// ---- run_until_cancelled ----

/// A future that is pending `n` times (waking itself) before completing.
struct YieldTimes(usize);

impl Future for YieldTimes {
    type Output = &'static str;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<&'static str> {
        if self.0 == 0 {
            return Poll::Ready("done");
        }
        self.0 -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[tokio::test]
async fn run_until_cancelled_returns_the_output_when_not_cancelled() {
    let source = CancellationTokenSource::new();
    let token = source.token();
    assert_eq!(token.run_until_cancelled(async { 7 }).await.unwrap(), 7);
    assert_eq!(
        token.run_until_cancelled(YieldTimes(5)).await.unwrap(),
        "done"
    );
    assert!(!token.is_cancelled());
}

#[tokio::test]
async fn run_until_cancelled_stops_a_pending_future_with_operation_canceled() {
    let source = CancellationTokenSource::new();
    let token = source.token();
    let dropped = Counter::new();
    let guard = OnDrop::bump(&dropped);
    let work = tokio::spawn(async move {
        token
            .run_until_cancelled(async move {
                let _guard = guard;
                pending::<()>().await
            })
            .await
    });
    tokio::task::yield_now().await;
    source.cancel_with(CancelReason::custom("stop"));
    let error = work.await.unwrap().unwrap_err();
    assert_eq!(error.reason(), &CancelReason::custom("stop"));
    assert_eq!(error.token(), &source.token());
    assert_eq!(dropped.get(), 1, "the cancelled future was dropped");
}

#[tokio::test]
async fn run_until_cancelled_prefers_cancellation_when_both_are_ready() {
    let source = CancellationTokenSource::new();
    source.cancel();
    let polled = Counter::new();
    let probe = polled.clone();
    let result = source
        .token()
        .run_until_cancelled(async move {
            probe.bump();
            7
        })
        .await;
    assert!(result.is_err(), "cancellation wins");
    assert_eq!(polled.get(), 0, "the future was not even polled");
}

#[tokio::test]
async fn run_until_cancelled_on_none_just_runs_the_future() {
    let none = CancellationToken::none();
    assert_eq!(
        none.run_until_cancelled(YieldTimes(3)).await.unwrap(),
        "done"
    );
}

#[test]
fn run_until_cancelled_stays_pending_until_the_token_or_the_future_is_ready() {
    let source = CancellationTokenSource::new();
    let token = source.token();
    let (wakes, waker) = WakeCounter::new();
    let mut running = Box::pin(token.run_until_cancelled(pending::<u8>()));
    assert_pending!(running, waker);
    assert_pending!(running, waker);
    assert_eq!(wakes.wakes(), 0);
    source.cancel();
    assert_eq!(wakes.wakes(), 1, "cancellation woke the task once");
    let error = assert_ready!(running, waker).unwrap_err();
    assert_eq!(error.reason(), &CancelReason::Requested);
}
