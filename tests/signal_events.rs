//! The console lifetime's signal escalation is a lifecycle event: a second
//! stop signal while stopping emits `signal_escalated` (`second`). A test
//! binary of its own: it sends real signals to its own process.

#![cfg(unix)]

use std::time::{Duration, Instant};

use apphost::host::{Escalation, Host, LifecycleEvent};
use apphost::signal::ConsoleLifetime;
use apphost::{CancelReason, CancellationToken};

fn raise(signal: libc::c_int) {
    // SAFETY: raise(3) has no memory-safety preconditions; the handlers
    // installed by `ConsoleLifetime` catch the signal.
    let rc = unsafe { libc::raise(signal) };
    assert_eq!(rc, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_stop_signal_is_a_signal_escalated_event() {
    let builder = Host::builder();
    let mut events = builder.events();
    let host = builder.build().unwrap();
    let console = ConsoleLifetime::install(host.lifetime().clone()).unwrap();
    host.start(CancellationToken::none()).await.unwrap();

    raise(libc::SIGTERM);
    let stopping = host.lifetime().stopping();
    tokio::time::timeout(Duration::from_secs(10), stopping.cancelled())
        .await
        .expect("the first signal requests a stop");
    // Past the burst window: the next one is an escalation.
    std::thread::sleep(Duration::from_millis(300));
    raise(libc::SIGTERM);
    let abandon = console.abandon_token();
    tokio::time::timeout(Duration::from_secs(10), abandon.cancelled())
        .await
        .expect("the second signal cancels the abandon token");
    host.stop(abandon).await.unwrap();

    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut requested, mut escalated) = (false, false);
    while !(requested && escalated) && Instant::now() < deadline {
        match events.try_recv().unwrap() {
            Some(LifecycleEvent::StopRequested { reason, .. }) => {
                requested = reason == CancelReason::Signal(libc::SIGTERM);
            }
            Some(LifecycleEvent::SignalEscalated {
                signal, escalation, ..
            }) => {
                escalated = signal == libc::SIGTERM && escalation == Escalation::Second;
            }
            Some(_) => {}
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    assert!(requested, "a stop_requested event with signal 15");
    assert!(escalated, "a signal_escalated event (second)");
    assert!(host.report().unwrap().forced.is_some());
}
