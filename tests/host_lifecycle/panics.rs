//! A panic is reported with where it began: in a call, in `execute`, in a
//! lifetime callback; in the error, the event and the report (JSON). A
//! service that catches a panic of its own and then panics again gets no
//! guessed location.

use std::time::Duration;

use apphost::CancellationToken;
use apphost::host::{
    BackgroundServiceExceptionBehavior, CallOutcome, FailureKind, Host, HostedService,
    LifecycleEvent, LifecyclePhase,
};

use crate::events::{Svc, drain};
use crate::support::{Act, Log, Worker};

/// Where `Act::Panic` panics (`support.rs`, line 85).
const ACT_PANIC: &str = "tests/host_lifecycle/support.rs:85:";

fn panic_of(kind: &FailureKind) -> &apphost::host::CaughtPanic {
    match kind {
        FailureKind::Panic(panic) => panic,
        other => panic!("not a panic: {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_call_panic_names_its_location_in_the_error_the_event_and_the_report() {
    let builder = Host::builder();
    let mut events = builder.events();
    let host = builder
        .add_hosted_service(Svc::new("db").on_stop(Act::Panic("pool poisoned")))
        .build()
        .unwrap();
    host.start(CancellationToken::none()).await.unwrap();
    let error = host.stop(CancellationToken::none()).await.unwrap_err();

    let panic = panic_of(error.failures()[0].kind());
    assert_eq!(panic, "pool poisoned");
    let location = panic.location().expect("the hook saw it");
    assert!(location.starts_with(ACT_PANIC), "{location}");

    let ended = drain(&mut events)
        .into_iter()
        .find_map(|e| match e {
            LifecycleEvent::CallEnded {
                phase: LifecyclePhase::Stop,
                outcome,
                ..
            } => Some(outcome),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        ended,
        CallOutcome::Panic {
            payload: "pool poisoned".into(),
            location: Some(location.to_owned()),
        }
    );

    let json = serde_json::to_value(error.report().unwrap()).unwrap();
    let call = &json["services"][0]["calls"][1];
    assert_eq!(call["outcome"]["kind"], "panic");
    assert_eq!(call["outcome"]["payload"], "pool poisoned");
    assert_eq!(call["outcome"]["location"], location);
    assert_eq!(json["failures"][0]["outcome"]["location"], location);
}

#[tokio::test(start_paused = true)]
async fn a_background_panic_names_its_location() {
    let log = Log::new();
    let host = Host::builder()
        .add_background_service(Worker::new("W", &log).doing(Act::Panic("index out of bounds")))
        .configure_options(|o| {
            o.background_service_exception_behavior = BackgroundServiceExceptionBehavior::StopHost;
        })
        .build()
        .unwrap();
    host.start(CancellationToken::none()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let error = host.stop(CancellationToken::none()).await.unwrap_err();
    let panic = panic_of(error.failures()[0].kind());
    assert_eq!(panic, "index out of bounds");
    assert!(
        panic.location().unwrap().starts_with(ACT_PANIC),
        "{panic:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_lifetime_callback_panic_names_its_location() {
    let host = Host::builder().build().unwrap();
    let line = line!() + 3;
    host.lifetime()
        .stopping()
        .register(|| panic!("callback bug"))
        .detach();
    let error = host.stop(CancellationToken::none()).await.unwrap_err();
    let panic = panic_of(error.failures()[0].kind());
    assert_eq!(panic, "callback bug");
    let expected = format!("{}:{line}:", file!());
    assert!(
        panic.location().unwrap().starts_with(&expected),
        "{panic:?} / {expected}"
    );
}

/// Panics, catches it, then panics again: two panics began on the thread,
/// so the host cannot tell which one it caught and claims no location.
struct CatchesThenPanics;

impl HostedService for CatchesThenPanics {
    async fn start(&self, _: CancellationToken) -> anyhow::Result<()> {
        let _ = std::panic::catch_unwind(|| panic!("handled inside"));
        panic!("the one that escaped")
    }
    async fn stop(&self, _: CancellationToken) -> anyhow::Result<()> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn two_panics_in_one_poll_claim_no_location() {
    let host = Host::builder()
        .add_hosted_service(CatchesThenPanics)
        .build()
        .unwrap();
    let error = host.start(CancellationToken::none()).await.unwrap_err();
    let panic = panic_of(error.failures()[0].kind());
    assert_eq!(panic, "the one that escaped");
    assert_eq!(panic.location(), None);
}
