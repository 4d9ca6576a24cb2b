//! apphost: host long-running Rust services.
#![doc(test(attr(deny(warnings))))]
#![forbid(unsafe_code)]

pub mod cancel;
pub mod config;
pub mod host;
pub mod logging;
pub mod readiness;
pub mod signal;
pub mod systemd;
mod sync;

pub use cancel::{
    CancelReason, CancellationRegistration, CancellationToken, CancellationTokenSource,
    OperationCanceled,
};
pub use host::{
    ApplicationLifetime, BackgroundService, BackgroundServiceExceptionBehavior, BuildError, Host,
    HostBuilder, HostError, HostOptions, HostState, HostedService,
};
