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
//! - its own typed `[worker]` section, read with `Configuration::section`
//!   (a typo in it stops the process with exit code 78 before anything runs);
//! - a callback on its stopping token that flushes its progress to
//!   `[worker] state_file`, so the next run resumes from it;
//! - the shutdown timeout, read from `[host] shutdown_timeout`;
//! - a configuration reload (`kill -HUP <pid>`): the worker re-reads its
//!   section through `HostBuilder::reloads` and applies a new interval; an
//!   invalid file is rejected and the old configuration stays in force.
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
use apphost::host::{BackgroundService, ConfigReloads, Host};

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
    options: WorkerOptions,
    /// The host's configuration as reloaded on SIGHUP.
    reloads: ConfigReloads,
    /// Units done so far, including previous runs.
    done: Arc<AtomicU64>,
}

impl Worker {
    fn new(options: WorkerOptions, reloads: ConfigReloads) -> Self {
        // Resume where the previous run stopped; a missing file means zero.
        let done = std::fs::read_to_string(&options.state_file)
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(0);
        Worker {
            options,
            reloads,
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
        let path = self.options.state_file.clone();
        let _flush = stopping.register(move || {
            let done = done.load(Ordering::SeqCst);
            flush(&path, done);
            recorded.store(done, Ordering::SeqCst);
        });

        let mut interval = self.options.interval;
        let mut ticks = tokio::time::interval(interval);
        ticks.tick().await; // the first tick is immediate: start with a full interval
        // Reloads applied so far. Take the token *before* comparing counts:
        // a reload between the two is then seen by one or the other.
        let mut seen = 0;
        loop {
            let reloaded = self.reloads.token();
            if self.reloads.count() != seen {
                seen = self.reloads.count();
                match self.reloads.current().section::<WorkerOptions>("worker") {
                    Ok(options) if options.interval != interval => {
                        interval = options.interval;
                        ticks = tokio::time::interval(interval);
                        ticks.tick().await;
                        tracing::info!(?interval, "configuration reloaded: new interval");
                    }
                    Ok(_) => tracing::info!("configuration reloaded: [worker] unchanged"),
                    Err(e) => tracing::warn!(
                        "reloaded [worker] is invalid, keeping interval {interval:?}: {e}"
                    ),
                }
                continue;
            }
            tokio::select! {
                () = stopping.cancelled() => break,
                _ = ticks.tick() => {
                    // One unit of work. Real work would take `stopping` too.
                    let unit = self.done.fetch_add(1, Ordering::SeqCst) + 1;
                    tracing::info!(unit, "did one unit of work");
                }
                // Applied at the top of the loop.
                () = reloaded.cancelled() => {}
            }
        }
        // A unit finished while the callback ran would be lost: flush again.
        let done = self.done.load(Ordering::SeqCst);
        if flushed.load(Ordering::SeqCst) != done {
            flush(&self.options.state_file, done);
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
        let options: WorkerOptions = config.section("worker")?;
        tracing::info!(
            environment = %config.environment(),
            shutdown_timeout = ?config.host_options()?.shutdown_timeout,
            interval = ?options.interval,
            state_file = %options.state_file.display(),
            "configuration read"
        );
        let builder = Host::builder();
        let reloads = builder.reloads();
        Ok(builder.add_background_service(Worker::new(options, reloads)))
    })
}
