//! apphost: host long-running Rust services.
#![doc(test(attr(deny(warnings))))]

pub mod cancel;
pub mod config;
pub mod host;
mod sync;

pub use cancel::{
    CancelReason, CancellationRegistration, CancellationToken, CancellationTokenSource,
    OperationCanceled,
};
pub use host::{BackgroundServiceExceptionBehavior, HostOptions};
