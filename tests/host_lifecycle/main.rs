//! The host's lifecycle, phase by phase: one test binary (`cargo test --test
//! host_lifecycle`), split by concern. Time-dependent tests run on tokio's
//! paused clock, so they are deterministic and instant.

mod background;
mod dependencies;
mod engine;
mod events;
mod lifetime;
mod panics;
mod report;
mod start;
mod stop;
mod subscription;
mod support;
mod timeouts;
