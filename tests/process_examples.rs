//! The examples users run first, run as processes: `worker` does its work,
//! flushes its progress when stopped and resumes from it; `tcp_echo` echoes,
//! stops accepting on SIGTERM and drains open connections within the budget.

#![cfg(unix)]

mod process_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use process_support::{SIGHUP, SIGTERM, Spawn, assert_in_order, shutdown_timeout};

const EXIT: Duration = Duration::from_secs(10);

#[test]
fn worker_applies_a_new_interval_on_sighup_and_keeps_running_on_a_bad_one() {
    let state = tempfile::tempdir().unwrap();
    let state_file = format!(
        "{:?}",
        state.path().join("progress.txt").display().to_string()
    );
    // An hour between units: nothing happens until the reload.
    let mut worker = Spawn::example("worker")
        .file(
            "default.toml",
            &format!("[worker]\ninterval = \"1h\"\nstate_file = {state_file}\n"),
        )
        .start();
    worker.wait_for("running, resuming after unit", Duration::from_secs(15));

    std::fs::write(
        worker.dir().join("default.toml"),
        format!("[worker]\ninterval = \"50ms\"\nstate_file = {state_file}\n"),
    )
    .unwrap();
    worker.signal(SIGHUP);
    worker.wait_for(
        "configuration reloaded: new interval",
        Duration::from_secs(15),
    );
    worker.wait_for("did one unit of work unit=1", Duration::from_secs(15));

    // A bad [worker] value next to a good [host] one: the whole reload is
    // rejected with one ERROR line naming the file and the key; the worker
    // keeps its interval and keeps working.
    std::fs::write(
        worker.dir().join("default.toml"),
        format!(
            "[host]\nshutdown_timeout = \"9s\"\n[worker]\ninterval = \"soon\"\nstate_file = {state_file}\n"
        ),
    )
    .unwrap();
    worker.signal(SIGHUP);
    worker.wait_for("configuration reload rejected", Duration::from_secs(15));
    let rejected: Vec<String> = worker
        .lines()
        .into_iter()
        .filter(|l| l.contains("configuration reload rejected"))
        .collect();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert!(
        rejected[0].contains("ERROR")
            && rejected[0].contains("default.toml")
            && rejected[0].contains("worker.interval"),
        "{rejected:?}"
    );
    let units_before = worker.lines().len();
    worker.wait_for("did one unit of work unit=3", Duration::from_secs(15));
    assert!(worker.lines().len() > units_before);

    worker.signal(SIGTERM);
    assert_eq!(
        worker.exit_code_within(EXIT).0,
        0,
        "output:\n{}",
        worker.dump()
    );
}

#[test]
fn worker_flushes_its_progress_on_sigterm_and_resumes_from_it() {
    let state = tempfile::tempdir().unwrap();
    let state_file = state.path().join("progress.txt");
    let config = format!(
        "[worker]\ninterval = \"50ms\"\nstate_file = {:?}\n",
        state_file.display().to_string()
    );

    let mut worker = Spawn::example("worker")
        .file("default.toml", &config)
        .start();
    worker.wait_for("unit=2", Duration::from_secs(15));
    worker.signal(SIGTERM);
    assert_eq!(
        worker.exit_code_within(EXIT).0,
        0,
        "output:\n{}",
        worker.dump()
    );
    assert_in_order(
        &worker.lines(),
        &[
            "configuration read",
            "host starting",
            "Application started",
            "running, resuming after unit 0",
            "did one unit of work unit=1",
            "received signal 15",
            // Logged by a stopping callback, so not ordered with the host's
            // own "host stopping", but always before the services stop.
            "Application is shutting down...",
            "stopping: progress flushed",
            "stopped",
            "host stopped",
        ],
    );
    let saved: u64 = std::fs::read_to_string(&state_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(saved >= 2, "saved {saved}");

    let mut again = Spawn::example("worker")
        .file("default.toml", &config)
        .start();
    again.wait_for(
        &format!("resuming after unit {saved}"),
        Duration::from_secs(15),
    );
    again.signal(SIGTERM);
    assert_eq!(
        again.exit_code_within(EXIT).0,
        0,
        "output:\n{}",
        again.dump()
    );
}

#[test]
fn worker_rejects_a_typo_in_its_own_section() {
    let mut worker = Spawn::example("worker")
        .file("default.toml", "[worker]\nintervall = \"1s\"\n")
        .start();
    assert_eq!(worker.exit_code_within(EXIT).0, 78);
    let lines = worker.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("default.toml") && l.contains("did you mean worker.interval?")),
        "output:\n{}",
        lines.join("\n")
    );
}

/// Starts `tcp_echo` on a free port; returns it and its address.
fn echo_server(timeout: &str) -> (process_support::Running, SocketAddr) {
    let server = Spawn::example("tcp_echo")
        .file("default.toml", &shutdown_timeout(timeout))
        .arg("127.0.0.1:0")
        .start();
    server.wait_for("Application started", process_support::READY_TIMEOUT);
    let address = server
        .lines()
        .iter()
        .find_map(|l| {
            l.split("listening on ")
                .nth(1)
                .map(|a| a.trim().parse().unwrap())
        })
        .expect("a `listening on` line");
    (server, address)
}

fn round_trip(client: &mut TcpStream, text: &str) {
    client.write_all(text.as_bytes()).unwrap();
    let mut echoed = vec![0; text.len()];
    client.read_exact(&mut echoed).unwrap();
    assert_eq!(String::from_utf8(echoed).unwrap(), text);
}

#[test]
fn tcp_echo_stops_accepting_on_sigterm_and_drains_open_connections() {
    let (mut server, address) = echo_server("10s");
    let mut client = TcpStream::connect(address).unwrap();
    client.set_read_timeout(Some(EXIT)).unwrap();
    round_trip(&mut client, "hello\n");

    server.signal(SIGTERM);
    server.wait_for("stopped accepting", EXIT);
    assert!(
        TcpStream::connect(address).is_err(),
        "a stopping server accepts no new connection"
    );
    // The open connection still works while the server drains.
    round_trip(&mut client, "still here\n");
    assert!(server.is_running());

    client.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = String::new();
    BufReader::new(&client).read_line(&mut rest).unwrap();
    assert_eq!(rest, "", "the server closes its side after the client");
    let (code, _) = server.exit_code_within(EXIT);
    assert_eq!(code, 0, "output:\n{}", server.dump());
    assert_in_order(
        &server.lines(),
        &[
            "stopped accepting",
            "connection closed",
            "all connections drained",
            "host stopped",
        ],
    );
}

#[test]
fn tcp_echo_closes_connections_still_open_when_the_budget_is_spent() {
    let (mut server, address) = echo_server("1s");
    let mut client = TcpStream::connect(address).unwrap();
    client.set_read_timeout(Some(EXIT)).unwrap();
    round_trip(&mut client, "hello\n");

    server.signal(SIGTERM);
    let (code, took) = server.exit_code_within(EXIT);
    // The stop was cut short at the budget: exit 124, as timeout(1).
    assert_eq!(code, 124, "output:\n{}", server.dump());
    assert!(took < Duration::from_millis(2500), "took {took:?}");
    let mut rest = Vec::new();
    let _ = client.read_to_end(&mut rest); // EOF or reset: either way, closed
    assert_in_order(
        &server.lines(),
        &[
            "stopped accepting",
            "shutdown budget spent: closing open connections",
        ],
    );
}
