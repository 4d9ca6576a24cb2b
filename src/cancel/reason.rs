//! [`CancelReason`]: why a token was cancelled.

use std::fmt;
use std::sync::Arc;

/// Why a cancellation source was cancelled.
///
/// Every cancelled token carries a reason, readable with
/// [`CancellationToken::reason`](crate::CancellationToken::reason). A linked
/// source reports the reason of the parent that cancelled it, so a service
/// deep inside the host can tell a stop requested by an operator
/// ([`Signal`](CancelReason::Signal)) from a budget that ran out
/// ([`TimedOut`](CancelReason::TimedOut)).
///
/// The enum is `#[non_exhaustive]`: match it with a wildcard arm.
///
/// # Examples
///
/// ```
/// use apphost::{CancelReason, CancellationTokenSource};
///
/// let source = CancellationTokenSource::new();
/// source.cancel_with(CancelReason::Signal(15));
/// assert_eq!(source.token().reason(), Some(CancelReason::Signal(15)));
/// assert_eq!(CancelReason::Signal(15).to_string(), "signal 15 (SIGTERM)");
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CancelReason {
    /// [`cancel()`](crate::CancellationTokenSource::cancel) was called: an
    /// ordinary request to stop.
    Requested,
    /// A timer ran out: [`with_timeout`](crate::CancellationTokenSource::with_timeout),
    /// [`cancel_after`](crate::CancellationTokenSource::cancel_after), or a
    /// host's start or stop budget.
    TimedOut,
    /// An operating-system signal, by number (15 is SIGTERM).
    Signal(i32),
    /// Any other reason, as text.
    Custom(Arc<str>),
}

impl CancelReason {
    /// A [`Custom`](CancelReason::Custom) reason with the given text.
    ///
    /// # Examples
    ///
    /// ```
    /// use apphost::CancelReason;
    ///
    /// let reason = CancelReason::custom("dependency failed");
    /// assert_eq!(reason.to_string(), "dependency failed");
    /// ```
    pub fn custom(text: impl Into<String>) -> Self {
        CancelReason::Custom(Arc::from(text.into()))
    }
}

impl fmt::Display for CancelReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CancelReason::Requested => f.write_str("cancellation requested"),
            CancelReason::TimedOut => f.write_str("timed out"),
            CancelReason::Signal(number) => match signal_name(*number) {
                Some(name) => write!(f, "signal {number} ({name})"),
                None => write!(f, "signal {number}"),
            },
            CancelReason::Custom(text) => f.write_str(text),
        }
    }
}

/// The conventional name of the common POSIX signals (numbers as on Linux).
fn signal_name(number: i32) -> Option<&'static str> {
    Some(match number {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        12 => "SIGUSR2",
        15 => "SIGTERM",
        _ => return None,
    })
}
