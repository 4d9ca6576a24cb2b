//! Dependencies and per-service budgets: `ServiceOptions`,
//! `HostBuilder::configure_service` and `[services.<name>]`.

use std::sync::Arc;
use std::time::Duration;

use apphost::config::ConfigOptions;
use apphost::host::{BuildError, FailureKind, Host, LifecyclePhase};
use apphost::{CancelReason, CancellationToken};
use tokio::time::Instant;

use crate::support::{Act, Fake, Log, Worker, events};

fn fake(name: &str, log: &Log) -> Fake {
    Fake::new(name, log)
}

/// The calls of `phase` in the log, in order: `["start:Db", …]` → `["Db", …]`.
fn calls(log: &Log, phase: &str) -> Vec<String> {
    let prefix = format!("{phase}:");
    log.events()
        .iter()
        .filter_map(|e| e.strip_prefix(&prefix).map(str::to_owned))
        .collect()
}

// ===== order =====

#[tokio::test(start_paused = true)]
async fn sequential_order_puts_dependencies_first_and_keeps_registration_order_elsewhere() {
    let log = Log::new();
    let host = Host::builder()
        .add_hosted_service(fake("Web", &log))
        .add_hosted_service(fake("Metrics", &log))
        .add_hosted_service(fake("Db", &log))
        .add_hosted_service(fake("Cache", &log))
        .configure_service("Web", |o| o.depends_on = vec!["Cache".into(), "Db".into()])
        .build()
        .unwrap();
    host.start(CancellationToken::none()).await.unwrap();
    host.stop(CancellationToken::none()).await.unwrap();
    // Web's dependencies are placed just before it, in registration order.
    for phase in ["starting", "start", "started"] {
        assert_eq!(
            calls(&log, phase),
            ["Db", "Cache", "Web", "Metrics"],
            "{phase}"
        );
    }
    for phase in ["stopping", "stop", "stopped"] {
        assert_eq!(
            calls(&log, phase),
            ["Metrics", "Web", "Cache", "Db"],
            "{phase}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn concurrent_start_begins_a_call_only_after_its_dependencies_calls_ended() {
    let log = Log::new();
    let host = Host::builder()
        .add_hosted_service(fake("Web", &log))
        .add_hosted_service(fake("Db", &log).on("start", Act::Delay(Duration::from_millis(300))))
        .add_hosted_service(fake("Cache", &log).on("start", Act::Delay(Duration::from_millis(100))))
        .add_hosted_service(fake("Other", &log).on("start", Act::Delay(Duration::from_millis(50))))
        .configure_service("Web", |o| o.depends_on = vec!["Db".into(), "Cache".into()])
        .configure_options(|o| o.services_start_concurrently = true)
        .build()
        .unwrap();
    let t0 = Instant::now();
    host.start(CancellationToken::none()).await.unwrap();
    // Db, Cache and Other at once; Web once the slowest of its dependencies ended.
    assert_eq!(calls(&log, "start"), ["Db", "Cache", "Other", "Web"]);
    assert_eq!(t0.elapsed(), Duration::from_millis(300));
}

#[tokio::test(start_paused = true)]
async fn concurrent_stop_stops_dependents_first_and_independent_workers_together() {
    let log = Log::new();
    let mut builder = Host::builder()
        .add_hosted_service(fake("Db", &log).on("stop", Act::Delay(Duration::from_millis(10))));
    for i in 0..3 {
        builder = builder
            .add_background_service(
                Worker::new(&format!("W{i}"), &log).doing(Act::Delay(Duration::from_secs(3600))),
            )
            .configure_service(format!("W{i}"), |o| o.depends_on = vec!["Db".into()]);
    }
    let host = builder
        .configure_options(|o| o.services_stop_concurrently = true)
        .build()
        .unwrap();
    host.start(CancellationToken::none()).await.unwrap();
    tokio::task::yield_now().await;
    let t0 = Instant::now();
    host.stop(CancellationToken::none()).await.unwrap();
    let events = log.events();
    let db_stop = events.iter().position(|e| e == "stop:Db").unwrap();
    for i in 0..3 {
        let end = events
            .iter()
            .position(|e| *e == format!("execute-end:W{i}"))
            .unwrap();
        assert!(
            end < db_stop,
            "W{i} ended after Db began stopping: {events:?}"
        );
    }
    assert_eq!(t0.elapsed(), Duration::from_millis(10));
}

#[tokio::test(start_paused = true)]
async fn a_background_service_is_stopped_at_its_turn_in_dependency_order() {
    let log = Log::new();
    let host = Host::builder()
        .add_hosted_service(fake("Db", &log))
        .add_background_service(Worker::new("W", &log))
        .add_hosted_service(fake("Web", &log))
        .configure_service("W", |o| o.depends_on = vec!["Db".into()])
        .build()
        .unwrap();
    host.start(CancellationToken::none()).await.unwrap();
    tokio::task::yield_now().await;
    host.stop(CancellationToken::none()).await.unwrap();
    let events = log.events();
    let at = |e: &str| events.iter().position(|x| x == e).unwrap();
    assert!(at("stop:Web") < at("execute-end:W"));
    assert!(at("execute-end:W") < at("stop:Db"), "{events:?}");
}

#[tokio::test(start_paused = true)]
async fn a_service_whose_dependency_failed_to_start_is_never_started() {
    for concurrent in [false, true] {
        let log = Log::new();
        let host = Host::builder()
            .add_hosted_service(fake("Web", &log))
            .add_hosted_service(fake("Db", &log).on("start", Act::Fail("refused")))
            .configure_service("Web", |o| o.depends_on = vec!["Db".into()])
            .configure_options(move |o| o.services_start_concurrently = concurrent)
            .build()
            .unwrap();
        let error = host.start(CancellationToken::none()).await.unwrap_err();
        assert_eq!(error.failures()[0].service(), Some("Db"));
        assert!(
            !log.events().contains(&"start:Web".to_owned()),
            "concurrent={concurrent}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_host_with_no_dependencies_keeps_registration_order() {
    let log = Log::new();
    let host = Host::builder()
        .add_hosted_service(fake("A", &log))
        .add_hosted_service(fake("B", &log))
        .add_hosted_service(fake("C", &log))
        .build()
        .unwrap();
    host.start(CancellationToken::none()).await.unwrap();
    host.stop(CancellationToken::none()).await.unwrap();
    assert_eq!(calls(&log, "start"), ["A", "B", "C"]);
    assert_eq!(calls(&log, "stop"), ["C", "B", "A"]);
}

// ===== per-service budgets =====

#[tokio::test(start_paused = true)]
async fn a_service_is_cancelled_at_its_own_deadline_then_abandoned_and_the_rest_go_on() {
    let log = Log::new();
    let slow = Arc::new(fake("Slow", &log).on("stop", Act::Hang));
    let host = Host::builder()
        .add_hosted_service(fake("A", &log))
        .add_hosted_service(Arc::clone(&slow))
        .configure_service("Slow", |o| o.stop_timeout = Some(Duration::from_secs(1)))
        .configure_options(|o| o.shutdown_timeout = Duration::from_secs(10))
        .build()
        .unwrap();
    host.start(CancellationToken::none()).await.unwrap();
    let t0 = Instant::now();
    let error = host.stop(CancellationToken::none()).await.unwrap_err();
    // Its own second, the grace, the wait for its drop; far from the global ten.
    assert!(
        t0.elapsed() <= Duration::from_millis(1050),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(
        slow.token("stop").unwrap().reason(),
        Some(CancelReason::TimedOut)
    );
    let f = &error.failures()[0];
    assert_eq!(
        (f.service(), f.phase()),
        (Some("Slow"), LifecyclePhase::Stop)
    );
    assert!(matches!(
        f.kind(),
        FailureKind::Abandoned {
            still_running: false
        }
    ));
    assert!(log.events().ends_with(&events(&[
        "stop:Slow",
        "stop:A",
        "stopped:Slow",
        "stopped:A"
    ])));
}

#[tokio::test(start_paused = true)]
async fn a_service_honouring_its_own_timeout_is_reported_timed_out() {
    let log = Log::new();
    let host = Host::builder()
        .add_hosted_service(fake("Slow", &log).on("stop", Act::WaitToken))
        .configure_service("Slow", |o| {
            o.stop_timeout = Some(Duration::from_millis(500))
        })
        .build()
        .unwrap();
    host.start(CancellationToken::none()).await.unwrap();
    let t0 = Instant::now();
    let error = host.stop(CancellationToken::none()).await.unwrap_err();
    assert_eq!(t0.elapsed(), Duration::from_millis(500));
    assert!(matches!(error.failures()[0].kind(), FailureKind::TimedOut));
}

#[tokio::test(start_paused = true)]
async fn the_own_budget_covers_all_three_stop_calls_together() {
    let log = Log::new();
    let s = Arc::new(
        fake("S", &log)
            .on("stopping", Act::Delay(Duration::from_millis(600)))
            .on("stop", Act::WaitToken),
    );
    let host = Host::builder()
        .add_hosted_service(Arc::clone(&s))
        .configure_service("S", |o| o.stop_timeout = Some(Duration::from_secs(1)))
        .build()
        .unwrap();
    host.start(CancellationToken::none()).await.unwrap();
    let t0 = Instant::now();
    let _ = host.stop(CancellationToken::none()).await;
    // 600 ms in `stopping` left 400 ms for `stop`.
    assert_eq!(t0.elapsed(), Duration::from_secs(1));
    assert_eq!(
        s.token("stop").unwrap().reason(),
        Some(CancelReason::TimedOut)
    );
}

#[tokio::test(start_paused = true)]
async fn a_start_timeout_bounds_one_service_start() {
    let log = Log::new();
    let host = Host::builder()
        .add_hosted_service(fake("Slow", &log).on("start", Act::WaitToken))
        .configure_service("Slow", |o| o.start_timeout = Some(Duration::from_secs(2)))
        .build()
        .unwrap();
    let t0 = Instant::now();
    let error = host.start(CancellationToken::none()).await.unwrap_err();
    assert_eq!(t0.elapsed(), Duration::from_secs(2));
    assert!(matches!(error.failures()[0].kind(), FailureKind::TimedOut));
    assert_eq!(error.exit_code(), 124);
}

// ===== build() rejects =====

#[test]
fn build_rejects_an_unknown_dependency_naming_the_nearest() {
    let log = Log::new();
    let err = Host::builder()
        .add_hosted_service(fake("Web", &log))
        .add_hosted_service(fake("Database", &log))
        .configure_service("Web", |o| o.depends_on = vec!["Databse".into()])
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "service `Web` depends on `Databse`, which is not registered (did you mean `Database`?)"
    );
}

#[test]
fn build_rejects_a_self_dependency() {
    let log = Log::new();
    let err = Host::builder()
        .add_hosted_service(fake("A", &log))
        .configure_service("A", |o| o.depends_on = vec!["A".into()])
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::SelfDependency(ref n) if &**n == "A"));
}

#[test]
fn build_rejects_a_cycle_and_prints_it() {
    let log = Log::new();
    let err = Host::builder()
        .add_hosted_service(fake("a", &log))
        .add_hosted_service(fake("b", &log))
        .add_hosted_service(fake("c", &log))
        .configure_service("a", |o| o.depends_on = vec!["b".into()])
        .configure_service("b", |o| o.depends_on = vec!["c".into()])
        .configure_service("c", |o| o.depends_on = vec!["a".into()])
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "services depend on each other in a cycle: a → b → c → a"
    );
}

#[test]
fn build_rejects_configure_service_for_an_unknown_service() {
    let log = Log::new();
    let err = Host::builder()
        .add_hosted_service(fake("worker", &log))
        .configure_service("wroker", |_| {})
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "configure_service configures service `wroker`, which is not registered (did you mean `worker`?)"
    );
}

#[test]
fn build_rejects_a_sequential_plan_whose_stop_timeouts_exceed_the_shutdown_timeout() {
    let log = Log::new();
    let err = Host::builder()
        .add_hosted_service(fake("db", &log))
        .add_hosted_service(fake("web", &log))
        .configure_service("db", |o| o.stop_timeout = Some(Duration::from_secs(3)))
        .configure_service("web", |o| o.stop_timeout = Some(Duration::from_secs(3)))
        .configure_options(|o| o.shutdown_timeout = Duration::from_secs(5))
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the stop_timeout of db → web must run one after another and add up to 6s, more than shutdown_timeout = 5s"
    );
}

#[test]
fn a_concurrent_plan_counts_only_dependency_paths() {
    let log = Log::new();
    let build = |depends: bool| {
        Host::builder()
            .add_hosted_service(fake("db", &log))
            .add_hosted_service(fake("web", &log))
            .configure_service("db", |o| o.stop_timeout = Some(Duration::from_secs(3)))
            .configure_service("web", move |o| {
                o.stop_timeout = Some(Duration::from_secs(3));
                if depends {
                    o.depends_on = vec!["db".into()];
                }
            })
            .configure_options(|o| {
                o.shutdown_timeout = Duration::from_secs(5);
                o.services_stop_concurrently = true;
            })
            .build()
    };
    assert!(build(false).is_ok(), "independent services stop together");
    assert!(matches!(
        build(true),
        Err(BuildError::BudgetExceeded { .. })
    ));
}

#[test]
fn build_rejects_start_timeouts_exceeding_the_startup_timeout() {
    let log = Log::new();
    let err = Host::builder()
        .add_hosted_service(fake("db", &log))
        .configure_service("db", |o| o.start_timeout = Some(Duration::from_secs(60)))
        .configure_options(|o| o.startup_timeout = Some(Duration::from_secs(30)))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("start_timeout of db"), "{err}");
    assert!(err.to_string().contains("startup_timeout = 30s"), "{err}");
}

// ===== configuration =====

fn config(vars: &[(&str, &str)], toml: Option<&str>) -> apphost::config::Configuration {
    let dir = tempfile::tempdir().unwrap();
    if let Some(toml) = toml {
        std::fs::write(dir.path().join("default.toml"), toml).unwrap();
    }
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    ConfigOptions::default()
        .directory(dir.path())
        .env_vars(vars)
        .load()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn services_sections_set_budgets_and_dependencies_and_code_wins() {
    let log = Log::new();
    let configuration = config(
        &[("APPHOST__SERVICES__DB__STOP_TIMEOUT", "3s")],
        Some("[services.web]\ndepends_on = [\"db\"]\nstop_timeout = \"2s\"\n"),
    );
    let web = Arc::new(fake("web", &log).on("stop", Act::WaitToken));
    let host = Host::builder()
        .add_hosted_service(Arc::clone(&web))
        .add_hosted_service(fake("db", &log).on("stop", Act::WaitToken))
        .configure_service("web", |o| o.stop_timeout = Some(Duration::from_secs(1)))
        .configuration(configuration)
        .build()
        .unwrap();
    host.start(CancellationToken::none()).await.unwrap();
    assert_eq!(
        calls(&log, "start"),
        ["db", "web"],
        "depends_on from the file"
    );
    let t0 = Instant::now();
    let _ = host.stop(CancellationToken::none()).await;
    // web: 1 s from code (not 2 s from the file); db: 3 s from the variable.
    assert_eq!(t0.elapsed(), Duration::from_secs(4));
}

#[test]
fn a_services_section_for_an_unknown_service_is_rejected_with_the_nearest_name() {
    let log = Log::new();
    let configuration = config(&[("APPHOST__SERVICES__WROKER__STOP_TIMEOUT", "3s")], None);
    let err = Host::builder()
        .add_hosted_service(fake("worker", &log))
        .configuration(configuration)
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "[services] configures service `wroker`, which is not registered (did you mean `worker`?)"
    );
}

#[test]
fn a_bad_services_value_names_the_variable() {
    let log = Log::new();
    let configuration = config(&[("APPHOST__SERVICES__WORKER__STOP_TIMEOUT", "soon")], None);
    let err = Host::builder()
        .add_hosted_service(fake("worker", &log))
        .configuration(configuration)
        .build()
        .unwrap_err();
    assert_eq!(err.exit_code(), 78);
    assert!(
        err.to_string()
            .contains("APPHOST__SERVICES__WORKER__STOP_TIMEOUT"),
        "{err}"
    );
}
