//! Panics the host catches ([`CaughtPanic`]): the payload as text and, where
//! the host's panic hook saw it, the source location.
//!
//! `std::panic::catch_unwind` gives the payload only; the location is
//! known to the panic hook alone. A host wraps the process's panic hook
//! once, when the first host is built: the wrapper notes, per thread, how
//! many panics began on the thread and where the last one did, then calls
//! the hook that was in place (the default prints the message, so output
//! is unchanged). Where the host catches a panic it compares the count with
//! the count when it last caught one on this thread: exactly one more, and
//! the location is that panic's; otherwise (a panic caught inside the
//! service and another let through, a panic some other code caught on this
//! thread since, or a hook set after the host's replaced it) no location
//! is claimed. Nothing is read on the path without a panic (it is every
//! call's first poll).

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::sync::Once;

thread_local! {
    /// Panics begun on this thread, as counted by the hook.
    static COUNT: Cell<u64> = const { Cell::new(0) };
    /// Where the last of them began, `file:line:column`.
    static WHERE: RefCell<Option<String>> = const { RefCell::new(None) };
    /// `COUNT` when the host last caught a panic on this thread.
    static SEEN: Cell<u64> = const { Cell::new(0) };
}

/// Wraps the process's panic hook (once; see the module docs).
pub(crate) fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let location = info
                .location()
                .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
            // `try_with`: a thread being torn down has no locals left.
            let _ = WHERE.try_with(|w| *w.borrow_mut() = location);
            let _ = COUNT.try_with(|c| c.set(c.get().wrapping_add(1)));
            previous(info);
        }));
    });
}

/// A panic caught by the host: what it said and where it began.
///
/// Compares equal to its message as a string, so a test can write
/// `FailureKind::Panic(p) if p == "boom"`.
///
/// # Examples
///
/// ```
/// use apphost::CancellationToken;
/// use apphost::host::{FailureKind, Host, HostedService};
///
/// struct Buggy;
/// impl HostedService for Buggy {
///     async fn start(&self, _: CancellationToken) -> anyhow::Result<()> {
///         panic!("boom")
///     }
///     async fn stop(&self, _: CancellationToken) -> anyhow::Result<()> {
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let host = Host::builder().add_hosted_service(Buggy).build().unwrap();
/// let error = host.start(CancellationToken::none()).await.unwrap_err();
/// let FailureKind::Panic(panic) = error.failures()[0].kind() else { unreachable!() };
/// assert_eq!(panic, "boom");
/// assert!(panic.location().unwrap().contains(".rs:"), "{:?}", panic.location());
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaughtPanic {
    message: String,
    location: Option<String>,
}

impl CaughtPanic {
    /// A panic with `message` and no known location.
    ///
    /// # Examples
    ///
    /// ```
    /// let panic = apphost::host::CaughtPanic::new("lost");
    /// assert_eq!((panic.message(), panic.location()), ("lost", None));
    /// ```
    pub fn new(message: impl Into<String>) -> Self {
        CaughtPanic {
            message: message.into(),
            location: None,
        }
    }

    /// The panic caught with `payload`, on the thread it began on.
    pub(crate) fn caught(payload: &(dyn Any + Send)) -> Self {
        let count = COUNT.try_with(Cell::get).unwrap_or(0);
        let seen = SEEN.try_with(|s| s.replace(count)).unwrap_or(count);
        let location = if count == seen.wrapping_add(1) {
            WHERE.try_with(|w| w.borrow().clone()).ok().flatten()
        } else {
            None
        };
        CaughtPanic {
            message: message_of(payload),
            location,
        }
    }

    /// The payload as text (`Box<dyn Any>` when it was not a string).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(apphost::host::CaughtPanic::new("boom").message(), "boom");
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Where the panic began (`file:line:column`), when the host's panic
    /// hook saw it (see the module docs of `host/panics.rs`: not when a
    /// hook set later replaced the host's).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(apphost::host::CaughtPanic::new("boom").location(), None);
    /// ```
    pub fn location(&self) -> Option<&str> {
        self.location.as_deref()
    }
}

impl fmt::Display for CaughtPanic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl PartialEq<str> for CaughtPanic {
    fn eq(&self, other: &str) -> bool {
        self.message == other
    }
}

impl PartialEq<&str> for CaughtPanic {
    fn eq(&self, other: &&str) -> bool {
        self.message == *other
    }
}

/// The text of a panic payload.
pub(crate) fn message_of(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "Box<dyn Any>".to_owned()
    }
}
