//! The shutdown report: its fields after a success, a failure, a timeout
//! with abandonment, a forced stop and a start rollback; its JSON round
//! trip; the exit code computed from it.

use std::time::Duration;

use apphost::host::{
    CallOutcome, Host, HostReport, LifecyclePhase, Reason, RunOutcome, ServiceKind,
};
use apphost::{CancelReason, CancellationToken, CancellationTokenSource};

use crate::events::Svc;
use crate::support::{Act, Log, Worker};

fn outcomes(report: &HostReport, service: &str) -> Vec<(LifecyclePhase, CallOutcome)> {
    let service = report
        .services
        .iter()
        .find(|s| s.name == service)
        .unwrap_or_else(|| panic!("no service {service} in {report:#?}"));
    service
        .calls
        .iter()
        .map(|c| (c.phase, c.outcome.clone()))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_graceful_run_reports_every_call_and_exit_code_0() {
    let log = Log::new();
    let builder = Host::builder();
    let _listening = builder.events();
    let host = builder
        .add_hosted_service(Svc::new("db").on_stop(Act::Delay(Duration::from_millis(30))))
        .add_hosted_service(Svc::new("web"))
        .add_background_service(Worker::new("jobs", &log))
        .configure_service("web", |o| o.depends_on = vec!["db".into()])
        .configure_options(|o| o.shutdown_timeout = Duration::from_secs(2))
        .build()
        .unwrap();
    assert!(host.report().is_none(), "not stopped yet");
    host.start(CancellationToken::none()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    host.lifetime()
        .stop_application_with(CancelReason::Signal(15));
    host.wait_for_shutdown().await.unwrap();

    let report = host.report().unwrap();
    assert_eq!(report.exit_code, 0);
    assert_eq!(report.outcome, RunOutcome::Ok);
    assert_eq!(report.stop_reason, Some(Reason::Signal { signal: 15 }));
    assert_eq!(report.forced, None);
    assert_eq!(report.start_ms, Some(0.0));
    assert_eq!(report.stop_ms, Some(30.0));
    assert_eq!(report.budgets.shutdown_timeout_ms, 2000.0);
    assert_eq!(report.budgets.startup_timeout_ms, None);
    assert_eq!(report.held_stop_deadline.as_deref(), Some("db"));
    assert!(report.failures.is_empty());
    let names: Vec<(&str, ServiceKind, Vec<String>)> = report
        .services
        .iter()
        .map(|s| (&*s.name, s.kind, s.depends_on.clone()))
        .collect();
    assert_eq!(
        names,
        [
            ("db", ServiceKind::Hosted, vec![]),
            ("web", ServiceKind::Hosted, vec!["db".to_owned()]),
            ("jobs", ServiceKind::Background, vec![]),
        ]
    );
    let db = &report.services[0].calls;
    assert_eq!(db.len(), 2);
    assert_eq!(
        (db[1].phase, db[1].offset_ms, db[1].duration_ms),
        (LifecyclePhase::Stop, 100.0, 30.0)
    );
    assert_eq!(
        outcomes(&report, "jobs"),
        [(LifecyclePhase::Stop, CallOutcome::Ok)]
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_stop_is_reported_by_the_error_and_by_the_host() {
    let host = Host::builder()
        .add_hosted_service(Svc::new("A"))
        .add_hosted_service(Svc::new("B").on_stop(Act::Fail("disk full")))
        .build()
        .unwrap();
    host.start(CancellationToken::none()).await.unwrap();
    let error = host.stop(CancellationToken::none()).await.unwrap_err();
    let report = error.report().expect("the host has stopped");
    assert_eq!(report, &host.report().unwrap());
    assert_eq!((report.exit_code, report.outcome), (1, RunOutcome::Failed));
    assert_eq!(report.exit_code, error.exit_code());
    let failure = &report.failures[0];
    assert_eq!(failure.service.as_deref(), Some("B"));
    assert_eq!(failure.phase, LifecyclePhase::Stop);
    let disk_full = CallOutcome::Error {
        error: "disk full".into(),
    };
    assert_eq!(failure.outcome, disk_full);
    // Nobody listened: only the call that failed is recorded, and the
    // offender held the deadline.
    assert_eq!(outcomes(report, "B"), [(LifecyclePhase::Stop, disk_full)]);
    assert!(outcomes(report, "A").is_empty());
    assert_eq!(report.held_stop_deadline.as_deref(), Some("B"));
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_stop_names_the_abandoned_service_as_the_one_that_held_the_deadline() {
    let builder = Host::builder();
    let _listening = builder.events();
    let host = builder
        .add_hosted_service(Svc::new("A").on_stop(Act::Delay(Duration::from_millis(200))))
        .add_hosted_service(Svc::new("B").on_stop(Act::Hang))
        .add_hosted_service(Svc::new("C"))
        .configure_options(|o| o.shutdown_timeout = Duration::from_secs(1))
        .build()
        .unwrap();
    host.start(CancellationToken::none()).await.unwrap();
    let error = host.stop(CancellationToken::none()).await.unwrap_err();
    let report = error.report().unwrap();
    assert_eq!(
        (report.exit_code, report.outcome),
        (124, RunOutcome::TimedOut)
    );
    assert_eq!(report.held_stop_deadline.as_deref(), Some("B"));
    let b = &report.services[1].calls;
    let stop = b.iter().find(|c| c.phase == LifecyclePhase::Stop).unwrap();
    assert_eq!(
        stop.outcome,
        CallOutcome::Abandoned {
            still_running: false
        }
    );
    assert!(stop.duration_ms >= 1000.0, "{stop:?}");
    // A was made after the budget was spent: its first poll only, which
    // sees its token cancelled (or is abandoned).
    let a = outcomes(report, "A");
    assert_eq!(a[0], (LifecyclePhase::Start, CallOutcome::Ok));
    assert!(
        matches!(
            a[1],
            (
                LifecyclePhase::Stop,
                CallOutcome::TimedOut | CallOutcome::Abandoned { .. }
            )
        ),
        "{a:?}"
    );
    assert!(report.stop_ms.unwrap() >= 1000.0);
}

#[tokio::test(start_paused = true)]
async fn a_stop_forced_by_a_second_signal_is_visible_as_forced() {
    let log = Log::new();
    let host = Host::builder()
        .add_background_service(Worker::new("jobs", &log))
        .build()
        .unwrap();
    host.start(CancellationToken::none()).await.unwrap();
    let force = CancellationTokenSource::new();
    force.cancel_with(CancelReason::Signal(2));
    // The worker returns for its token: nothing failed, but it was forced.
    host.stop(force.token()).await.unwrap();
    let report = host.report().unwrap();
    assert_eq!(report.forced, Some(Reason::Signal { signal: 2 }));
    assert_eq!(
        (report.exit_code, report.outcome),
        (0, RunOutcome::Cancelled)
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_start_reports_the_failure_and_the_rollback() {
    let builder = Host::builder();
    let _listening = builder.events();
    let host = builder
        .add_hosted_service(Svc::new("A"))
        .add_hosted_service(Svc::new("B").on_start(Act::Fail("no config")))
        .add_hosted_service(Svc::new("C"))
        .build()
        .unwrap();
    let error = host.run().await.unwrap_err();
    let report = error.report().unwrap();
    assert_eq!((report.exit_code, report.outcome), (1, RunOutcome::Failed));
    assert_eq!(
        outcomes(report, "A"),
        [
            (LifecyclePhase::Start, CallOutcome::Ok),
            (LifecyclePhase::Stop, CallOutcome::Ok)
        ]
    );
    assert_eq!(
        outcomes(report, "B"),
        [(
            LifecyclePhase::Start,
            CallOutcome::Error {
                error: "no config".into()
            }
        )]
    );
    assert!(outcomes(report, "C").is_empty(), "never started");
    assert_eq!(report.stop_reason, Some(Reason::Requested));
    assert_eq!(report.start_ms, Some(0.0));
    assert!(report.stop_ms.is_some());
}

#[tokio::test(start_paused = true)]
async fn a_report_round_trips_through_json() {
    let builder = Host::builder();
    let _listening = builder.events();
    let host = builder
        .add_hosted_service(Svc::new("A").on_stop(Act::Panic("bug")))
        .add_hosted_service(Svc::new("B").on_stop(Act::Hang))
        .configure_service("B", |o| o.stop_timeout = Some(Duration::from_millis(100)))
        .configure_service("A", |o| o.depends_on = vec!["B".into()])
        .build()
        .unwrap();
    host.start(CancellationToken::none()).await.unwrap();
    let error = host.stop(CancellationToken::none()).await.unwrap_err();
    let report = error.report().unwrap().clone();
    let json = serde_json::to_string_pretty(&report).unwrap();
    let back: HostReport = serde_json::from_str(&json).unwrap();
    assert_eq!(back, report);
    assert!(json.contains(r#""kind": "panic""#), "{json}");
    assert!(json.contains(r#""payload": "bug""#), "{json}");
    assert!(json.contains(r#""stop_timeout_ms": 100.0"#), "{json}");
    assert_eq!(report.exit_code, error.exit_code());
}

#[test]
fn the_exit_code_follows_one_rule() {
    let term = CallOutcome::Cancelled {
        reason: Reason::Signal { signal: 15 },
    };
    let asked = CallOutcome::Cancelled {
        reason: Reason::Requested,
    };
    let error = CallOutcome::Error { error: "x".into() };
    let abandoned = CallOutcome::Abandoned {
        still_running: true,
    };
    assert_eq!(HostReport::exit_code_for([]), 0);
    assert_eq!(HostReport::exit_code_for([&asked]), 1);
    assert_eq!(HostReport::exit_code_for([&term]), 143);
    assert_eq!(HostReport::exit_code_for([&term, &abandoned]), 124);
    assert_eq!(HostReport::exit_code_for([&abandoned, &error]), 1);
    let huge = CallOutcome::Cancelled {
        reason: Reason::Signal { signal: 400 },
    };
    assert_eq!(HostReport::exit_code_for([&huge]), 255);
}

#[test]
fn the_readme_example_report_parses_and_follows_the_exit_code_rule() {
    let readme = include_str!("../../README.md");
    let marker = "<!-- report-example -->\n```json\n";
    let start = readme.find(marker).expect("the README's example report") + marker.len();
    let end = start + readme[start..].find("```").unwrap();
    let report: HostReport = serde_json::from_str(&readme[start..end]).unwrap();
    assert_eq!(
        report.exit_code,
        HostReport::exit_code_for(report.failures.iter().map(|f| &f.outcome))
    );
    assert_eq!(report.outcome, RunOutcome::Failed);
    assert_eq!(report.held_stop_deadline.as_deref(), Some("queue"));
}
