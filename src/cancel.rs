//! Cooperative cancellation in the .NET sense: sources, tokens, registrations.
//!
//! - A [`CancellationTokenSource`] owns cancellation: it is the only side that
//!   can [`cancel`](CancellationTokenSource::cancel), by hand, after a timeout,
//!   or because a source it is [`linked`](CancellationTokenSource::linked) to
//!   was cancelled.
//! - A [`CancellationToken`] observes it, four ways: polling
//!   ([`is_cancelled`](CancellationToken::is_cancelled), one atomic load),
//!   awaiting ([`cancelled`](CancellationToken::cancelled)), blocking a thread
//!   ([`wait`](CancellationToken::wait)), and callbacks
//!   ([`register`](CancellationToken::register)).
//! - A [`CancellationRegistration`] is one registered callback; dropping it
//!   unregisters the callback.
//! - Every cancellation carries a [`CancelReason`], and code that stops
//!   because of one returns [`OperationCanceled`].
//!
//! Cancellation is cooperative: the requester asks, the listener decides how
//! and when to stop.
//!
//! # Guarantees
//!
//! - `is_cancelled()` turns true before any callback runs, and stays true
//!   (only [`try_reset`](CancellationTokenSource::try_reset), on a source that
//!   was never cancelled, makes a source reusable).
//! - Callbacks run synchronously inside `cancel()`, on the cancelling thread,
//!   most recently registered first; linked sources' callbacks run at their
//!   link's turn, depth first. When `cancel()` returns, all of them have
//!   finished.
//! - Each callback runs exactly once, or never if unregistered first — also
//!   when registering, unregistering and cancelling race on several threads.
//! - Nothing recurses over the depth of a chain of linked sources, so a chain
//!   a million sources deep cancels and drops on a small stack, in linear time.
//!
//! # Examples
//!
//! A timeout linked with a shutdown signal, as in the Azure SDK article this
//! crate started from:
//!
//! ```
//! use std::time::Duration;
//! use apphost::{CancelReason, CancellationTokenSource};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let shutdown = CancellationTokenSource::new();
//! let download = CancellationTokenSource::linked([&shutdown.token()]);
//! download.cancel_after(Duration::from_secs(30));
//!
//! let token = download.token();
//! let result = token.run_until_cancelled(std::future::pending::<()>()).await;
//! let error = result.unwrap_err();
//! assert_eq!(error.reason(), &CancelReason::TimedOut);
//! # }
//! ```

mod error;
mod future;
mod list;
mod reason;
mod registration;
mod source;
pub(crate) mod state;
mod timer;
mod token;

#[cfg(all(test, loom))]
mod tests;

pub use error::OperationCanceled;
pub use future::{Cancelled, CancelledOwned};
pub use reason::CancelReason;
pub use registration::CancellationRegistration;
pub use source::CancellationTokenSource;
pub use token::CancellationToken;
