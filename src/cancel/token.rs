//! [`CancellationToken`]: the side that observes cancellation.

use std::fmt;
use std::future::{Future, poll_fn};
use std::hash::{Hash, Hasher};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use super::list::Entry;
use super::state::Inner;
use super::{CancelReason, CancellationRegistration, Cancelled, CancelledOwned, OperationCanceled};

/// Observes a [`CancellationTokenSource`](crate::CancellationTokenSource):
/// poll it, await it, block a thread on it, or register callbacks on it.
///
/// Tokens are cheap to clone (one reference count) and are `Send + Sync`.
/// Two tokens are equal when they observe the same source; all
/// [`none`](Self::none) tokens are equal.
///
/// # Examples
///
/// ```
/// use apphost::{CancellationToken, CancellationTokenSource};
///
/// fn work(token: &CancellationToken) -> u32 {
///     let mut steps = 0;
///     while !token.is_cancelled() && steps < 1_000 {
///         steps += 1;
///     }
///     steps
/// }
///
/// let source = CancellationTokenSource::new();
/// source.cancel();
/// assert_eq!(work(&source.token()), 0);
/// assert_eq!(work(&CancellationToken::none()), 1_000);
/// ```
#[derive(Clone, Default)]
pub struct CancellationToken {
    pub(super) inner: Option<Arc<Inner>>,
}

impl CancellationToken {
    /// A token that can never be cancelled (.NET's `CancellationToken.None`).
    ///
    /// # Examples
    ///
    /// ```
    /// let token = apphost::CancellationToken::none();
    /// assert!(!token.can_be_cancelled());
    /// ```
    pub const fn none() -> Self {
        CancellationToken { inner: None }
    }

    /// Whether cancellation has been requested. One atomic load; true from
    /// before the first callback runs, and for good.
    ///
    /// # Examples
    ///
    /// ```
    /// let source = apphost::CancellationTokenSource::new();
    /// let token = source.token();
    /// source.cancel();
    /// assert!(token.is_cancelled());
    /// ```
    #[inline]
    pub fn is_cancelled(&self) -> bool {
        match &self.inner {
            Some(inner) => inner.is_cancelled(),
            None => false,
        }
    }

    /// Whether this token can ever be cancelled: false only for
    /// [`none`](Self::none).
    ///
    /// # Examples
    ///
    /// ```
    /// let source = apphost::CancellationTokenSource::new();
    /// assert!(source.token().can_be_cancelled());
    /// ```
    pub fn can_be_cancelled(&self) -> bool {
        self.inner.is_some()
    }

    /// Why the token was cancelled, or `None` while it is not.
    ///
    /// # Examples
    ///
    /// ```
    /// use apphost::{CancelReason, CancellationTokenSource};
    ///
    /// let source = CancellationTokenSource::new();
    /// assert_eq!(source.token().reason(), None);
    /// source.cancel_with(CancelReason::TimedOut);
    /// assert_eq!(source.token().reason(), Some(CancelReason::TimedOut));
    /// ```
    pub fn reason(&self) -> Option<CancelReason> {
        self.inner.as_ref()?.reason()
    }

    /// `Err(OperationCanceled)` once cancelled, for `?` in code that checks at
    /// safe points (.NET's `ThrowIfCancellationRequested`).
    ///
    /// # Examples
    ///
    /// ```
    /// let source = apphost::CancellationTokenSource::new();
    /// assert!(source.token().error_if_cancelled().is_ok());
    /// source.cancel();
    /// assert!(source.token().error_if_cancelled().is_err());
    /// ```
    pub fn error_if_cancelled(&self) -> Result<(), OperationCanceled> {
        if self.is_cancelled() {
            Err(OperationCanceled::new(self.clone()))
        } else {
            Ok(())
        }
    }

    /// Registers `callback` to run when the token is cancelled.
    ///
    /// - It runs synchronously inside `cancel()`, on the cancelling thread,
    ///   after callbacks registered later (LIFO).
    /// - If the token is already cancelled, it runs now, on this thread, and
    ///   the returned registration is inert.
    /// - On a token that cannot be cancelled it never runs.
    /// - Racing a `cancel()`, it runs exactly once.
    ///
    /// Dropping the returned [`CancellationRegistration`] unregisters it.
    /// Keep callbacks short: they hold up `cancel()`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicBool, Ordering};
    ///
    /// let source = apphost::CancellationTokenSource::new();
    /// let flushed = Arc::new(AtomicBool::new(false));
    /// let flag = flushed.clone();
    /// let registration = source.token().register(move || flag.store(true, Ordering::SeqCst));
    /// source.cancel();
    /// assert!(flushed.load(Ordering::SeqCst));
    /// drop(registration);
    /// ```
    pub fn register<F>(&self, callback: F) -> CancellationRegistration
    where
        F: FnOnce() + Send + 'static,
    {
        let Some(inner) = &self.inner else {
            return CancellationRegistration::inert(self.clone());
        };
        if inner.is_cancelled() {
            callback();
            return CancellationRegistration::inert(self.clone());
        }
        match inner.add(Entry::Callback(Box::new(callback))) {
            Ok(key) => CancellationRegistration::new(inner.clone(), key),
            Err(Entry::Callback(callback)) => {
                callback();
                CancellationRegistration::inert(self.clone())
            }
            Err(_) => unreachable!("add hands back the entry it was given"),
        }
    }

    /// A future that completes when the token is cancelled (never, for
    /// [`none`](Self::none)).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping it unregisters its waker, and a new one can be
    /// created at any time.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let source = apphost::CancellationTokenSource::new();
    /// let token = source.token();
    /// let waiter = tokio::spawn(async move { token.cancelled().await; "stopped" });
    /// source.cancel();
    /// assert_eq!(waiter.await.unwrap(), "stopped");
    /// # }
    /// ```
    pub fn cancelled(&self) -> Cancelled<'_> {
        Cancelled::new(self)
    }

    /// Like [`cancelled`](Self::cancelled), but owns the token, so the
    /// future is `'static` and can be stored or spawned.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`cancelled`](Self::cancelled).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let source = apphost::CancellationTokenSource::new();
    /// let waiter = tokio::spawn(source.token().cancelled_owned());
    /// source.cancel();
    /// waiter.await.unwrap();
    /// # }
    /// ```
    pub fn cancelled_owned(self) -> CancelledOwned {
        CancelledOwned::new(self)
    }

    /// Blocks this thread until the token is cancelled (the wait-handle role,
    /// for code outside async). On [`none`](Self::none) it blocks forever.
    ///
    /// # Examples
    ///
    /// ```
    /// let source = apphost::CancellationTokenSource::new();
    /// let token = source.token();
    /// let worker = std::thread::spawn(move || { token.wait(); "released" });
    /// source.cancel();
    /// assert_eq!(worker.join().unwrap(), "released");
    /// ```
    pub fn wait(&self) {
        match &self.inner {
            Some(inner) => {
                inner.wait(None);
            }
            None => loop {
                std::thread::park();
            },
        }
    }

    /// Blocks this thread until the token is cancelled or `timeout` has
    /// passed. True if cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let source = apphost::CancellationTokenSource::new();
    /// assert!(!source.token().wait_timeout(Duration::from_millis(1)));
    /// source.cancel();
    /// assert!(source.token().wait_timeout(Duration::from_millis(1)));
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let deadline = Instant::now().checked_add(timeout);
        match (&self.inner, deadline) {
            (Some(inner), deadline) => inner.wait(deadline),
            (None, Some(deadline)) => {
                let mut now = Instant::now();
                while now < deadline {
                    std::thread::park_timeout(deadline - now);
                    now = Instant::now();
                }
                false
            }
            (None, None) => self.wait_forever(),
        }
    }

    fn wait_forever(&self) -> bool {
        loop {
            std::thread::park();
        }
    }

    /// Runs `future` until it completes or the token is cancelled, whichever
    /// comes first; on cancellation the future is dropped and
    /// `Err(OperationCanceled)` returned. If both are ready, cancellation
    /// wins.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let source = apphost::CancellationTokenSource::new();
    /// let token = source.token();
    /// assert_eq!(token.run_until_cancelled(async { 7 }).await.unwrap(), 7);
    /// source.cancel();
    /// let never = std::future::pending::<()>();
    /// assert!(token.run_until_cancelled(never).await.is_err());
    /// # }
    /// ```
    pub async fn run_until_cancelled<F>(&self, future: F) -> Result<F::Output, OperationCanceled>
    where
        F: Future,
    {
        let mut future = pin!(future);
        let mut cancelled = pin!(self.cancelled());
        poll_fn(|cx| {
            if cancelled.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(OperationCanceled::new(self.clone())));
            }
            future.as_mut().poll(cx).map(Ok)
        })
        .await
    }
}

impl PartialEq for CancellationToken {
    /// Equal when both observe the same source, or both are
    /// [`none`](CancellationToken::none).
    fn eq(&self, other: &Self) -> bool {
        match (&self.inner, &other.inner) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        }
    }
}

impl Eq for CancellationToken {}

impl Hash for CancellationToken {
    /// Hashes the identity of the source, consistently with `Eq`.
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.inner
            .as_ref()
            .map_or(std::ptr::null(), Arc::as_ptr)
            .hash(state);
    }
}

impl fmt::Debug for CancellationToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancellationToken")
            .field("can_be_cancelled", &self.can_be_cancelled())
            .field("is_cancelled", &self.is_cancelled())
            .finish()
    }
}
