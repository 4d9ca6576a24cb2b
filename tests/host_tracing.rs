//! tracing: one span per service per call with its duration, failure events
//! naming the service, and the summary event at the end of stop.
//!
//! A test binary of its own: tracing caches per-callsite interest globally,
//! so a subscriber installed while other tests run on other threads may miss
//! events. Here the subscriber is global and installed before anything runs.

#[allow(dead_code, unreachable_pub)]
#[path = "host_lifecycle/support.rs"]
mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use apphost::CancellationToken;
use apphost::host::{BackgroundServiceExceptionBehavior, Host};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

use crate::support::{Act, Fake, Log, Worker};

type Fields = HashMap<String, String>;
/// An event: its level, its fields, and the fields of the span it is in.
type CapturedEvent = (tracing::Level, Fields, Option<Fields>);

#[derive(Clone, Default)]
struct Captured {
    open: Arc<Mutex<HashMap<u64, (String, Fields)>>>,
    closed: Arc<Mutex<Vec<(String, Fields)>>>,
    events: Arc<Mutex<Vec<CapturedEvent>>>,
}

struct FieldsVisitor<'a>(&'a mut Fields);

impl Visit for FieldsVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().to_owned(),
            format!("{value:?}").trim_matches('"').to_owned(),
        );
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Captured {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let mut fields = Fields::new();
        attrs.record(&mut FieldsVisitor(&mut fields));
        self.open
            .lock()
            .unwrap()
            .insert(id.into_u64(), (attrs.metadata().name().to_owned(), fields));
    }
    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        if let Some((_, fields)) = self.open.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut FieldsVisitor(fields));
        }
    }
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::new();
        event.record(&mut FieldsVisitor(&mut fields));
        let parent = ctx.event_span(event).and_then(|span| {
            self.open
                .lock()
                .unwrap()
                .get(&span.id().into_u64())
                .map(|(_, f)| f.clone())
        });
        self.events
            .lock()
            .unwrap()
            .push((*event.metadata().level(), fields, parent));
    }
    fn on_close(&self, id: Id, _: Context<'_, S>) {
        if let Some(span) = self.open.lock().unwrap().remove(&id.into_u64()) {
            self.closed.lock().unwrap().push(span);
        }
    }
}

#[tokio::test]
async fn each_call_has_a_span_with_its_duration_and_stop_ends_with_a_summary() {
    let captured = Captured::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(captured.clone()))
        .unwrap();
    let log = Log::new();
    let host = Host::builder()
        .add_hosted_service(Fake::new("A", &log))
        .add_hosted_service(Fake::new("B", &log).on("stop", Act::Fail("flush failed")))
        .add_background_service(Worker::new("W", &log).doing(Act::Fail("disk gone")))
        .configure_options(|o| {
            o.background_service_exception_behavior = BackgroundServiceExceptionBehavior::Ignore;
        })
        .build()
        .unwrap();

    host.start(CancellationToken::none()).await.unwrap();
    host.stop(CancellationToken::none()).await.unwrap_err();
    drop(host);

    let closed = captured.closed.lock().unwrap().clone();
    for service in ["A", "B"] {
        for phase in [
            "starting", "start", "started", "stopping", "stop", "stopped",
        ] {
            let span = closed
                .iter()
                .find(|(name, f)| {
                    name == "service" && f["service"] == service && f["phase"] == phase
                })
                .unwrap_or_else(|| panic!("no span for {phase} of {service}"));
            assert!(span.1.contains_key("elapsed_ms"), "{span:?}");
        }
    }

    let events = captured.events.lock().unwrap().clone();
    let failure = events
        .iter()
        .find(|(level, f, _)| {
            *level == tracing::Level::ERROR && f["message"] == "service call failed"
        })
        .expect("a failure event");
    assert_eq!(failure.1["error"], "flush failed");
    // Named by the line itself (it is written from the lifecycle event,
    // after the call's DEBUG span, which INFO hides, has closed).
    assert_eq!(failure.1["service"], "B");
    assert_eq!(failure.1["phase"], "stop");

    // The error is the chain, not "failed: …" after "failed".
    let background = events
        .iter()
        .find(|(_, f, _)| f["message"] == "background service failed")
        .expect("a background failure event");
    assert_eq!(background.0, tracing::Level::ERROR);
    assert_eq!(background.1["service"], "W");
    assert_eq!(background.1["phase"], "execute");
    assert_eq!(background.1["error"], "disk gone");

    let summary = events
        .iter()
        .find(|(_, f, _)| f["message"] == "host stopped")
        .expect("a summary event");
    assert_eq!(summary.0, tracing::Level::INFO);
    assert_eq!(summary.1["services_stopped"], "2", "A and W");
    assert_eq!(summary.1["failed"], "1");
    assert_eq!(summary.1["timed_out"], "0");
    assert!(summary.1.contains_key("elapsed_ms"));
}
