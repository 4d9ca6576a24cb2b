//! The host: hosted services, lifetime tokens, ordered start and bounded stop.

mod options;

pub use options::{BackgroundServiceExceptionBehavior, HostOptions};
