//! OS signals: the console lifetime's graceful stop, escalation, and exit.
//!
//! [`ConsoleLifetime`] listens on a dedicated thread (signal-hook), so it
//! keeps working whatever the tokio runtime is doing — blocked, panicking or
//! shutting down:
//!
//! | signal | effect |
//! |---|---|
//! | first SIGINT, SIGTERM or SIGQUIT | graceful stop: `stop_application_with(Signal(n))` |
//! | second, while stopping | the stop token is cancelled (`Signal(n)`): services drop their graceful work, the host finishes at once |
//! | third | the process exits at once with status 128 + n |
//! | SIGHUP | runs the reload handler set with [`ConsoleLifetime::on_reload`] (the console runner re-reads the configuration); without one, logged and ignored — it never kills the process |
//!
//! Signals arriving within [`DEBOUNCE`] of the previous one count as one, so
//! a supervisor's or script's burst (`kill` sent to a process group, a `for`
//! loop of `kill`s) is one request, while a person's second Ctrl+C is an
//! escalation. After the host has finished, any further stop signal (past
//! the burst window) exits at once: the process never becomes unkillable from
//! the keyboard.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use signal_hook::consts::signal::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::cancel::{CancelReason, CancellationToken, CancellationTokenSource};
use crate::host::ApplicationLifetime;

/// Signals closer than this to the previous one count as the same request.
pub const DEBOUNCE: Duration = Duration::from_millis(100);

/// What one stop signal asks for, by its place in the sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escalation {
    /// Within [`DEBOUNCE`] of the previous signal: part of the same request.
    Repeated,
    /// The first request: stop gracefully.
    Graceful,
    /// The second: abandon the graceful stop.
    Abandon,
    /// The third: exit the process now.
    Exit,
}

/// Counts stop signals into [`Escalation`] steps. Pure, so the policy is
/// testable without sending signals.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use apphost::signal::{Escalation, EscalationPolicy};
///
/// let mut policy = EscalationPolicy::default();
/// let t = Instant::now();
/// assert_eq!(policy.on_signal(t), Escalation::Graceful);
/// assert_eq!(policy.on_signal(t + Duration::from_millis(5)), Escalation::Repeated);
/// assert_eq!(policy.on_signal(t + Duration::from_secs(1)), Escalation::Abandon);
/// assert_eq!(policy.on_signal(t + Duration::from_secs(2)), Escalation::Exit);
/// ```
#[derive(Debug, Clone, Default)]
pub struct EscalationPolicy {
    requests: u32,
    last: Option<Instant>,
}

impl EscalationPolicy {
    /// Accounts for a stop signal received at `now`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Instant;
    /// use apphost::signal::{Escalation, EscalationPolicy};
    ///
    /// let mut policy = EscalationPolicy::default();
    /// assert_eq!(policy.on_signal(Instant::now()), Escalation::Graceful);
    /// ```
    pub fn on_signal(&mut self, now: Instant) -> Escalation {
        let repeated = self
            .last
            .is_some_and(|last| now.saturating_duration_since(last) < DEBOUNCE);
        self.last = Some(now);
        if repeated {
            return Escalation::Repeated;
        }
        self.requests = self.requests.saturating_add(1);
        match self.requests {
            1 => Escalation::Graceful,
            2 => Escalation::Abandon,
            _ => Escalation::Exit,
        }
    }
}

/// The default lifetime of a process run from a console or a supervisor:
/// turns SIGINT, SIGTERM and SIGQUIT into a graceful stop, escalates on
/// repeated signals, and ignores SIGHUP. See the [module docs](self).
///
/// Dropping it (when the host has finished) keeps the listener alive, so that
/// a later stop signal exits the process at once instead of being swallowed.
///
/// # Caveats
///
/// Signal handlers are process-wide: install one `ConsoleLifetime` per
/// process. Handlers installed by signal-hook are never removed, so the
/// listener stays for the life of the process.
///
/// # Examples
///
/// ```no_run
/// use apphost::{CancellationToken, Host};
/// use apphost::signal::ConsoleLifetime;
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let host = Host::builder().build()?;
/// let console = ConsoleLifetime::install(host.lifetime().clone())?;
/// host.start(CancellationToken::none()).await?;
/// host.lifetime().stopping().cancelled().await;
/// // A second signal cancels this token and cuts the stop short.
/// host.stop(console.abandon_token()).await?;
/// # Ok(())
/// # }
/// ```
pub struct ConsoleLifetime {
    abandon: CancellationTokenSource,
    finished: Arc<AtomicBool>,
    reload: Arc<Mutex<Option<ReloadHandler>>>,
}

/// What SIGHUP runs.
type ReloadHandler = Arc<dyn Fn() + Send + Sync>;

impl ConsoleLifetime {
    /// Starts listening for SIGINT, SIGTERM, SIGQUIT and SIGHUP on a
    /// dedicated thread, acting on `lifetime`.
    ///
    /// # Errors
    ///
    /// The signal handlers or the thread could not be installed.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let host = apphost::Host::builder().build().unwrap();
    /// let _console = apphost::signal::ConsoleLifetime::install(host.lifetime().clone()).unwrap();
    /// ```
    pub fn install(lifetime: ApplicationLifetime) -> io::Result<ConsoleLifetime> {
        Self::install_caught(CaughtSignals::catch()?, lifetime)
    }

    /// [`install`](Self::install) with handlers that were installed earlier
    /// by [`CaughtSignals::catch`]: signals that arrived in between are
    /// acted on now (a burst counts once), none of them killed the process.
    pub(crate) fn install_caught(
        caught: CaughtSignals,
        lifetime: ApplicationLifetime,
    ) -> io::Result<ConsoleLifetime> {
        let mut signals = caught.0;
        let abandon = CancellationTokenSource::new();
        let finished = Arc::new(AtomicBool::new(false));
        // The thread that will make the graceful stop request, started now:
        // waking a parked thread is much faster than creating one when the
        // signal comes (SIGTERM-to-exit latency is a supervisor's metric).
        let (request, requested) = mpsc::channel::<i32>();
        let requester = lifetime.clone();
        let graceful = std::thread::Builder::new()
            .name("apphost-stop-request".into())
            .spawn(move || {
                if let Ok(signal) = requested.recv() {
                    requester.stop_application_with(CancelReason::Signal(signal));
                }
            })
            .ok()
            .map(|_| request);
        let reload: Arc<Mutex<Option<ReloadHandler>>> = Arc::default();
        let mut listener = Listener {
            lifetime,
            abandon: abandon.clone(),
            finished: finished.clone(),
            policy: EscalationPolicy::default(),
            graceful,
            reload: spawn_reloader(reload.clone()),
        };
        std::thread::Builder::new()
            .name("apphost-signals".into())
            .spawn(move || {
                for signal in signals.forever() {
                    listener.on_signal(signal);
                }
            })?;
        Ok(ConsoleLifetime {
            abandon,
            finished,
            reload,
        })
    }

    /// Sets what SIGHUP does: `handler` runs on a thread of its own (never
    /// the signal thread), one reload at a time, in the order the signals
    /// came. A panic in it is logged; the process keeps running.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let host = apphost::Host::builder().build().unwrap();
    /// let console = apphost::signal::ConsoleLifetime::install(host.lifetime().clone()).unwrap();
    /// console.on_reload(|| tracing::info!("re-reading the configuration"));
    /// ```
    pub fn on_reload(&self, handler: impl Fn() + Send + Sync + 'static) {
        *self.reload.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(handler));
    }

    /// Cancelled (with `Signal(n)`) by the second stop signal. Pass it to
    /// [`Host::stop`](crate::Host::stop): the host links it into the stop
    /// token, so services drop their graceful work and the stop ends at once.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let host = apphost::Host::builder().build().unwrap();
    /// let console = apphost::signal::ConsoleLifetime::install(host.lifetime().clone()).unwrap();
    /// assert!(!console.abandon_token().is_cancelled());
    /// ```
    pub fn abandon_token(&self) -> CancellationToken {
        self.abandon.token()
    }
}

impl Drop for ConsoleLifetime {
    fn drop(&mut self) {
        self.finished.store(true, Ordering::SeqCst);
    }
}

impl fmt::Debug for ConsoleLifetime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsoleLifetime")
            .field("abandoned", &self.abandon.is_cancelled())
            .finish()
    }
}

/// SIGINT, SIGTERM, SIGQUIT and SIGHUP caught (their handlers installed)
/// but not yet acted on: [`console::run`](crate::console::run) installs
/// them first thing, before loading the configuration, so a SIGHUP in the
/// set-up window cannot kill the process with the default disposition, and
/// a stop signal there is remembered and honoured once the host exists.
pub(crate) struct CaughtSignals(Signals);

impl CaughtSignals {
    /// Installs the handlers now; signals are recorded until
    /// [`ConsoleLifetime::install_caught`] starts listening.
    pub(crate) fn catch() -> io::Result<CaughtSignals> {
        Signals::new([SIGINT, SIGTERM, SIGQUIT, SIGHUP]).map(CaughtSignals)
    }
}

impl fmt::Debug for CaughtSignals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CaughtSignals")
    }
}

/// The state of the listening thread.
struct Listener {
    lifetime: ApplicationLifetime,
    abandon: CancellationTokenSource,
    finished: Arc<AtomicBool>,
    policy: EscalationPolicy,
    /// Wakes the pre-started stop-request thread; `None` once used, or if
    /// that thread could not be started.
    graceful: Option<mpsc::Sender<i32>>,
    /// Wakes the reload thread; `None` if it could not be started.
    reload: Option<mpsc::Sender<()>>,
}

/// Starts the thread that runs reload handlers, one SIGHUP at a time.
fn spawn_reloader(handler: Arc<Mutex<Option<ReloadHandler>>>) -> Option<mpsc::Sender<()>> {
    let (request, requested) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("apphost-reload".into())
        .spawn(move || {
            while requested.recv().is_ok() {
                let current = handler.lock().unwrap_or_else(|e| e.into_inner()).clone();
                match current {
                    Some(reload) => {
                        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| reload())).is_err() {
                            tracing::error!(target: "apphost::lifetime", "the reload handler panicked; the previous configuration stays in force");
                        }
                    }
                    None => tracing::info!(target: "apphost::lifetime", "received SIGHUP, but no reload handler is set; ignoring it"),
                }
            }
        })
        .ok()
        .map(|_| request)
}

impl Listener {
    fn on_signal(&mut self, signal: i32) {
        let name = CancelReason::Signal(signal);
        if signal == SIGHUP {
            tracing::info!(target: "apphost::lifetime", "received {name}: reloading");
            if self
                .reload
                .as_ref()
                .is_none_or(|reload| reload.send(()).is_err())
            {
                tracing::warn!(target: "apphost::lifetime", "the reload thread is not running; ignoring {name}");
            }
            return;
        }
        let escalation = self.policy.on_signal(Instant::now());
        // A burst's tail still counts as one request after the host has
        // finished: a fast stop must not turn the rest of a burst into an exit.
        if escalation != Escalation::Repeated && self.finished.load(Ordering::SeqCst) {
            exit_now(signal, "the host has already stopped");
        }
        match escalation {
            Escalation::Repeated => {
                tracing::debug!(target: "apphost::lifetime", "received {name} again within {DEBOUNCE:?}: same request");
            }
            Escalation::Graceful => {
                tracing::info!(target: "apphost::lifetime", "received {name}: stopping gracefully (send it again to stop at once)");
                // Stopping callbacks run inside this call and may block: keep
                // them off the listening thread so the next signal is heard.
                let sent = self
                    .graceful
                    .take()
                    .is_some_and(|tx| tx.send(signal).is_ok());
                if !sent {
                    let lifetime = self.lifetime.clone();
                    crate::sync::run_on_new_thread("apphost-stop-request", move || {
                        lifetime.stop_application_with(CancelReason::Signal(signal))
                    });
                }
            }
            Escalation::Abandon => {
                // Its line is written from the event (`host/log.rs`).
                self.escalated(signal, crate::host::Escalation::Second);
                let abandon = self.abandon.clone();
                crate::sync::run_on_new_thread("apphost-stop-request", move || {
                    abandon.cancel_with(CancelReason::Signal(signal))
                });
            }
            Escalation::Exit => {
                // Seen by in-process subscribers only: the process exits now,
                // and no report file is written.
                // Its line is written from the event (`host/log.rs`).
                self.escalated(signal, crate::host::Escalation::Third);
                signal_hook::low_level::exit(128 + signal)
            }
        }
    }

    fn escalated(&self, signal: i32, escalation: crate::host::Escalation) {
        self.lifetime
            .events()
            .emit_at(|at| crate::host::LifecycleEvent::SignalEscalated {
                signal,
                escalation,
                at,
            });
    }
}

/// Exits the process with 128 + `signal`, the shell's convention for "killed
/// by signal", without running anything else.
fn exit_now(signal: i32, why: &str) -> ! {
    tracing::error!(target: "apphost::lifetime", "received {}: {why}; exiting now with status {}", CancelReason::Signal(signal), 128 + signal);
    signal_hook::low_level::exit(128 + signal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_counts_as_one_request() {
        let mut policy = EscalationPolicy::default();
        let start = Instant::now();
        assert_eq!(policy.on_signal(start), Escalation::Graceful);
        for i in 1..100 {
            let at = start + Duration::from_micros(i * 500);
            assert_eq!(policy.on_signal(at), Escalation::Repeated);
        }
    }

    #[test]
    fn spaced_signals_escalate_and_stay_at_exit() {
        let mut policy = EscalationPolicy::default();
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        assert_eq!(policy.on_signal(at(0)), Escalation::Graceful);
        assert_eq!(policy.on_signal(at(500)), Escalation::Abandon);
        assert_eq!(policy.on_signal(at(550)), Escalation::Repeated);
        assert_eq!(policy.on_signal(at(1000)), Escalation::Exit);
        assert_eq!(policy.on_signal(at(2000)), Escalation::Exit);
    }
}
