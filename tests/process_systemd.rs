//! systemd's side of the notify protocol played by the test: a Unix datagram
//! socket the probe service reports to through `NOTIFY_SOCKET`. Asserts the
//! exact sequence (`READY=1` … `STOPPING=1`), the status lines, the watchdog
//! cadence, and the reload sequence on SIGHUP — plus reload's effect on the
//! next stop, the rejection of a bad reload, and the readiness file with a
//! drain delay. Real processes, real signals; every wait is bounded.

#![cfg(target_os = "linux")]

mod process_support;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use process_support::{SIGHUP, SIGTERM, Spawn, Stream, assert_in_order};

/// A datagram received by the fake systemd, with when it arrived.
#[derive(Debug, Clone)]
struct Message {
    text: String,
    at: Instant,
}

/// The fake systemd: a socket and a thread collecting what arrives.
struct FakeSystemd {
    _dir: tempfile::TempDir,
    path: PathBuf,
    messages: Arc<Mutex<Vec<Message>>>,
}

impl FakeSystemd {
    fn new() -> FakeSystemd {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        let messages = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&messages);
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = socket.recv(&mut buffer) {
                let text = String::from_utf8_lossy(&buffer[..n]).into_owned();
                sink.lock().unwrap().push(Message {
                    text,
                    at: Instant::now(),
                });
            }
        });
        FakeSystemd {
            _dir: dir,
            path,
            messages,
        }
    }

    fn socket(&self) -> &str {
        self.path.to_str().unwrap()
    }

    fn messages(&self) -> Vec<Message> {
        self.messages.lock().unwrap().clone()
    }

    fn texts(&self) -> Vec<String> {
        self.messages().into_iter().map(|m| m.text).collect()
    }

    /// Waits until a message equal to (or, for a prefix ending in `=`,
    /// starting with) `wanted` has arrived after `after` messages.
    fn wait_for(&self, wanted: &str, after: usize) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let texts = self.texts();
            if texts.iter().skip(after).any(|t| t.starts_with(wanted)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no {wanted:?} from the service; got {texts:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn index_of(texts: &[String], wanted: &str) -> usize {
    texts
        .iter()
        .position(|t| t.starts_with(wanted))
        .unwrap_or_else(|| panic!("no {wanted:?} in {texts:?}"))
}

#[test]
fn notify_sequence_status_lines_and_watchdog_cadence() {
    let systemd = FakeSystemd::new();
    let mut probe = Spawn::probe()
        .file("default.toml", "[host]\nshutdown_timeout = \"5s\"\n")
        .env("NOTIFY_SOCKET", systemd.socket())
        // WatchdogSec=400ms: pings expected every 200 ms.
        .env("WATCHDOG_USEC", "400000")
        .read(Stream::Stderr)
        .start();
    probe.wait_ready();
    systemd.wait_for("READY=1", 0);
    // Let the watchdog ping a few times.
    let pings_before = |texts: &[String]| texts.iter().filter(|t| *t == "WATCHDOG=1").count();
    let deadline = Instant::now() + Duration::from_secs(15);
    while pings_before(&systemd.texts()) < 5 {
        assert!(
            Instant::now() < deadline,
            "too few pings: {:?}",
            systemd.texts()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    probe.signal(SIGTERM);
    let (code, _) = probe.exit_code_within(Duration::from_secs(10));
    assert_eq!(code, 0, "output:\n{}", probe.dump());
    systemd.wait_for("STATUS=stopped", 0);

    let messages = systemd.messages();
    let texts: Vec<String> = messages.iter().map(|m| m.text.clone()).collect();
    let ready = index_of(&texts, "READY=1");
    let stopping = index_of(&texts, "STOPPING=1");
    assert!(ready < stopping, "{texts:?}");
    assert_eq!(
        texts.iter().filter(|t| t.starts_with("READY=1")).count(),
        1,
        "READY=1 exactly once: {texts:?}"
    );
    assert!(index_of(&texts, "STATUS=starting") < ready, "{texts:?}");
    assert!(index_of(&texts, "STATUS=running") > ready, "{texts:?}");
    let status_stopping = index_of(&texts, "STATUS=stopping");
    let extend = index_of(&texts, "EXTEND_TIMEOUT_USEC=");
    assert!(
        stopping < status_stopping && status_stopping < extend,
        "{texts:?}"
    );
    // The budget (5 s) plus a second, in microseconds.
    assert_eq!(texts[extend], "EXTEND_TIMEOUT_USEC=6000000");
    assert!(index_of(&texts, "STATUS=stopped") > extend, "{texts:?}");
    // No ping once stopping has begun.
    assert!(
        !texts[stopping..].iter().any(|t| t == "WATCHDOG=1"),
        "a ping after STOPPING=1: {texts:?}"
    );
    // Cadence: half of WATCHDOG_USEC. The median interval is robust to one
    // late ping on a loaded machine; the bounds exclude both the full
    // interval (400 ms) and a runaway.
    let pings: Vec<Instant> = messages
        .iter()
        .filter(|m| m.text == "WATCHDOG=1")
        .map(|m| m.at)
        .collect();
    let mut gaps: Vec<Duration> = pings.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort();
    let median = gaps[gaps.len() / 2];
    assert!(
        median >= Duration::from_millis(120) && median <= Duration::from_millis(320),
        "median ping interval {median:?}, expected about 200 ms; gaps {gaps:?}"
    );
}

#[test]
fn watchdog_of_another_process_is_not_pinged() {
    let systemd = FakeSystemd::new();
    let mut probe = Spawn::probe()
        .env("NOTIFY_SOCKET", systemd.socket())
        .env("WATCHDOG_USEC", "100000")
        .env("WATCHDOG_PID", "1")
        .read(Stream::Stderr)
        .start();
    probe.wait_ready();
    systemd.wait_for("STATUS=running", 0);
    std::thread::sleep(Duration::from_millis(300));
    probe.signal(SIGTERM);
    assert_eq!(probe.exit_code_within(Duration::from_secs(10)).0, 0);
    let texts = systemd.texts();
    assert!(
        !texts.iter().any(|t| t == "WATCHDOG=1"),
        "WATCHDOG_PID names another process: {texts:?}"
    );
}

#[test]
fn sighup_reloads_with_the_notify_reload_sequence_and_the_next_stop_uses_the_new_timeout() {
    let systemd = FakeSystemd::new();
    // A stop that ignores its token: only the budget ends it.
    let config = "[probe]\nservices = \"A:ignore_token\"\ndelay = \"60s\"\n";
    let mut probe = Spawn::probe()
        .file(
            "default.toml",
            &format!("{config}[host]\nshutdown_timeout = \"30s\"\n"),
        )
        .env("NOTIFY_SOCKET", systemd.socket())
        .read(Stream::Stderr)
        .start();
    probe.wait_ready();
    systemd.wait_for("READY=1", 0);
    let before = systemd.texts().len();

    std::fs::write(
        probe.dir().join("default.toml"),
        format!("{config}[host]\nshutdown_timeout = \"1s\"\n"),
    )
    .unwrap();
    probe.signal(SIGHUP);
    probe.wait_for("configuration reloaded", Duration::from_secs(10));
    systemd.wait_for("STATUS=running (configuration reloaded)", before);
    let texts = systemd.texts();
    let reloading = before + index_of(&texts[before..], "RELOADING=1");
    assert!(
        texts[reloading].contains("\nMONOTONIC_USEC="),
        "RELOADING=1 carries MONOTONIC_USEC: {:?}",
        texts[reloading]
    );
    let monotonic: u64 = texts[reloading]
        .rsplit('=')
        .next()
        .unwrap()
        .parse()
        .expect("MONOTONIC_USEC is a number");
    assert!(monotonic > 0);
    assert!(
        texts[reloading..].iter().any(|t| t == "READY=1"),
        "READY=1 after the reload: {texts:?}"
    );

    // The reloaded 1 s budget, not the original 30 s, bounds this stop.
    probe.signal(SIGTERM);
    let (code, took) = probe.exit_code_within(Duration::from_secs(20));
    assert_eq!(
        code,
        124,
        "a stop that ran out of budget; output:\n{}",
        probe.dump()
    );
    assert!(
        took < Duration::from_secs(15),
        "the reloaded shutdown timeout should apply (took {took:?})"
    );
    // systemd is told about the reloaded budget (1 s + 1 s), not the old one.
    systemd.wait_for("EXTEND_TIMEOUT_USEC=", before);
    let texts = systemd.texts();
    assert_eq!(
        texts[index_of(&texts, "EXTEND_TIMEOUT_USEC=")],
        "EXTEND_TIMEOUT_USEC=2000000"
    );
}

#[test]
fn an_invalid_reload_is_rejected_and_the_service_keeps_running() {
    let systemd = FakeSystemd::new();
    let mut probe = Spawn::probe()
        .file("default.toml", "[host]\nshutdown_timeout = \"5s\"\n")
        .env("NOTIFY_SOCKET", systemd.socket())
        .read(Stream::Stderr)
        .start();
    probe.wait_ready();
    systemd.wait_for("READY=1", 0);
    let before = systemd.texts().len();

    std::fs::write(
        probe.dir().join("default.toml"),
        "[host]\nshutdown_timout = \"1s\"\n",
    )
    .unwrap();
    probe.signal(SIGHUP);
    probe.wait_for("configuration reload rejected", Duration::from_secs(10));
    systemd.wait_for("STATUS=running (reload rejected", before);
    let lines = probe.lines();
    let rejected = lines
        .iter()
        .find(|l| l.contains("configuration reload rejected"))
        .unwrap();
    assert!(
        rejected.contains("default.toml") && rejected.contains("host.shutdown_timout"),
        "the rejection names the file and the key: {rejected}"
    );
    assert!(
        rejected.contains("did you mean host.shutdown_timeout?"),
        "{rejected}"
    );
    assert!(probe.is_running(), "a bad reload must not stop the service");

    probe.signal(SIGTERM);
    let (code, _) = probe.exit_code_within(Duration::from_secs(10));
    assert_eq!(code, 0, "output:\n{}", probe.dump());
}

/// A reload whose `[host]` is fine but whose watched `[worker]` section is
/// not: rejected as a whole, and systemd is told so in STATUS= (the reload
/// itself completes, RELOADING=1 then READY=1, as systemd requires).
#[test]
fn a_reload_rejected_by_a_watched_section_says_so_in_status() {
    let systemd = FakeSystemd::new();
    let state = tempfile::tempdir().unwrap();
    let state_file = format!(
        "{:?}",
        state.path().join("progress.txt").display().to_string()
    );
    let mut worker = Spawn::example("worker")
        .file(
            "default.toml",
            &format!("[worker]\ninterval = \"1h\"\nstate_file = {state_file}\n"),
        )
        .env("NOTIFY_SOCKET", systemd.socket())
        .start();
    systemd.wait_for("READY=1", 0);
    let before = systemd.texts().len();

    std::fs::write(
        worker.dir().join("default.toml"),
        format!("[worker]\ninterval = \"soon\"\nstate_file = {state_file}\n"),
    )
    .unwrap();
    worker.signal(SIGHUP);
    systemd.wait_for("STATUS=running (reload rejected", before);
    let texts = systemd.texts();
    let status = texts[before..]
        .iter()
        .find(|t| t.contains("reload rejected"))
        .unwrap();
    assert!(
        status.contains("worker.interval"),
        "the status names the key: {status}"
    );
    let reloading = index_of(&texts[before..], "RELOADING=1");
    let ready = index_of(&texts[before..], "READY=1");
    assert!(reloading < ready, "{texts:?}");
    assert!(
        worker.is_running(),
        "a rejected reload must not stop the service"
    );

    worker.signal(SIGTERM);
    let (code, _) = worker.exit_code_within(Duration::from_secs(10));
    assert_eq!(code, 0, "output:\n{}", worker.dump());
}

#[test]
fn readiness_file_goes_before_the_drain_starts() {
    let dir = tempfile::tempdir().unwrap();
    let ready: PathBuf = dir.path().join("ready");
    let mut probe = Spawn::probe()
        .file(
            "default.toml",
            &format!(
                "[host]\nshutdown_timeout = \"10s\"\n[console]\nreadiness_file = \"{}\"\ndrain_delay = \"1s\"\n",
                ready.display()
            ),
        )
        .read(Stream::Stderr)
        .start();
    probe.wait_ready();
    wait_for_path(&ready, true);
    let content = std::fs::read_to_string(&ready).unwrap();
    assert_eq!(content.trim(), probe.pid().to_string());

    probe.signal(SIGTERM);
    wait_for_path(&ready, false);
    // The readiness file is gone while the services have not been told to
    // stop yet: the drain waits for the delay.
    let lines = probe.lines();
    assert!(
        !lines.iter().any(|l| l.contains("probe: stop C")),
        "the drain began before the delay:\n{}",
        lines.join("\n")
    );
    let (code, _) = probe.exit_code_within(Duration::from_secs(15));
    assert_eq!(code, 0, "output:\n{}", probe.dump());
    // The delay message and the stopping callbacks race (both follow the
    // stop request); both come before the drain.
    let lines = probe.lines();
    assert_in_order(
        &lines,
        &[
            "Application is shutting down...",
            "probe: stop C",
            "probe: stop A",
        ],
    );
    assert_in_order(
        &lines,
        &[
            "waiting 1s for load balancers before draining",
            "probe: stop C",
        ],
    );
}

fn wait_for_path(path: &Path, exists: bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while path.exists() != exists {
        assert!(
            Instant::now() < deadline,
            "{} never {}",
            path.display(),
            if exists { "appeared" } else { "went away" }
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn ready_names_the_main_pid_when_systemd_started_another_process() {
    let systemd = FakeSystemd::new();
    // SYSTEMD_EXEC_PID names the process systemd started (say a wrapper
    // script); the service is another one, so it says which pid is main.
    let mut probe = Spawn::probe()
        .env("NOTIFY_SOCKET", systemd.socket())
        .env("SYSTEMD_EXEC_PID", "1")
        .read(Stream::Stderr)
        .start();
    probe.wait_ready();
    systemd.wait_for("READY=1", 0);
    let texts = systemd.texts();
    let ready = &texts[index_of(&texts, "READY=1")];
    assert_eq!(ready, &format!("READY=1\nMAINPID={}", probe.pid()));
    probe.signal(SIGTERM);
    assert_eq!(probe.exit_code_within(Duration::from_secs(10)).0, 0);
}

#[test]
fn an_empty_notify_socket_is_a_no_op() {
    let mut probe = Spawn::probe()
        .env("NOTIFY_SOCKET", "")
        .env("WATCHDOG_USEC", "100000")
        .read(Stream::Stderr)
        .start();
    probe.wait_ready();
    probe.signal(SIGTERM);
    assert_eq!(
        probe.exit_code_within(Duration::from_secs(10)).0,
        0,
        "output:\n{}",
        probe.dump()
    );
}

/// `WATCHDOG_USEC=1` would mean a ping every half microsecond (thousands a
/// second, most of a core): pings are floored at 10 ms, and the floor is
/// logged once.
#[test]
fn a_tiny_watchdog_interval_is_floored_and_logged_once() {
    let systemd = FakeSystemd::new();
    let mut probe = Spawn::probe()
        .env("NOTIFY_SOCKET", systemd.socket())
        .env("WATCHDOG_USEC", "1")
        .read(Stream::Stderr)
        .start();
    probe.wait_ready();
    systemd.wait_for("WATCHDOG=1", 0);
    let first = Instant::now();
    let before = systemd.texts().len();
    std::thread::sleep(Duration::from_millis(500));
    let during = systemd.texts()[before..]
        .iter()
        .filter(|t| *t == "WATCHDOG=1")
        .count();
    let elapsed = first.elapsed();
    probe.signal(SIGTERM);
    assert_eq!(probe.exit_code_within(Duration::from_secs(10)).0, 0);
    // At most one ping per 10 ms (with slack for the clock): about 50 in
    // half a second; unfloored it was thousands.
    let bound = elapsed.as_millis() / 10 + 10;
    assert!(
        during as u128 <= bound,
        "{during} pings in {elapsed:?}: the floor does not hold"
    );
    assert!(during >= 2, "still pinging: {during}");
    let lines = probe.lines();
    let floored = lines
        .iter()
        .filter(|l| l.contains("pinging every 10ms instead"))
        .count();
    assert_eq!(floored, 1, "logged once; output:\n{}", lines.join("\n"));
}
