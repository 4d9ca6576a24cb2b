//! The application lifetime: stop requests from anywhere, callbacks, state,
//! cooperative cancellation, panics, and a host with no services.

use std::sync::Arc;
use std::time::Duration;

use apphost::host::{FailureKind, Host, HostState, LifecyclePhase};
use apphost::{CancelReason, CancellationToken, CancellationTokenSource};

use crate::support::{Act, Fake, Log, events};

#[tokio::test(start_paused = true)]
async fn zero_services_run_fires_started_and_waits_for_a_stop_request() {
    let host = Host::builder().build().unwrap();
    let lifetime = host.lifetime().clone();
    let running = tokio::spawn(host.run());

    lifetime.started().cancelled().await;
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert!(!running.is_finished());
    assert_eq!(lifetime.state(), HostState::Started);

    lifetime.stop_application();
    running.await.unwrap().unwrap();
    assert!(lifetime.stopped().is_cancelled());
}

#[tokio::test]
async fn stop_application_is_idempotent_and_keeps_the_first_reason() {
    let host = Host::builder().build().unwrap();
    let lifetime = host.lifetime();
    let calls = Log::new();
    let counter = calls.clone();
    lifetime
        .stopping()
        .register(move || counter.push("callback"))
        .detach();

    lifetime.stop_application_with(CancelReason::Signal(15));
    lifetime.stop_application();
    lifetime.stop_application_with(CancelReason::custom("later"));

    assert_eq!(calls.events(), events(&["callback"]));
    assert_eq!(lifetime.stopping().reason(), Some(CancelReason::Signal(15)));
}

#[tokio::test]
async fn stop_application_from_a_stopping_callback_does_not_deadlock() {
    let log = Log::new();
    let host = Host::builder()
        .add_hosted_service(Fake::new("A", &log))
        .build()
        .unwrap();
    let lifetime = host.lifetime().clone();
    let inner = lifetime.clone();
    lifetime
        .stopping()
        .register(move || inner.stop_application())
        .detach();

    host.start(CancellationToken::none()).await.unwrap();
    lifetime.stop_application();
    host.wait_for_shutdown().await.unwrap();

    assert!(log.events().contains(&"stop:A".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_application_from_many_threads_at_once_runs_callbacks_once() {
    let host = Host::builder().build().unwrap();
    let log = Log::new();
    let slow = log.clone();
    host.lifetime()
        .stopping()
        .register(move || {
            std::thread::sleep(Duration::from_millis(20));
            slow.push("callback");
        })
        .detach();

    let threads: Vec<_> = (0..4)
        .map(|_| {
            let lifetime = host.lifetime().clone();
            let log = log.clone();
            std::thread::spawn(move || {
                lifetime.stop_application();
                // A caller returns only once the callbacks are done.
                assert_eq!(log.events(), events(&["callback"]));
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

#[tokio::test]
async fn lifetime_callback_panics_are_reported_and_the_other_callbacks_run() {
    let log = Log::new();
    let host = Host::builder()
        .add_hosted_service(Fake::new("A", &log))
        .build()
        .unwrap();
    let lifetime = host.lifetime();
    for (token, name) in [
        (lifetime.started(), "started"),
        (lifetime.stopping(), "stopping"),
        (lifetime.stopped(), "stopped"),
    ] {
        let first = log.clone();
        token
            .register(move || first.push(format!("{name}: first")))
            .detach();
        token.register(move || panic!("{name} callback")).detach();
    }

    host.start(CancellationToken::none()).await.unwrap();
    let error = host.stop(CancellationToken::none()).await.unwrap_err();

    let phases: Vec<LifecyclePhase> = error.failures().iter().map(|f| f.phase()).collect();
    assert_eq!(
        phases,
        [
            LifecyclePhase::StartedCallbacks,
            LifecyclePhase::StoppingCallbacks,
            LifecyclePhase::StoppedCallbacks
        ]
    );
    assert!(
        matches!(error.failures()[1].kind(), FailureKind::Panic(m) if m == "stopping callback")
    );
    for name in ["started", "stopping", "stopped"] {
        assert!(log.events().contains(&format!("{name}: first")));
    }
    assert!(log.events().contains(&"stop:A".to_owned()));
}

#[tokio::test]
async fn a_panicking_service_does_not_poison_the_host() {
    let log = Log::new();
    let host = Host::builder()
        .add_hosted_service(Fake::new("A", &log).on("stopping", Act::Panic("oops")))
        .add_hosted_service(Fake::new("B", &log))
        .build()
        .unwrap();
    host.start(CancellationToken::none()).await.unwrap();

    let error = host.stop(CancellationToken::none()).await.unwrap_err();

    assert!(matches!(error.failures()[0].kind(), FailureKind::Panic(m) if m == "oops"));
    assert!(log.events().contains(&"stop:A".to_owned()));
    // The host still answers.
    assert_eq!(host.lifetime().state(), HostState::Stopped);
    assert!(host.stop(CancellationToken::none()).await.is_err());
}

#[tokio::test]
async fn cooperative_cancellation_is_not_a_failure() {
    let log = Log::new();
    let a = Arc::new(Fake::new("A", &log).on("stop", Act::WaitToken));
    let host = Host::builder()
        .add_hosted_service(Arc::clone(&a))
        .build()
        .unwrap();
    host.start(CancellationToken::none()).await.unwrap();
    let caller = CancellationTokenSource::new();
    caller.cancel();

    // The stop's token is already cancelled by the caller; A returns
    // OperationCanceled for it: what was asked for.
    host.stop(caller.token()).await.unwrap();

    assert!(a.token("stop").unwrap().is_cancelled());
}

#[tokio::test]
async fn operation_canceled_for_another_token_is_a_failure() {
    struct Confused;
    impl apphost::host::HostedService for Confused {
        async fn start(&self, _: CancellationToken) -> anyhow::Result<()> {
            let other = CancellationTokenSource::new();
            other.cancel();
            Err(apphost::OperationCanceled::new(other.token()).into())
        }
        async fn stop(&self, _: CancellationToken) -> anyhow::Result<()> {
            Ok(())
        }
    }
    let host = Host::builder()
        .add_hosted_service(Confused)
        .build()
        .unwrap();

    let error = host.start(CancellationToken::none()).await.unwrap_err();

    assert!(matches!(error.failures()[0].kind(), FailureKind::Error(_)));
}

#[tokio::test]
async fn state_moves_forward_through_the_lifecycle() {
    let host = Host::builder().build().unwrap();
    let lifetime = host.lifetime().clone();
    let seen = Log::new();
    for (token, at) in [
        (lifetime.stopping(), "stopping"),
        (lifetime.stopped(), "stopped"),
    ] {
        let (seen, lifetime) = (seen.clone(), lifetime.clone());
        token
            .register(move || seen.push(format!("{at}: {:?}", lifetime.state())))
            .detach();
    }
    assert_eq!(lifetime.state(), HostState::NotStarted);

    host.start(CancellationToken::none()).await.unwrap();
    assert_eq!(lifetime.state(), HostState::Started);
    host.stop(CancellationToken::none()).await.unwrap();

    assert_eq!(lifetime.state(), HostState::Stopped);
    assert_eq!(
        seen.events(),
        events(&["stopping: Stopping", "stopped: Stopped"])
    );
}
