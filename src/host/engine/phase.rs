//! One phase of a sequence: a call on each service that takes part, in
//! dependency order, one at a time or all that may run at once.
//!
//! - **Sequential** (the default): one call at a time, in the sequence's
//!   order (start: the graph's topological order; stop: its reverse).
//! - **Concurrent**: every call whose predecessors in this phase have
//!   finished (start: the services it depends on; stop: the services that
//!   depend on it) is made at once, first polls in order. With no
//!   dependencies that is every call at once.
//! - **Start phases** stop at the first call that does not complete: nothing
//!   more is made, and calls still in flight (concurrent) have the start
//!   token cancelled with a reason that names the failed service, get the
//!   grace, and are reported as what they did.
//! - **Stop phases** make every call. Once the budget is spent there is no
//!   time left to keep order: the remaining calls are all made at once.
//! - A service abandoned while still running in an earlier phase gets no
//!   later call (it would overlap the one still running).

use std::sync::Arc;
use std::time::Duration;

use super::budget::Budget;
use super::call::{Ended, Flights, Outcome};
use super::record::Record;
use super::runner::{self, Job};
use crate::cancel::CancelReason;
use crate::host::adapter::Call;
use crate::host::error::{FailureKind, LifecyclePhase, ServiceFailure};
use crate::host::inner::{EntryKind, HostInner};

/// What one sequence carries from phase to phase.
pub(crate) struct Seq<'a> {
    /// Per service: what is left of its own budget in this sequence (empty
    /// when no service has one).
    pub(crate) own: Vec<Option<Duration>>,
    /// Per service: abandoned while still running; no later call is made.
    pub(crate) stuck: Vec<bool>,
    /// The stop's record, which the budget keeper reads if it takes over.
    pub(crate) record: Option<&'a Arc<Record>>,
}

impl Seq<'_> {
    fn taken_over(&self) -> bool {
        self.record.is_some_and(|r| r.taken_over())
    }
}

/// One phase (see the module docs).
pub(crate) struct Phase<'a> {
    pub(crate) inner: &'a Arc<HostInner>,
    pub(crate) call: Call,
    pub(crate) phase: LifecyclePhase,
    pub(crate) concurrent: bool,
    /// A start phase: dependencies first, stop at the first failure.
    pub(crate) start: bool,
    /// What a background service's token is cancelled with.
    pub(crate) stop_reason: CancelReason,
}

/// How a phase went.
#[derive(Default)]
pub(crate) struct Done {
    /// Each call's outcome, in the order the calls ended.
    pub(crate) outcomes: Vec<(usize, Outcome)>,
    /// A start phase left calls unmade because its budget was spent.
    pub(crate) skipped: bool,
}

/// The phase's bookkeeping while it runs.
struct Run<'p, 's, 'a, 'r> {
    phase: &'p Phase<'a>,
    seq: &'s mut Seq<'r>,
    flights: Flights,
    done: Done,
    /// A start call did not complete: make no more calls.
    failed: bool,
}

impl Phase<'_> {
    /// Runs the phase over `members` (service indices, in the sequence's order).
    pub(crate) async fn run(
        &self,
        members: &[usize],
        budget: &mut Budget,
        seq: &mut Seq<'_>,
    ) -> Done {
        let entries = &self.inner.entries;
        let active: Vec<usize> = members
            .iter()
            .copied()
            .filter(|&i| {
                entries[i].takes_part(self.call) && !seq.stuck.get(i).copied().unwrap_or(false)
            })
            .collect();
        if active.is_empty() {
            return Done::default();
        }
        let mut run = Run {
            phase: self,
            seq,
            flights: Flights::new(),
            done: Done::default(),
            failed: false,
        };
        if !self.concurrent {
            run.in_order(&active, budget).await;
        } else if !self.inner.graph.has_edges {
            run.all_at_once(&active, budget).await;
        } else {
            run.by_dependencies(&active, budget).await;
        }
        run.done
    }
}

impl Run<'_, '_, '_, '_> {
    /// Whether to stop making calls; for a start phase whose budget is spent,
    /// notes the skip.
    fn halt(&mut self, budget: &mut Budget) -> bool {
        if self.seq.taken_over() || self.failed {
            return true;
        }
        if self.phase.start && budget.is_spent() {
            self.done.skipped = true;
            return true;
        }
        false
    }

    fn own(&self, index: usize) -> Option<Duration> {
        self.seq.own.get(index).copied().flatten()
    }

    /// Makes the calls of `todo` from the start, as far as one batch goes:
    /// a background service's stop here, hosted calls' first polls in a
    /// runner task. Returns how many were consumed and the indices of the
    /// calls that ended.
    async fn batch(
        &mut self,
        todo: &[usize],
        one_pending: bool,
        budget: &mut Budget,
    ) -> (usize, Vec<usize>) {
        let p = self.phase;
        let entries = &p.inner.entries;
        let mut ended = Vec::new();
        let mut consumed = 0;
        // Background services first, while they lead the batch.
        while let Some(&index) = todo.get(consumed) {
            if !matches!(entries[index].kind, EntryKind::Background(_)) {
                break;
            }
            consumed += 1;
            let own = self.own(index);
            if self
                .flights
                .stop_background(entries, index, budget, own, &p.stop_reason)
                .is_some()
            {
                self.flying(index);
                if one_pending {
                    return (consumed, ended);
                }
            }
        }
        if consumed == todo.len() || self.halt(budget) {
            return (consumed, ended);
        }
        let rest = &todo[consumed..];
        let job = Job {
            inner: Arc::clone(p.inner),
            todo: rest.to_vec(),
            own: if self.seq.own.is_empty() {
                Vec::new()
            } else {
                rest.iter().map(|&i| self.own(i)).collect()
            },
            call: p.call,
            phase: p.phase,
            token: budget.token().clone(),
            spent: budget.is_spent(),
            one_pending,
            start: p.start,
            record: self.seq.record.cloned(),
        };
        let batch = runner::run(job, budget).await;
        if self.seq.taken_over() {
            return (todo.len(), ended);
        }
        consumed += batch.consumed;
        if batch.skipped {
            self.done.skipped = true;
        }
        for handoff in batch.handed {
            let index = handoff.index;
            let own = self.own(index);
            self.flights.adopt(handoff, own, budget);
            self.flying(index);
        }
        for e in batch.ended {
            // A call the runner made and that ended on its first poll was
            // emitted there; one it was superseded on (stuck) was not.
            let emitted = !e.1.is_stuck();
            ended.push(self.ended(e, emitted, budget));
        }
        (consumed, ended)
    }

    fn flying(&self, index: usize) {
        if let Some(record) = self.seq.record {
            record.flying(index, self.phase.phase);
        }
    }

    /// Records a call that ended, and emits its end unless `emitted` (a
    /// call that ended on its first poll was emitted then, in order);
    /// returns its index.
    fn ended(
        &mut self,
        (index, outcome, took, since): Ended,
        emitted: bool,
        budget: &mut Budget,
    ) -> usize {
        if !emitted {
            let name = &self.phase.inner.entries[index].name;
            let events = &self.phase.inner.events;
            events.ended(name, self.phase.phase, since, took, &outcome);
        }
        if let Some(left) = self.seq.own.get_mut(index).and_then(Option::as_mut) {
            *left = left.saturating_sub(took);
        }
        if outcome.is_stuck() {
            if let Some(stuck) = self.seq.stuck.get_mut(index) {
                *stuck = true;
            }
        }
        if let Some(record) = self.seq.record {
            record.landed(index);
            // Recorded as it happens, so the keeper reports it if it takes over.
            if let Some(kind) = stop_failure(&outcome) {
                let name = Arc::clone(&self.phase.inner.entries[index].name);
                record.fail(ServiceFailure::new(Some(name), self.phase.phase, kind));
            }
        }
        if self.phase.start && !outcome.is_completed() && !self.failed {
            self.failed = true;
            if self.flights.len() > 0 {
                let name = &self.phase.inner.entries[index].name;
                budget.cut(CancelReason::custom(format!(
                    "service `{name}` failed to start"
                )));
            }
        }
        self.done.outcomes.push((index, outcome));
        index
    }

    /// Waits for the next call in flight; `None` when none is.
    async fn wait_one(&mut self, budget: &mut Budget) -> Option<usize> {
        let ended = self.flights.next(&self.phase.inner.entries, budget).await?;
        if self.seq.taken_over() {
            return None;
        }
        Some(self.ended(ended, false, budget))
    }

    async fn drain(&mut self, budget: &mut Budget) {
        while self.wait_one(budget).await.is_some() {}
    }

    async fn in_order(&mut self, active: &[usize], budget: &mut Budget) {
        let mut position = 0;
        while position < active.len() {
            if self.halt(budget) {
                break;
            }
            if !self.phase.start && budget.is_spent() {
                return self.all_at_once(&active[position..], budget).await;
            }
            position += self.batch(&active[position..], true, budget).await.0;
            // One call at a time: wait for the one handed off, if any.
            while self.flights.len() > 0 {
                if self.wait_one(budget).await.is_none() {
                    break;
                }
            }
        }
        self.drain(budget).await;
    }

    async fn all_at_once(&mut self, active: &[usize], budget: &mut Budget) {
        let mut position = 0;
        while position < active.len() && !self.halt(budget) {
            position += self.batch(&active[position..], false, budget).await.0;
        }
        self.drain(budget).await;
    }

    /// Concurrent, with dependencies: a call is made once its predecessors'
    /// calls in this phase have ended (whatever their outcome).
    async fn by_dependencies(&mut self, active: &[usize], budget: &mut Budget) {
        let graph = &self.phase.inner.graph;
        let start = self.phase.start;
        let n = self.phase.inner.entries.len();
        let mut waiting_on = vec![0u32; n];
        let mut member = vec![false; n];
        for &i in active {
            member[i] = true;
        }
        for &i in active {
            let preds = if start {
                graph.deps(i)
            } else {
                graph.dependents(i)
            };
            waiting_on[i] = preds.iter().filter(|&&p| member[p as usize]).count() as u32;
        }
        let mut ready: Vec<usize> = active
            .iter()
            .copied()
            .filter(|&i| waiting_on[i] == 0)
            .collect();
        loop {
            if !start && budget.is_spent() {
                // No time left to keep order: everything not yet made, now.
                ready = active
                    .iter()
                    .copied()
                    .filter(|&i| waiting_on[i] != MADE)
                    .collect();
            }
            ready.retain(|&i| waiting_on[i] != MADE);
            let mut position = 0;
            while position < ready.len() && !self.halt(budget) {
                for &i in &ready[position..] {
                    waiting_on[i] = MADE;
                }
                let (consumed, ended) = self.batch(&ready[position..], false, budget).await;
                for &i in &ready[position + consumed..] {
                    waiting_on[i] = 0; // not made after all
                }
                position += consumed;
                let mut next = Vec::new();
                for index in ended {
                    release(index, start, graph, &member, &mut waiting_on, &mut next);
                }
                ready.extend(next);
            }
            ready.clear();
            match self.wait_one(budget).await {
                Some(index) => release(index, start, graph, &member, &mut waiting_on, &mut ready),
                None => return,
            }
        }
    }
}

/// What a stop call's outcome is reported as, if it is a failure.
/// Cooperative cancellation is a failure only when it was for a timeout;
/// cancelled by the caller's token, it is what was asked for.
pub(crate) fn stop_failure(outcome: &Outcome) -> Option<FailureKind> {
    match outcome {
        Outcome::Completed => None,
        Outcome::Cancelled(CancelReason::TimedOut) => Some(FailureKind::TimedOut),
        Outcome::Cancelled(_) => None,
        Outcome::Failed(kind) => Some(kind.clone()),
    }
}

/// Marks a call made in `waiting_on`.
const MADE: u32 = u32::MAX;

/// `index`'s call ended: its successors wait on one call less.
fn release(
    index: usize,
    start: bool,
    graph: &crate::host::graph::Graph,
    member: &[bool],
    waiting_on: &mut [u32],
    ready: &mut Vec<usize>,
) {
    let succs = if start {
        graph.dependents(index)
    } else {
        graph.deps(index)
    };
    for &s in succs {
        let s = s as usize;
        if member[s] && waiting_on[s] != MADE && waiting_on[s] > 0 {
            waiting_on[s] -= 1;
            if waiting_on[s] == 0 {
                ready.push(s);
            }
        }
    }
}
