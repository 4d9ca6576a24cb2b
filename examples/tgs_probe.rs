//! A benchmark subject, not a tutorial: the `tokio-graceful-shutdown`
//! counterpart of `probe_service`, for `benches/sigterm_latency.rs`.
//!
//! It starts `TGS_SUBSYSTEMS` (default 1,000) subsystems that each wait for
//! the shutdown request, prints `probe: READY` on stdout, and on SIGTERM or
//! SIGINT shuts them all down (5 s budget) and exits 0.
//!
//! ```text
//! cargo run --release --example tgs_probe     # then Ctrl+C: exit 0
//! ```

#[cfg(not(loom))]
fn main() -> std::process::ExitCode {
    use std::io::Write;
    use std::time::Duration;

    use tokio_graceful_shutdown::{SubsystemBuilder, SubsystemHandle, Toplevel};

    let n: usize = std::env::var("TGS_SUBSYSTEMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    // Toplevel::new spawns tasks: it must be called inside the runtime.
    let result = runtime.block_on(async move {
        Toplevel::new(async move |s: &mut SubsystemHandle| {
            for i in 0..n {
                s.start(SubsystemBuilder::new(
                    format!("s{i}"),
                    async |h: &mut SubsystemHandle| {
                        h.on_shutdown_requested().await;
                        Ok::<(), anyhow::Error>(())
                    },
                ));
            }
            let _ = writeln!(std::io::stdout(), "probe: READY");
        })
        .catch_signals()
        .handle_shutdown_requests(Duration::from_secs(5))
        .await
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "tgs_probe: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

// tokio-graceful-shutdown needs tokio's signal module, which `--cfg loom`
// builds compile out; the dev-dependency is declared for `not(loom)` only.
#[cfg(loom)]
fn main() {}
