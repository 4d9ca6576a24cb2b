//! [`CancellationTokenSource`]: the side that owns cancellation.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::state::Inner;
use super::{CancelReason, CancellationToken};

/// Owns cancellation: the one side that can cancel, handing out
/// [`CancellationToken`]s that observe it.
///
/// Cancellation is cooperative: [`cancel`](Self::cancel) asks, and every
/// holder of a token decides how to stop. Clones of a source share the same
/// cancellation. A source can be cancelled by hand, after a timeout
/// ([`with_timeout`](Self::with_timeout), [`cancel_after`](Self::cancel_after)),
/// or by any of the tokens it is [`linked`](Self::linked) to.
///
/// # Examples
///
/// ```
/// use apphost::CancellationTokenSource;
///
/// let source = CancellationTokenSource::new();
/// let token = source.token();
/// let _registration = token.register(|| println!("stopping"));
/// assert!(!token.is_cancelled());
/// source.cancel(); // prints "stopping" before it returns
/// assert!(token.is_cancelled());
/// ```
#[derive(Clone)]
pub struct CancellationTokenSource {
    pub(super) inner: Arc<Inner>,
}

impl CancellationTokenSource {
    /// A source that is not cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// let source = apphost::CancellationTokenSource::new();
    /// assert!(!source.is_cancelled());
    /// ```
    pub fn new() -> Self {
        CancellationTokenSource {
            inner: Inner::new(),
        }
    }

    /// A source that cancels itself with [`CancelReason::TimedOut`] after
    /// `delay`. A zero delay gives a source that is already cancelled; a delay
    /// too large for the clock never fires.
    ///
    /// Inside a tokio runtime the timer runs on `tokio::time` (so it follows
    /// a paused test clock); elsewhere on one shared timer thread. Dropping
    /// every handle of the source disarms the timer.
    ///
    /// # Caveats
    ///
    /// - A timer armed inside a runtime lives on that runtime: on a
    ///   current-thread runtime whose thread is blocked, or that is entered
    ///   but not driven, it fires late or not until the runtime runs. If the
    ///   runtime shuts down first, the timer moves to the timer thread.
    /// - On a runtime built without `enable_time`, the runtime's timer
    ///   driver panics once ("timers are disabled"), which prints a panic
    ///   message; that runtime's timers then run on the timer thread and
    ///   still fire.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use apphost::{CancelReason, CancellationTokenSource};
    ///
    /// let source = CancellationTokenSource::with_timeout(Duration::from_millis(10));
    /// source.token().wait();
    /// assert_eq!(source.token().reason(), Some(CancelReason::TimedOut));
    /// ```
    pub fn with_timeout(delay: Duration) -> Self {
        let source = Self::new();
        source.cancel_after(delay);
        source
    }

    /// A source cancelled by whichever of `parents` is cancelled first, with
    /// that parent's reason. Tokens that cannot be cancelled are skipped; a
    /// parent that is already cancelled cancels the new source at once.
    ///
    /// Linking is one way: cancelling the new source never cancels a parent.
    /// When the last handle of the new source (source, token, registration
    /// or future) is dropped, it unlinks itself from every parent, so a
    /// long-lived parent does not accumulate dead children.
    ///
    /// # Examples
    ///
    /// ```
    /// use apphost::CancellationTokenSource;
    ///
    /// let shutdown = CancellationTokenSource::new();
    /// let request = CancellationTokenSource::new();
    /// let both = CancellationTokenSource::linked([&shutdown.token(), &request.token()]);
    /// shutdown.cancel();
    /// assert!(both.is_cancelled());
    /// assert!(!request.is_cancelled(), "linking is one way");
    /// ```
    pub fn linked<'a, I>(parents: I) -> Self
    where
        I: IntoIterator<Item = &'a CancellationToken>,
    {
        let source = Self::new();
        Inner::link(
            &source.inner,
            parents
                .into_iter()
                .filter_map(|parent| parent.inner.clone()),
        );
        source
    }

    /// A token observing this source.
    ///
    /// # Examples
    ///
    /// ```
    /// let source = apphost::CancellationTokenSource::new();
    /// assert_eq!(source.token(), source.token());
    /// ```
    pub fn token(&self) -> CancellationToken {
        CancellationToken {
            inner: Some(self.inner.clone()),
        }
    }

    /// Cancels with [`CancelReason::Requested`]. See
    /// [`cancel_with`](Self::cancel_with).
    ///
    /// # Examples
    ///
    /// ```
    /// let source = apphost::CancellationTokenSource::new();
    /// source.cancel();
    /// assert!(source.is_cancelled());
    /// ```
    pub fn cancel(&self) {
        self.cancel_with(CancelReason::Requested);
    }

    /// Cancels with `reason`, then runs every registered callback and those
    /// of linked sources, synchronously on this thread, most recently
    /// registered first, before returning.
    ///
    /// - [`is_cancelled`](Self::is_cancelled) is true before the first
    ///   callback runs.
    /// - When this returns, every callback registered before the call has
    ///   finished — also if another thread was already cancelling, which this
    ///   call then waits for. Called from inside one of this source's
    ///   callbacks, it returns at once instead of deadlocking. Called from
    ///   inside any cancellation callback while another thread is cancelling
    ///   this source, it returns at once too: waiting there could deadlock
    ///   (two sources whose callbacks cancel each other).
    /// - Only the first cancellation sets the reason; later calls change
    ///   nothing.
    /// - A linked source already being cancelled by another thread is left
    ///   to that thread (waiting for it could deadlock).
    ///
    /// # Panics
    ///
    /// A panicking callback does not stop the others. Once all have run, the
    /// first panic is resumed on this thread. The source stays cancelled and
    /// usable.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use apphost::{CancelReason, CancellationTokenSource};
    ///
    /// let source = CancellationTokenSource::new();
    /// let order = Arc::new(Mutex::new(Vec::new()));
    /// let (a, b) = (order.clone(), order.clone());
    /// let _first = source.token().register(move || a.lock().unwrap().push(1));
    /// let _second = source.token().register(move || b.lock().unwrap().push(2));
    /// source.cancel_with(CancelReason::custom("maintenance"));
    /// assert_eq!(*order.lock().unwrap(), [2, 1]);
    /// assert_eq!(source.token().reason(), Some(CancelReason::custom("maintenance")));
    /// ```
    pub fn cancel_with(&self, reason: CancelReason) {
        self.inner.cancel(reason);
    }

    /// Cancels with [`CancelReason::TimedOut`] after `delay`, replacing any
    /// earlier timer: the last call wins. A zero delay cancels now; a delay
    /// too large for the clock disarms the timer. Does nothing once the source
    /// is cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let source = apphost::CancellationTokenSource::new();
    /// source.cancel_after(Duration::from_secs(3600));
    /// source.cancel_after(Duration::from_millis(1)); // re-armed: this one counts
    /// assert!(source.token().wait_timeout(Duration::from_secs(10)));
    /// ```
    pub fn cancel_after(&self, delay: Duration) {
        if delay.is_zero() {
            self.inner.set_timer(None);
            self.cancel_with(CancelReason::TimedOut);
        } else {
            self.inner.set_timer(Some(delay));
        }
    }

    /// Whether cancellation has been requested. One atomic load.
    ///
    /// # Examples
    ///
    /// ```
    /// let source = apphost::CancellationTokenSource::new();
    /// assert!(!source.is_cancelled());
    /// ```
    #[inline]
    pub fn is_cancelled(&self) -> bool {
        self.inner.is_cancelled()
    }

    /// Makes a source that was not cancelled reusable, as .NET's `TryReset`:
    /// disarms its timer and drops every registered callback (they never
    /// run; their `unregister` returns false). Pending `cancelled()` futures
    /// and linked sources stay attached.
    ///
    /// Returns false, changing nothing, if the source is cancelled or its
    /// timer may already have fired.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let source = apphost::CancellationTokenSource::with_timeout(Duration::from_secs(3600));
    /// let registration = source.token().register(|| unreachable!());
    /// assert!(source.try_reset());
    /// assert!(!registration.unregister(), "the reset dropped it");
    /// source.cancel();
    /// assert!(!source.try_reset());
    /// ```
    pub fn try_reset(&self) -> bool {
        self.inner.try_reset()
    }
}

impl Default for CancellationTokenSource {
    /// The same as [`CancellationTokenSource::new`].
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for CancellationTokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancellationTokenSource")
            .field("is_cancelled", &self.is_cancelled())
            .finish()
    }
}
