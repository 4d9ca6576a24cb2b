//! [`Budget`]: the one deadline of a sequence, computed once, and the marks
//! that follow it once it is spent.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep, sleep_until};

use crate::cancel::{CancelReason, CancellationToken, CancellationTokenSource};
use crate::host::events::{BudgetOwner, LifecycleEvent, Sequence};
use crate::host::hub::Hub;

/// How long calls still get once a budget is spent (or a service's own
/// deadline passed) before they are aborted, and then how long the engine
/// waits for an aborted call's task to be dropped. Long enough for a service
/// that honours its token to return; short enough to keep a stop within
/// `shutdown_timeout` + 50 ms (two graces and the keeper's margin).
pub(crate) const GRACE: Duration = Duration::from_millis(10);

/// What a wait begun after the budget's last mark still gets (a lifetime
/// token's callbacks, a background service's stop made late): enough for
/// code that is already done to say so.
pub(crate) const LATE: Duration = Duration::from_millis(2);

/// Timeouts beyond this are "never": no `Instant` arithmetic near its limits
/// (which panics), and no timer armed decades ahead.
const NEVER: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// `start + timeout`, or `None` for a deadline that never comes (any
/// `Duration` up to `Duration::MAX` is accepted).
pub(crate) fn deadline_after(start: Instant, timeout: Duration) -> Option<Instant> {
    if timeout >= NEVER {
        return None;
    }
    start.checked_add(timeout)
}

/// The same on the wall clock, for the budget keeper's thread.
pub(crate) fn wall_deadline_after(
    start: std::time::Instant,
    timeout: Duration,
) -> Option<std::time::Instant> {
    if timeout >= NEVER {
        return None;
    }
    start.checked_add(timeout)
}

/// Cancels `source` with [`CancelReason::TimedOut`] on a blocking thread:
/// cancelling runs the token's callbacks, user code, which must not run on
/// the engine's task. A panic in them is caught (the cancel module has
/// already run the other callbacks).
pub(crate) fn time_out_off_task(source: CancellationTokenSource) {
    drop(tokio::task::spawn_blocking(move || {
        let _ = catch_unwind(AssertUnwindSafe(|| {
            source.cancel_with(CancelReason::TimedOut)
        }));
    }));
}

/// Bounds the waits of one sequence. Its token is handed to every call; it
/// is cancelled with [`CancelReason::TimedOut`] at the deadline.
///
/// The budget is *spent* when the deadline passes or its token is cancelled
/// for another reason (the caller's token, a stop request during start, a
/// sibling's failure in a concurrent start). From that moment `S`:
/// `grace_end` = `S` + [`GRACE`] and `hard_end` = `S` + 2 × [`GRACE`].
pub(crate) struct Budget {
    source: CancellationTokenSource,
    token: CancellationToken,
    /// `token.cancelled_owned()`, kept across polls (boxed as a trait object
    /// so the host does not depend on where the cancel module puts its type).
    tripped: Pin<Box<dyn Future<Output = ()> + Send>>,
    deadline: Option<Pin<Box<Sleep>>>,
    spent_at: Option<Instant>,
    timed_out: bool,
    sequence: Sequence,
    events: Arc<Hub>,
}

impl Budget {
    pub(crate) fn new(
        source: CancellationTokenSource,
        deadline: Option<Instant>,
        sequence: Sequence,
        events: Arc<Hub>,
    ) -> Self {
        let token = source.token();
        Budget {
            tripped: Box::pin(token.clone().cancelled_owned()),
            token,
            source,
            deadline: deadline.map(|d| Box::pin(sleep_until(d))),
            spent_at: None,
            timed_out: false,
            sequence,
            events,
        }
    }

    /// The host's event hub.
    pub(crate) fn events(&self) -> &Arc<Hub> {
        &self.events
    }

    /// The token was cancelled before the deadline: spent from now.
    fn cut_short(&mut self) {
        self.spent_at = Some(Instant::now());
        let reason = self.token.reason().unwrap_or(CancelReason::Requested);
        let sequence = self.sequence;
        self.events.emit_at(|at| LifecycleEvent::CutShort {
            sequence,
            reason,
            at,
        });
    }

    /// The token handed to the sequence's calls.
    pub(crate) fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Cancels the token with `reason` (a concurrent start's failure): the
    /// budget is spent from now.
    pub(crate) fn cut(&mut self, reason: CancelReason) {
        self.source.cancel_with(reason);
        self.is_spent();
    }

    /// Whether the budget is spent; notices a cancelled token at once.
    pub(crate) fn is_spent(&mut self) -> bool {
        if self.spent_at.is_none() && self.token.is_cancelled() {
            self.cut_short();
        }
        self.spent_at.is_some()
    }

    /// Ready once the budget is spent (deadline passed or token cancelled).
    pub(crate) fn poll_spent(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.is_spent() {
            return Poll::Ready(());
        }
        if let Some(sleep) = self.deadline.as_mut() {
            if sleep.as_mut().poll(cx).is_ready() {
                self.timed_out = true;
                self.spent_at = Some(Instant::now());
                let sequence = self.sequence;
                self.events.emit_at(|at| LifecycleEvent::BudgetExceeded {
                    budget: BudgetOwner::Sequence { sequence },
                    at,
                });
                // Cancelling runs the token's callbacks, user code: not on
                // the engine's task.
                time_out_off_task(self.source.clone());
                return Poll::Ready(());
            }
        }
        if self.tripped.as_mut().poll(cx).is_ready() {
            self.cut_short();
            return Poll::Ready(());
        }
        Poll::Pending
    }

    /// `S` + [`GRACE`]; `None` while the budget is not spent.
    pub(crate) fn grace_end(&self) -> Option<Instant> {
        self.spent_at.map(|s| s + GRACE)
    }

    /// `S` + 2 × [`GRACE`]; `None` while the budget is not spent.
    pub(crate) fn hard_end(&self) -> Option<Instant> {
        self.spent_at.map(|s| s + 2 * GRACE)
    }

    /// The reason calls cut short by this budget carry.
    pub(crate) fn reason(&self) -> CancelReason {
        if self.timed_out {
            return CancelReason::TimedOut;
        }
        self.token.reason().unwrap_or(CancelReason::Requested)
    }

    /// Waits for `fut` (not a service call: a lifetime token's callbacks, the
    /// start settling) within the budget: until it is spent, then until
    /// `hard_end`, or [`LATE`] if that has passed. `None` if given up on.
    pub(crate) async fn wait<F: Future + Unpin>(&mut self, fut: &mut F) -> Option<F::Output> {
        enum Woke<T> {
            Done(T),
            Spent,
        }
        let woke = std::future::poll_fn(|cx| {
            if let Poll::Ready(out) = Pin::new(&mut *fut).poll(cx) {
                return Poll::Ready(Woke::Done(out));
            }
            self.poll_spent(cx).map(|()| Woke::Spent)
        })
        .await;
        if let Woke::Done(out) = woke {
            return Some(out);
        }
        let end = self.hard_end().expect("spent").max(Instant::now() + LATE);
        tokio::time::timeout_at(end, fut).await.ok()
    }
}
