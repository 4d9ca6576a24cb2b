//! Start: phase order, the start token, start failures and the rollback.

use std::sync::Arc;
use std::time::Duration;

use apphost::host::{BuildError, FailureKind, Host, HostState, HostedService, LifecyclePhase};
use apphost::{CancelReason, CancellationToken, CancellationTokenSource};

use crate::support::{Act, Fake, Log, Worker, events};

#[tokio::test]
async fn start_runs_each_phase_for_all_services_in_registration_order() {
    let log = Log::new();
    let host = Host::builder()
        .add_hosted_service(Fake::new("A", &log))
        .add_hosted_service(Fake::new("B", &log))
        .add_hosted_service(Fake::new("C", &log))
        .build()
        .unwrap();
    log.watch_lifetime(host.lifetime());

    host.start(CancellationToken::none()).await.unwrap();

    assert_eq!(
        log.events(),
        events(&[
            "starting:A",
            "starting:B",
            "starting:C",
            "start:A",
            "start:B",
            "start:C",
            "started:A",
            "started:B",
            "started:C",
            "app:started",
        ])
    );
    assert_eq!(host.lifetime().state(), HostState::Started);
    host.stop(CancellationToken::none()).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn sequential_start_does_not_call_the_next_service_while_one_is_pending() {
    let log = Log::new();
    let host = Host::builder()
        .add_hosted_service(Fake::new("A", &log).on("start", Act::Delay(Duration::from_secs(1))))
        .add_hosted_service(Fake::new("B", &log))
        .build()
        .unwrap();
    let start = tokio::spawn(host.start(CancellationToken::none()));

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        log.events(),
        events(&["starting:A", "starting:B", "start:A"])
    );

    start.await.unwrap().unwrap();
    assert!(log.events().contains(&"start:B".to_owned()));
}

#[tokio::test(start_paused = true)]
async fn concurrent_start_calls_every_service_before_waiting() {
    let log = Log::new();
    let delay = Act::Delay(Duration::from_secs(1));
    let host = Host::builder()
        .add_hosted_service(Fake::new("A", &log).on("start", delay.clone()))
        .add_hosted_service(Fake::new("B", &log).on("start", delay))
        .configure_options(|o| o.services_start_concurrently = true)
        .build()
        .unwrap();
    let t0 = tokio::time::Instant::now();

    host.start(CancellationToken::none()).await.unwrap();

    // Both delays overlapped.
    assert_eq!(t0.elapsed(), Duration::from_secs(1));
    let log = log.events();
    assert_eq!(&log[2..4], &events(&["start:A", "start:B"])[..]);
}

#[tokio::test]
async fn default_hooks_are_not_called() {
    struct Plain(Log);
    impl HostedService for Plain {
        async fn start(&self, _: CancellationToken) -> anyhow::Result<()> {
            self.0.push("start");
            Ok(())
        }
        async fn stop(&self, _: CancellationToken) -> anyhow::Result<()> {
            self.0.push("stop");
            Ok(())
        }
    }
    let log = Log::new();
    let host = Host::builder()
        .add_hosted_service(Plain(log.clone()))
        .build()
        .unwrap();
    assert_eq!(Plain(log.clone()).name(), "Plain");

    host.start(CancellationToken::none()).await.unwrap();
    host.stop(CancellationToken::none()).await.unwrap();

    assert_eq!(log.events(), events(&["start", "stop"]));
}

#[tokio::test]
async fn start_failure_stops_started_services_in_reverse_and_names_the_service() {
    let log = Log::new();
    let host = Host::builder()
        .add_hosted_service(Fake::new("A", &log))
        .add_hosted_service(Fake::new("B", &log))
        .add_hosted_service(Fake::new("C", &log).on("start", Act::Fail("port in use")))
        .add_hosted_service(Fake::new("D", &log))
        .build()
        .unwrap();
    log.watch_lifetime(host.lifetime());

    let error = host.start(CancellationToken::none()).await.unwrap_err();

    assert_eq!(
        log.events(),
        events(&[
            "starting:A",
            "starting:B",
            "starting:C",
            "starting:D",
            "start:A",
            "start:B",
            "start:C",
            // rollback: only A and B completed their start
            "stopping:B",
            "stopping:A",
            "app:stopping",
            "stop:B",
            "stop:A",
            "stopped:B",
            "stopped:A",
            "app:stopped",
        ])
    );
    assert!(!host.lifetime().started().is_cancelled());
    assert_eq!(error.failures().len(), 1);
    assert_eq!(error.failures()[0].service(), Some("C"));
    assert_eq!(error.failures()[0].phase(), LifecyclePhase::Start);
    assert_eq!(error.to_string(), "start of `C` failed: port in use");
    assert_eq!(error.exit_code(), 1);
    assert_eq!(host.lifetime().state(), HostState::Stopped);
}

#[tokio::test]
async fn start_failure_in_starting_calls_no_start_and_no_stop() {
    let log = Log::new();
    let host = Host::builder()
        .add_hosted_service(Fake::new("A", &log).on("starting", Act::Fail("bad config")))
        .add_hosted_service(Fake::new("B", &log))
        .build()
        .unwrap();
    log.watch_lifetime(host.lifetime());

    let error = host.start(CancellationToken::none()).await.unwrap_err();

    assert_eq!(
        log.events(),
        events(&["starting:A", "app:stopping", "app:stopped"])
    );
    assert_eq!(error.failures()[0].phase(), LifecyclePhase::Starting);
}

#[tokio::test]
async fn start_failure_in_started_stops_every_service() {
    let log = Log::new();
    let host = Host::builder()
        .add_hosted_service(Fake::new("A", &log))
        .add_hosted_service(Fake::new("B", &log).on("started", Act::Fail("late")))
        .build()
        .unwrap();

    let error = host.start(CancellationToken::none()).await.unwrap_err();

    assert_eq!(error.failures()[0].phase(), LifecyclePhase::Started);
    let log = log.events();
    assert!(!log.contains(&"started:A".to_owned()) || log.contains(&"stop:A".to_owned()));
    assert!(log.ends_with(&events(&["stop:B", "stop:A", "stopped:B", "stopped:A"])));
}

#[tokio::test]
async fn start_panic_is_reported_as_the_services_failure() {
    let log = Log::new();
    let host = Host::builder()
        .add_hosted_service(Fake::new("A", &log))
        .add_hosted_service(Fake::new("B", &log).on("start", Act::Panic("kaboom")))
        .build()
        .unwrap();

    let error = host.start(CancellationToken::none()).await.unwrap_err();

    let failure = &error.failures()[0];
    assert_eq!(failure.service(), Some("B"));
    assert!(matches!(failure.kind(), FailureKind::Panic(msg) if msg == "kaboom"));
    assert!(log.events().contains(&"stop:A".to_owned()));
    assert!(!log.events().contains(&"stop:B".to_owned()));
}

#[tokio::test]
async fn caller_token_cancels_start() {
    let log = Log::new();
    let fake = Arc::new(Fake::new("A", &log).on("start", Act::WaitToken));
    let host = Host::builder()
        .add_hosted_service(Arc::clone(&fake))
        .build()
        .unwrap();
    let caller = CancellationTokenSource::new();

    let start = tokio::spawn(host.start(caller.token()));
    while fake.token("start").is_none() {
        tokio::task::yield_now().await;
    }
    caller.cancel_with(CancelReason::Signal(2));
    let error = start.await.unwrap().unwrap_err();

    assert!(matches!(
        error.failures()[0].kind(),
        FailureKind::Cancelled(CancelReason::Signal(2))
    ));
    assert_eq!(error.failures()[0].service(), Some("A"));
    assert_eq!(error.exit_code(), 130);
    assert!(!log.events().contains(&"stop:A".to_owned()));
}

#[tokio::test]
async fn stop_request_during_start_cancels_the_start_token() {
    let log = Log::new();
    let fake = Arc::new(Fake::new("B", &log).on("start", Act::WaitToken));
    let host = Host::builder()
        .add_hosted_service(Fake::new("A", &log))
        .add_hosted_service(Arc::clone(&fake))
        .build()
        .unwrap();
    let lifetime = host.lifetime().clone();

    let start = tokio::spawn(host.start(CancellationToken::none()));
    while fake.token("start").is_none() {
        tokio::task::yield_now().await;
    }
    lifetime.stop_application();
    let error = start.await.unwrap().unwrap_err();

    assert_eq!(
        fake.token("start").unwrap().reason(),
        Some(CancelReason::Requested)
    );
    assert!(matches!(
        error.failures()[0].kind(),
        FailureKind::Cancelled(CancelReason::Requested)
    ));
    // A started, so it is stopped; B never completed its start.
    assert!(log.events().ends_with(&events(&["stop:A", "stopped:A"])));
}

#[tokio::test]
async fn stop_application_from_start_is_safe_and_run_returns_ok() {
    let log = Log::new();
    let builder = Host::builder();
    let lifetime = builder.lifetime();
    let host = builder
        .add_hosted_service(Fake::new("A", &log).on("start", Act::StopApp(lifetime)))
        .add_hosted_service(Fake::new("B", &log))
        .build()
        .unwrap();

    host.run().await.unwrap();

    // B's start is never called; A, which started, is stopped.
    assert_eq!(
        log.events(),
        events(&[
            "starting:A",
            "starting:B",
            "start:A",
            "stopping:A",
            "stop:A",
            "stopped:A"
        ])
    );
}

#[tokio::test]
async fn second_start_returns_the_first_result() {
    let log = Log::new();
    let host = Host::builder()
        .add_hosted_service(Fake::new("A", &log))
        .build()
        .unwrap();

    host.start(CancellationToken::none()).await.unwrap();
    host.start(CancellationToken::none()).await.unwrap();

    assert_eq!(
        log.events(),
        events(&["starting:A", "start:A", "started:A"])
    );
    host.stop(CancellationToken::none()).await.unwrap();
}

#[tokio::test]
async fn start_after_stop_fails_without_calling_services() {
    let log = Log::new();
    let host = Host::builder()
        .add_hosted_service(Fake::new("A", &log))
        .build()
        .unwrap();

    host.stop(CancellationToken::none()).await.unwrap();
    let error = host.start(CancellationToken::none()).await.unwrap_err();

    assert!(matches!(
        error.failures()[0].kind(),
        FailureKind::Cancelled(_)
    ));
    assert_eq!(error.failures()[0].service(), None);
    assert!(log.events().is_empty());
}

#[tokio::test]
async fn background_execute_begins_after_started_fires_and_start_does_not_wait_for_it() {
    let log = Log::new();
    let host = Host::builder()
        .add_background_service(Worker::new("W", &log))
        .add_hosted_service(Fake::new("A", &log))
        .build()
        .unwrap();
    log.watch_lifetime(host.lifetime());

    host.start(CancellationToken::none()).await.unwrap();
    tokio::task::yield_now().await;

    assert_eq!(
        log.events(),
        events(&[
            "starting:A",
            "start:A",
            "started:A",
            "app:started",
            "execute:W"
        ])
    );
    host.stop(CancellationToken::none()).await.unwrap();
}

#[test]
fn build_rejects_two_services_with_the_same_name() {
    let log = Log::new();
    let error = Host::builder()
        .add_hosted_service(Fake::new("A", &log))
        .add_background_service(Worker::new("A", &log))
        .build()
        .unwrap_err();
    assert_eq!(error, BuildError::DuplicateName("A".into()));
    let error = Host::builder()
        .add_hosted_service(Fake::new("", &log))
        .build()
        .unwrap_err();
    assert_eq!(error, BuildError::EmptyName);
}

#[test]
fn host_futures_are_send_and_static() {
    fn assert_send_static<T: Send + 'static>(_: &T) {}
    fn assert_send_sync<T: Send + Sync>() {}
    let host = Host::builder().build().unwrap();
    assert_send_static(&host.start(CancellationToken::none()));
    assert_send_static(&host.stop(CancellationToken::none()));
    assert_send_static(&host.wait_for_shutdown());
    assert_send_sync::<Host>();
    assert_send_sync::<apphost::host::ApplicationLifetime>();
    assert_send_sync::<apphost::host::HostError>();
    assert_send_static(&host.run());
}
