//! [`SystemdLifetime`]: a host's life told to systemd, from its lifecycle
//! events.
//!
//! Every message but the watchdog's ping follows the host's event stream
//! (the hub's sinks, `host/hub.rs`), so `systemctl status` tells what the
//! log and the report tell:
//!
//! | event | sent |
//! |---|---|
//! | (attach) | `STATUS=starting` |
//! | state `started` | `READY=1` (with `MAINPID` under a wrapper), `STATUS=running` |
//! | stop requested, or state `stopping` (the first of them) | `STOPPING=1`, `STATUS=stopping`, `EXTEND_TIMEOUT_USEC` |
//! | stop budget exceeded | `STATUS=stopping (budget spent)` |
//! | call abandoned | `STATUS=stopping (`name` abandoned in stop)` |
//! | stop sequence ended | `STATUS=stopped`, or `STATUS=stopped (timed_out: …)` |
//! | configuration reloaded / rejected | `READY=1` after [`SystemdLifetime::reloading`], `STATUS=running (…)` |
//!
//! # Lock
//!
//! One mutex, `reported`, orders READY against STOPPING: a message is sent
//! under it, so READY=1 can never follow STOPPING=1 and no watchdog ping
//! follows STOPPING=1, whatever threads emit the events. Events are emitted
//! inside the host's state lock; this mutex is taken after it, and nothing
//! here takes a host lock, so the order is always state → `reported`.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::{SystemdNotifier, Watchdog};
use crate::host::{
    ApplicationLifetime, BudgetOwner, HostState, LifecycleEvent, RunOutcome, Sequence,
};

/// Reports a host's life to systemd, following its lifecycle events (see
/// [`crate::systemd`]):
///
/// | event | sent |
/// |---|---|
/// | (attach) | `STATUS=starting` |
/// | state `started` | `READY=1` (with `MAINPID` under a wrapper), `STATUS=running` |
/// | stop requested, or state `stopping` (the first of them) | `STOPPING=1`, `STATUS=stopping`, `EXTEND_TIMEOUT_USEC` |
/// | stop budget exceeded | `STATUS=stopping (budget spent)` |
/// | call abandoned | ``STATUS=stopping (`name` abandoned in stop)`` |
/// | stop sequence ended | `STATUS=stopped`, or `STATUS=stopped (timed out: …)` |
/// | configuration reloaded / rejected | `READY=1` after [`reloading`](Self::reloading), `STATUS=running (…)` |
///
/// # Examples
///
/// ```
/// use apphost::Host;
/// use apphost::systemd::{SystemdLifetime, SystemdNotifier};
///
/// let host = Host::builder().build().unwrap();
/// let _systemd = SystemdLifetime::attach(
///     host.lifetime(),
///     SystemdNotifier::from_env(),
///     apphost::systemd::Watchdog::from_env(),
///     host.options().shutdown_timeout,
/// );
/// ```
#[derive(Debug, Clone)]
pub struct SystemdLifetime {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    notifier: SystemdNotifier,
    reported: Mutex<Reported>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Nothing,
    Ready,
    Stopping,
}

#[derive(Debug)]
struct Reported {
    stage: Stage,
    /// `RELOADING=1` was sent and its `READY=1` is owed.
    reloading: bool,
}

impl Shared {
    fn reported(&self) -> MutexGuard<'_, Reported> {
        self.reported.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One event's messages (see the module docs).
    fn follow(&self, event: &LifecycleEvent, stop_budget: &dyn Fn() -> Duration) {
        let notifier = &self.notifier;
        let mut reported = self.reported();
        match event {
            LifecycleEvent::StateChanged {
                state: HostState::Started,
                ..
            } if reported.stage == Stage::Nothing => {
                reported.stage = Stage::Ready;
                notifier.notify(&ready_message());
                notifier.status("running");
            }
            LifecycleEvent::StopRequested { .. }
            | LifecycleEvent::StateChanged {
                state: HostState::Stopping,
                ..
            } if reported.stage != Stage::Stopping => {
                reported.stage = Stage::Stopping;
                notifier.stopping();
                notifier.status("stopping");
                notifier.extend_timeout(stop_budget().saturating_add(Duration::from_secs(1)));
            }
            LifecycleEvent::BudgetExceeded {
                budget:
                    BudgetOwner::Sequence {
                        sequence: Sequence::Stop,
                    },
                ..
            } => notifier.status("stopping (budget spent)"),
            LifecycleEvent::Abandoned { service, phase, .. } => {
                notifier.status(&format!("stopping (`{service}` abandoned in {phase})"));
            }
            LifecycleEvent::SequenceEnded {
                sequence: Sequence::Stop,
                outcome,
                error,
                ..
            } => match (outcome, error) {
                (RunOutcome::Ok, _) | (_, None) => notifier.status("stopped"),
                (outcome, Some(error)) => {
                    let outcome = match outcome {
                        RunOutcome::TimedOut => "timed out",
                        RunOutcome::Cancelled => "cancelled",
                        _ => "failed",
                    };
                    notifier.status(&format!("stopped ({outcome}: {error})"));
                }
            },
            LifecycleEvent::ConfigReloaded { .. } => {
                reloaded(notifier, &mut reported, "running (configuration reloaded)");
            }
            LifecycleEvent::ConfigReloadRejected { error, .. } => {
                let status = format!("running (reload rejected: {error})");
                reloaded(notifier, &mut reported, &status);
            }
            _ => {}
        }
    }
}

/// A reload's verdict: `READY=1` again if the service had reported ready
/// and a `RELOADING=1` is owed its answer (never once stopping began), and
/// the status line.
fn reloaded(notifier: &SystemdNotifier, reported: &mut Reported, status: &str) {
    let owed = std::mem::take(&mut reported.reloading);
    match reported.stage {
        Stage::Ready => {
            if owed {
                notifier.ready();
            }
            notifier.status(status);
        }
        Stage::Nothing => notifier.status(status),
        Stage::Stopping => {}
    }
}

impl SystemdLifetime {
    /// Follows the host of `lifetime` (see the table above):
    /// `STATUS=starting` now, `READY=1` when started unless stopping
    /// already began; `STOPPING=1`, `STATUS=stopping` and
    /// `EXTEND_TIMEOUT_USEC` (the `stop_budget` plus one second) when
    /// stopping begins; `STATUS=stopped` at the end. Starts the watchdog
    /// thread when `watchdog` is set; it stops pinging once stopping begins.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use apphost::systemd::{SystemdLifetime, SystemdNotifier};
    /// let host = apphost::Host::builder().build().unwrap();
    /// let systemd = SystemdLifetime::attach(host.lifetime(), SystemdNotifier::disabled(), None, Duration::from_secs(5));
    /// systemd.notifier().status("custom status");
    /// ```
    pub fn attach(
        lifetime: &ApplicationLifetime,
        notifier: SystemdNotifier,
        watchdog: Option<Watchdog>,
        stop_budget: Duration,
    ) -> SystemdLifetime {
        Self::attach_with_budget(lifetime, notifier, watchdog, move || stop_budget)
    }

    /// [`attach`](Self::attach), with the stop budget read when stopping
    /// begins — so a budget changed by a configuration reload is the one
    /// systemd is told about.
    ///
    /// # Examples
    ///
    /// ```
    /// # use apphost::systemd::{SystemdLifetime, SystemdNotifier};
    /// let host = apphost::Host::builder().build().unwrap();
    /// let reloads = host.reloads();
    /// let _systemd = SystemdLifetime::attach_with_budget(
    ///     host.lifetime(),
    ///     SystemdNotifier::disabled(),
    ///     None,
    ///     move || reloads.current().host_options().unwrap_or_default().shutdown_timeout,
    /// );
    /// ```
    pub fn attach_with_budget(
        lifetime: &ApplicationLifetime,
        notifier: SystemdNotifier,
        watchdog: Option<Watchdog>,
        stop_budget: impl Fn() -> Duration + Send + Sync + 'static,
    ) -> SystemdLifetime {
        let shared = Arc::new(Shared {
            notifier,
            reported: Mutex::new(Reported {
                stage: Stage::Nothing,
                reloading: false,
            }),
        });
        shared.notifier.status("starting");
        {
            let shared = Arc::clone(&shared);
            lifetime
                .events()
                .attach(Box::new(move |event| shared.follow(event, &stop_budget)));
        }
        if let (Some(watchdog), true) = (watchdog, shared.notifier.is_enabled()) {
            if watchdog.is_floored() {
                tracing::warn!(target: "apphost::systemd", "WATCHDOG_USEC={} asks for a ping every {:?}; pinging every {:?} instead (the floor)", watchdog.interval().as_micros(), watchdog.interval() / 2, watchdog.ping_interval());
            }
            let (shared, stopping) = (Arc::clone(&shared), lifetime.stopping());
            let spawned = std::thread::Builder::new()
                .name("apphost-watchdog".into())
                .spawn(move || {
                    // The first ping at once, then every half interval, from
                    // a thread of its own: service work cannot delay it.
                    loop {
                        {
                            let reported = shared.reported();
                            if reported.stage == Stage::Stopping {
                                break;
                            }
                            shared.notifier.watchdog();
                        }
                        if stopping.wait_timeout(watchdog.ping_interval()) {
                            break;
                        }
                    }
                });
            if let Err(error) = spawned {
                tracing::warn!(target: "apphost::systemd", "could not start the watchdog thread: {error}");
            }
        }
        SystemdLifetime { shared }
    }

    /// `RELOADING=1` with `MONOTONIC_USEC` (`Type=notify-reload`), and a
    /// status line. The host's verdict on the reload
    /// ([`Host::reload`](crate::host::Host::reload)) answers it with
    /// `READY=1` and `STATUS=running (…)`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use apphost::systemd::{SystemdLifetime, SystemdNotifier};
    /// let host = apphost::Host::builder().build().unwrap();
    /// let systemd = SystemdLifetime::attach(host.lifetime(), SystemdNotifier::disabled(), None, Duration::from_secs(5));
    /// systemd.reloading();
    /// ```
    pub fn reloading(&self) {
        let mut reported = self.shared.reported();
        if reported.stage == Stage::Stopping {
            return;
        }
        reported.reloading = true;
        self.shared.notifier.reloading();
        self.shared.notifier.status("reloading configuration");
    }

    /// The notifier, for custom `STATUS=` lines.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use apphost::systemd::{SystemdLifetime, SystemdNotifier};
    /// let host = apphost::Host::builder().build().unwrap();
    /// let systemd = SystemdLifetime::attach(host.lifetime(), SystemdNotifier::disabled(), None, Duration::from_secs(5));
    /// assert!(!systemd.notifier().is_enabled());
    /// ```
    pub fn notifier(&self) -> &SystemdNotifier {
        &self.shared.notifier
    }
}

/// `READY=1`, with `MAINPID` when systemd started another process than us
/// (a wrapper script that runs us as its child).
fn ready_message() -> String {
    let own = std::process::id();
    match std::env::var("SYSTEMD_EXEC_PID") {
        Ok(pid) if pid.trim().parse::<u32>().is_ok_and(|pid| pid != own) => {
            format!("READY=1\nMAINPID={own}")
        }
        _ => "READY=1".to_owned(),
    }
}
