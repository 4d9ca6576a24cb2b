//! The lifecycle event stream: the exact sequence of a small host, a
//! subscriber that falls behind, one that is dropped, and the event kinds
//! that only some paths emit (budgets, abandonment, cut-short stops,
//! reloads).

use std::time::Duration;

use apphost::config::ConfigOptions;
use apphost::host::{
    BudgetOwner, CallOutcome, Host, HostedService, LifecycleEvent, LifecycleEvents, RecvError,
    Sequence,
};
use apphost::{CancelReason, CancellationToken, CancellationTokenSource};

use crate::support::{Act, Fake, Log};

/// A hosted service with only `start` and `stop` (no hooks), each doing
/// what it was told.
pub(crate) struct Svc {
    name: String,
    start: Act,
    stop: Act,
}

impl Svc {
    pub(crate) fn new(name: &str) -> Self {
        Svc {
            name: name.to_owned(),
            start: Act::Ok,
            stop: Act::Ok,
        }
    }

    pub(crate) fn on_start(mut self, act: Act) -> Self {
        self.start = act;
        self
    }

    pub(crate) fn on_stop(mut self, act: Act) -> Self {
        self.stop = act;
        self
    }
}

impl HostedService for Svc {
    async fn start(&self, token: CancellationToken) -> anyhow::Result<()> {
        self.start.clone().run(&token).await
    }
    async fn stop(&self, token: CancellationToken) -> anyhow::Result<()> {
        self.stop.clone().run(&token).await
    }
    fn name(&self) -> &str {
        &self.name
    }
}

/// Every event received so far, without waiting.
pub(crate) fn drain(events: &mut LifecycleEvents) -> Vec<LifecycleEvent> {
    let mut all = Vec::new();
    while let Some(event) = events.try_recv().expect("no lag") {
        all.push(event);
    }
    all
}

/// One line per event, offsets and durations on the paused clock.
fn line(event: &LifecycleEvent) -> String {
    match event {
        LifecycleEvent::StateChanged { state, at } => format!("{at:?} state {state:?}"),
        LifecycleEvent::StopRequested { reason, at } => format!("{at:?} stop requested: {reason}"),
        LifecycleEvent::CallBegan { service, phase, at } => {
            format!("{at:?} began {phase} {service}")
        }
        LifecycleEvent::CallEnded {
            service,
            phase,
            at,
            duration,
            outcome,
        } => format!("{at:?} ended {phase} {service} after {duration:?}: {outcome:?}"),
        LifecycleEvent::SequenceEnded {
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
        } => format!(
            "{at:?} {sequence:?} ended {outcome:?} after {duration:?}: {error:?} \
             stopped={services_stopped} failed={failed} timed_out={timed_out} \
             cancelled={cancelled} by_keeper={by_keeper}"
        ),
        other => format!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn three_services_one_failing_stop_emit_this_exact_sequence() {
    let builder = Host::builder();
    let mut events = builder.events();
    let host = builder
        .add_hosted_service(Svc::new("A"))
        .add_hosted_service(Svc::new("B").on_stop(Act::Fail("disk full")))
        .add_hosted_service(Svc::new("C").on_stop(Act::Delay(Duration::from_millis(10))))
        .build()
        .unwrap();
    host.start(CancellationToken::none()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let error = host.stop(CancellationToken::none()).await.unwrap_err();
    assert_eq!(error.to_string(), "stop of `B` failed: disk full");

    let lines: Vec<String> = drain(&mut events).iter().map(line).collect();
    let disk_full = "Error { error: \"disk full\" }";
    let expected = [
        "0ns state Starting".to_owned(),
        "0ns began start A".to_owned(),
        "0ns ended start A after 0ns: Ok".to_owned(),
        "0ns began start B".to_owned(),
        "0ns ended start B after 0ns: Ok".to_owned(),
        "0ns began start C".to_owned(),
        "0ns ended start C after 0ns: Ok".to_owned(),
        "0ns state Started".to_owned(),
        "0ns Start ended Ok after 0ns: None stopped=0 failed=0 timed_out=0 cancelled=0 \
         by_keeper=false"
            .to_owned(),
        "100ms state Stopping".to_owned(),
        "100ms stop requested: cancellation requested".to_owned(),
        "100ms began stop C".to_owned(),
        "100ms ended stop C after 10ms: Ok".to_owned(),
        "110ms began stop B".to_owned(),
        format!("110ms ended stop B after 0ns: {disk_full}"),
        "110ms began stop A".to_owned(),
        "110ms ended stop A after 0ns: Ok".to_owned(),
        "110ms state Stopped".to_owned(),
        "110ms Stop ended Failed after 10ms: Some(\"stop of `B` failed: disk full\") \
         stopped=2 failed=1 timed_out=0 cancelled=0 by_keeper=false"
            .to_owned(),
    ];
    assert_eq!(lines, expected);
}

#[tokio::test(start_paused = true)]
async fn a_lagging_subscriber_learns_how_many_events_it_missed() {
    const N: usize = 3000;
    let mut builder = Host::builder();
    let mut events = builder.events();
    for i in 0..N {
        builder = builder.add_hosted_service(Svc::new(&format!("s{i}")));
    }
    let host = builder.build().unwrap();
    host.start(CancellationToken::none()).await.unwrap();
    host.stop(CancellationToken::none()).await.unwrap();

    // 4 states, 1 stop request, a beginning and an end per call, and the
    // two sequences' ends.
    let total = 4 + 1 + 4 * N as u64 + 2;
    let missed = match events.try_recv() {
        Err(RecvError::Lagged(missed)) => missed,
        other => panic!("expected a lag, got {other:?}"),
    };
    let mut received = 0;
    let mut last = None;
    while let Some(event) = events.try_recv().unwrap() {
        received += 1;
        last = Some(event);
    }
    assert_eq!(missed + received, total);
    assert!(received > 0 && missed > 0);
    assert!(
        matches!(
            last,
            Some(LifecycleEvent::SequenceEnded {
                sequence: Sequence::Stop,
                ..
            })
        ),
        "{last:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_dropped_subscriber_does_not_hold_the_host_and_stops_the_detail() {
    let builder = Host::builder();
    let events = builder.events();
    let host = builder.add_hosted_service(Svc::new("A")).build().unwrap();
    drop(events);
    host.start(CancellationToken::none()).await.unwrap();
    host.stop(CancellationToken::none()).await.unwrap();
    // Nobody listened: completed calls are not recorded.
    let report = host.report().unwrap();
    assert!(report.services[0].calls.is_empty(), "{report:?}");
}

#[tokio::test(start_paused = true)]
async fn the_stop_budget_running_out_emits_budget_exceeded_and_abandoned() {
    let builder = Host::builder();
    let mut events = builder.events();
    let host = builder
        .add_hosted_service(Svc::new("A").on_stop(Act::Hang))
        .configure_options(|o| o.shutdown_timeout = Duration::from_secs(1))
        .build()
        .unwrap();
    host.start(CancellationToken::none()).await.unwrap();
    host.stop(CancellationToken::none()).await.unwrap_err();
    let all = drain(&mut events);
    let exceeded = all.iter().position(|e| {
        matches!(e, LifecycleEvent::BudgetExceeded { budget: BudgetOwner::Sequence { sequence: Sequence::Stop }, at } if *at == Duration::from_secs(1))
    });
    let abandoned = all.iter().position(|e| {
        matches!(e, LifecycleEvent::Abandoned { service, still_running: false, by_keeper: false, .. } if &**service == "A")
    });
    let ended = all.iter().position(|e| {
        matches!(
            e,
            LifecycleEvent::CallEnded {
                outcome: CallOutcome::Abandoned {
                    still_running: false
                },
                ..
            }
        )
    });
    assert!(
        exceeded < abandoned && abandoned < ended && exceeded.is_some(),
        "{all:#?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_service_budget_running_out_names_the_service_and_the_phase() {
    let builder = Host::builder();
    let mut events = builder.events();
    let host = builder
        .add_hosted_service(Svc::new("A").on_stop(Act::Delay(Duration::from_secs(9))))
        .configure_service("A", |o| o.stop_timeout = Some(Duration::from_millis(200)))
        .build()
        .unwrap();
    host.start(CancellationToken::none()).await.unwrap();
    host.stop(CancellationToken::none()).await.unwrap_err();
    let all = drain(&mut events);
    assert!(
        all.iter().any(|e| matches!(e,
            LifecycleEvent::BudgetExceeded { budget: BudgetOwner::Service { service, phase }, at }
                if &**service == "A" && phase.to_string() == "stop" && *at == Duration::from_millis(200))),
        "{all:#?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stop_cut_short_by_its_callers_token_is_an_event() {
    let log = Log::new();
    let builder = Host::builder();
    let mut events = builder.events();
    let host = builder
        .add_hosted_service(Fake::new("A", &log).on("stop", Act::WaitToken))
        .build()
        .unwrap();
    host.start(CancellationToken::none()).await.unwrap();
    let force = CancellationTokenSource::new();
    let stop = tokio::spawn(host.stop(force.token()));
    tokio::time::sleep(Duration::from_millis(50)).await;
    force.cancel_with(CancelReason::Signal(2));
    stop.await.unwrap().unwrap();
    let all = drain(&mut events);
    assert!(
        all.iter().any(|e| matches!(e,
            LifecycleEvent::CutShort { sequence: Sequence::Stop, reason: CancelReason::Signal(2), at }
                if *at == Duration::from_millis(50))),
        "{all:#?}"
    );
}

#[test]
fn reloads_applied_and_rejected_are_events() {
    let host = Host::builder().build().unwrap();
    let mut events = host.events();
    let good = ConfigOptions::default()
        .env_vars([("APPHOST__HOST__SHUTDOWN_TIMEOUT", "9s")])
        .load()
        .unwrap();
    host.reload(good).unwrap();
    let bad = ConfigOptions::default()
        .env_vars([("APPHOST__HOST__SERVICES_STOP_CONCURRENTLY", "maybe")])
        .load()
        .unwrap();
    let error = host.reload(bad).unwrap_err();
    let all = drain(&mut events);
    assert!(
        matches!(&all[..], [
            LifecycleEvent::ConfigReloaded { .. },
            LifecycleEvent::ConfigReloadRejected { error: text, .. },
        ] if *text == error.to_string()),
        "{all:#?}"
    );
}

#[test]
fn events_serialize_as_tagged_objects_in_milliseconds() {
    let event = LifecycleEvent::CallEnded {
        service: "db".into(),
        phase: apphost::host::LifecyclePhase::Stop,
        at: Duration::from_micros(1500),
        duration: Duration::from_millis(2),
        outcome: CallOutcome::Error {
            error: "closing: broken pipe".into(),
        },
    };
    assert_eq!(
        serde_json::to_string(&event).unwrap(),
        r#"{"event":"call_ended","service":"db","phase":"stop","at_ms":1.5,"duration_ms":2.0,"outcome":{"kind":"error","error":"closing: broken pipe"}}"#
    );
}
