//! `host.report_file`, as deployed: a real process writes the shutdown
//! report when the host has stopped, on every path that reaches the end of
//! the stop, atomically; a third signal writes nothing; a write failure
//! changes no exit code.

#![cfg(unix)]

mod process_support;

use std::path::Path;
use std::time::{Duration, Instant};

use apphost::host::{CallOutcome, HostReport, LifecyclePhase, Reason, RunOutcome};
use process_support::{SIGINT, SIGTERM, Spawn, shutdown_timeout};

const EXIT: Duration = Duration::from_secs(20);

/// A config file with this shutdown timeout and the report file `path`.
fn config(timeout: &str, path: &Path) -> String {
    format!(
        "{}report_file = \"{}\"\n",
        shutdown_timeout(timeout),
        path.display()
    )
}

fn read(path: &Path) -> HostReport {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn stop_call(report: &HostReport, service: &str) -> CallOutcome {
    let service = report
        .services
        .iter()
        .find(|s| s.name == service)
        .unwrap_or_else(|| panic!("no {service}: {report:#?}"));
    service
        .calls
        .iter()
        .find(|c| c.phase == LifecyclePhase::Stop)
        .unwrap_or_else(|| panic!("no stop call: {report:#?}"))
        .outcome
        .clone()
}

#[test]
fn a_stop_with_a_hanging_service_reports_it_abandoned_and_read_mid_stop_the_file_is_whole_or_old() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.json");
    std::fs::write(&path, "{\"old\": true}\n").unwrap();
    let mut probe = Spawn::probe()
        .file("default.toml", &config("1s", &path))
        .env("APPHOST__PROBE__SERVICES", "A,B:ignore_token,C")
        .start();
    probe.wait_ready();
    probe.signal(SIGTERM);
    // While the stop runs, every read sees the old file or the whole new one.
    let deadline = Instant::now() + EXIT;
    let mut reads = 0;
    while probe.is_running() && Instant::now() < deadline {
        let text = std::fs::read_to_string(&path).expect("never absent: it is replaced");
        if text != "{\"old\": true}\n" {
            serde_json::from_str::<HostReport>(&text)
                .unwrap_or_else(|e| panic!("a partial report ({e}): {text}"));
        }
        reads += 1;
        std::thread::sleep(Duration::from_millis(1));
    }
    let (code, _) = probe.exit_code_within(EXIT);
    assert_eq!(code, 124, "output:\n{}", probe.dump());
    assert!(reads > 10, "read only {reads} times");

    let report = read(&path);
    assert_eq!(report.exit_code, 124);
    assert_eq!(report.outcome, RunOutcome::TimedOut);
    assert_eq!(report.stop_reason, Some(Reason::Signal { signal: SIGTERM }));
    assert_eq!(report.held_stop_deadline.as_deref(), Some("B"));
    assert!(
        matches!(stop_call(&report, "B"), CallOutcome::Abandoned { .. }),
        "{report:#?}"
    );
    assert_eq!(stop_call(&report, "C"), CallOutcome::Ok);
    assert_eq!(report.budgets.shutdown_timeout_ms, 1000.0);
    assert!(
        probe.lines().iter().any(|l| l.contains("report written")),
        "output:\n{}",
        probe.dump()
    );
}

#[test]
fn a_graceful_stop_writes_a_report_with_exit_code_0() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.json");
    let mut probe = Spawn::probe()
        .env("APPHOST__HOST__REPORT_FILE", path.to_str().unwrap())
        .env("APPHOST__PROBE__SERVICES", "A,B")
        .start();
    probe.wait_ready();
    probe.signal(SIGINT);
    let (code, _) = probe.exit_code_within(EXIT);
    assert_eq!(code, 0, "output:\n{}", probe.dump());
    let report = read(&path);
    assert_eq!((report.exit_code, report.outcome), (0, RunOutcome::Ok));
    assert_eq!(stop_call(&report, "A"), CallOutcome::Ok);
    assert!(report.stop_ms.is_some() && report.start_ms.is_some());
}

#[test]
fn a_forced_stop_is_forced_in_the_report_and_in_the_last_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.json");
    let mut probe = Spawn::probe()
        .file("default.toml", &config("60s", &path))
        .env("APPHOST__PROBE__SERVICES", "A,B:slow_stop")
        .start();
    probe.wait_ready();
    probe.signal(SIGTERM);
    probe.wait_for("probe: stop B", EXIT);
    std::thread::sleep(Duration::from_millis(300));
    probe.signal(SIGTERM);
    let (code, _) = probe.exit_code_within(EXIT);
    assert_eq!(code, 0, "output:\n{}", probe.dump());
    let report = read(&path);
    assert_eq!(report.forced, Some(Reason::Signal { signal: SIGTERM }));
    assert_eq!(report.outcome, RunOutcome::Cancelled);
    assert!(
        probe
            .lines()
            .iter()
            .any(|l| l.contains("the stop was forced")),
        "output:\n{}",
        probe.dump()
    );
}

#[test]
fn a_third_signal_exits_at_once_and_writes_no_report() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.json");
    let mut probe = Spawn::probe()
        .file("default.toml", &config("60s", &path))
        .env("PROBE_RUNTIME", "current_thread")
        .env("APPHOST__PROBE__SERVICES", "A:block")
        .start();
    probe.wait_ready();
    probe.signal(SIGINT);
    probe.wait_for("probe: stop A", EXIT);
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(300));
        probe.signal(SIGINT);
    }
    let (code, _) = probe.exit_code_within(EXIT);
    assert_eq!(code, 128 + SIGINT, "output:\n{}", probe.dump());
    assert!(!path.exists(), "a third signal writes nothing");
}

#[test]
fn a_report_that_cannot_be_written_is_logged_and_the_exit_code_stays() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing-dir").join("report.json");
    let mut probe = Spawn::probe()
        .file("default.toml", &config("5s", &path))
        .env("APPHOST__PROBE__SERVICES", "A")
        .start();
    probe.wait_ready();
    probe.signal(SIGTERM);
    let (code, _) = probe.exit_code_within(EXIT);
    assert_eq!(code, 0, "output:\n{}", probe.dump());
    assert!(
        probe
            .lines()
            .iter()
            .any(|l| l.contains("cannot write the report file")),
        "output:\n{}",
        probe.dump()
    );
}

#[test]
fn a_stop_the_budget_keeper_ends_reports_the_blocking_call_abandoned_still_running() {
    // On a current-thread runtime a stop that blocks the thread blocks the
    // host's own task too: the budget keeper ends the stop at its bound and
    // reports the call; the report is written once the thread is free again.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.json");
    let mut probe = Spawn::probe()
        .file("default.toml", &config("500ms", &path))
        .env("PROBE_RUNTIME", "current_thread")
        .env("APPHOST__PROBE__SERVICES", "A:block,B")
        .env("APPHOST__PROBE__DELAY", "2s")
        .start();
    probe.wait_ready();
    probe.signal(SIGTERM);
    let (code, _) = probe.exit_code_within(EXIT);
    assert_eq!(code, 124, "output:\n{}", probe.dump());
    let report = read(&path);
    assert_eq!(report.outcome, RunOutcome::TimedOut);
    assert_eq!(
        stop_call(&report, "A"),
        CallOutcome::Abandoned {
            still_running: true
        },
        "{report:#?}"
    );
    assert_eq!(report.held_stop_deadline.as_deref(), Some("A"));
    let a_stops = report.services[0]
        .calls
        .iter()
        .filter(|c| c.phase == LifecyclePhase::Stop)
        .count();
    assert_eq!(a_stops, 1, "reported once: {report:#?}");
}
