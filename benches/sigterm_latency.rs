//! Time from SIGTERM to process exit, as a supervisor sees it: from the
//! `kill()` call to `waitpid()` returning, once the child reported ready.
//!
//! ```text
//! cargo build --release --examples && cargo bench --bench sigterm_latency
//! ```
//!
//! It builds nothing itself: it runs the release builds of
//! `examples/probe_service.rs` (apphost, 1,000 trivial hosted services;
//! `SIGTERM_SERVICES` changes the number) and `examples/tgs_probe.rs`
//! (tokio-graceful-shutdown, as many subsystems), and
//! `sleep` (a bare process that the kernel kills), each `SIGTERM_RUNS`
//! times (default 50) after 3 warm-up runs, and prints the median and
//! spread of each. Each child gets 20 ms after reporting ready to settle
//! (signal handlers installed, tasks parked), so the runs measure the stop,
//! not the start.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

const WARM_UP: usize = 3;
const SETTLE: Duration = Duration::from_millis(20);
/// How many services (subsystems) the probes run; `SIGTERM_SERVICES` overrides it.
fn services() -> String {
    std::env::var("SIGTERM_SERVICES").unwrap_or_else(|_| "1000".to_owned())
}

struct Subject {
    name: &'static str,
    command: Command,
    /// Waits for the line `probe: READY` on stdout; otherwise just settles.
    reports_ready: bool,
    /// The exit the run must end with: `Some(code)`, or `None` for "killed
    /// by SIGTERM".
    expected_code: Option<i32>,
}

fn examples_dir() -> PathBuf {
    // target/release/deps/sigterm_latency-… → target/release/examples
    let exe = std::env::current_exe().expect("the bench's path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/release")
        .join("examples")
}

fn subjects(config_dir: &Path) -> Result<Vec<Subject>, String> {
    let dir = examples_dir();
    let mut missing = Vec::new();
    for name in ["probe_service", "tgs_probe"] {
        if !dir.join(name).exists() {
            missing.push(dir.join(name).display().to_string());
        }
    }
    if !missing.is_empty() {
        return Err(format!(
            "missing {}: run `cargo build --release --examples` first",
            missing.join(", ")
        ));
    }

    let mut apphost = Command::new(dir.join("probe_service"));
    apphost
        .env_clear()
        .env("APPHOST_CONFIG_DIR", config_dir)
        .env("APPHOST__PROBE__SERVICES", ",")
        .env("APPHOST__PROBE__TRIVIAL", services())
        .env("APPHOST__LOGGING__FILTER", "warn");
    let mut tgs = Command::new(dir.join("tgs_probe"));
    tgs.env_clear().env("TGS_SUBSYSTEMS", services());
    let mut bare = Command::new("sleep");
    bare.arg("1000");
    Ok(vec![
        Subject {
            name: "apphost probe_service (hosted services)",
            command: apphost,
            reports_ready: true,
            expected_code: Some(0),
        },
        Subject {
            name: "tokio-graceful-shutdown (subsystems)",
            command: tgs,
            reports_ready: true,
            expected_code: Some(0),
        },
        Subject {
            name: "bare process killed by the kernel (sleep)",
            command: bare,
            reports_ready: false,
            expected_code: None,
        },
    ])
}

/// One run: spawn, wait until ready, SIGTERM, wait for the exit.
fn run_once(subject: &mut Subject) -> Result<Duration, String> {
    let mut child = subject
        .command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{}: cannot spawn: {e}", subject.name))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut reader = BufReader::new(stdout);
    if subject.reports_ready {
        let mut line = String::new();
        loop {
            line.clear();
            let read = reader.read_line(&mut line).map_err(|e| e.to_string())?;
            if read == 0 {
                let _ = child.kill();
                return Err(format!("{}: exited before READY", subject.name));
            }
            if line.trim_end() == "probe: READY" {
                break;
            }
        }
    }
    std::thread::sleep(SETTLE);
    let pid = child.id() as libc::pid_t;
    let t0 = Instant::now();
    // SAFETY: kill(2) has no memory-safety preconditions; the pid is our
    // child's, not reaped before `wait` below.
    let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
    let status = child.wait().map_err(|e| e.to_string())?;
    let elapsed = t0.elapsed();
    if rc != 0 {
        return Err(format!("{}: kill failed", subject.name));
    }
    if status.code() != subject.expected_code {
        return Err(format!("{}: unexpected exit {status}", subject.name));
    }
    drop(reader);
    Ok(elapsed)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn main() -> ExitCode {
    let runs: usize = std::env::var("SIGTERM_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let config_dir = tempfile::tempdir().expect("a temporary directory");
    let mut subjects = match subjects(config_dir.path()) {
        Ok(subjects) => subjects,
        Err(e) => {
            eprintln!("sigterm_latency: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "SIGTERM → exit, {} services, {runs} runs each (after {WARM_UP} warm-up runs)",
        services()
    );
    println!(
        "{:<48} {:>10} {:>10} {:>10} {:>10}",
        "subject", "median", "p10", "p90", "max"
    );
    for subject in &mut subjects {
        let mut times = Vec::with_capacity(runs);
        for i in 0..WARM_UP + runs {
            match run_once(subject) {
                Ok(t) if i >= WARM_UP => times.push(t),
                Ok(_) => {}
                Err(e) => {
                    eprintln!("sigterm_latency: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        times.sort();
        println!(
            "{:<48} {:>10} {:>10} {:>10} {:>10}",
            subject.name,
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.1)),
            ms(percentile(&times, 0.9)),
            ms(*times.last().expect("at least one run")),
        );
    }
    ExitCode::SUCCESS
}
