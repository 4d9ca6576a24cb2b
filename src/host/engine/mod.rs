//! The lifecycle engine: every start and stop sequence, and every wait of
//! their budgets, is here.
//!
//! | file | what |
//! |---|---|
//! | `start.rs`, `stop.rs` | the sequences: phases in order, lifetime tokens, rollback |
//! | `phase.rs` | one phase over the dependency graph, in order or in waves |
//! | `runner.rs` | the task that makes the calls' first polls, superseded if one blocks |
//! | `call.rs` | one service call: made, watched, cut short, abandoned |
//! | `outcome.rs` | how a call ended, how long it took, how it is logged |
//! | `tasks.rs` | the tasks of the calls in flight, and a map by service index |
//! | `budget.rs` | the one deadline of a sequence and its grace marks |
//! | `keeper.rs` | the thread that ends a stop on time when the runtime cannot |
//! | `record.rs` | what a stop has done so far, for the keeper |
//!
//! Lifecycle events (`host/events.rs`) are emitted where outcomes are
//! recorded: a call's beginning in `call::make` and `Flights::stop_background`,
//! its end through `Hub::ended` where it is recorded — by the runner, for
//! a call that ended on its first poll (so the end comes before the next
//! call's beginning), or by `phase.rs` (`Run::ended`) — budgets in
//! `budget.rs` (the sequence's), `call.rs` and `runner.rs` (a service's
//! own), and the keeper's abandonments in `keeper.rs`.
//!
//! # Invariants (the code cites them by number)
//!
//! 1. **The budget keeper never shares a thread with service code.** A stop
//!    runs as a task on the user's runtime (fast: most calls end on their
//!    first poll, made inline, with no task), but its deadline is also kept
//!    by a thread of the host's own ([`keeper`]), on the wall clock. If
//!    services block every worker thread, the keeper ends the stop at
//!    `deadline + KEEPER_MARGIN` and publishes the result itself.
//! 2. **One deadline per sequence, computed once** when it begins
//!    (`stop::once`, `start::run`), from a `Duration` of any size (at or
//!    beyond 100 years it is "never"; no `Instant` overflow). A service's own
//!    budget is what is left of its `start_timeout` / `stop_timeout` across
//!    its calls in the sequence.
//! 3. **Every wait is bounded.** Until the budget is spent, a call waits
//!    until it ends or its own deadline. Once the budget is spent at `S`
//!    (deadline, or the sequence's token cancelled): calls in flight get
//!    until `S + GRACE`, are aborted, and their drop is awaited until
//!    `S + 2 × GRACE`; a hosted call made later gets its first poll only;
//!    a background stop or a lifetime token's callbacks made later get
//!    `LATE` past the marks. So a stop on a responsive runtime ends by its
//!    deadline + 2 × `GRACE` + a few `LATE`s; otherwise the keeper ends it
//!    by its deadline + `KEEPER_MARGIN`.
//! 4. **Abandonment completes before order moves on.** A call given up on
//!    is aborted and its drop awaited (bounded as above) before the next
//!    call in order is made. One whose task cannot be dropped (it blocks its
//!    thread) is reported abandoned *still running*, and the engine moves on
//!    at the bound; that service gets no later call in the sequence.
//! 5. **Per service, the order always holds**: `stopping` → `stop` →
//!    `stopped` (and `starting` → `start` → `started`): phases are barriers,
//!    and a later call is made only once the earlier one ended or was
//!    dropped. `stop()` returns only after `stopped()` has fired.
//! 6. **An outcome is what happened**: a call that returned is reported as
//!    what it returned, whatever the budget did afterwards.
//! 7. **Each sequence runs once** ([`Once`](crate::host::inner::Once)), and
//!    its result is published once: by the sequence, or by the keeper if it
//!    took over — whoever claims the [`record::Record`] first. The other side
//!    then does nothing more.
//! 8. **Lifetime tokens are fired off the engine's task** (their callbacks
//!    are user code), on a blocking thread, waited for within the budget —
//!    except `stopped()`, the last step, fired by the engine itself: nothing
//!    after it needs protecting, and the keeper bounds it (invariant 1).

pub(crate) mod budget;
pub(crate) mod call;
pub(crate) mod keeper;
pub(crate) mod outcome;
pub(crate) mod phase;
pub(crate) mod record;
pub(crate) mod runner;
pub(crate) mod start;
pub(crate) mod stop;
pub(crate) mod tasks;

use budget::Budget;

use std::time::Duration;

use crate::host::error::{FailureKind, HostError};
use crate::host::events::Sequence;
use crate::host::hub::Hub;
use crate::host::report::RunOutcome;

/// Runs `f` (which cancels a lifetime token, running its callbacks) on a
/// blocking thread and waits for it within `budget` (invariant 8); `false`
/// if given up on.
pub(crate) async fn fire_lifetime(budget: &mut Budget, f: impl FnOnce() + Send + 'static) -> bool {
    let mut handle = tokio::task::spawn_blocking(f);
    budget.wait(&mut handle).await.is_some()
}

/// Emits the end of `sequence` after `duration`, whose result is `error`
/// (none: it succeeded); `stopped` and `cancelled` are a stop's tallies
/// (zero for a start). The one place a sequence's outcome and its failure
/// counts are worked out (start, stop, and the keeper's stop).
pub(crate) fn sequence_ended(
    events: &Hub,
    sequence: Sequence,
    error: Option<&HostError>,
    [stopped, cancelled]: [usize; 2],
    by_keeper: bool,
    duration: Duration,
) {
    let failures = error.map_or(&[][..], HostError::failures);
    let timed_out = failures
        .iter()
        .filter(|f| {
            matches!(
                f.kind(),
                FailureKind::TimedOut | FailureKind::Abandoned { .. }
            )
        })
        .count();
    let outcome = match error {
        None => RunOutcome::Ok,
        Some(e) if e.exit_code() == 124 => RunOutcome::TimedOut,
        // A stop request (or the caller) cut it short: not a failure.
        Some(e) if e.is_only_cancellation() => RunOutcome::Cancelled,
        Some(_) => RunOutcome::Failed,
    };
    events.sequence_ended(
        sequence,
        outcome,
        error.map(ToString::to_string),
        [stopped, failures.len() - timed_out, timed_out, cancelled],
        by_keeper,
        duration,
    );
}
