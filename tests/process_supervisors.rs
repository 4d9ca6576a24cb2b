//! Under the real programs that supervise services: supervisord, tini as PID 1
//! in a new PID namespace, and `timeout -s TERM` (the `docker stop` stand-in).
//!
//! Each test needs the program on the machine (`.ci/run` installs them from
//! Debian's packages). Where one is missing, the test prints
//! `SKIPPED: <program> not installed` and passes, so `cargo test` passes on a
//! fresh machine; under `APPHOST_REQUIRE_SUPERVISORS=1` (set by `.ci/run`) a
//! missing program fails the test instead. Every wait is bounded.

#![cfg(target_os = "linux")]

mod process_support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use process_support::{assert_absent, assert_in_order, example};

/// Generous bound for anything a test waits for.
const BOUND: Duration = Duration::from_secs(30);

/// Whether `program` is installed; if not, the test reports itself skipped
/// (or fails under `APPHOST_REQUIRE_SUPERVISORS=1`, as in `.ci/run`).
fn have(program: &str) -> bool {
    let hint = match program {
        "supervisord" => "apt-get install supervisor",
        "tini" => "apt-get install tini",
        _ => "util-linux / coreutils",
    };
    process_support::require(program, hint)
}

/// A temporary directory with the probe's configuration in `config/`.
fn probe_dir(config: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("config")).unwrap();
    std::fs::write(dir.path().join("config/default.toml"), config).unwrap();
    dir
}

/// Polls `done` every 20 ms until it holds, failing after [`BOUND`].
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + BOUND;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn lines(path: &Path) -> Vec<String> {
    read(path).lines().map(str::to_owned).collect()
}

/// Runs `command` to completion within [`BOUND`], returning its exit code
/// and combined output.
fn run(command: &mut Command) -> (i32, String) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + BOUND;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut output = String::new();
            child
                .stdout
                .take()
                .unwrap()
                .read_to_string(&mut output)
                .ok();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut output)
                .ok();
            return (status.code().unwrap_or(-1), output);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{command:?} did not finish within {BOUND:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A supervisord running in the foreground for one test, with one program:
/// the probe service.
struct Supervisord {
    dir: tempfile::TempDir,
    conf: PathBuf,
    daemon: std::process::Child,
}

impl Supervisord {
    fn start(probe_config: &str, stopwaitsecs: u32) -> Supervisord {
        let dir = probe_dir(probe_config);
        let d = dir.path().display();
        let conf = dir.path().join("supervisord.conf");
        std::fs::write(
            &conf,
            format!(
                "[supervisord]\nnodaemon=true\nlogfile={d}/supervisord.log\npidfile={d}/supervisord.pid\n\
                 childlogdir={d}\n\n\
                 [unix_http_server]\nfile={d}/supervisor.sock\n\n\
                 [rpcinterface:supervisor]\n\
                 supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n\
                 [supervisorctl]\nserverurl=unix://{d}/supervisor.sock\n\n\
                 [program:probe]\ncommand={probe}\ndirectory={d}\n\
                 environment=APPHOST_CONFIG_DIR=\"{d}/config\",NO_COLOR=\"1\"\n\
                 autostart=true\nstartsecs=0\nautorestart=false\nstopsignal=TERM\n\
                 stopwaitsecs={stopwaitsecs}\n\
                 stdout_logfile={d}/probe.out\nstderr_logfile={d}/probe.err\n",
                probe = example("probe_service").display(),
            ),
        )
        .unwrap();
        let daemon = Command::new("supervisord")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn supervisord");
        let supervisor = Supervisord { dir, conf, daemon };
        let out = supervisor.dir.path().join("probe.out");
        wait_until("the probe to report READY under supervisord", || {
            read(&out).contains("probe: READY")
        });
        supervisor
    }

    fn ctl(&self, args: &[&str]) -> (i32, String) {
        run(Command::new("supervisorctl")
            .arg("-c")
            .arg(&self.conf)
            .args(args))
    }

    fn log(&self) -> String {
        read(&self.dir.path().join("supervisord.log"))
    }

    fn probe_output(&self) -> Vec<String> {
        lines(&self.dir.path().join("probe.out"))
    }
}

impl Drop for Supervisord {
    fn drop(&mut self) {
        let _ = self.ctl(&["shutdown"]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.daemon.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

#[test]
fn supervisorctl_stop_is_a_graceful_exit_0() {
    if !have("supervisord") {
        return;
    }
    let supervisor = Supervisord::start("[host]\nshutdown_timeout = \"5s\"\n", 10);
    let (code, output) = supervisor.ctl(&["stop", "probe"]);
    assert_eq!(code, 0, "supervisorctl stop: {output}");
    assert!(output.contains("probe: stopped"), "{output}");
    let log = supervisor.log();
    assert!(
        log.contains("stopped: probe (exit status 0)"),
        "supervisord should report a clean exit:\n{log}"
    );
    assert_in_order(
        &supervisor.probe_output(),
        &[
            "probe: READY",
            "probe: lifetime-stopping",
            "probe: stop C",
            "probe: stop B",
            "probe: stop A",
            "probe: lifetime-stopped",
        ],
    );
}

#[test]
fn a_hanging_service_still_exits_before_supervisords_sigkill() {
    if !have("supervisord") {
        return;
    }
    // The service ignores its token for 60 s; the budget is 1 s; supervisord
    // would SIGKILL after 8 s.
    let supervisor = Supervisord::start(
        "[host]\nshutdown_timeout = \"1s\"\n[probe]\nservices = \"A:ignore_token\"\ndelay = \"60s\"\n",
        8,
    );
    let began = Instant::now();
    let (code, output) = supervisor.ctl(&["stop", "probe"]);
    let took = began.elapsed();
    assert_eq!(code, 0, "supervisorctl stop: {output}");
    let log = supervisor.log();
    assert!(
        !log.contains("SIGKILL"),
        "apphost must exit before supervisord kills it:\n{log}"
    );
    assert!(
        log.contains("stopped: probe (exit status 124)"),
        "a stop that ran out of budget exits 124:\n{log}"
    );
    assert!(took < Duration::from_secs(8), "stop took {took:?}");
    assert_in_order(
        &supervisor.probe_output(),
        &["probe: READY", "probe: stop A"],
    );
}

/// The children of process `pid`, from procfs.
fn children(pid: u32) -> Vec<u32> {
    read(Path::new(&format!("/proc/{pid}/task/{pid}/children")))
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

#[test]
fn sigterm_to_tini_as_pid_1_in_a_new_pid_namespace_is_graceful() {
    if !have("tini") || !have("unshare") {
        return;
    }
    let dir = probe_dir("[host]\nshutdown_timeout = \"5s\"\n");
    let out = dir.path().join("probe.out");
    let mut unshare = Command::new("unshare")
        .args(["--pid", "--fork", "--kill-child", "tini", "--"])
        .arg(example("probe_service"))
        .env_clear()
        .env("APPHOST_CONFIG_DIR", dir.path().join("config"))
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn unshare");
    let guard = KillOnDrop(unshare.id());
    wait_until("the probe to report READY under tini", || {
        read(&out).contains("probe: READY")
    });
    // unshare's child is tini, PID 1 in the new namespace; the probe is
    // tini's child.
    let tini = *children(unshare.id()).first().expect("tini is running");
    assert_eq!(
        read(Path::new(&format!("/proc/{tini}/status")))
            .lines()
            .find(|l| l.starts_with("NSpid:"))
            .and_then(|l| l.split_whitespace().last())
            .map(str::to_owned),
        Some("1".to_owned()),
        "tini should be PID 1 in its namespace"
    );
    // SAFETY: kill(2) has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(tini as libc::pid_t, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + BOUND;
    let status = loop {
        if let Some(status) = unshare.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "unshare did not exit");
        std::thread::sleep(Duration::from_millis(10));
    };
    // Reaped: its pid may be reused, so the guard must not fire.
    std::mem::forget(guard);
    let output = lines(&out);
    assert_eq!(status.code(), Some(0), "output:\n{}", output.join("\n"));
    assert_in_order(
        &output,
        &[
            "probe: READY",
            "probe: lifetime-stopping",
            "probe: stop C",
            "probe: stop A",
            "probe: lifetime-stopped",
        ],
    );
}

#[test]
fn timeout_sending_sigterm_ends_in_a_graceful_exit() {
    if !have("timeout") {
        return;
    }
    let dir = probe_dir("[host]\nshutdown_timeout = \"5s\"\n");
    let (code, output) = run(Command::new("timeout")
        .args(["--preserve-status", "-s", "TERM", "2"])
        .arg(example("probe_service"))
        .env_clear()
        .env("APPHOST_CONFIG_DIR", dir.path().join("config"))
        .env("NO_COLOR", "1"));
    let output: Vec<String> = output.lines().map(str::to_owned).collect();
    assert_eq!(code, 0, "output:\n{}", output.join("\n"));
    assert_in_order(
        &output,
        &[
            "probe: READY",
            "probe: lifetime-stopping",
            "probe: stop C",
            "probe: stop A",
            "probe: lifetime-stopped",
        ],
    );
    assert_absent(&output, "exiting now");
}

/// Kills a process group leader's whole tree if the test fails midway.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // SAFETY: kill(2) has no memory-safety preconditions; the pid may be
        // gone already, in which case the call fails harmlessly.
        unsafe { libc::kill(self.0 as libc::pid_t, libc::SIGKILL) };
    }
}
