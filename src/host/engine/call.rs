//! One service call: made, watched, cut short at its deadline, abandoned.
//!
//! [`Flights`] holds the calls of one phase that did not end on their first
//! poll. A call goes through these stages, each with a due time:
//!
//! | stage | until | then |
//! |---|---|---|
//! | running | the service's own deadline, if it has one | its token is cancelled with `TimedOut`: grace |
//! | grace | + [`GRACE`] (at most the budget's `grace_end`) | its task is aborted: dropping |
//! | dropping | + [`GRACE`] (at most the budget's `hard_end`) | abandoned *still running*: the engine moves on |
//!
//! When the sequence's budget is spent, every running call enters grace at
//! once. An aborted task that is dropped within its dropping stage is
//! reported abandoned (not running); one that returned meanwhile is reported
//! as what it returned. So a call that returned in time is never reported
//! timed out, and an abandoned call has released what it held before the
//! engine moves on, unless it blocks its thread.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::task::{JoinError, JoinHandle};
use tokio::time::{Instant, Sleep, sleep_until};
use tracing::{Instrument, Span};

use super::budget::{Budget, GRACE, LATE};
pub(crate) use super::outcome::Outcome;
use super::outcome::{Caught, Clock, call_span, outcome, panicked};
use super::tasks::{IndexMap, Tasks, Waiting};
use crate::cancel::{CancelReason, CancellationToken, CancellationTokenSource};
use crate::host::adapter::Call;
use crate::host::error::{FailureKind, LifecyclePhase};
use crate::host::events::{BudgetOwner, LifecycleEvent};
use crate::host::inner::{CatchUnwind, Entry, EntryKind, HostInner};
use crate::host::panics::{CaughtPanic, message_of};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    Running,
    Grace,
    Dropping,
}

struct Flight {
    phase: LifecyclePhase,
    token: CancellationToken,
    own: Option<CancellationTokenSource>,
    stage: Stage,
    due: Option<Instant>,
    began: Clock,
    span: Span,
}

/// The calls of one phase still in flight (see the module docs).
pub(crate) struct Flights {
    tasks: Tasks,
    flights: IndexMap<Flight>,
    /// Due times, lazily pruned: an entry is live if its flight's `due` matches.
    dues: BinaryHeap<Reverse<(Instant, usize)>>,
    timer: Pin<Box<Sleep>>,
    armed: Option<Instant>,
    /// [`on_spent`](Self::on_spent) ran: every flight's due respects the
    /// budget's marks.
    spent_applied: bool,
}

/// A call that ended: the service's index, its outcome, how long it took.
pub(crate) type Ended = (usize, Outcome, Duration, Option<Instant>);

/// A call still running after its first poll, now a task of its own.
pub(crate) struct Handoff {
    pub(crate) index: usize,
    phase: LifecyclePhase,
    handle: JoinHandle<Caught>,
    token: CancellationToken,
    own: Option<CancellationTokenSource>,
    span: Span,
    began: Clock,
    /// When the call was made, if the clock was read (the service has its
    /// own budget, or DEBUG shows durations).
    pub(crate) since: Option<Instant>,
}

impl Handoff {
    /// Aborts the call's task (its outcome was already reported).
    pub(crate) fn abort(&self) {
        self.handle.abort();
    }
}

/// How making a call went.
pub(crate) enum Made {
    Ended(Ended),
    Pending(Handoff),
}

/// Makes `call` on hosted service `entries[index]` and polls it once, here
/// (most calls end on their first poll, and then no task is needed). A call
/// still pending is spawned as a task of its own and handed off, unless
/// `spent` (the budget is spent: no time is left to wait): then it is
/// dropped and reported abandoned. A service with its own budget gets the
/// token of `own_source` (linked to `token`), which is cancelled at its own
/// deadline. The call's beginning goes to `events` (while someone listens).
pub(crate) fn make(
    inner: &HostInner,
    index: usize,
    call: Call,
    phase: LifecyclePhase,
    token: &CancellationToken,
    own_source: Option<CancellationTokenSource>,
    spent: bool,
) -> Made {
    let (entry, events) = (&inner.entries[index], &inner.events);
    let own = own_source.is_some();
    let token = own_source
        .as_ref()
        .map_or_else(|| token.clone(), |s| s.token());
    let Some(fut) = entry.future(call, &token) else {
        return Made::Ended((index, Outcome::Completed, Duration::ZERO, None));
    };
    let span = call_span(entry, phase);
    let detailed = events.detailed();
    // The clock is read only when something needs it (an own budget, an
    // event subscriber, DEBUG).
    let began = Clock::start_if(own || detailed);
    if detailed {
        if let Some(since) = began.instant() {
            events.call_began(&entry.name, phase, since);
        }
    }
    let mut fut = CatchUnwind(fut);
    let mut cx = Context::from_waker(Waker::noop());
    if let Poll::Ready(caught) = span.in_scope(|| Pin::new(&mut fut).poll(&mut cx)) {
        let took = began.elapsed();
        let outcome = outcome(caught, took, &token, &span);
        return Made::Ended((index, outcome, took, began.instant()));
    }
    if spent {
        // Made after the budget was spent, and still running after its
        // first poll: no time is left to wait for it.
        drop(fut);
        let abandoned = Outcome::Failed(FailureKind::Abandoned {
            still_running: false,
        });
        return Made::Ended((index, abandoned, began.elapsed(), began.instant()));
    }
    // The task's first poll re-registers the future's wakers with the task.
    let handle = tokio::spawn(fut.instrument(span.clone()));
    Made::Pending(Handoff {
        index,
        phase,
        handle,
        token,
        own: own_source,
        span,
        began,
        since: began.instant(),
    })
}

impl Flights {
    pub(crate) fn new() -> Self {
        Flights {
            tasks: Tasks::default(),
            flights: IndexMap::default(),
            dues: BinaryHeap::new(),
            timer: Box::pin(sleep_until(Instant::now())),
            armed: None,
            spent_applied: false,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.flights.len()
    }

    /// Stops a background service: cancels its token with `stop_reason`
    /// and waits for `execute` (its task is the flight; no task is spawned).
    /// `None` if it never ran.
    pub(crate) fn stop_background(
        &mut self,
        entries: &[Entry],
        index: usize,
        budget: &mut Budget,
        own: Option<Duration>,
        stop_reason: &CancelReason,
    ) -> Option<()> {
        let EntryKind::Background(background) = &entries[index].kind else {
            return None;
        };
        let (source, handle) = background.take()?;
        let span = call_span(&entries[index], LifecyclePhase::Stop);
        let events = budget.events();
        let detailed = events.detailed();
        let began = Clock::start_if(own.is_some() || detailed);
        if let (true, Some(since)) = (detailed, began.instant()) {
            events.call_began(&entries[index].name, LifecyclePhase::Stop, since);
        }
        source.cancel_with(stop_reason.clone());
        self.tasks.push(Waiting::Execute(index, handle));
        let (stage, due) = match (budget.is_spent(), own) {
            (true, _) => (Stage::Grace, Some(late(budget.grace_end()))),
            (false, Some(own)) => (
                Stage::Running,
                super::budget::deadline_after(Instant::now(), own),
            ),
            (false, None) => (Stage::Running, None),
        };
        let token = source.token();
        self.insert(
            index,
            Flight {
                phase: LifecyclePhase::Stop,
                token,
                own: None,
                stage,
                due,
                began,
                span,
            },
        );
        Some(())
    }

    /// Takes over a call that did not end on its first poll (its task was
    /// spawned by the runner). `own` is what is left of the service's own
    /// budget, counted from `handoff.since`.
    pub(crate) fn adopt(&mut self, handoff: Handoff, own: Option<Duration>, budget: &mut Budget) {
        self.tasks
            .push(Waiting::Call(handoff.index, handoff.handle));
        let (stage, due) = if budget.is_spent() {
            (Stage::Grace, Some(late(budget.grace_end())))
        } else {
            (
                Stage::Running,
                own.zip(handoff.since)
                    .and_then(|(own, since)| super::budget::deadline_after(since, own)),
            )
        };
        let flight = Flight {
            phase: handoff.phase,
            token: handoff.token,
            own: handoff.own,
            stage,
            due,
            began: handoff.began,
            span: handoff.span,
        };
        self.insert(handoff.index, flight);
    }

    fn insert(&mut self, index: usize, flight: Flight) {
        if let Some(due) = flight.due {
            self.dues.push(Reverse((due, index)));
        }
        self.flights.insert(index, flight);
    }

    fn set_stage(&mut self, index: usize, stage: Stage, due: Instant) {
        if let Some(flight) = self.flights.get_mut(&index) {
            flight.stage = stage;
            flight.due = Some(due);
            self.dues.push(Reverse((due, index)));
        }
    }

    /// The budget was just spent: every running call enters grace, and no
    /// due is later than the budget's marks.
    fn on_spent(&mut self, budget: &Budget) {
        let (Some(grace_end), Some(hard_end)) = (budget.grace_end(), budget.hard_end()) else {
            return;
        };
        let changes: Vec<(usize, Stage, Instant)> = self
            .flights
            .iter()
            .map(|(&i, f)| match f.stage {
                Stage::Running => (i, Stage::Grace, grace_end),
                Stage::Grace => (
                    i,
                    Stage::Grace,
                    f.due.map_or(grace_end, |d| d.min(grace_end)),
                ),
                Stage::Dropping => (
                    i,
                    Stage::Dropping,
                    f.due.map_or(hard_end, |d| d.min(hard_end)),
                ),
            })
            .collect();
        for (i, stage, due) in changes {
            self.set_stage(i, stage, due);
        }
    }

    /// A flight's due time came: move it to its next stage, or give up on it.
    fn on_due(&mut self, entries: &[Entry], index: usize, budget: &Budget) -> Option<Ended> {
        let flight = self.flights.get(&index)?;
        let now = Instant::now();
        match flight.stage {
            Stage::Running => {
                // The service's own deadline: cancel its token, off this task.
                if let Some(own) = flight.own.clone() {
                    super::budget::time_out_off_task(own);
                }
                let service = &entries[index].name;
                let phase = flight.phase;
                budget
                    .events()
                    .emit_at(|at| LifecycleEvent::BudgetExceeded {
                        budget: BudgetOwner::Service {
                            service: std::sync::Arc::clone(service),
                            phase,
                        },
                        at,
                    });
                let due = cap(now + GRACE, budget.grace_end());
                self.set_stage(index, Stage::Grace, due);
                None
            }
            Stage::Grace => {
                self.tasks.abort(index);
                let due = cap(now + GRACE, budget.hard_end()).max(now + LATE);
                self.set_stage(index, Stage::Dropping, due);
                None
            }
            Stage::Dropping => {
                // It could not be dropped: it blocks its thread.
                let flight = self.flights.remove(&index)?;
                let abandoned = Outcome::Failed(FailureKind::Abandoned {
                    still_running: true,
                });
                Some((
                    index,
                    abandoned,
                    flight.began.elapsed(),
                    flight.began.instant(),
                ))
            }
        }
    }

    /// Waits for the next call to end (or be given up on), within `budget`.
    /// `None` when nothing is in flight.
    pub(crate) async fn next(&mut self, entries: &[Entry], budget: &mut Budget) -> Option<Ended> {
        loop {
            if self.flights.is_empty() {
                return None;
            }
            if !self.spent_applied && budget.is_spent() {
                self.spent_applied = true;
                self.on_spent(budget);
            }
            let event = std::future::poll_fn(|cx| self.poll_event(cx, budget)).await;
            if !self.spent_applied && budget.is_spent() {
                self.spent_applied = true;
                self.on_spent(budget);
            }
            let ended = match event {
                Event::Joined(index, result) => self.on_joined(index, result),
                Event::Due(index) => self.on_due(entries, index, budget),
                Event::Spent => None,
            };
            if ended.is_some() {
                return ended;
            }
        }
    }

    fn poll_event(&mut self, cx: &mut Context<'_>, budget: &mut Budget) -> Poll<Event> {
        if let Poll::Ready(Some((index, result))) = self.tasks.poll_next(cx) {
            return Poll::Ready(Event::Joined(index, result));
        }
        let spent = budget.is_spent();
        if !spent && budget.poll_spent(cx).is_ready() {
            return Poll::Ready(Event::Spent);
        }
        // The earliest live due time.
        while let Some(&Reverse((due, index))) = self.dues.peek() {
            let live = self.flights.get(&index).is_some_and(|f| f.due == Some(due));
            if !live {
                self.dues.pop();
                continue;
            }
            if due <= Instant::now() {
                self.dues.pop();
                return Poll::Ready(Event::Due(index));
            }
            if self.armed != Some(due) {
                self.timer.as_mut().reset(due);
                self.armed = Some(due);
            }
            if self.timer.as_mut().poll(cx).is_ready() {
                self.dues.pop();
                self.armed = None;
                return Poll::Ready(Event::Due(index));
            }
            break;
        }
        Poll::Pending
    }

    fn on_joined(
        &mut self,
        index: usize,
        result: Result<Option<Caught>, JoinError>,
    ) -> Option<Ended> {
        // A flight given up on earlier may still end here: it was reported.
        let flight = self.flights.remove(&index)?;
        let took = flight.began.elapsed();
        let outcome = match result {
            Ok(Some(caught)) => outcome(caught, took, &flight.token, &flight.span),
            // `execute` ended; its own task reported how.
            Ok(None) => Outcome::Completed,
            Err(join) => match join.try_into_panic() {
                // Caught in the task by `CatchUnwind`: this is a panic of the
                // host's own wrapper, if ever.
                Ok(payload) => panicked(CaughtPanic::new(message_of(payload.as_ref()))),
                // Aborted: dropped after its grace.
                Err(_) => Outcome::Failed(FailureKind::Abandoned {
                    still_running: false,
                }),
            },
        };
        Some((index, outcome, took, flight.began.instant()))
    }
}

enum Event {
    Joined(usize, Result<Option<Caught>, JoinError>),
    Due(usize),
    Spent,
}

/// `at`, no later than `limit`.
fn cap(at: Instant, limit: Option<Instant>) -> Instant {
    limit.map_or(at, |l| at.min(l))
}

/// A due time for a call made after the budget's marks: the mark, or
/// [`LATE`] from now if it has passed.
fn late(mark: Option<Instant>) -> Instant {
    let soon = Instant::now() + LATE;
    mark.map_or(soon, |m| m.max(soon))
}
