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

use std::collections::VecDeque;
use std::time::Duration;

use super::budget::Budget;
use super::call::{Ended, Flights, Outcome};
use super::keeper::Record;
use crate::cancel::CancelReason;
use crate::host::adapter::Call;
use crate::host::error::LifecyclePhase;
use crate::host::inner::HostInner;

/// What one sequence carries from phase to phase.
pub(crate) struct Seq<'a> {
    /// Per service: what is left of its own budget in this sequence (empty
    /// when no service has one).
    pub(crate) own: Vec<Option<Duration>>,
    /// Per service: abandoned while still running; no later call is made.
    pub(crate) stuck: Vec<bool>,
    /// The stop's record, which the budget keeper reads if it takes over.
    pub(crate) record: Option<&'a Record>,
}

impl Seq<'_> {
    fn taken_over(&self) -> bool {
        self.record.is_some_and(Record::taken_over)
    }
}

/// One phase (see the module docs).
pub(crate) struct Phase<'a> {
    pub(crate) inner: &'a HostInner,
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

    /// Makes the call on `index`; records it if it ended at once.
    fn launch(&mut self, index: usize, budget: &mut Budget) -> Option<usize> {
        let own = self.seq.own.get(index).copied().flatten();
        let p = self.phase;
        let launched = self.flights.launch(
            &p.inner.entries,
            index,
            p.call,
            p.phase,
            budget,
            own,
            &p.stop_reason,
        );
        match launched {
            Some(ended) => self.ended(ended, budget),
            None => {
                if let Some(record) = self.seq.record {
                    record.flying(index, p.phase);
                }
                None
            }
        }
    }

    /// Records a call that ended; returns its index.
    fn ended(&mut self, (index, outcome, took): Ended, budget: &mut Budget) -> Option<usize> {
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
        Some(index)
    }

    /// Waits for the next call in flight; `false` when none is.
    async fn wait_one(&mut self, budget: &mut Budget) -> Option<usize> {
        let ended = self.flights.next(&self.phase.inner.entries, budget).await?;
        if self.seq.taken_over() {
            return None;
        }
        self.ended(ended, budget)
    }

    async fn drain(&mut self, budget: &mut Budget) {
        while self.wait_one(budget).await.is_some() {}
    }

    async fn in_order(&mut self, active: &[usize], budget: &mut Budget) {
        for (position, &index) in active.iter().enumerate() {
            if self.halt(budget) {
                return self.drain(budget).await;
            }
            if !self.phase.start && budget.is_spent() {
                return self.all_at_once(&active[position..], budget).await;
            }
            if self.launch(index, budget).is_none() {
                self.wait_one(budget).await;
            }
        }
    }

    async fn all_at_once(&mut self, active: &[usize], budget: &mut Budget) {
        for &index in active {
            if self.halt(budget) {
                break;
            }
            self.launch(index, budget);
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
                &graph.deps[i]
            } else {
                &graph.dependents[i]
            };
            waiting_on[i] = preds.iter().filter(|&&p| member[p]).count() as u32;
        }
        let mut ready: VecDeque<usize> = active
            .iter()
            .copied()
            .filter(|&i| waiting_on[i] == 0)
            .collect();
        let mut unmade = active.len();
        loop {
            if !start && budget.is_spent() && unmade > 0 {
                // No time left to keep order: everything not yet made, now.
                ready = active
                    .iter()
                    .copied()
                    .filter(|&i| waiting_on[i] != u32::MAX)
                    .collect();
            }
            while let Some(index) = ready.pop_front() {
                if self.halt(budget) {
                    ready.clear();
                    break;
                }
                if waiting_on[index] == u32::MAX {
                    continue;
                }
                waiting_on[index] = u32::MAX; // made
                unmade -= 1;
                if let Some(ended) = self.launch(index, budget) {
                    release(ended, start, graph, &member, &mut waiting_on, &mut ready);
                }
            }
            match self.wait_one(budget).await {
                Some(ended) => release(ended, start, graph, &member, &mut waiting_on, &mut ready),
                None => return,
            }
        }
    }
}

/// `index`'s call ended: its successors wait on one call less.
fn release(
    index: usize,
    start: bool,
    graph: &crate::host::graph::Graph,
    member: &[bool],
    waiting_on: &mut [u32],
    ready: &mut VecDeque<usize>,
) {
    let succs = if start {
        &graph.dependents[index]
    } else {
        &graph.deps[index]
    };
    for &s in succs.iter() {
        if member[s] && waiting_on[s] != u32::MAX && waiting_on[s] > 0 {
            waiting_on[s] -= 1;
            if waiting_on[s] == 0 {
                ready.push_back(s);
            }
        }
    }
}
