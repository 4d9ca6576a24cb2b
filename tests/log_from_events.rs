//! The host's log lines are written from its lifecycle events, one stream:
//! a host that fails, times out, abandons a call, panics in a lifetime
//! callback and loses a background service writes exactly the lines its
//! events call for, in their order, and no other.
//!
//! A test binary of its own: the subscriber is global and installed before
//! anything runs (tracing caches per-callsite interest).

#[allow(dead_code, unreachable_pub)]
#[path = "host_lifecycle/support.rs"]
mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use apphost::CancellationToken;
use apphost::host::{
    BackgroundServiceExceptionBehavior, BudgetOwner, CallOutcome, Host, HostState, LifecycleEvent,
    LifecyclePhase, RunOutcome, Sequence,
};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

use crate::support::{Act, Fake, Log, Worker};

/// A line: level, message, and the `service` and `phase` fields if any.
type Line = (Level, String, Option<String>, Option<String>);

#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<Line>>>);

#[derive(Default)]
struct Fields {
    message: String,
    service: Option<String>,
    phase: Option<String>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}").trim_matches('"').to_owned();
        match field.name() {
            "message" => self.message = text,
            "service" => self.service = Some(text),
            "phase" => self.phase = Some(text),
            _ => {}
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record_debug(field, &value);
    }
}

impl<S: Subscriber> Layer<S> for Lines {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() != "apphost::host" {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        self.0.lock().unwrap().push((
            *event.metadata().level(),
            fields.message,
            fields.service,
            fields.phase,
        ));
    }
}

/// The line the documented table (`host/log.rs`) gives `event`, restated
/// here independently; the message is compared by its start.
fn expected(event: &LifecycleEvent) -> Option<Line> {
    let call = |level, message: &str, service: &str, phase: &LifecyclePhase| {
        Some((
            level,
            message.to_owned(),
            Some(service.to_owned()),
            Some(phase.to_string()),
        ))
    };
    let host = |level, message: &str| Some((level, message.to_owned(), None, None));
    match event {
        LifecycleEvent::StateChanged { state, .. } => match state {
            HostState::Starting => host(Level::INFO, "host starting"),
            HostState::Stopping => host(Level::INFO, "host stopping"),
            _ => None,
        },
        LifecycleEvent::StopRequested { .. } => host(Level::INFO, "stop requested"),
        LifecycleEvent::CallBegan { service, phase, .. } => {
            call(Level::TRACE, "service call began", service, phase)
        }
        LifecycleEvent::CallEnded {
            service,
            phase,
            outcome,
            ..
        } => {
            let execute = *phase == LifecyclePhase::Execute;
            match outcome {
                CallOutcome::Ok => call(Level::DEBUG, "service call finished", service, phase),
                CallOutcome::Error { .. } if execute => {
                    call(Level::ERROR, "background service failed", service, phase)
                }
                CallOutcome::Error { .. } => {
                    call(Level::ERROR, "service call failed", service, phase)
                }
                CallOutcome::TimedOut => {
                    call(Level::WARN, "service call timed out", service, phase)
                }
                CallOutcome::Cancelled { .. } => {
                    call(Level::INFO, "service call cancelled", service, phase)
                }
                CallOutcome::Abandoned { .. } => None,
                other => panic!("not in this run: {other:?}"),
            }
        }
        LifecycleEvent::Abandoned { service, phase, .. } => call(
            Level::WARN,
            "service call did not finish in time",
            service,
            phase,
        ),
        LifecycleEvent::BudgetExceeded { budget, .. } => match budget {
            BudgetOwner::Sequence { .. } => host(Level::WARN, "stop budget spent"),
            BudgetOwner::Service { service, phase } => {
                call(Level::WARN, "service's own budget spent", service, phase)
            }
            other => panic!("unknown owner {other:?}"),
        },
        LifecycleEvent::CallbackFailed { phase, .. } => Some((
            Level::ERROR,
            "lifetime callback panicked".to_owned(),
            None,
            Some(phase.to_string()),
        )),
        LifecycleEvent::SequenceEnded {
            sequence: Sequence::Start,
            ..
        } => host(Level::INFO, "host started"),
        LifecycleEvent::SequenceEnded { .. } => host(Level::INFO, "host stopped"),
        other => panic!("not in this run: {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn every_host_line_is_written_from_an_event_in_its_order() {
    let lines = Lines::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(lines.clone()))
        .unwrap();

    let log = Log::new();
    let builder = Host::builder();
    let mut events = builder.events();
    let host = builder
        .add_hosted_service(Fake::new("A", &log))
        .add_hosted_service(Fake::new("B", &log).on("stop", Act::Fail("flush failed")))
        .add_hosted_service(Fake::new("C", &log).on("stop", Act::Hang))
        .add_hosted_service(Fake::new("D", &log).on("stopping", Act::WaitToken))
        .add_background_service(Worker::new("W", &log).doing(Act::Fail("disk gone")))
        .configure_service("D", |o| o.stop_timeout = Some(Duration::from_millis(200)))
        .configure_options(|o| {
            o.shutdown_timeout = Duration::from_secs(1);
            o.background_service_exception_behavior = BackgroundServiceExceptionBehavior::Ignore;
        })
        .build()
        .unwrap();
    // (Its panic message is printed by the default hook: expected.)
    host.lifetime()
        .stopping()
        .register(|| panic!("a stopping callback panics"))
        .detach();

    host.start(CancellationToken::none()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    host.stop(CancellationToken::none()).await.unwrap_err();

    let mut received = Vec::new();
    while let Some(event) = events.try_recv().unwrap() {
        received.push(event);
    }
    let written = lines.0.lock().unwrap().clone();
    let wanted: Vec<Line> = received.iter().filter_map(expected).collect();
    assert_eq!(
        written.len(),
        wanted.len(),
        "one line per event that has one:\n{written:#?}\n{wanted:#?}"
    );
    for (line, want) in written.iter().zip(&wanted) {
        assert_eq!(line.0, want.0, "{line:?} / {want:?}");
        assert!(line.1.starts_with(&want.1), "{line:?} / {want:?}");
        assert_eq!((&line.2, &line.3), (&want.2, &want.3), "{line:?}");
    }

    // This run did reach every path it was built for.
    let has = |f: &dyn Fn(&LifecycleEvent) -> bool| received.iter().any(f);
    assert!(has(
        &|e| matches!(e, LifecycleEvent::Abandoned { service, .. } if &**service == "C")
    ));
    assert!(has(&|e| matches!(
        e,
        LifecycleEvent::BudgetExceeded { budget: BudgetOwner::Service { service, .. }, .. } if &**service == "D"
    )));
    assert!(has(&|e| matches!(e, LifecycleEvent::CallbackFailed { .. })));
    assert!(has(&|e| matches!(
        e,
        LifecycleEvent::CallEnded {
            phase: LifecyclePhase::Execute,
            ..
        }
    )));
    assert!(has(&|e| matches!(
        e,
        LifecycleEvent::SequenceEnded {
            sequence: Sequence::Stop,
            outcome: RunOutcome::Failed,
            failed: 2,
            timed_out: 2,
            ..
        }
    )));
}
