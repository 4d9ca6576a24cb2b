//! [`OperationCanceled`]: the error of an operation that stopped because its
//! token was cancelled.

use std::fmt;

use super::{CancelReason, CancellationToken};

/// The error an operation returns when it stopped because its token was
/// cancelled: cooperative cancellation, not failure.
///
/// It carries the token that was cancelled and the reason, so code holding an
/// [`anyhow::Error`] can tell cancellation from failure with `downcast_ref`
/// and check whose token it was.
///
/// # Examples
///
/// ```
/// use apphost::{CancellationTokenSource, OperationCanceled};
///
/// fn step(token: &apphost::CancellationToken) -> anyhow::Result<()> {
///     token.error_if_cancelled()?;
///     Ok(())
/// }
///
/// let source = CancellationTokenSource::new();
/// source.cancel();
/// let error = step(&source.token()).unwrap_err();
/// let cancelled = error.downcast_ref::<OperationCanceled>().expect("cancellation");
/// assert_eq!(cancelled.token(), &source.token());
/// ```
#[derive(Clone, Debug)]
pub struct OperationCanceled {
    token: CancellationToken,
    reason: CancelReason,
}

impl OperationCanceled {
    /// The error for `token`, with the token's reason
    /// ([`CancelReason::Requested`] if the token is not cancelled).
    ///
    /// # Examples
    ///
    /// ```
    /// use apphost::{CancelReason, CancellationTokenSource, OperationCanceled};
    ///
    /// let source = CancellationTokenSource::new();
    /// source.cancel_with(CancelReason::TimedOut);
    /// let error = OperationCanceled::new(source.token());
    /// assert_eq!(error.reason(), &CancelReason::TimedOut);
    /// ```
    pub fn new(token: CancellationToken) -> Self {
        let reason = token.reason().unwrap_or(CancelReason::Requested);
        OperationCanceled { token, reason }
    }

    /// The token whose cancellation stopped the operation.
    ///
    /// # Examples
    ///
    /// ```
    /// use apphost::{CancellationTokenSource, OperationCanceled};
    ///
    /// let source = CancellationTokenSource::new();
    /// let error = OperationCanceled::new(source.token());
    /// assert_eq!(error.token(), &source.token());
    /// ```
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Why the token was cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// use apphost::{CancelReason, CancellationTokenSource};
    ///
    /// let source = CancellationTokenSource::new();
    /// source.cancel();
    /// let error = source.token().error_if_cancelled().unwrap_err();
    /// assert_eq!(error.reason(), &CancelReason::Requested);
    /// ```
    pub fn reason(&self) -> &CancelReason {
        &self.reason
    }
}

impl fmt::Display for OperationCanceled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "operation cancelled: {}", self.reason)
    }
}

impl std::error::Error for OperationCanceled {}
