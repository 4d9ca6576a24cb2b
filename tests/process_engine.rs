//! The lifecycle engine's first promise, as deployed: a real process whose
//! services block every worker thread of the runtime (the console runner's
//! runtime has one worker per core) still exits 124 within
//! `shutdown_timeout` + 150 ms of a real SIGTERM. Before the engine's budget
//! keeper, two such services on this 2-core machine held the process for
//! the whole 6 s they blocked.

#![cfg(unix)]

mod process_support;

use std::time::{Duration, Instant};

use process_support::{SIGTERM, Spawn, shutdown_timeout};

const BOUND: Duration = Duration::from_millis(150);

/// Sends SIGTERM to the ready `probe` and checks it exits 124 within the
/// 1 s budget + [`BOUND`].
fn sigterm_exits_124_on_time(mut probe: process_support::Running) {
    probe.wait_ready();
    // Let the blocking services take the workers.
    std::thread::sleep(Duration::from_millis(100));
    let t0 = Instant::now();
    probe.signal(SIGTERM);
    let (code, _) = probe.exit_code_within(Duration::from_secs(20));
    let took = t0.elapsed();
    let output = probe.dump();
    eprintln!("SIGTERM → exit {code} in {took:?}");
    assert_eq!(code, 124, "output:\n{output}");
    assert!(
        took <= Duration::from_secs(1) + BOUND,
        "exited {took:?} after SIGTERM, budget 1s + {BOUND:?}; output:\n{output}"
    );
}

fn blocked_stop_exits_on_time(services: usize, concurrently: bool) {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let list: Vec<String> = (0..workers + services.saturating_sub(2))
        .map(|i| format!("B{i}:block"))
        .collect();
    let probe = Spawn::probe()
        .file("default.toml", &shutdown_timeout("1s"))
        .env("APPHOST__PROBE__SERVICES", &list.join(","))
        .env("APPHOST__PROBE__DELAY", "6s")
        .env(
            "APPHOST__HOST__SERVICES_STOP_CONCURRENTLY",
            if concurrently { "true" } else { "false" },
        )
        .start();
    sigterm_exits_124_on_time(probe);
}

/// Background services whose `execute` blocks every worker (and two more):
/// the host's own task cannot run at all once they are in; the keeper ends
/// the stop.
#[test]
fn background_services_blocking_every_worker_exit_124_on_time() {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let probe = Spawn::probe()
        .file("default.toml", &shutdown_timeout("1s"))
        .env("APPHOST__PROBE__SERVICES", "")
        .env(
            "APPHOST__PROBE__BLOCKING_WORKERS",
            &(workers + 2).to_string(),
        )
        .env("APPHOST__PROBE__DELAY", "6s")
        .start();
    sigterm_exits_124_on_time(probe);
}

#[test]
fn as_many_blocking_stops_as_workers_exit_124_on_time() {
    blocked_stop_exits_on_time(2, false);
}

#[test]
fn more_blocking_stops_than_workers_stopped_concurrently_exit_124_on_time() {
    blocked_stop_exits_on_time(4, true);
}
