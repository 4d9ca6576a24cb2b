//! The order of a host's lifecycle events, printed as they happen.
//!
//! Two hosted services (`Database`, `WebServer`) log each lifecycle call, a
//! background service (`Ticker`) ticks a few times and then asks the
//! application to stop, and callbacks on the application lifetime's
//! `started` / `stopping` / `stopped` tokens print when they run.
//!
//! ```text
//! cargo run --example lifetime_events
//! ```
//!
//! It ends by itself after about half a second, exit code 0, printing:
//!
//! ```text
//! starting: Database
//! starting: WebServer
//! start:    Database
//! start:    WebServer
//! started:  Database
//! started:  WebServer
//! [lifetime] started
//! tick 1
//! tick 2
//! tick 3
//! [lifetime] stopping (reason: cancellation requested)
//! stopping: WebServer
//! stopping: Database
//! stop:     WebServer
//! Ticker: stopping token cancelled, returning
//! stop:     Database
//! stopped:  WebServer
//! stopped:  Database
//! [lifetime] stopped
//! host stopped cleanly
//! ```
//!
//! The stop was *requested* (by the ticker), so `stopping` fires at the
//! request, before the `stopping` hooks; a host stopped with `Host::stop`
//! runs the `stopping` hooks first. Background services are stopped at their
//! place in reverse registration order, between `WebServer` and `Database`.

use std::process::ExitCode;
use std::time::Duration;

use apphost::host::{ApplicationLifetime, BackgroundService, Host, HostedService};
use apphost::{CancellationToken, OperationCanceled};

/// A hosted service that prints each call it gets.
struct Logged(&'static str);

impl Logged {
    fn print(&self, call: &str) -> anyhow::Result<()> {
        println!("{:<9} {}", format!("{call}:"), self.0);
        Ok(())
    }
}

impl HostedService for Logged {
    async fn starting(&self, _: CancellationToken) -> anyhow::Result<()> {
        self.print("starting")
    }
    async fn start(&self, _: CancellationToken) -> anyhow::Result<()> {
        self.print("start")
    }
    async fn started(&self, _: CancellationToken) -> anyhow::Result<()> {
        self.print("started")
    }
    async fn stopping(&self, _: CancellationToken) -> anyhow::Result<()> {
        self.print("stopping")
    }
    async fn stop(&self, _: CancellationToken) -> anyhow::Result<()> {
        self.print("stop")
    }
    async fn stopped(&self, _: CancellationToken) -> anyhow::Result<()> {
        self.print("stopped")
    }
    fn name(&self) -> &str {
        self.0
    }
}

/// Ticks three times, then asks the application to stop.
struct Ticker(ApplicationLifetime);

impl BackgroundService for Ticker {
    async fn execute(&self, stopping: CancellationToken) -> anyhow::Result<()> {
        let mut interval = tokio::time::interval(Duration::from_millis(150));
        interval.tick().await; // the first tick is immediate
        for n in 1..=3 {
            interval.tick().await;
            println!("tick {n}");
        }
        self.0.stop_application();
        stopping.cancelled().await;
        println!("Ticker: stopping token cancelled, returning");
        // Returning OperationCanceled for its own token is not a failure.
        Err(OperationCanceled::new(stopping).into())
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let builder = Host::builder();
    // The lifetime exists before the host, so services can hold it.
    let lifetime = builder.lifetime();
    let host = builder
        .add_hosted_service(Logged("Database"))
        .add_background_service(Ticker(lifetime.clone()))
        .add_hosted_service(Logged("WebServer"))
        .build()
        .expect("distinct service names");

    lifetime
        .started()
        .register(|| println!("[lifetime] started"))
        .detach();
    let stopping = lifetime.stopping();
    lifetime
        .stopping()
        .register(move || {
            let reason = stopping.reason().expect("cancelled");
            println!("[lifetime] stopping (reason: {reason})");
        })
        .detach();
    lifetime
        .stopped()
        .register(|| println!("[lifetime] stopped"))
        .detach();

    match host.run().await {
        Ok(()) => {
            println!("host stopped cleanly");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("host failed: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
