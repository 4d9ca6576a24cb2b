//! `console::run_async` on a runtime of the application's own, with a
//! service whose stop blocks its thread past the budget: the host abandons
//! it and `run_async` returns on time, but dropping the runtime (what the
//! end of `#[tokio::main]` does) would wait for that thread. The documented
//! pattern — `block_on` on a runtime you built, then
//! `Runtime::shutdown_timeout` — returns on time. (One test per binary: the
//! console lifetime's signal handlers are process-wide.)

#![cfg(unix)]

use std::time::{Duration, Instant};

use apphost::CancellationToken;
use apphost::console::{ConsoleOptions, run_async_with};
use apphost::host::{Host, HostedService};

/// Its stop blocks its thread for `block`, ignoring the token.
struct Blocking {
    block: Duration,
}

impl HostedService for Blocking {
    async fn start(&self, _token: CancellationToken) -> anyhow::Result<()> {
        Ok(())
    }

    async fn stop(&self, _token: CancellationToken) -> anyhow::Result<()> {
        std::thread::sleep(self.block);
        Ok(())
    }
}

#[test]
fn run_async_then_shutdown_timeout_does_not_wait_for_a_blocked_thread() {
    let began = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let code = runtime.block_on(async {
        let host = Host::builder()
            .add_hosted_service(Blocking {
                block: Duration::from_secs(10),
            })
            .configure_options(|o| o.shutdown_timeout = Duration::from_millis(300))
            .build()
            .unwrap();
        let lifetime = host.lifetime().clone();
        let started = host.lifetime().started();
        std::thread::spawn(move || {
            started.wait_timeout(Duration::from_secs(20));
            lifetime.stop_application();
        });
        run_async_with(
            ConsoleOptions::default().suppress_status_messages(true),
            host,
        )
        .await
    });
    // The stop ran out of budget (124), but it returned on time.
    assert_eq!(code, std::process::ExitCode::from(124));
    // Dropping `runtime` here would wait the 10 s for the blocked thread.
    runtime.shutdown_timeout(Duration::from_millis(100));
    let took = began.elapsed();
    assert!(
        took < Duration::from_secs(8),
        "the blocked thread held the exit: {took:?}"
    );
}
