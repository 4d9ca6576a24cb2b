//! The runner: a task that makes the first polls of a batch of hosted calls,
//! so that the engine's own task never runs service code, and the engine can
//! move on when a call blocks its thread during that poll.
//!
//! Most calls end on their first poll; a runner makes a whole phase of them
//! with one task (that is what keeps 10,000 services cheap). A call still
//! pending is spawned as a task of its own and *handed off* to the engine,
//! which watches it with the others in flight (`call.rs`). In sequential
//! mode the runner stops after a hand-off, so the next call waits for it.
//!
//! # Protocol (one mutex, never held across an `.await` or a service's poll)
//!
//! The runner *claims* a call (advances `next`, sets `polling`) before its
//! first poll and *records* it (clears `polling`, pushes the outcome or the
//! hand-off) after, unless `superseded` was set meanwhile. The engine sets
//! `superseded` when the call being polled overruns its due time (its own
//! deadline + grace, or the budget's grace end): that call is reported
//! abandoned while still running, and the calls from `next` on are made by
//! a new runner. So every call is made once, and its outcome is recorded
//! once, by whichever side owns it at that moment.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use tokio::time::{Instant, Sleep, sleep_until};

use super::budget::{Budget, GRACE, LATE};
use super::call::{Ended, Handoff, Made, Outcome, make};
use super::record::Record;
use crate::cancel::{CancellationToken, CancellationTokenSource};
use crate::host::adapter::Call;
use crate::host::error::{FailureKind, LifecyclePhase};
use crate::host::events::{BudgetOwner, LifecycleEvent};
use crate::host::inner::{EntryKind, HostInner, lock};

/// What a runner was asked to do.
pub(crate) struct Job {
    pub(crate) inner: Arc<HostInner>,
    pub(crate) todo: Vec<usize>,
    /// Per position in `todo`: what is left of the service's own budget.
    pub(crate) own: Vec<Option<Duration>>,
    pub(crate) call: Call,
    pub(crate) phase: LifecyclePhase,
    pub(crate) token: CancellationToken,
    pub(crate) spent: bool,
    /// Stop after a hand-off (sequential mode).
    pub(crate) one_pending: bool,
    /// A start phase: stop at the first call that does not complete, and
    /// make no call once the token is cancelled.
    pub(crate) start: bool,
    /// The stop's record: the keeper reads which call is being polled.
    pub(crate) record: Option<Arc<Record>>,
}

/// How a batch went.
#[derive(Default)]
pub(crate) struct Batch {
    /// Positions of `todo` consumed (made, or given up on).
    pub(crate) consumed: usize,
    pub(crate) ended: Vec<Ended>,
    pub(crate) handed: Vec<Handoff>,
    /// A start phase left calls unmade because its token was cancelled.
    pub(crate) skipped: bool,
}

struct Polling {
    index: usize,
    /// When its first poll began; read only when it matters (an own budget,
    /// or a call made after the budget was spent).
    since: Option<Instant>,
    own: Option<Duration>,
    own_source: Option<CancellationTokenSource>,
}

#[derive(Default)]
struct State {
    next: usize,
    polling: Option<Polling>,
    batch: Batch,
    superseded: bool,
}

/// Runs `job` in a runner task and watches it within `budget`.
pub(crate) async fn run(job: Job, budget: &mut Budget) -> Batch {
    let shared = Arc::new(Mutex::new(State::default()));
    // The shortest own budget of the batch: a call claimed after the engine
    // last looked cannot be due sooner than that after the look. The engine
    // looks again at that interval rather than being woken by the runner: a
    // wake from the runner's thread would queue the engine's task in that
    // worker's LIFO slot, which no other worker may steal, and that worker
    // is the one a blocking call holds.
    let recheck = job.own.iter().flatten().min().copied();
    let (inner, phase) = (Arc::clone(&job.inner), job.phase);
    let mut task = tokio::spawn(runner(job, Arc::clone(&shared)));
    let mut watch = Watch {
        spawned: Instant::now(),
        timer: Box::pin(sleep_until(Instant::now())),
        armed: None,
        cancelled_at: None,
        index: None,
    };
    loop {
        let woke = std::future::poll_fn(|cx| {
            if Pin::new(&mut task).poll(cx).is_ready() {
                return Poll::Ready(true);
            }
            let _ = budget.poll_spent(cx);
            let due = watch.due(&lock(&shared), budget);
            let look_again = recheck.and_then(|r| {
                super::budget::deadline_after(Instant::now(), r.max(Duration::from_millis(1)))
            });
            let due = match (due, look_again) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            match due {
                Some(due) if due <= Instant::now() => Poll::Ready(false),
                Some(due) => {
                    if watch.armed != Some(due) {
                        watch.timer.as_mut().reset(due);
                        watch.armed = Some(due);
                    }
                    match watch.timer.as_mut().poll(cx) {
                        Poll::Ready(()) => Poll::Ready(false),
                        Poll::Pending => Poll::Pending,
                    }
                }
                None => Poll::Pending,
            }
        })
        .await;
        let mut state = lock(&shared);
        if woke {
            return std::mem::take(&mut state.batch);
        }
        // A due time came. The runner may have moved on since it was
        // computed: act only if it is still due for the call polled now.
        let now = Instant::now();
        if watch.due(&state, budget).is_none_or(|due| due > now) {
            continue;
        }
        let Some(polling) = &state.polling else {
            if budget
                .hard_end()
                .is_some_and(|end| now >= end.max(watch.spawned + LATE))
            {
                // Not even scheduled by the runtime: make the rest elsewhere.
                state.superseded = true;
                task.abort();
                return std::mem::take(&mut state.batch);
            }
            continue;
        };
        if watch.cancelled_at.is_none() && !budget.is_spent() {
            // Its own deadline: cancel its token, off this task.
            watch.cancelled_at = Some(now);
            let service = &inner.entries[polling.index].name;
            inner.events.emit_at(|at| LifecycleEvent::BudgetExceeded {
                budget: BudgetOwner::Service {
                    service: Arc::clone(service),
                    phase,
                },
                at,
            });
            if let Some(own) = polling.own_source.clone() {
                super::budget::time_out_off_task(own);
            }
            continue;
        }
        let (index, since) = (polling.index, polling.since);
        let took = since.map_or(Duration::ZERO, |since| now - since);
        state.superseded = true;
        state.polling = None;
        task.abort();
        let abandoned = Outcome::Failed(FailureKind::Abandoned {
            still_running: true,
        });
        state.batch.ended.push((index, abandoned, took, since));
        return std::mem::take(&mut state.batch);
    }
}

/// The engine's view of the call being polled: when it is due.
struct Watch {
    /// When the runner was spawned: a runner spawned late still gets [`LATE`].
    spawned: Instant,
    timer: Pin<Box<Sleep>>,
    armed: Option<Instant>,
    /// When its own token was cancelled.
    cancelled_at: Option<Instant>,
    index: Option<usize>,
}

impl Watch {
    fn due(&mut self, state: &State, budget: &Budget) -> Option<Instant> {
        let Some(polling) = &state.polling else {
            self.index = None;
            return budget.hard_end().map(|end| end.max(self.spawned + LATE));
        };
        if self.index != Some(polling.index) {
            self.index = Some(polling.index);
            self.cancelled_at = None;
        }
        let own_due = match self.cancelled_at {
            Some(at) => Some(at + GRACE),
            None => polling
                .own
                .zip(polling.since)
                .and_then(|(own, since)| super::budget::deadline_after(since, own)),
        };
        // A call made late still gets its first poll's worth of [`LATE`].
        let since = polling.since.unwrap_or(self.spawned);
        let grace_end = budget.grace_end().map(|end| end.max(since + LATE));
        match (own_due, grace_end) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The runner task (see the module docs).
async fn runner(job: Job, shared: Arc<Mutex<State>>) {
    let entries = &job.inner.entries;
    // The call just made, recorded under the same lock that claims the next
    // one: one lock per call.
    let mut made: Option<Made> = None;
    loop {
        let (index, own_source) = {
            let mut state = lock(&shared);
            if state.superseded {
                // The engine reported the last call abandoned and moved on.
                if let Some(Made::Pending(handoff)) = made {
                    handoff.abort();
                }
                return;
            }
            if let Some(made) = made.take() {
                state.polling = None;
                if let Some(record) = &job.record {
                    record.polled();
                }
                match made {
                    Made::Ended(ended) => {
                        // Emitted as it is recorded, before the next call's
                        // beginning (the engine reads the batch later); not
                        // once the budget keeper took the stop over and
                        // reported the call.
                        if !job.record.as_ref().is_some_and(|r| r.taken_over()) {
                            let (index, outcome, took, since) =
                                (ended.0, &ended.1, ended.2, ended.3);
                            job.inner.events.ended(
                                &entries[index].name,
                                job.phase,
                                since,
                                took,
                                outcome,
                            );
                        }
                        let failed = job.start && !ended.1.is_completed();
                        state.batch.ended.push(ended);
                        if failed {
                            return;
                        }
                    }
                    Made::Pending(handoff) => {
                        state.batch.handed.push(handoff);
                        if job.one_pending {
                            return;
                        }
                    }
                }
            }
            let position = state.next;
            let Some(&index) = job.todo.get(position) else {
                return;
            };
            if matches!(entries[index].kind, EntryKind::Background(_)) {
                return; // the engine stops background services itself
            }
            if job.start && job.token.is_cancelled() {
                state.batch.skipped = true;
                return;
            }
            state.next += 1;
            state.batch.consumed = state.next;
            let own = job.own.get(position).copied().flatten();
            let own_source = own
                .filter(|_| !job.spent)
                .map(|_| CancellationTokenSource::linked([&job.token]));
            state.polling = Some(Polling {
                index,
                since: (own.is_some() || job.spent).then(Instant::now),
                own,
                own_source: own_source.clone(),
            });
            (index, own_source)
        };
        if let Some(record) = &job.record {
            record.polling(index, job.phase);
        }
        made = Some(make(
            &job.inner, index, job.call, job.phase, &job.token, own_source, job.spent,
        ));
    }
}
