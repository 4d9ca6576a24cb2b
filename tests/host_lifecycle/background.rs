//! Background services: launch after start, stop in reverse order, and what
//! a failing `execute` does to the host (.NET's BackgroundService tests, and
//! the .NET 11 "worker exceptions are propagated" tests).

use std::sync::Arc;
use std::time::Duration;

use apphost::host::{BackgroundServiceExceptionBehavior, FailureKind, Host, LifecyclePhase};
use apphost::{CancelReason, CancellationToken};

use crate::support::{Act, Fake, Log, Worker, events};

async fn run_until_started_then_stop(host: Host) -> Result<(), apphost::host::HostError> {
    let lifetime = host.lifetime().clone();
    let running = tokio::spawn(host.run());
    lifetime.started().cancelled().await;
    tokio::task::yield_now().await;
    lifetime.stop_application();
    running.await.unwrap()
}

#[tokio::test]
async fn background_services_stop_at_their_place_in_reverse_order() {
    let log = Log::new();
    let w = Arc::new(Worker::new("W", &log));
    let host = Host::builder()
        .add_hosted_service(Fake::new("A", &log))
        .add_background_service(Arc::clone(&w))
        .add_hosted_service(Fake::new("C", &log))
        .build()
        .unwrap();

    run_until_started_then_stop(host).await.unwrap();

    let log = log.events();
    let stop_part: Vec<&String> = log
        .iter()
        .filter(|e| e.starts_with("stop:") || e.starts_with("execute-end"))
        .collect();
    assert_eq!(stop_part, ["stop:C", "execute-end:W", "stop:A"]);
    // Its own token, cancelled with the reason the application stopped for.
    assert_eq!(w.token().unwrap().reason(), Some(CancelReason::Requested));
}

#[tokio::test]
async fn a_failing_execute_stops_the_host_and_fails_run() {
    let log = Log::new();
    let host = Host::builder()
        .add_hosted_service(Fake::new("A", &log))
        .add_background_service(Worker::new("W", &log).doing(Act::Fail("disk full")))
        .build()
        .unwrap();

    // Nobody asks for a stop: the failure does.
    let error = host.run().await.unwrap_err();

    assert_eq!(error.failures().len(), 1);
    let failure = &error.failures()[0];
    assert_eq!(
        (failure.service(), failure.phase()),
        (Some("W"), LifecyclePhase::Execute)
    );
    assert_eq!(error.to_string(), "execute of `W` failed: disk full");
    assert_eq!(error.exit_code(), 1);
    assert!(log.events().contains(&"stop:A".to_owned()));
}

#[tokio::test]
async fn a_panicking_execute_is_reported_with_its_payload() {
    let log = Log::new();
    let host = Host::builder()
        .add_background_service(Worker::new("W", &log).doing(Act::Panic("index out of bounds")))
        .build()
        .unwrap();
    let lifetime = host.lifetime().clone();

    let error = host.run().await.unwrap_err();

    assert!(
        matches!(error.failures()[0].kind(), FailureKind::Panic(m) if m == "index out of bounds")
    );
    assert_eq!(
        lifetime.stopping().reason(),
        Some(CancelReason::custom("background service `W` failed"))
    );
}

#[tokio::test(start_paused = true)]
async fn a_failure_after_an_await_is_reported_too() {
    struct Late;
    impl apphost::host::BackgroundService for Late {
        async fn execute(&self, _: CancellationToken) -> anyhow::Result<()> {
            tokio::time::sleep(Duration::from_secs(5)).await;
            anyhow::bail!("lost connection")
        }
    }
    let host = Host::builder()
        .add_background_service(Late)
        .build()
        .unwrap();

    let error = host.run().await.unwrap_err();

    assert_eq!(
        error.to_string(),
        "execute of `Late` failed: lost connection"
    );
}

#[tokio::test]
async fn every_failing_execute_is_reported() {
    let log = Log::new();
    let host = Host::builder()
        .add_background_service(Worker::new("W1", &log).doing(Act::Fail("one")))
        .add_background_service(Worker::new("W2", &log).doing(Act::Fail("two")))
        .add_background_service(Worker::new("W3", &log).doing(Act::Fail("three")))
        .build()
        .unwrap();

    let error = host.run().await.unwrap_err();

    let mut services: Vec<_> = error
        .failures()
        .iter()
        .map(|f| f.service().unwrap())
        .collect();
    services.sort_unstable();
    assert_eq!(services, ["W1", "W2", "W3"]);
}

#[tokio::test]
async fn an_execute_failure_and_a_stop_failure_are_both_reported() {
    let log = Log::new();
    let host = Host::builder()
        .add_hosted_service(Fake::new("A", &log).on("stop", Act::Fail("flush")))
        .add_background_service(Worker::new("W", &log).doing(Act::Fail("crash")))
        .build()
        .unwrap();

    let error = host.run().await.unwrap_err();

    assert_eq!(
        error.to_string(),
        "2 failures: execute of `W` failed: crash; stop of `A` failed: flush"
    );
}

#[tokio::test]
async fn under_ignore_a_failing_execute_is_only_logged() {
    let log = Log::new();
    let host = Host::builder()
        .add_background_service(Worker::new("W", &log).doing(Act::Fail("crash")))
        .configure_options(|o| {
            o.background_service_exception_behavior = BackgroundServiceExceptionBehavior::Ignore
        })
        .build()
        .unwrap();
    let lifetime = host.lifetime().clone();
    host.start(CancellationToken::none()).await.unwrap();
    while !log.events().contains(&"execute-end:W".to_owned()) {
        tokio::task::yield_now().await;
    }
    tokio::task::yield_now().await;

    assert!(!lifetime.stopping().is_cancelled());
    host.stop(CancellationToken::none()).await.unwrap();
}

#[tokio::test]
async fn execute_returning_operation_canceled_after_its_token_is_not_an_error() {
    let log = Log::new();
    // Worker's default: wait for the token, return OperationCanceled.
    let host = Host::builder()
        .add_background_service(Worker::new("W", &log))
        .build()
        .unwrap();

    run_until_started_then_stop(host).await.unwrap();

    assert!(log.events().contains(&"execute-end:W".to_owned()));
}

#[tokio::test]
async fn execute_returning_early_with_ok_is_not_an_error_and_keeps_the_host_running() {
    let log = Log::new();
    let host = Host::builder()
        .add_background_service(Worker::new("W", &log).doing(Act::Ok))
        .build()
        .unwrap();
    let lifetime = host.lifetime().clone();
    host.start(CancellationToken::none()).await.unwrap();
    while !log.events().contains(&"execute-end:W".to_owned()) {
        tokio::task::yield_now().await;
    }
    tokio::task::yield_now().await;

    assert!(!lifetime.stopping().is_cancelled());
    host.stop(CancellationToken::none()).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn stop_waits_for_execute_only_within_the_budget() {
    let log = Log::new();
    let host = Host::builder()
        .add_hosted_service(Fake::new("A", &log))
        .add_background_service(Worker::new("W", &log).doing(Act::Hang))
        .configure_options(|o| o.shutdown_timeout = Duration::from_secs(1))
        .build()
        .unwrap();
    host.start(CancellationToken::none()).await.unwrap();
    let t0 = tokio::time::Instant::now();

    let error = host.stop(CancellationToken::none()).await.unwrap_err();

    assert!(t0.elapsed() <= Duration::from_millis(1050));
    let failure = &error.failures()[0];
    assert_eq!(
        (failure.service(), failure.phase()),
        (Some("W"), LifecyclePhase::Stop)
    );
    assert!(matches!(failure.kind(), FailureKind::Abandoned { .. }));
    assert!(log.events().ends_with(&events(&["stop:A", "stopped:A"])));
}

/// .NET before 10 ran `ExecuteAsync` inline up to its first await, so a
/// synchronous worker blocked startup (dotnet/runtime#36063).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thread_blocking_execute_does_not_block_start() {
    let log = Log::new();
    let release = apphost::CancellationTokenSource::new();
    let host = Host::builder()
        .add_background_service(Worker::new("W", &log).doing(Act::BlockThread(release.token())))
        .build()
        .unwrap();

    // Start returns before `execute` is even polled.
    host.start(CancellationToken::none()).await.unwrap();
    release.cancel();
    host.stop(CancellationToken::none()).await.unwrap();
}
