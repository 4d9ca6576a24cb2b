//! The main example: a long-running worker, configured from
//! `config/default.toml` and stopped gracefully by Ctrl+C or SIGTERM.
//!
//! ```text
//! cargo run --example worker
//! ```
//!
//! It shows:
//!
//! - the three-line `main` ([`apphost::console::run`]): configuration,
//!   logging, signals, exit code;
//! - a [`BackgroundService`] doing one unit of work every `[worker] interval`;
//! - its own typed `[worker]` section, read with `Configuration::watch`
//!   (a typo in it stops the process with exit code 78 before anything runs);
//! - a callback on its stopping token that flushes its progress to
//!   `[worker] state_file`, so the next run resumes from it;
//! - the shutdown timeout, read from `[host] shutdown_timeout`;
//! - a configuration reload (`kill -HUP <pid>`): the worker's watch of its
//!   section gets the new value and the worker applies the new interval; a
//!   reload with an invalid `[worker]` (or `[host]`) is rejected as a whole,
//!   with one ERROR line, and the old configuration stays in force.
//!
//! Press Ctrl+C (or `kill -TERM <pid>`): the log shows each phase, and the
//! exit code is 0.
//!
//! ```text
//! INFO worker: configuration read environment=production shutdown_timeout=5s interval=1s state_file=target/worker-state.txt
//! INFO apphost::host: host starting services=1
//! INFO apphost::lifetime: Application started. Press Ctrl+C to shut down.
//! INFO apphost::lifetime: Hosting environment: production
//! INFO apphost::lifetime: Config directory: /…/config
//! INFO apphost::host: host started elapsed_ms=0
//! INFO worker: running, resuming after unit 0
//! INFO worker: did one unit of work unit=1
//! INFO worker: did one unit of work unit=2
//! ^C
//! INFO apphost::lifetime: received signal 2 (SIGINT): stopping gracefully (send it again to stop at once)
//! INFO apphost::lifetime: Application is shutting down...
//! INFO apphost::host: host stopping
//! INFO worker: stopping: progress flushed unit=2 file=target/worker-state.txt
//! INFO worker: stopped
//! INFO apphost::host: host stopped services_stopped=1 failed=0 timed_out=0 cancelled=0 elapsed_ms=0
//! ```
//!
//! Try `APPHOST__WORKER__INTERVAL=250ms cargo run --example worker`, or
//! `APPHOST__HOST__SHUTDOWN_TIMEOUT=ten cargo run --example worker` to see a
//! configuration error (exit code 78).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use apphost::CancellationToken;
use apphost::config::Watch;
use apphost::host::{BackgroundService, Host};

/// The `[worker]` section. Missing keys keep these defaults; unknown keys are
/// an error.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct WorkerOptions {
    /// How often to do one unit of work.
    #[serde(deserialize_with = "apphost::config::deserialize_duration")]
    interval: Duration,
    /// Where progress is kept between runs.
    state_file: PathBuf,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            interval: Duration::from_secs(1),
            state_file: PathBuf::from("target/worker-state.txt"),
        }
    }
}

/// Does one unit of work per interval and remembers how many it has done.
struct Worker {
    /// `[worker]`, kept current by the host's reloads (SIGHUP).
    options: Watch<WorkerOptions>,
    /// Where progress is kept: the value at start (a reload does not move it).
    state_file: PathBuf,
    /// Units done so far, including previous runs.
    done: Arc<AtomicU64>,
}

impl Worker {
    fn new(options: Watch<WorkerOptions>) -> Self {
        let state_file = options.current().state_file.clone();
        // Resume where the previous run stopped; a missing file means zero.
        let done = std::fs::read_to_string(&state_file)
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(0);
        Worker {
            options,
            state_file,
            done: Arc::new(AtomicU64::new(done)),
        }
    }
}

/// Writes the progress to `path`; runs inside a cancellation callback, so it
/// is short and synchronous.
fn flush(path: &Path, done: u64) {
    let result = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(path, format!("{done}\n")));
    match result {
        Ok(()) => tracing::info!(unit = done, file = %path.display(), "stopping: progress flushed"),
        Err(e) => tracing::error!(file = %path.display(), "stopping: cannot flush progress: {e}"),
    }
}

impl BackgroundService for Worker {
    async fn execute(&self, stopping: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(
            "running, resuming after unit {}",
            self.done.load(Ordering::Relaxed)
        );

        // The stopping callback: runs once, as soon as the stop begins (on
        // the thread that requests it). It records what it flushed.
        let flushed = Arc::new(AtomicU64::new(u64::MAX));
        let (done, recorded) = (Arc::clone(&self.done), Arc::clone(&flushed));
        let path = self.state_file.clone();
        let _flush = stopping.register(move || {
            let done = done.load(Ordering::SeqCst);
            flush(&path, done);
            recorded.store(done, Ordering::SeqCst);
        });

        let mut interval = self.options.current().interval;
        let mut ticks = tokio::time::interval(interval);
        ticks.tick().await; // the first tick is immediate: start with a full interval
        loop {
            // Take the token *before* reading the value: a reload between
            // the two is then seen by one or the other.
            let changed = self.options.token();
            let now = self.options.current().interval;
            if now != interval {
                interval = now;
                ticks = tokio::time::interval(interval);
                ticks.tick().await;
                tracing::info!(?interval, "configuration reloaded: new interval");
            }
            tokio::select! {
                () = stopping.cancelled() => break,
                _ = ticks.tick() => {
                    // One unit of work. Real work would take `stopping` too.
                    let unit = self.done.fetch_add(1, Ordering::SeqCst) + 1;
                    tracing::info!(unit, "did one unit of work");
                }
                // Applied at the top of the loop.
                () = changed.cancelled() => {}
            }
        }
        // A unit finished while the callback ran would be lost: flush again.
        let done = self.done.load(Ordering::SeqCst);
        if flushed.load(Ordering::SeqCst) != done {
            flush(&self.state_file, done);
        }
        tracing::info!("stopped");
        Ok(())
    }

    fn name(&self) -> &str {
        "worker"
    }
}

fn main() -> ExitCode {
    apphost::console::run(|config| {
        // A typed view of [worker] that follows reloads; a reload with an
        // invalid [worker] is rejected before anything changes.
        let options = config.watch::<WorkerOptions>("worker")?;
        let current = options.current();
        tracing::info!(
            environment = %config.environment(),
            shutdown_timeout = ?config.host_options()?.shutdown_timeout,
            interval = ?current.interval,
            state_file = %current.state_file.display(),
            "configuration read"
        );
        Ok(Host::builder().add_background_service(Worker::new(options)))
    })
}
