//! apphost hosts long-running Rust services — daemons, workers, servers —
//! and stops them gracefully, on time, every time.
//!
//! It is modelled on .NET's Generic Host and its cancellation tokens, and
//! fixes what that host's users complain about:
//!
//! - [`cancel`]: a cooperative cancellation primitive in the .NET sense —
//!   [`CancellationTokenSource`] owns cancellation, [`CancellationToken`]s
//!   observe it (polling, `async`, blocking wait, callbacks),
//!   [`CancellationRegistration`]s unregister on drop; linked sources over
//!   several parents, timeouts, a [`CancelReason`], and the
//!   [`OperationCanceled`] error.
//! - [`host`]: a [`Host`] that starts registered [`HostedService`]s and
//!   [`BackgroundService`]s in order, exposes the application's started /
//!   stopping / stopped tokens ([`ApplicationLifetime`]), and stops them in
//!   reverse order within a budget it *enforces*, whatever the services do.
//! - [`signal`]: SIGINT, SIGTERM and SIGQUIT request a graceful stop; a
//!   second signal cuts it short; a third exits; SIGHUP never kills.
//! - [`config`] and [`logging`]: layered TOML files, environment variables
//!   and code, with errors that name the file or variable, the key and what
//!   was expected; tracing set up from `[logging]`.
//! - [`systemd`] and [`readiness`]: the protocols of the supervisors that run
//!   services.
//!
//! # Lifecycle order
//!
//! With services `A, B, C` registered in that order:
//!
//! 1. start: `starting` A, B, C → `start` A, B, C → `started` A, B, C →
//!    [`ApplicationLifetime::started`] fires → background `execute` tasks begin;
//! 2. a stop request ([`ApplicationLifetime::stop_application`], a signal, a
//!    failing background service) fires [`ApplicationLifetime::stopping`];
//! 3. stop: `stopping` C, B, A → stopping callbacks finished → `stop` C, B, A
//!    → `stopped` C, B, A → [`ApplicationLifetime::stopped`] fires.
//!
//! See [`host`] for the tokens, failures and the enforced budget.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use apphost::{BackgroundService, CancellationToken, Host};
//!
//! struct Worker;
//!
//! impl BackgroundService for Worker {
//!     async fn execute(&self, stopping: CancellationToken) -> anyhow::Result<()> {
//!         while !stopping.is_cancelled() {
//!             // one unit of work, then wait for the next tick or the stop
//!             let _ = stopping.run_until_cancelled(tokio::time::sleep(Duration::from_secs(1))).await;
//!         }
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let host = Host::builder()
//!     .add_background_service(Worker)
//!     .configure_options(|options| options.shutdown_timeout = Duration::from_secs(5))
//!     .build()?;
//! let lifetime = host.lifetime().clone();
//! tokio::spawn(async move {
//!     tokio::time::sleep(Duration::from_secs(3)).await;
//!     lifetime.stop_application(); // what SIGTERM does
//! });
//! host.run().await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Caveats
//!
//! - Signal handling is process-wide: install one console lifetime per process.
//! - A service that blocks its thread can only be abandoned, not preempted,
//!   and only on a multi-thread runtime.
//! - Unix only for signals and the systemd protocol.
#![doc(test(attr(deny(warnings))))]
#![forbid(unsafe_code)]

pub mod cancel;
mod sync;

// Everything beyond the cancellation primitive: the `host` feature (on by
// default). `default-features = false` builds `cancel` alone, without
// configuration, logging or signal dependencies.
#[cfg(feature = "host")]
pub mod config;
#[cfg(feature = "host")]
pub mod console;
#[cfg(feature = "host")]
mod fs_safe;
#[cfg(feature = "host")]
pub mod host;
#[cfg(feature = "host")]
pub mod logging;
#[cfg(feature = "host")]
pub mod readiness;
#[cfg(feature = "host")]
pub mod signal;
#[cfg(feature = "host")]
pub mod systemd;

pub use cancel::{
    CancelReason, CancellationRegistration, CancellationToken, CancellationTokenSource,
    OperationCanceled,
};
#[cfg(feature = "host")]
pub use host::{
    ApplicationLifetime, BackgroundService, BackgroundServiceExceptionBehavior, BuildError, Host,
    HostBuilder, HostError, HostOptions, HostState, HostedService, ServiceOptions,
};

/// The README's Rust examples, compiled as doctests so they stay true.
#[cfg(all(doctest, feature = "host"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
