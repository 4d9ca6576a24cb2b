//! A download bounded by a timeout and by Ctrl+C, as in the Azure SDK
//! article "How to use CancellationTokens to cancel tasks".
//!
//! - A `shutdown` source is cancelled when you press Ctrl+C
//!   (`tokio::signal::ctrl_c`), with [`CancelReason::Requested`].
//! - The download's own source is [`linked`](CancellationTokenSource::linked)
//!   to it and given a timeout with `cancel_after`, so either one stops the
//!   download.
//! - A simulated slow download writes chunks to a partial file. When it is
//!   cancelled it returns [`OperationCanceled`]; `main` finds it in the
//!   `anyhow::Error`, deletes the partial file and says why: timed out, or
//!   cancelled by Ctrl+C.
//! - A registered callback logs the cancellation, the article's "doing
//!   additional work when canceled".
//!
//! The download takes about 3 s and the default timeout is 2 s, so by
//! default it times out and the program ends by itself. Give a longer
//! timeout to let it finish (the file is then deleted too: it is a demo),
//! or press Ctrl+C while it runs. It exits 0 in every case, since handling
//! the cancellation is the point.
//!
//! Run: `cargo run --example download_timeout [TIMEOUT]`, where `TIMEOUT`
//! is e.g. `2s`, `500ms`, `10s` or a number of seconds.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use apphost::{CancelReason, CancellationToken, CancellationTokenSource, OperationCanceled};
use tokio::io::AsyncWriteExt;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
const CHUNKS: usize = 10;
const CHUNK_SIZE: usize = 64 * 1024;
const CHUNK_DELAY: Duration = Duration::from_millis(300);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let timeout = match std::env::args().nth(1) {
        Some(arg) => parse_timeout(&arg)?,
        None => DEFAULT_TIMEOUT,
    };

    // Cancelled by Ctrl+C.
    let shutdown = CancellationTokenSource::new();
    let on_ctrl_c = shutdown.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("Cancelling download...");
            on_ctrl_c.cancel();
        }
    });

    // Cancelled by Ctrl+C or by the timeout, whichever comes first.
    let download = CancellationTokenSource::linked([&shutdown.token()]);
    download.cancel_after(timeout);

    let path = std::env::temp_dir().join(format!("apphost-download-{}.bin", std::process::id()));
    println!(
        "Downloading to {} (timeout {timeout:?}, Ctrl+C to cancel)...",
        path.display()
    );
    let started = Instant::now();

    match download_to(&path, &download.token()).await {
        Ok(bytes) => {
            println!("Downloaded {bytes} bytes in {:.2?}.", started.elapsed());
            remove(&path, "Demo finished")?;
        }
        Err(error) => match error.downcast_ref::<OperationCanceled>() {
            Some(cancelled) => {
                let why = match cancelled.reason() {
                    CancelReason::TimedOut => format!("timed out after {timeout:?}"),
                    CancelReason::Requested => "cancelled with Ctrl+C".to_owned(),
                    other => other.to_string(),
                };
                eprintln!(
                    "Download canceled ({why}, after {:.2?}).",
                    started.elapsed()
                );
                remove(&path, "Download canceled")?;
            }
            None => return Err(error),
        },
    }
    Ok(())
}

/// Downloads into `path`, chunk by chunk, until done or `token` is
/// cancelled. The error is an `OperationCanceled` when cancelled.
async fn download_to(path: &Path, token: &CancellationToken) -> anyhow::Result<u64> {
    // Runs when the token is cancelled, on the cancelling thread; dropped
    // (unregistered) when the download returns.
    let _log = token.register(|| eprintln!("The task was cancelled."));

    token.error_if_cancelled()?;
    let mut file = tokio::fs::File::create(path)
        .await
        .with_context(|| format!("creating {}", path.display()))?;
    let mut written = 0;
    for chunk in 0..CHUNKS {
        // Waiting for the network is where cancellation stops us.
        let bytes = token.run_until_cancelled(receive_chunk(chunk)).await?;
        file.write_all(&bytes).await?;
        written += bytes.len() as u64;
        println!("  chunk {}/{CHUNKS}: {written} bytes", chunk + 1);
    }
    file.flush().await?;
    Ok(written)
}

/// A slow network: each chunk takes a while to arrive.
async fn receive_chunk(index: usize) -> Vec<u8> {
    tokio::time::sleep(CHUNK_DELAY).await;
    vec![index as u8; CHUNK_SIZE]
}

fn remove(path: &Path, what: &str) -> anyhow::Result<()> {
    if path.exists() {
        eprintln!("{what}. Deleting {}...", path.display());
        std::fs::remove_file(path).with_context(|| format!("deleting {}", path.display()))?;
    }
    Ok(())
}

fn parse_timeout(arg: &str) -> anyhow::Result<Duration> {
    if let Ok(seconds) = arg.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds)
            .with_context(|| format!("invalid timeout {arg:?}"));
    }
    humantime::parse_duration(arg)
        .with_context(|| format!("invalid timeout {arg:?}: try 2s, 500ms or 10"))
}
