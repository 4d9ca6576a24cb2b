//! Budgets: the startup timeout, and a stop that never waits past
//! `shutdown_timeout` (+ 50 ms) whatever its services do.

use std::sync::Arc;
use std::time::Duration;

use apphost::host::{FailureKind, Host, LifecyclePhase};
use apphost::{CancelReason, CancellationToken, CancellationTokenSource};
use tokio::time::Instant;

use crate::support::{Act, Fake, Log, Worker, events};

const BUDGET: Duration = Duration::from_secs(2);
const SLACK: Duration = Duration::from_millis(50);

#[tokio::test(start_paused = true)]
async fn startup_timeout_fails_the_start_as_timed_out() {
    for phase in ["starting", "start", "started"] {
        let log = Log::new();
        let a = Arc::new(Fake::new("A", &log).on(phase, Act::Delay(Duration::from_secs(3600))));
        let host = Host::builder()
            .add_hosted_service(Arc::clone(&a))
            .configure_options(|o| o.startup_timeout = Some(Duration::from_secs(1)))
            .build()
            .unwrap();
        let t0 = Instant::now();

        let error = host.start(CancellationToken::none()).await.unwrap_err();

        assert!(t0.elapsed() <= Duration::from_secs(1) + SLACK);
        assert_eq!(
            a.token(phase).unwrap().reason(),
            Some(CancelReason::TimedOut)
        );
        let failure = &error.failures()[0];
        assert_eq!(failure.service(), Some("A"), "{phase}");
        assert!(
            matches!(failure.kind(), FailureKind::TimedOut),
            "{phase}: {error}"
        );
        assert_eq!(error.exit_code(), 124);
        assert!(!host.lifetime().started().is_cancelled());
    }
}

#[tokio::test(start_paused = true)]
async fn startup_timeout_abandons_a_start_that_ignores_its_token() {
    let log = Log::new();
    let host = Host::builder()
        .add_hosted_service(Fake::new("A", &log).on("start", Act::Hang))
        .add_hosted_service(Fake::new("B", &log))
        .configure_options(|o| o.startup_timeout = Some(Duration::from_secs(1)))
        .build()
        .unwrap();
    let t0 = Instant::now();

    let error = host.start(CancellationToken::none()).await.unwrap_err();

    assert!(t0.elapsed() <= Duration::from_secs(1) + SLACK);
    assert!(matches!(
        error.failures()[0].kind(),
        FailureKind::TimedOut | FailureKind::Abandoned { .. }
    ));
    // A never completed its start, so it is not stopped; B was never started.
    assert_eq!(
        log.events(),
        events(&["starting:A", "starting:B", "start:A"])
    );
}

#[tokio::test(start_paused = true)]
async fn stop_abandons_a_service_that_ignores_its_token_and_stops_the_rest() {
    let log = Log::new();
    let a = Arc::new(Fake::new("A", &log));
    let host = Host::builder()
        .add_hosted_service(Arc::clone(&a))
        .add_hosted_service(Fake::new("B", &log).on("stop", Act::Hang))
        .configure_options(|o| o.shutdown_timeout = BUDGET)
        .build()
        .unwrap();
    host.start(CancellationToken::none()).await.unwrap();
    let t0 = Instant::now();

    let error = host.stop(CancellationToken::none()).await.unwrap_err();

    assert!(t0.elapsed() <= BUDGET + SLACK, "{:?}", t0.elapsed());
    assert_eq!(error.failures().len(), 1);
    let failure = &error.failures()[0];
    assert_eq!(
        (failure.service(), failure.phase()),
        (Some("B"), LifecyclePhase::Stop)
    );
    assert!(matches!(
        failure.kind(),
        FailureKind::TimedOut | FailureKind::Abandoned { .. }
    ));
    assert_eq!(error.to_string(), "stop of `B` was abandoned");
    // A still got its stop, with the cancelled token, and the phases went on.
    let token = a.token("stop").unwrap();
    assert_eq!(token.reason(), Some(CancelReason::TimedOut));
    assert!(
        log.events()
            .ends_with(&events(&["stop:B", "stop:A", "stopped:B", "stopped:A"]))
    );
    assert!(host.lifetime().stopped().is_cancelled());
}

#[tokio::test(start_paused = true)]
async fn stop_time_is_bounded_whatever_every_phase_does() {
    let log = Log::new();
    let mut builder = Host::builder().configure_options(|o| o.shutdown_timeout = BUDGET);
    for i in 0..5 {
        let fake = Fake::new(&format!("S{i}"), &log)
            .on("stopping", Act::Delay(Duration::from_millis(700)))
            .on("stop", Act::Hang)
            .on("stopped", Act::Hang);
        builder = builder.add_hosted_service(fake);
    }
    builder = builder.add_background_service(Worker::new("W", &log).doing(Act::Hang));
    let host = builder.build().unwrap();
    host.start(CancellationToken::none()).await.unwrap();
    let t0 = Instant::now();

    let error = host.stop(CancellationToken::none()).await.unwrap_err();

    assert!(t0.elapsed() <= BUDGET + SLACK, "{:?}", t0.elapsed());
    // Every service got every call.
    for phase in ["stopping", "stop", "stopped"] {
        for i in 0..5 {
            assert!(
                log.events().contains(&format!("{phase}:S{i}")),
                "{phase}:S{i}"
            );
        }
    }
    assert!(error.failures().iter().all(|f| matches!(
        f.kind(),
        FailureKind::TimedOut | FailureKind::Abandoned { .. }
    )));
    assert!(error.failures().iter().any(|f| f.service() == Some("W")));
}

#[tokio::test(start_paused = true)]
async fn a_service_that_honours_its_token_past_the_deadline_is_reported_timed_out() {
    let log = Log::new();
    let host = Host::builder()
        .add_hosted_service(Fake::new("A", &log).on("stop", Act::WaitToken))
        .configure_options(|o| o.shutdown_timeout = BUDGET)
        .build()
        .unwrap();
    host.start(CancellationToken::none()).await.unwrap();
    let t0 = Instant::now();

    let error = host.stop(CancellationToken::none()).await.unwrap_err();

    assert!(t0.elapsed() <= BUDGET + SLACK);
    assert!(matches!(
        error.failures()[0].kind(),
        FailureKind::TimedOut | FailureKind::Abandoned { .. }
    ));
    assert_eq!(error.exit_code(), 124);
}

/// A real thread blocked forever by a service: only a multi-thread runtime
/// can keep the host live, and the stop must still return.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_returns_when_a_service_blocks_its_thread() {
    let log = Log::new();
    let release = CancellationTokenSource::new();
    let host = Host::builder()
        .add_hosted_service(Fake::new("A", &log))
        .add_hosted_service(Fake::new("B", &log).on("stop", Act::BlockThread(release.token())))
        .configure_options(|o| o.shutdown_timeout = Duration::from_millis(200))
        .build()
        .unwrap();
    host.start(CancellationToken::none()).await.unwrap();

    let stopped = tokio::time::timeout(
        Duration::from_secs(30),
        host.stop(CancellationToken::none()),
    )
    .await;
    release.cancel(); // let the blocked thread go, so the runtime can shut down

    let error = stopped.expect("stop returned").unwrap_err();
    assert_eq!(error.failures()[0].service(), Some("B"));
    assert!(matches!(
        error.failures()[0].kind(),
        FailureKind::TimedOut | FailureKind::Abandoned { .. }
    ));
    assert!(log.events().contains(&"stop:A".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_returns_when_a_stopping_callback_blocks() {
    let log = Log::new();
    let release = CancellationTokenSource::new();
    let host = Host::builder()
        .add_hosted_service(Fake::new("A", &log))
        .configure_options(|o| o.shutdown_timeout = Duration::from_millis(200))
        .build()
        .unwrap();
    let blocked = release.token();
    host.lifetime()
        .stopping()
        .register(move || blocked.wait())
        .detach();
    host.start(CancellationToken::none()).await.unwrap();

    let stopped = tokio::time::timeout(
        Duration::from_secs(30),
        host.stop(CancellationToken::none()),
    )
    .await;
    release.cancel();

    let error = stopped.expect("stop returned").unwrap_err();
    assert_eq!(
        error.failures()[0].phase(),
        LifecyclePhase::StoppingCallbacks
    );
    assert!(matches!(
        error.failures()[0].kind(),
        FailureKind::TimedOut | FailureKind::Abandoned { .. }
    ));
    // The service still got its stop, with the cancelled token.
    assert!(log.events().contains(&"stop:A".to_owned()));
}

#[tokio::test(start_paused = true)]
async fn concurrent_stop_abandons_only_the_calls_still_running() {
    let log = Log::new();
    let host = Host::builder()
        .add_hosted_service(Fake::new("A", &log))
        .add_hosted_service(Fake::new("B", &log).on("stop", Act::Hang))
        .add_hosted_service(Fake::new("C", &log).on("stop", Act::Delay(Duration::from_millis(500))))
        .configure_options(|o| {
            o.shutdown_timeout = BUDGET;
            o.services_stop_concurrently = true;
        })
        .build()
        .unwrap();
    host.start(CancellationToken::none()).await.unwrap();
    let t0 = Instant::now();

    let error = host.stop(CancellationToken::none()).await.unwrap_err();

    assert!(t0.elapsed() <= BUDGET + SLACK);
    let failed: Vec<_> = error
        .failures()
        .iter()
        .map(|f| (f.service(), f.phase()))
        .collect();
    assert_eq!(failed, [(Some("B"), LifecyclePhase::Stop)]);
    assert!(
        log.events()
            .ends_with(&events(&["stopped:C", "stopped:B", "stopped:A"]))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_stop_returns_when_a_service_blocks_its_thread() {
    let log = Log::new();
    let release = CancellationTokenSource::new();
    let host = Host::builder()
        .add_hosted_service(Fake::new("A", &log))
        .add_hosted_service(Fake::new("B", &log).on("stop", Act::BlockThread(release.token())))
        .add_hosted_service(Fake::new("C", &log))
        .configure_options(|o| {
            o.shutdown_timeout = Duration::from_millis(200);
            o.services_stop_concurrently = true;
        })
        .build()
        .unwrap();
    host.start(CancellationToken::none()).await.unwrap();

    let stopped = tokio::time::timeout(
        Duration::from_secs(30),
        host.stop(CancellationToken::none()),
    )
    .await;
    release.cancel();

    let error = stopped.expect("stop returned").unwrap_err();
    let failed: Vec<_> = error
        .failures()
        .iter()
        .map(|f| (f.service(), f.phase()))
        .collect();
    assert_eq!(failed, [(Some("B"), LifecyclePhase::Stop)]);
    // A, whose turn came after B's blocked first poll, still got its stop.
    assert!(log.events().contains(&"stop:A".to_owned()));
}
