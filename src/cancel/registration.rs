//! [`CancellationRegistration`]: a callback registered on a token.

use std::fmt;
use std::mem::ManuallyDrop;
use std::sync::Arc;

use super::CancellationToken;
use super::list::Key;
use super::state::Inner;

/// A callback registered with [`CancellationToken::register`]. Dropping it
/// unregisters the callback.
///
/// After the drop returns, the callback is not running and never will be:
/// if it is running on another thread at that moment, the drop waits for it
/// to finish. Dropped from inside its own callback, it returns at once.
///
/// # Examples
///
/// ```
/// let source = apphost::CancellationTokenSource::new();
/// let registration = source.token().register(|| unreachable!("unregistered"));
/// drop(registration);
/// source.cancel();
/// ```
#[must_use = "dropping the registration unregisters the callback; call `detach` to keep it"]
pub struct CancellationRegistration {
    token: CancellationToken,
    /// `None` for an inert registration: the callback already ran, or can
    /// never run.
    key: Option<Key>,
}

impl CancellationRegistration {
    pub(super) fn new(inner: Arc<Inner>, key: Key) -> Self {
        CancellationRegistration {
            token: CancellationToken { inner: Some(inner) },
            key: Some(key),
        }
    }

    pub(super) fn inert(token: CancellationToken) -> Self {
        CancellationRegistration { token, key: None }
    }

    /// Removes the callback if it has not started. True if it was removed
    /// (it will never run); false if it already ran, is running, or was never
    /// going to run. Never waits.
    ///
    /// # Examples
    ///
    /// ```
    /// let source = apphost::CancellationTokenSource::new();
    /// let registration = source.token().register(|| {});
    /// assert!(registration.unregister());
    /// assert!(!registration.unregister());
    /// ```
    pub fn unregister(&self) -> bool {
        match (&self.token.inner, self.key) {
            (Some(inner), Some(key)) => inner.remove(key),
            _ => false,
        }
    }

    /// The token the callback is registered on.
    ///
    /// # Examples
    ///
    /// ```
    /// let source = apphost::CancellationTokenSource::new();
    /// let registration = source.token().register(|| {});
    /// assert_eq!(registration.token(), &source.token());
    /// ```
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Keeps the callback registered for the life of the token, without a
    /// handle to unregister it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicBool, Ordering};
    ///
    /// let source = apphost::CancellationTokenSource::new();
    /// let ran = Arc::new(AtomicBool::new(false));
    /// let flag = ran.clone();
    /// source.token().register(move || flag.store(true, Ordering::SeqCst)).detach();
    /// source.cancel();
    /// assert!(ran.load(Ordering::SeqCst));
    /// ```
    pub fn detach(self) {
        let mut this = ManuallyDrop::new(self);
        // Release our reference to the source without unregistering.
        drop(std::mem::take(&mut this.token));
    }
}

impl Drop for CancellationRegistration {
    fn drop(&mut self) {
        if let (Some(inner), Some(key)) = (&self.token.inner, self.key) {
            inner.remove_and_wait(key);
        }
    }
}

impl fmt::Debug for CancellationRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancellationRegistration")
            .field("token", &self.token)
            .field("inert", &self.key.is_none())
            .finish()
    }
}
