//! Shared helpers of the process-level tests: spawn a built example with a
//! configuration directory of its own, read its output lines as they come,
//! send it real signals, and wait for its exit, every wait bounded.
//!
//! The examples are built by `cargo test` (examples are always compiled with
//! the tests), into `target/<profile>/examples/`, next to `deps/` where this
//! test binary lives.

#![allow(dead_code, unused_imports, unreachable_pub)] // each test binary uses a subset

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub use libc::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};

/// No test child lives longer than this: the watchdog kills it and the test
/// fails instead of hanging.
pub const WATCHDOG: Duration = Duration::from_secs(30);

/// How long a child may take to report `READY` (a loaded CI machine builds
/// and runs other tests meanwhile).
pub const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// The path of a built example.
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let path = dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test` (which builds the examples) or `cargo build --examples` first",
        path.display()
    );
    path
}

/// Which of the child's streams the test reads; the other goes to null
/// unless [`Spawn::close`] says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// What to spawn: an example, its config files, its variables.
#[derive(Debug)]
pub struct Spawn {
    example: String,
    files: Vec<(String, String)>,
    env: Vec<(String, String)>,
    args: Vec<String>,
    read: Stream,
    close_other: bool,
}

impl Spawn {
    pub fn probe() -> Spawn {
        Spawn::example("probe_service")
    }

    pub fn example(name: &str) -> Spawn {
        Spawn {
            example: name.to_owned(),
            files: Vec::new(),
            env: Vec::new(),
            args: Vec::new(),
            read: Stream::Stderr,
            close_other: false,
        }
    }

    /// Writes `text` to `name` in the child's configuration directory.
    pub fn file(mut self, name: &str, text: &str) -> Spawn {
        self.files.push((name.to_owned(), text.to_owned()));
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Spawn {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn arg(mut self, arg: &str) -> Spawn {
        self.args.push(arg.to_owned());
        self
    }

    /// Reads `stream` (default stderr).
    pub fn read(mut self, stream: Stream) -> Spawn {
        self.read = stream;
        self
    }

    /// Pipes the other stream and closes its reading end at once, so every
    /// write the child makes to it fails (`EPIPE`), as after `| head`.
    pub fn close_other(mut self) -> Spawn {
        self.close_other = true;
        self
    }

    pub fn start(self) -> Running {
        let dir = tempfile::tempdir().expect("a temporary directory");
        for (name, text) in &self.files {
            std::fs::write(dir.path().join(name), text).expect("write a config file");
        }
        let mut command = Command::new(example(&self.example));
        // A clean environment: nothing of the developer's APPHOST_* or
        // RUST_LOG leaks in; the configuration is this test's directory.
        command
            .env_clear()
            .env("APPHOST_CONFIG_DIR", dir.path())
            .env("NO_COLOR", "1")
            .current_dir(dir.path())
            .args(&self.args)
            .stdin(Stdio::null());
        for (key, value) in &self.env {
            command.env(key, value);
        }
        let other = if self.close_other {
            Stdio::piped()
        } else {
            Stdio::null()
        };
        match self.read {
            Stream::Stdout => command.stdout(Stdio::piped()).stderr(other),
            Stream::Stderr => command.stderr(Stdio::piped()).stdout(other),
        };
        let mut child = command.spawn().expect("spawn the example");
        // Close the other pipe's reading end now: the child's writes fail.
        match self.read {
            Stream::Stdout => drop(child.stderr.take()),
            Stream::Stderr => drop(child.stdout.take()),
        }
        let reader: Box<dyn Read + Send> = match self.read {
            Stream::Stdout => Box::new(child.stdout.take().expect("piped stdout")),
            Stream::Stderr => Box::new(child.stderr.take().expect("piped stderr")),
        };
        let lines = Arc::new((Mutex::new(Lines::default()), Condvar::new()));
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(reader).lines() {
                let Ok(line) = line else { break };
                let (lock, changed) = &*sink;
                lock.lock().unwrap().all.push(line);
                changed.notify_all();
            }
            let (lock, changed) = &*sink;
            lock.lock().unwrap().closed = true;
            changed.notify_all();
        });
        let (disarm, armed) = mpsc::channel::<()>();
        let pid = child.id() as libc::pid_t;
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = armed.recv_timeout(WATCHDOG) {
                // SAFETY: kill(2) has no memory-safety preconditions; at worst
                // the pid was reaped already and the call fails.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        });
        Running {
            child,
            lines,
            _dir: dir,
            _watchdog: disarm,
            started: Instant::now(),
        }
    }
}

#[derive(Debug, Default)]
struct Lines {
    all: Vec<String>,
    closed: bool,
}

/// A running child. Dropping it kills the child if it is still running.
#[derive(Debug)]
pub struct Running {
    child: Child,
    lines: Arc<(Mutex<Lines>, Condvar)>,
    _dir: tempfile::TempDir,
    /// Dropped with `Running`: disarms the watchdog.
    _watchdog: mpsc::Sender<()>,
    started: Instant,
}

impl Running {
    pub fn pid(&self) -> libc::pid_t {
        self.child.id() as libc::pid_t
    }

    /// The child's configuration (and current) directory.
    pub fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// Sends `signal` to the child.
    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) has no memory-safety preconditions; the pid is our
        // own child's, which is not reaped before `wait_exit`.
        let rc = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(rc, 0, "kill({}, {signal}) failed", self.pid());
    }

    /// Every line read so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.0.lock().unwrap().all.clone()
    }

    /// Waits until a line contains `needle`; panics with the output so far
    /// if none does within `timeout` or the stream closes first.
    pub fn wait_for(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let (lock, changed) = &*self.lines;
        let mut lines = lock.lock().unwrap();
        loop {
            if lines.all.iter().any(|l| l.contains(needle)) {
                return;
            }
            let now = Instant::now();
            if lines.closed || now >= deadline {
                let why = if lines.closed {
                    "the stream closed"
                } else {
                    "timed out"
                };
                panic!(
                    "waiting for {needle:?}: {why}; output:\n{}",
                    lines.all.join("\n")
                );
            }
            lines = changed.wait_timeout(lines, deadline - now).unwrap().0;
        }
    }

    /// Waits for `probe: READY`.
    pub fn wait_ready(&self) {
        self.wait_for("probe: READY", READY_TIMEOUT);
    }

    /// Waits for the child to exit and for its output to be read to the end;
    /// kills it and panics if it is still running after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                self.wait_closed(Duration::from_secs(5));
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "still running {timeout:?} later (killed); output:\n{}",
                    self.lines().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Waits until the child exits; returns its exit code and how long the
    /// wait took. Panics if it died of a signal.
    pub fn exit_code_within(&mut self, timeout: Duration) -> (i32, Duration) {
        let t0 = Instant::now();
        let status = self.wait_exit(timeout);
        let elapsed = t0.elapsed();
        let code = status.code().unwrap_or_else(|| {
            panic!(
                "killed by a signal ({status}); output:\n{}",
                self.lines().join("\n")
            )
        });
        (code, elapsed)
    }

    /// Whether the child is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// How long ago the child was spawned.
    pub fn age(&self) -> Duration {
        self.started.elapsed()
    }

    fn wait_closed(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let (lock, changed) = &*self.lines;
        let mut lines = lock.lock().unwrap();
        while !lines.closed && Instant::now() < deadline {
            lines = changed
                .wait_timeout(lines, deadline - Instant::now())
                .unwrap()
                .0;
        }
    }

    /// The output, for assertion messages.
    pub fn dump(&self) -> String {
        self.lines().join("\n")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The index of the first line containing `needle`.
pub fn position(lines: &[String], needle: &str) -> Option<usize> {
    lines.iter().position(|l| l.contains(needle))
}

/// Asserts that each needle appears, in this order.
pub fn assert_in_order(lines: &[String], needles: &[&str]) {
    let mut last = None;
    for needle in needles {
        let at = position(lines, needle).unwrap_or_else(|| {
            panic!("no line contains {needle:?}; output:\n{}", lines.join("\n"))
        });
        if let Some((prev, prev_needle)) = last {
            assert!(
                at > prev,
                "{needle:?} (line {at}) should come after {prev_needle:?} (line {prev}); output:\n{}",
                lines.join("\n")
            );
        }
        last = Some((at, needle));
    }
}

/// Asserts that no line contains `needle`.
pub fn assert_absent(lines: &[String], needle: &str) {
    if let Some(at) = position(lines, needle) {
        panic!(
            "line {at} contains {needle:?}; output:\n{}",
            lines.join("\n")
        );
    }
}

/// A `[host]` section with this shutdown timeout, as a config file's text.
pub fn shutdown_timeout(timeout: &str) -> String {
    format!("[host]\nshutdown_timeout = \"{timeout}\"\n")
}

/// Set (to `1`) by `.ci/run`: a test whose program is missing fails instead
/// of skipping, so CI cannot pass without running it.
pub const REQUIRE_ENV: &str = "APPHOST_REQUIRE_SUPERVISORS";

/// Whether `program` is on `PATH`.
pub fn installed(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            let path = dir.join(program);
            std::fs::metadata(&path).is_ok_and(|m| {
                use std::os::unix::fs::PermissionsExt;
                m.is_file() && m.permissions().mode() & 0o111 != 0
            })
        })
    })
}

/// Whether the test may run: `true` when `program` is installed. When it
/// is not, prints `SKIPPED: <program> not installed (<hint>)` and returns
/// `false` — or, under `APPHOST_REQUIRE_SUPERVISORS=1` (as `.ci/run` sets),
/// fails the test.
pub fn require(program: &str, hint: &str) -> bool {
    if installed(program) {
        return true;
    }
    let required = std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1");
    assert!(
        !required,
        "{program} is not installed ({hint}), and {REQUIRE_ENV}=1 requires it"
    );
    // Straight to the process's stderr, past the test harness's capture, so
    // the skip shows in `cargo test`'s output even though the test passes.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {program} not installed ({hint}); set {REQUIRE_ENV}=1 to make this a failure"
    );
    false
}
