//! The futures returned by [`CancellationToken::cancelled`] and
//! [`CancellationToken::cancelled_owned`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::CancellationToken;
use super::list::{Entry, Key};
use super::state::Inner;

/// The registration of one pending future: its waker's key, once polled.
#[derive(Default)]
struct Waiter {
    key: Option<Key>,
}

impl Waiter {
    fn poll(&mut self, token: &CancellationToken, cx: &mut Context<'_>) -> Poll<()> {
        let Some(inner) = &token.inner else {
            return Poll::Pending;
        };
        if inner.is_cancelled() {
            // Cancellation pops (and wakes) every waker; nothing to remove.
            self.key = None;
            return Poll::Ready(());
        }
        match self.key {
            Some(key) if inner.update_waker(key, cx.waker()) => Poll::Pending,
            _ => match inner.add(Entry::Waker(cx.waker().clone())) {
                Ok(key) => {
                    self.key = Some(key);
                    Poll::Pending
                }
                Err(_) => {
                    self.key = None;
                    Poll::Ready(())
                }
            },
        }
    }

    fn release(&mut self, inner: Option<&Arc<Inner>>) {
        if let (Some(inner), Some(key)) = (inner, self.key.take()) {
            // Once cancelled, the cancelling thread pops the entry itself.
            if !inner.is_cancelled() {
                inner.remove(key);
            }
        }
    }
}

/// Completes when its token is cancelled. Returned by
/// [`CancellationToken::cancelled`].
///
/// # Cancel safety
///
/// Cancel-safe: dropping it removes its waker from the token.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let source = apphost::CancellationTokenSource::new();
/// let token = source.token();
/// let cancelled: apphost::cancel::Cancelled<'_> = token.cancelled();
/// source.cancel();
/// cancelled.await;
/// # }
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct Cancelled<'a> {
    token: &'a CancellationToken,
    waiter: Waiter,
}

impl<'a> Cancelled<'a> {
    pub(super) fn new(token: &'a CancellationToken) -> Self {
        Cancelled {
            token,
            waiter: Waiter::default(),
        }
    }
}

impl Future for Cancelled<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        this.waiter.poll(this.token, cx)
    }
}

impl Drop for Cancelled<'_> {
    fn drop(&mut self) {
        self.waiter.release(self.token.inner.as_ref());
    }
}

impl fmt::Debug for Cancelled<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cancelled")
            .field("token", self.token)
            .finish()
    }
}

/// Completes when its token is cancelled; owns the token, so it is
/// `'static`. Returned by [`CancellationToken::cancelled_owned`].
///
/// # Cancel safety
///
/// Cancel-safe: dropping it removes its waker from the token.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let source = apphost::CancellationTokenSource::new();
/// let stored: apphost::cancel::CancelledOwned = source.token().cancelled_owned();
/// source.cancel();
/// stored.await;
/// # }
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct CancelledOwned {
    token: CancellationToken,
    waiter: Waiter,
}

impl CancelledOwned {
    pub(super) fn new(token: CancellationToken) -> Self {
        CancelledOwned {
            token,
            waiter: Waiter::default(),
        }
    }
}

impl Future for CancelledOwned {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        this.waiter.poll(&this.token, cx)
    }
}

impl Drop for CancelledOwned {
    fn drop(&mut self) {
        self.waiter.release(self.token.inner.as_ref());
    }
}

impl fmt::Debug for CancelledOwned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelledOwned")
            .field("token", &self.token)
            .finish()
    }
}
