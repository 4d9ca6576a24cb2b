//! Stop: the exact lifecycle order, phases that always run, stop once.

use std::sync::Arc;
use std::time::Duration;

use apphost::host::{FailureKind, Host, HostState, LifecyclePhase};
use apphost::{CancelReason, CancellationToken, CancellationTokenSource};

use crate::support::{Act, Fake, Log, events};

/// The contract (item 4 of the issue): the whole life of a three-service host.
#[rustfmt::skip]
const LIFECYCLE: &[&str] = &[
    "starting:A", "starting:B", "starting:C",
    "start:A", "start:B", "start:C",
    "started:A", "started:B", "started:C",
    "app:started",
    "stopping:C", "stopping:B", "stopping:A",
    "app:stopping",
    "stop:C", "stop:B", "stop:A",
    "stopped:C", "stopped:B", "stopped:A",
    "app:stopped",
];

async fn three_service_lifecycle(concurrent: bool) -> Vec<String> {
    let log = Log::new();
    let host = Host::builder()
        .add_hosted_service(Fake::new("A", &log))
        .add_hosted_service(Fake::new("B", &log))
        .add_hosted_service(Fake::new("C", &log))
        .configure_options(|o| {
            o.services_start_concurrently = concurrent;
            o.services_stop_concurrently = concurrent;
        })
        .build()
        .unwrap();
    log.watch_lifetime(host.lifetime());
    host.start(CancellationToken::none()).await.unwrap();
    host.stop(CancellationToken::none()).await.unwrap();
    assert_eq!(host.lifetime().state(), HostState::Stopped);
    log.events()
}

#[tokio::test]
async fn lifecycle_of_three_services_follows_the_documented_order() {
    assert_eq!(three_service_lifecycle(false).await, events(LIFECYCLE));
}

#[tokio::test]
async fn lifecycle_order_holds_when_services_run_concurrently() {
    // The calls of a phase are spawned in order and each fake logs on its
    // first poll; on a current-thread runtime they run in spawn order.
    assert_eq!(three_service_lifecycle(true).await, events(LIFECYCLE));
}

#[tokio::test]
async fn a_stop_request_fires_stopping_first_then_wait_for_shutdown_stops_in_order() {
    let log = Log::new();
    let host = Host::builder()
        .add_hosted_service(Fake::new("A", &log))
        .add_hosted_service(Fake::new("B", &log))
        .build()
        .unwrap();
    log.watch_lifetime(host.lifetime());
    host.start(CancellationToken::none()).await.unwrap();
    let waiting = tokio::spawn(host.wait_for_shutdown());

    host.lifetime().stop_application();
    waiting.await.unwrap().unwrap();

    let log = log.events();
    let at = log.iter().position(|e| e == "app:stopping").unwrap();
    assert_eq!(
        log[at..],
        events(&[
            "app:stopping",
            "stopping:B",
            "stopping:A",
            "stop:B",
            "stop:A",
            "stopped:B",
            "stopped:A",
            "app:stopped"
        ])
    );
}

#[tokio::test]
async fn stop_waits_for_stopping_callbacks_before_stopping_services() {
    let log = Log::new();
    let host = Host::builder()
        .add_hosted_service(Fake::new("A", &log))
        .build()
        .unwrap();
    let slow = log.clone();
    host.lifetime()
        .stopping()
        .register(move || {
            // A slow callback, on the host's blocking thread.
            std::thread::sleep(Duration::from_millis(30));
            slow.push("slow callback done");
        })
        .detach();

    host.start(CancellationToken::none()).await.unwrap();
    host.stop(CancellationToken::none()).await.unwrap();

    let log = log.events();
    let done = log.iter().position(|e| e == "slow callback done").unwrap();
    let stop = log.iter().position(|e| e == "stop:A").unwrap();
    assert!(done < stop, "{log:?}");
}

#[tokio::test]
async fn every_stop_phase_runs_and_all_errors_are_collected_in_phase_order() {
    let log = Log::new();
    let host = Host::builder()
        .add_hosted_service(Fake::new("A", &log).on("stopping", Act::Fail("one")))
        .add_hosted_service(Fake::new("B", &log).on("stop", Act::Fail("two")))
        .add_hosted_service(Fake::new("C", &log).on("stopped", Act::Panic("three")))
        .build()
        .unwrap();
    host.start(CancellationToken::none()).await.unwrap();

    let error = host.stop(CancellationToken::none()).await.unwrap_err();

    let got: Vec<(Option<&str>, LifecyclePhase)> = error
        .failures()
        .iter()
        .map(|f| (f.service(), f.phase()))
        .collect();
    assert_eq!(
        got,
        [
            (Some("A"), LifecyclePhase::Stopping),
            (Some("B"), LifecyclePhase::Stop),
            (Some("C"), LifecyclePhase::Stopped),
        ]
    );
    assert_eq!(
        error.to_string(),
        "3 failures: stopping of `A` failed: one; stop of `B` failed: two; stopped of `C` panicked: three"
    );
    // Every service still got every call.
    for phase in ["stopping", "stop", "stopped"] {
        for name in ["A", "B", "C"] {
            assert!(log.events().contains(&format!("{phase}:{name}")));
        }
    }
    assert!(host.lifetime().stopped().is_cancelled());
}

#[tokio::test]
async fn calling_stop_twice_does_no_work_twice_and_returns_the_same_result() {
    let log = Log::new();
    let host = Host::builder()
        .add_hosted_service(Fake::new("A", &log).on("stop", Act::Fail("flush failed")))
        .build()
        .unwrap();
    host.start(CancellationToken::none()).await.unwrap();

    let (first, second) = tokio::join!(
        host.stop(CancellationToken::none()),
        host.stop(CancellationToken::none())
    );
    let third = host.stop(CancellationToken::none()).await;

    let stops = log.events().iter().filter(|e| *e == "stop:A").count();
    assert_eq!(stops, 1);
    for result in [first, second, third] {
        assert_eq!(
            result.unwrap_err().to_string(),
            "stop of `A` failed: flush failed"
        );
    }
}

#[tokio::test]
async fn stop_before_start_calls_no_service_but_fires_the_tokens() {
    let log = Log::new();
    let host = Host::builder()
        .add_hosted_service(Fake::new("A", &log))
        .build()
        .unwrap();
    log.watch_lifetime(host.lifetime());

    host.stop(CancellationToken::none()).await.unwrap();

    assert_eq!(log.events(), events(&["app:stopping", "app:stopped"]));
}

#[tokio::test]
async fn stop_application_alone_does_not_stop_services() {
    let log = Log::new();
    let host = Host::builder()
        .add_hosted_service(Fake::new("A", &log))
        .build()
        .unwrap();
    host.start(CancellationToken::none()).await.unwrap();

    host.lifetime().stop_application();
    tokio::task::yield_now().await;

    assert!(!log.events().contains(&"stop:A".to_owned()));
    assert_eq!(host.lifetime().state(), HostState::Started);
    host.stop(CancellationToken::none()).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn concurrent_stop_overlaps_the_services_stops() {
    let log = Log::new();
    let delay = Act::Delay(Duration::from_secs(1));
    let host = Host::builder()
        .add_hosted_service(Fake::new("A", &log).on("stop", delay.clone()))
        .add_hosted_service(Fake::new("B", &log).on("stop", delay))
        .configure_options(|o| o.services_stop_concurrently = true)
        .build()
        .unwrap();
    host.start(CancellationToken::none()).await.unwrap();
    let t0 = tokio::time::Instant::now();

    host.stop(CancellationToken::none()).await.unwrap();

    assert_eq!(t0.elapsed(), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn sequential_stop_runs_in_reverse_and_waits_for_each() {
    let log = Log::new();
    let delay = Act::Delay(Duration::from_secs(1));
    let host = Host::builder()
        .add_hosted_service(Fake::new("A", &log).on("stop", delay.clone()))
        .add_hosted_service(Fake::new("B", &log).on("stop", delay))
        .build()
        .unwrap();
    host.start(CancellationToken::none()).await.unwrap();
    let t0 = tokio::time::Instant::now();

    let stop = tokio::spawn(host.stop(CancellationToken::none()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(log.events().ends_with(&events(&["stopping:A", "stop:B"])));
    stop.await.unwrap().unwrap();

    assert_eq!(t0.elapsed(), Duration::from_secs(2));
}

#[tokio::test]
async fn stop_during_start_cancels_the_start_and_stops_what_started() {
    let log = Log::new();
    let b = Arc::new(Fake::new("B", &log).on("start", Act::WaitToken));
    let host = Host::builder()
        .add_hosted_service(Fake::new("A", &log))
        .add_hosted_service(Arc::clone(&b))
        .build()
        .unwrap();

    let start = tokio::spawn(host.start(CancellationToken::none()));
    while b.token("start").is_none() {
        tokio::task::yield_now().await;
    }
    host.stop(CancellationToken::none()).await.unwrap();
    let error = start.await.unwrap().unwrap_err();

    assert!(matches!(
        error.failures()[0].kind(),
        FailureKind::Cancelled(_)
    ));
    assert!(
        log.events()
            .ends_with(&events(&["stopping:A", "stop:A", "stopped:A"]))
    );
    assert!(!log.events().contains(&"stop:B".to_owned()));
}

#[tokio::test(start_paused = true)]
async fn cancelling_the_callers_token_cuts_the_stop_short() {
    let log = Log::new();
    let a = Arc::new(Fake::new("A", &log).on("stop", Act::WaitToken));
    let host = Host::builder()
        .add_hosted_service(Arc::clone(&a))
        .configure_options(|o| o.shutdown_timeout = Duration::from_secs(60))
        .build()
        .unwrap();
    host.start(CancellationToken::none()).await.unwrap();
    let second_signal = CancellationTokenSource::new();
    let t0 = tokio::time::Instant::now();

    let stop = tokio::spawn(host.stop(second_signal.token()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    second_signal.cancel_with(CancelReason::Signal(2));
    // The service honoured its token: what the caller asked for, not a failure.
    stop.await.unwrap().unwrap();

    assert!(t0.elapsed() < Duration::from_secs(2));
    assert_eq!(
        a.token("stop").unwrap().reason(),
        Some(CancelReason::Signal(2))
    );
}
