//! The shutdown timeout, as deployed: set in a config file (or overridden by
//! an environment variable), it bounds a real process whose service ignores
//! its token or blocks its thread. The process exits non-zero within the
//! timeout + a margin.

#![cfg(unix)]

mod process_support;

use std::time::{Duration, Instant};

use process_support::{SIGTERM, Spawn, assert_absent, assert_in_order, shutdown_timeout};

/// Scheduling, process exit and a loaded CI machine: generous, and still
/// far below the service's 30 s.
const MARGIN: Duration = Duration::from_millis(1500);

/// Sends SIGTERM once `probe` is ready; returns the exit code and the time
/// from the signal to the exit.
fn stop(probe: &mut process_support::Running) -> (i32, Duration) {
    probe.wait_ready();
    let t0 = Instant::now();
    probe.signal(SIGTERM);
    let (code, _) = probe.exit_code_within(Duration::from_secs(20));
    (code, t0.elapsed())
}

fn assert_bounded_by(timeout: Duration, code: i32, took: Duration, output: &str) {
    // 124, as timeout(1): the budget ran out (see HostError::exit_code).
    assert_eq!(code, 124, "output:\n{output}");
    assert!(
        took >= timeout - Duration::from_millis(50),
        "exited after {took:?}, before the {timeout:?} budget; output:\n{output}"
    );
    assert!(
        took <= timeout + MARGIN,
        "exited after {took:?}, budget {timeout:?}; output:\n{output}"
    );
}

#[test]
fn a_shutdown_timeout_from_the_config_file_bounds_a_service_that_ignores_its_token() {
    let mut probe = Spawn::probe()
        .file("default.toml", &shutdown_timeout("1s"))
        .env("APPHOST__PROBE__SERVICES", "A,B:ignore_token,C")
        .start();
    let (code, took) = stop(&mut probe);
    assert_bounded_by(Duration::from_secs(1), code, took, &probe.dump());
    let lines = probe.lines();
    // B is abandoned; the others still stop, in reverse order.
    assert_in_order(
        &lines,
        &[
            "probe: stopped C",
            "probe: stop B",
            "probe: stop A",
            "probe: stopped A",
        ],
    );
    assert_absent(&lines, "probe: stopped B");
}

#[test]
fn the_environment_file_and_a_variable_override_the_default_file() {
    // default.toml says 30 s, production.toml 20 s; the variable wins.
    let mut probe = Spawn::probe()
        .file("default.toml", &shutdown_timeout("30s"))
        .file("production.toml", &shutdown_timeout("20s"))
        .env("APPHOST__HOST__SHUTDOWN_TIMEOUT", "1s")
        .env("APPHOST__PROBE__SERVICES", "A:ignore_token")
        .start();
    let (code, took) = stop(&mut probe);
    assert_bounded_by(Duration::from_secs(1), code, took, &probe.dump());
}

#[test]
fn the_environment_named_by_apphost_environment_picks_its_file() {
    let mut probe = Spawn::probe()
        .file("default.toml", &shutdown_timeout("30s"))
        .file("staging.toml", "[host]\nshutdown_timeout = \"1s 500ms\"\n")
        .env("APPHOST_ENVIRONMENT", "staging")
        .env("APPHOST__PROBE__SERVICES", "A:ignore_token")
        .start();
    let (code, took) = stop(&mut probe);
    assert_bounded_by(Duration::from_millis(1500), code, took, &probe.dump());
    probe_has(&probe, "Hosting environment: staging");
}

#[test]
fn a_service_that_blocks_its_thread_cannot_hold_the_process_open() {
    // The call is abandoned at the deadline, and the runtime is shut down
    // without waiting for the blocked thread.
    let mut probe = Spawn::probe()
        .file("default.toml", &shutdown_timeout("1s"))
        .env("APPHOST__PROBE__SERVICES", "A,B:block")
        .start();
    let (code, took) = stop(&mut probe);
    assert_bounded_by(Duration::from_secs(1), code, took, &probe.dump());
    assert_in_order(
        &probe.lines(),
        &["probe: stop B", "probe: stop A", "probe: stopped A"],
    );
}

fn probe_has(probe: &process_support::Running, needle: &str) {
    assert!(
        probe.lines().iter().any(|l| l.contains(needle)),
        "no {needle:?}; output:\n{}",
        probe.dump()
    );
}
