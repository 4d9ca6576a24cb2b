//! Real processes, real signals: the `probe_service` example run through
//! `apphost::console`, stopped by SIGTERM, SIGINT and SIGQUIT, escalated by a
//! second and third signal, hit by a burst, by SIGHUP, and writing to closed
//! pipes. Every wait is bounded (see `process_support`).

#![cfg(unix)]

mod process_support;

use std::time::Duration;

use process_support::{
    SIGHUP, SIGINT, SIGQUIT, SIGTERM, Spawn, Stream, assert_absent, assert_in_order,
    shutdown_timeout,
};

/// Longer than the 100 ms within which signals count as one.
const APART: Duration = Duration::from_millis(250);

/// Generous: a graceful stop of three services takes milliseconds.
const EXIT: Duration = Duration::from_secs(10);

fn graceful_stop_on(signal: libc::c_int) {
    let mut probe = Spawn::probe()
        .file("default.toml", &shutdown_timeout("5s"))
        .start();
    probe.wait_ready();
    probe.signal(signal);
    let (code, _) = probe.exit_code_within(EXIT);
    assert_eq!(code, 0, "output:\n{}", probe.dump());
    let lines = probe.lines();
    assert_in_order(
        &lines,
        &[
            "probe: hook-starting A",
            "probe: hook-starting B",
            "probe: hook-starting C",
            "probe: start A",
            "probe: start B",
            "probe: start C",
            "probe: hook-started A",
            "probe: hook-started B",
            "probe: hook-started C",
            "Application started. Press Ctrl+C to shut down.",
            "Hosting environment: production",
            "Config directory: ",
            "probe: READY",
            &format!("received signal {signal} "),
            // Stopping callbacks run on the thread of the stop request, so
            // they are not ordered with the `stopping` hooks; both are over
            // before the first `stop`.
            "Application is shutting down...",
            "probe: lifetime-stopping",
            "probe: stop C",
        ],
    );
    assert_in_order(
        &lines,
        &[
            &format!("received signal {signal} "),
            // Every stop phase in reverse registration order.
            "probe: hook-stopping C",
            "probe: hook-stopping B",
            "probe: hook-stopping A",
            "probe: stop C",
            "probe: stopped C",
            "probe: stop B",
            "probe: stopped B",
            "probe: stop A",
            "probe: stopped A",
            "probe: hook-stopped C",
            "probe: hook-stopped B",
            "probe: hook-stopped A",
            "probe: lifetime-stopped",
        ],
    );
}

#[test]
fn sigterm_stops_gracefully_in_reverse_order_and_exits_0() {
    graceful_stop_on(SIGTERM);
}

#[test]
fn sigint_stops_gracefully_in_reverse_order_and_exits_0() {
    graceful_stop_on(SIGINT);
}

#[test]
fn sigquit_stops_gracefully_in_reverse_order_and_exits_0() {
    graceful_stop_on(SIGQUIT);
}

#[test]
fn status_messages_can_be_suppressed_from_config() {
    let mut probe = Spawn::probe()
        .file(
            "default.toml",
            "[console]\nsuppress_status_messages = true\n",
        )
        .start();
    probe.wait_ready();
    probe.signal(SIGTERM);
    assert_eq!(
        probe.exit_code_within(EXIT).0,
        0,
        "output:\n{}",
        probe.dump()
    );
    let lines = probe.lines();
    assert_absent(&lines, "Application started");
    assert_absent(&lines, "Application is shutting down");
    assert_in_order(&lines, &["probe: READY", "probe: stopped A"]);
}

#[test]
fn second_signal_during_a_slow_stop_ends_it_at_once() {
    // B's stop would take 30 s and the budget is 60 s: only the second
    // signal can end it early.
    let mut probe = Spawn::probe()
        .file("default.toml", &shutdown_timeout("60s"))
        .env("APPHOST__PROBE__SERVICES", "A,B:slow_stop")
        .start();
    probe.wait_ready();
    probe.signal(SIGTERM);
    probe.wait_for("probe: stop B", EXIT);
    std::thread::sleep(APART);
    assert!(
        probe.is_running(),
        "the first signal alone must not end a 30 s stop"
    );
    probe.signal(SIGTERM);
    let (code, took) = probe.exit_code_within(EXIT);
    assert!(
        took < Duration::from_secs(5),
        "took {took:?} after the second signal"
    );
    // B honoured its cancelled token: cooperative, not a failure.
    assert_eq!(code, 0, "output:\n{}", probe.dump());
    assert_in_order(
        &probe.lines(),
        &[
            "stopping gracefully",
            "probe: stop B",
            "abandoning the graceful stop",
            "probe: stop-cancelled B",
            "probe: stop A",
            "probe: stopped A",
        ],
    );
}

#[test]
fn third_signal_exits_at_once_with_128_plus_n() {
    // On a current-thread runtime a service that blocks its thread blocks
    // the host too: neither the graceful stop nor the second signal can end
    // it, only the third.
    let mut probe = Spawn::probe()
        .file("default.toml", &shutdown_timeout("60s"))
        .env("PROBE_RUNTIME", "current_thread")
        .env("APPHOST__PROBE__SERVICES", "A:block")
        .start();
    probe.wait_ready();
    probe.signal(SIGINT);
    probe.wait_for("probe: stop A", EXIT);
    std::thread::sleep(APART);
    probe.signal(SIGINT);
    std::thread::sleep(APART);
    assert!(
        probe.is_running(),
        "a blocked host outlives the second signal"
    );
    probe.signal(SIGINT);
    let (code, took) = probe.exit_code_within(EXIT);
    assert_eq!(code, 128 + SIGINT, "output:\n{}", probe.dump());
    assert!(
        took < Duration::from_secs(5),
        "took {took:?} after the third signal"
    );
    assert_absent(&probe.lines(), "probe: stopped A");
}

#[test]
fn sigterm_while_starting_cancels_start_stops_what_started_and_exits_0() {
    let mut probe = Spawn::probe()
        .file("default.toml", &shutdown_timeout("5s"))
        .env("APPHOST__PROBE__SERVICES", "A,B:slow_start,C")
        .start();
    probe.wait_for("probe: start B", process_support::READY_TIMEOUT);
    probe.signal(SIGTERM);
    let (code, _) = probe.exit_code_within(EXIT);
    // A stop that was asked for and completed within the budget is a
    // graceful stop, even when it cut the start short: exit 0 and INFO, so
    // systemd does not record `systemctl stop` during a slow start as failed.
    assert_eq!(code, 0, "output:\n{}", probe.dump());
    let lines = probe.lines();
    let cut = lines
        .iter()
        .find(|l| l.contains("the start was cut short by a stop request; stopped gracefully"))
        .unwrap_or_else(|| panic!("no INFO line; output:\n{}", probe.dump()));
    assert!(cut.contains("INFO"), "{cut}");
    // The console's verdict. (src/host logs its own view of the cut-short
    // start; that line belongs to the host, not to the exit verdict.)
    assert_absent(&lines, "ERROR apphost::lifetime");
    assert_in_order(
        &lines,
        &[
            "probe: started A",
            "probe: start B",
            "probe: start-cancelled B",
            "probe: stop A",
            "probe: stopped A",
        ],
    );
    assert_absent(&lines, "probe: start C");
    assert_absent(&lines, "probe: stop B");
    assert_absent(&lines, "probe: READY");
    assert_absent(&lines, "Application started");
}

#[test]
fn a_burst_of_100_sigterms_is_one_graceful_stop() {
    let mut probe = Spawn::probe()
        .file("default.toml", &shutdown_timeout("5s"))
        .start();
    probe.wait_ready();
    for _ in 0..100 {
        probe.signal(SIGTERM);
    }
    let (code, _) = probe.exit_code_within(EXIT);
    assert_eq!(code, 0, "output:\n{}", probe.dump());
    let lines = probe.lines();
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("stopping gracefully"))
            .count(),
        1,
        "one request; output:\n{}",
        lines.join("\n")
    );
    assert_absent(&lines, "abandoning");
    assert_absent(&lines, "exiting now");
    assert_in_order(
        &lines,
        &[
            "probe: stop C",
            "probe: stop B",
            "probe: stop A",
            "probe: lifetime-stopped",
        ],
    );
}

#[test]
fn sighup_is_logged_and_does_not_kill() {
    let mut probe = Spawn::probe().start();
    probe.wait_ready();
    probe.signal(SIGHUP);
    probe.wait_for("SIGHUP", EXIT);
    std::thread::sleep(APART);
    assert!(probe.is_running(), "SIGHUP must not stop the process");
    assert_absent(&probe.lines(), "probe: stop");
    probe.signal(SIGTERM);
    assert_eq!(
        probe.exit_code_within(EXIT).0,
        0,
        "output:\n{}",
        probe.dump()
    );
}

#[test]
fn a_closed_stderr_does_not_panic() {
    // stderr (logs and the probe's lines) is a pipe nobody reads any more.
    let mut probe = Spawn::probe().read(Stream::Stdout).close_other().start();
    probe.wait_ready();
    probe.signal(SIGTERM);
    assert_eq!(
        probe.exit_code_within(EXIT).0,
        0,
        "output:\n{}",
        probe.dump()
    );
    assert_in_order(
        &probe.lines(),
        &["probe: READY", "probe: stop C", "probe: stopped A"],
    );
}

#[test]
fn a_closed_stdout_does_not_panic() {
    let mut probe = Spawn::probe().read(Stream::Stderr).close_other().start();
    probe.wait_ready();
    probe.signal(SIGTERM);
    assert_eq!(
        probe.exit_code_within(EXIT).0,
        0,
        "output:\n{}",
        probe.dump()
    );
    assert_in_order(
        &probe.lines(),
        &["probe: READY", "probe: stop C", "probe: stopped A"],
    );
}

#[test]
fn a_stop_signal_during_start_whose_stop_times_out_still_fails() {
    // The start is cut short, but what started ignores its stop token past
    // the budget: not graceful, so 124 and an ERROR line.
    let mut probe = Spawn::probe()
        .file(
            "default.toml",
            "[host]\nshutdown_timeout = \"1s\"\n[probe]\nservices = \"A:ignore_token,B:slow_start\"\ndelay = \"30s\"\n",
        )
        .start();
    probe.wait_for("probe: start B", process_support::READY_TIMEOUT);
    probe.signal(SIGTERM);
    let (code, _) = probe.exit_code_within(Duration::from_secs(20));
    assert_eq!(code, 124, "output:\n{}", probe.dump());
    assert!(
        probe.lines().iter().any(|l| l.contains("ERROR")),
        "output:\n{}",
        probe.dump()
    );
}

/// A configuration file whose loading takes a while (a long comment): the
/// set-up window before the host exists, where the default dispositions of
/// SIGHUP and SIGTERM would have killed the process, lasts long enough that
/// a test lands signals in it for sure.
fn slow_to_load(config: &str) -> String {
    let mut text = String::from(config);
    let line = format!("# {}\n", "padding ".repeat(16));
    while text.len() < 4 << 20 {
        text.push_str(&line);
    }
    text
}

/// SIGHUP from the moment the process reaches `main`, every few
/// milliseconds, through configuration loading, logging, runtime set-up and
/// a slow start: the dispositions are set first thing in `console::run`, so
/// none of them kills the process (before, a SIGHUP in the set-up window
/// exited with 129).
#[test]
fn sighup_right_after_exec_and_during_a_slow_start_never_kills() {
    let mut probe = Spawn::probe()
        .file(
            "default.toml",
            &slow_to_load(
                "[host]\nshutdown_timeout = \"5s\"\n[probe]\nservices = \"A:slow_start\"\ndelay = \"300ms\"\n",
            ),
        )
        .start();
    probe.wait_for("probe: main", process_support::READY_TIMEOUT);
    // The handlers are installed microseconds after that line; the set-up
    // window they close lasts far longer with this configuration file.
    std::thread::sleep(Duration::from_millis(3));
    let deadline = std::time::Instant::now() + process_support::READY_TIMEOUT;
    let mut sent = 0;
    while !probe.lines().iter().any(|l| l.contains("probe: READY")) {
        assert!(
            probe.is_running(),
            "killed after {sent} SIGHUPs: {:?}; output:\n{}",
            probe.wait_exit(EXIT),
            probe.dump()
        );
        assert!(
            std::time::Instant::now() < deadline,
            "never READY; output:\n{}",
            probe.dump()
        );
        probe.signal(SIGHUP);
        sent += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(sent > 3, "only {sent} SIGHUPs before READY");
    std::thread::sleep(APART);
    assert!(probe.is_running(), "output:\n{}", probe.dump());
    probe.signal(SIGTERM);
    assert_eq!(
        probe.exit_code_within(Duration::from_secs(20)).0,
        0,
        "output:\n{}",
        probe.dump()
    );
}

/// A stop signal before the host exists (during configuration loading) is
/// remembered and honoured as a graceful stop.
#[test]
fn sigterm_right_after_exec_is_a_graceful_stop() {
    let mut probe = Spawn::probe()
        .file("default.toml", &slow_to_load(&shutdown_timeout("5s")))
        .start();
    probe.wait_for("probe: main", process_support::READY_TIMEOUT);
    std::thread::sleep(Duration::from_millis(3));
    probe.signal(SIGTERM);
    let (code, _) = probe.exit_code_within(EXIT);
    assert_eq!(code, 0, "output:\n{}", probe.dump());
    assert_absent(&probe.lines(), "ERROR apphost::lifetime");
}
