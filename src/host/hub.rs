//! The host's event hub: the one place every [`LifecycleEvent`] goes
//! through, and the one stream everything that tells of the lifecycle is
//! fed from. In this order, for each event, on the emitting thread:
//!
//! 1. the host's log line ([`super::log`]);
//! 2. the sinks attached by the deployment (the systemd `STATUS=` lines,
//!    [`crate::systemd::SystemdLifetime`]);
//! 3. under one lock, the report's recorder and the feed of the
//!    subscribers ([`super::subscription`]): a slow subscriber never slows
//!    or blocks the host, it misses events and learns how many.
//!
//! # Cost
//!
//! A call's beginning and its successful end are the hot path (10,000
//! services make 20,000 calls per start and stop). They are emitted, and
//! the clock read for them, only while someone listens ([`Hub::detailed`]):
//! a subscription exists, `host.report_file` is set,
//! `HostBuilder::record_every_call` was called, or DEBUG lines are enabled. Everything else (state changes, failures,
//! abandonment, budgets, signals, reloads) is always emitted, and always in
//! the report.
//!
//! # Locks
//!
//! The feed's mutex (recorder and ring) is taken once per event and never
//! held while user code runs or another lock is taken. Sinks run outside
//! it, on the emitting thread, which may hold the host's state lock: they
//! must not block (a `STATUS=` datagram waits 20 ms at most, once).

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use tokio::time::Instant;

use super::engine::call::Outcome;
use super::error::{FailureKind, LifecyclePhase};
use super::events::{LifecycleEvent, Sequence};
use super::report::{CallOutcome, RunOutcome};
use super::subscription::LifecycleEvents;
use super::subscription::{Feed, FeedState};

/// A synchronous consumer of every event (see the module docs, step 3).
pub(crate) type Sink = Box<dyn Fn(&LifecycleEvent) + Send + Sync>;

/// Where the host's events go: the log, the report's recorder, the
/// deployment's sinks and the subscribers.
pub(crate) struct Hub {
    /// The subscribers' feed, and the report's recorder under its lock.
    feed: Arc<Feed>,
    /// `host.report_file` is set (bit 0), `HostBuilder::record_every_call`
    /// (bit 1): every call is recorded.
    record: AtomicU8,
    /// When the host began starting (or stopping, if it never started).
    origin: OnceLock<Instant>,
    sinks: RwLock<Vec<Sink>>,
    /// Whether `sinks` is not empty (read without the lock).
    has_sinks: AtomicBool,
    /// How many services the host has (for the log's "host starting").
    services: AtomicUsize,
}

impl Hub {
    pub(crate) fn new() -> Arc<Hub> {
        Arc::new(Hub {
            feed: Feed::new(),
            record: AtomicU8::new(0),
            origin: OnceLock::new(),
            sinks: RwLock::new(Vec::new()),
            has_sinks: AtomicBool::new(false),
            services: AtomicUsize::new(0),
        })
    }

    pub(crate) fn subscribe(&self) -> LifecycleEvents {
        self.feed.subscribe()
    }

    /// Attaches `sink`: it sees every event from now on, on the emitting
    /// thread, after the log line and the recorder.
    pub(crate) fn attach(&self, sink: Sink) {
        self.sinks
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(sink);
        self.has_sinks.store(true, Ordering::Release);
    }

    /// Whether every call is recorded (and timed): someone listens.
    pub(crate) fn detailed(&self) -> bool {
        self.record.load(Ordering::Relaxed) != 0
            || self.feed.subscribed()
            || super::log::calls_enabled()
    }

    pub(crate) fn set_report_file(&self, set: bool) {
        if set {
            self.record.fetch_or(1, Ordering::Relaxed);
        } else {
            self.record.fetch_and(!1, Ordering::Relaxed);
        }
    }

    pub(crate) fn set_record_every_call(&self) {
        self.record.fetch_or(2, Ordering::Relaxed);
    }

    pub(crate) fn set_services(&self, n: usize) {
        self.services.store(n, Ordering::Relaxed);
    }

    /// Sets the origin of offsets (the first call wins).
    pub(crate) fn begin(&self) {
        let _ = self.origin.get_or_init(Instant::now);
    }

    /// Time since the origin (zero before it).
    pub(crate) fn now(&self) -> Duration {
        self.offset(Instant::now())
    }

    /// `t` as an offset from the origin (zero before it).
    fn offset(&self, t: Instant) -> Duration {
        self.origin
            .get()
            .map_or(Duration::ZERO, |o| t.saturating_duration_since(*o))
    }

    /// Sends `event` everywhere (see the module docs for the order).
    pub(crate) fn emit(&self, event: LifecycleEvent) {
        super::log::write(&event, self.services.load(Ordering::Relaxed));
        if self.has_sinks.load(Ordering::Acquire) {
            let sinks = self
                .sinks
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for sink in sinks.iter() {
                sink(&event);
            }
        }
        let subscribed = self.feed.subscribed();
        {
            let mut state = self.feed.lock();
            state.recorder.apply(&event);
            state.push(event, subscribed);
        }
        if subscribed {
            self.feed.wake();
        }
    }

    /// [`emit`](Self::emit) with the current offset.
    pub(crate) fn emit_at(&self, make: impl FnOnce(Duration) -> LifecycleEvent) {
        self.emit(make(self.now()));
    }

    /// A call was made at `since` (the engine emits it only while someone
    /// listens: see [`detailed`](Self::detailed)).
    pub(crate) fn call_began(&self, service: &Arc<str>, phase: LifecyclePhase, since: Instant) {
        self.emit(LifecycleEvent::CallBegan {
            service: Arc::clone(service),
            phase,
            at: self.offset(since),
        });
    }

    /// A service call made at `since` ended after `took`: `abandoned` first if it was
    /// given up on, then `call_ended` (see [`call_ended`](Self::call_ended)).
    /// Called where a call's outcome is known: its first poll (the runner),
    /// or the phase that waited for it (`phase.rs`).
    #[inline]
    pub(crate) fn ended(
        &self,
        service: &Arc<str>,
        phase: LifecyclePhase,
        since: Option<Instant>,
        took: Duration,
        outcome: &Outcome,
    ) {
        // The hot path, at the caller: a completed call nobody listens to.
        if outcome.is_completed() && !self.detailed() {
            return;
        }
        self.ended_slow(service, phase, since, took, outcome);
    }

    fn ended_slow(
        &self,
        service: &Arc<str>,
        phase: LifecyclePhase,
        since: Option<Instant>,
        took: Duration,
        outcome: &Outcome,
    ) {
        if let Outcome::Failed(FailureKind::Abandoned { still_running }) = outcome {
            let still_running = *still_running;
            self.emit_at(|at| LifecycleEvent::Abandoned {
                service: Arc::clone(service),
                phase,
                still_running,
                by_keeper: false,
                at,
            });
        }
        self.call_ended(service, phase, since, took, outcome.is_completed(), || {
            CallOutcome::from(outcome)
        });
    }

    /// A call made at `since` (if its clock was read) ended after `took`;
    /// a `completed` one is emitted only while someone listens.
    pub(crate) fn call_ended(
        &self,
        service: &Arc<str>,
        phase: LifecyclePhase,
        since: Option<Instant>,
        took: Duration,
        completed: bool,
        outcome: impl FnOnce() -> CallOutcome,
    ) {
        if completed && !self.detailed() {
            return;
        }
        // The call's own clock gives its offset: no second read.
        let at = match since {
            Some(since) => self.offset(since),
            None => self.now().saturating_sub(took),
        };
        self.emit(LifecycleEvent::CallEnded {
            service: Arc::clone(service),
            phase,
            at,
            duration: took,
            outcome: outcome(),
        });
    }

    /// A sequence ended after `duration`: see
    /// [`LifecycleEvent::SequenceEnded`]; `counts` are `services_stopped`,
    /// `failed`, `timed_out` and `cancelled`.
    pub(crate) fn sequence_ended(
        &self,
        sequence: Sequence,
        outcome: RunOutcome,
        error: Option<String>,
        [services_stopped, failed, timed_out, cancelled]: [usize; 4],
        by_keeper: bool,
        duration: Duration,
    ) {
        self.emit_at(|at| LifecycleEvent::SequenceEnded {
            sequence,
            outcome,
            error,
            services_stopped,
            failed,
            timed_out,
            cancelled,
            by_keeper,
            at,
            duration,
        });
    }

    /// A lifetime callback of `phase` panicked (`outcome` is `panic`), or
    /// the callbacks overran (`timed_out`).
    pub(crate) fn callback_failed(&self, phase: LifecyclePhase, outcome: CallOutcome) {
        self.emit_at(|at| LifecycleEvent::CallbackFailed { phase, outcome, at });
    }

    /// The report's recorder (under the feed's lock: hold it briefly).
    pub(crate) fn recorder(&self) -> std::sync::MutexGuard<'_, FeedState> {
        self.feed.lock()
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.feed.close();
    }
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hub")
            .field("subscribed", &self.feed.subscribed())
            .finish()
    }
}
