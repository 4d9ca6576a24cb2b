//! A TCP echo server that stops accepting as soon as the host begins to stop
//! and drains its open connections within the shutdown budget.
//!
//! ```text
//! cargo run --example tcp_echo                  # listens on [echo] address, 127.0.0.1:7878
//! cargo run --example tcp_echo -- 127.0.0.1:0   # or on the address given (0: any free port)
//! nc 127.0.0.1 7878                             # type lines; they come back
//! ```
//!
//! It shows a [`HostedService`] with a lifecycle hook:
//!
//! - `start` binds the listener (a port in use fails the start: exit code 1)
//!   and spawns the accept loop;
//! - the `stopping` hook stops accepting: the listener is closed, new
//!   connections are refused, open ones carry on;
//! - `stop` waits for the open connections to end by themselves (the clients
//!   hang up); when its token is cancelled, because `[host]
//!   shutdown_timeout` ran out or a second Ctrl+C came, it closes the rest
//!   and reports that it was cut short.
//!
//! On Ctrl+C with no client connected it exits 0 at once. With a client
//! still connected, it waits for it up to the shutdown timeout (5 s in
//! `config/default.toml`), then closes it and exits 124 (the stop timed out).
//!
//! ```text
//! INFO tcp_echo: listening on 127.0.0.1:7878
//! INFO tcp_echo: connection opened peer=127.0.0.1:51234
//! ^C
//! INFO apphost::lifetime: Application is shutting down...
//! INFO tcp_echo: stopped accepting; draining open connections open=1
//! INFO tcp_echo: connection closed peer=127.0.0.1:51234
//! INFO tcp_echo: all connections drained
//! ```

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Mutex;

use anyhow::Context as _;
use apphost::host::{Host, HostedService};
use apphost::{CancellationToken, CancellationTokenSource, OperationCanceled};
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// The `[echo]` section.
#[derive(Debug, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct EchoOptions {
    /// The address to listen on; the first command-line argument overrides it.
    address: String,
}

impl Default for EchoOptions {
    fn default() -> Self {
        EchoOptions {
            address: "127.0.0.1:7878".to_owned(),
        }
    }
}

/// The echo server. `running` is set by `start` and taken by `stop`.
struct EchoServer {
    address: String,
    running: Mutex<Option<Running>>,
}

struct Running {
    /// Cancelled by the `stopping` hook: the accept loop ends.
    stop_accepting: CancellationTokenSource,
    /// Cancelled when the stop budget is spent: open connections are closed.
    close: CancellationTokenSource,
    /// The accept loop, then the drain; returns whether it had to close
    /// connections.
    server: JoinHandle<bool>,
}

impl EchoServer {
    fn running(&self) -> std::sync::MutexGuard<'_, Option<Running>> {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl HostedService for EchoServer {
    async fn start(&self, _token: CancellationToken) -> anyhow::Result<()> {
        let listener = TcpListener::bind(&self.address)
            .await
            .with_context(|| format!("cannot listen on {}", self.address))?;
        tracing::info!("listening on {}", listener.local_addr()?);
        let stop_accepting = CancellationTokenSource::new();
        let close = CancellationTokenSource::new();
        let server = tokio::spawn(serve(listener, stop_accepting.token(), close.token()));
        *self.running() = Some(Running {
            stop_accepting,
            close,
            server,
        });
        Ok(())
    }

    async fn stopping(&self, _token: CancellationToken) -> anyhow::Result<()> {
        if let Some(running) = &*self.running() {
            running.stop_accepting.cancel();
        }
        Ok(())
    }

    async fn stop(&self, token: CancellationToken) -> anyhow::Result<()> {
        let Some(running) = self.running().take() else {
            return Ok(());
        };
        running.stop_accepting.cancel(); // in case `stopping` was skipped
        // The drain lasts until the connections end or the budget is spent.
        let close = running.close.clone();
        let _budget = token.register(move || close.cancel());
        let cut_short = running.server.await?;
        if cut_short {
            // Report it: the host counts it as a stop cut short by its token.
            return Err(OperationCanceled::new(token).into());
        }
        Ok(())
    }

    fn name(&self) -> &str {
        "echo"
    }
}

/// Accepts until `stop_accepting`, then drains until `close`. Returns whether
/// connections had to be closed.
async fn serve(
    listener: TcpListener,
    stop_accepting: CancellationToken,
    close: CancellationToken,
) -> bool {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = stop_accepting.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(echo(stream, peer));
                }
                Err(e) => tracing::warn!("accept failed: {e}"),
            },
            // Reap finished connections as we go.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    tracing::info!(
        open = connections.len(),
        "stopped accepting; draining open connections"
    );
    loop {
        tokio::select! {
            next = connections.join_next() => if next.is_none() {
                tracing::info!("all connections drained");
                return false;
            },
            () = close.cancelled() => {
                tracing::warn!(open = connections.len(), "shutdown budget spent: closing open connections");
                connections.shutdown().await;
                return true;
            }
        }
    }
}

/// Echoes what the peer sends until it hangs up.
async fn echo(mut stream: TcpStream, peer: SocketAddr) {
    tracing::info!(%peer, "connection opened");
    let (mut reader, mut writer) = stream.split();
    match tokio::io::copy(&mut reader, &mut writer).await {
        Ok(bytes) => {
            let _ = writer.shutdown().await;
            tracing::info!(%peer, bytes, "connection closed");
        }
        Err(e) => tracing::info!(%peer, "connection failed: {e}"),
    }
}

fn main() -> ExitCode {
    apphost::console::run(|config| {
        let options: EchoOptions = config.section("echo")?;
        let address = std::env::args().nth(1).unwrap_or(options.address);
        Ok(Host::builder().add_hosted_service(EchoServer {
            address,
            running: Mutex::new(None),
        }))
    })
}
