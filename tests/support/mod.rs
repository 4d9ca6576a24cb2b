//! Helpers shared by the `cancel_*` integration tests.
//!
//! Each test binary includes this module with `#[macro_use] mod support;`
//! and uses only part of it, hence the `dead_code` allowance.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::Duration;

/// The hard bound on any test body that could hang.
pub const HANG_LIMIT: Duration = Duration::from_secs(60);

/// The stack size of the "small stack" threads: anything that recursed over
/// a million-deep structure would overflow it many times over.
pub const SMALL_STACK: usize = 256 * 1024;

/// Runs `body` on its own thread and returns its result, failing the test
/// with a clear message if it has not finished within `limit` (a deadlock or
/// a lost wake-up). A panic in `body` is resumed on the calling thread.
pub fn bounded<T, F>(what: &str, limit: Duration, body: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    run_bounded(what, limit, None, body)
}

/// [`bounded`] with [`HANG_LIMIT`].
pub fn no_hang<T, F>(what: &str, body: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    run_bounded(what, HANG_LIMIT, None, body)
}

/// Runs `body` on a thread with a 256 KiB stack, bounded by [`HANG_LIMIT`].
/// A stack overflow aborts the whole test binary, which fails the test run.
pub fn on_small_stack<T, F>(what: &str, body: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    run_bounded(what, HANG_LIMIT, Some(SMALL_STACK), body)
}

fn run_bounded<T, F>(what: &str, limit: Duration, stack: Option<usize>, body: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    let mut builder = thread::Builder::new().name(format!("bounded: {what}"));
    if let Some(size) = stack {
        builder = builder.stack_size(size);
    }
    builder
        .spawn(move || {
            let _ = tx.send(catch_unwind(AssertUnwindSafe(body)));
        })
        .expect("spawn the bounded test thread");
    match rx.recv_timeout(limit) {
        Ok(Ok(value)) => value,
        Ok(Err(panic)) => resume_unwind(panic),
        Err(RecvTimeoutError::Timeout) => {
            panic!("{what}: did not finish within {limit:?} (deadlock or lost wake-up?)")
        }
        Err(RecvTimeoutError::Disconnected) => panic!("{what}: the test thread vanished"),
    }
}

/// Serializes the heavy tests of one binary, so that two million-element
/// tests do not compete for the two cores and the memory at the same time.
pub fn heavy() -> MutexGuard<'static, ()> {
    static HEAVY: Mutex<()> = Mutex::new(());
    HEAVY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A waker that counts how often it was woken.
#[derive(Debug, Default)]
pub struct WakeCounter {
    wakes: AtomicUsize,
}

impl WakeCounter {
    /// A fresh counter and a waker that bumps it.
    pub fn new() -> (Arc<WakeCounter>, Waker) {
        let counter = Arc::new(WakeCounter::default());
        let waker = Waker::from(counter.clone());
        (counter, waker)
    }

    /// How many times the waker was woken.
    pub fn wakes(&self) -> usize {
        self.wakes.load(Ordering::SeqCst)
    }
}

impl Wake for WakeCounter {
    fn wake(self: Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
    }
}

/// Polls `future` once with `waker`.
pub fn poll_once<F: Future + Unpin>(future: &mut F, waker: &Waker) -> Poll<F::Output> {
    Pin::new(future).poll(&mut Context::from_waker(waker))
}

/// Asserts that polling the (Unpin) future once with the waker is pending.
#[allow(unused_macros)]
macro_rules! assert_pending {
    ($future:expr, $waker:expr) => {
        assert!(
            crate::support::poll_once(&mut $future, &$waker).is_pending(),
            "expected {} to be pending",
            stringify!($future)
        )
    };
}

/// Asserts that polling the (Unpin) future once with the waker is ready,
/// and evaluates to its output.
#[allow(unused_macros)]
macro_rules! assert_ready {
    ($future:expr, $waker:expr) => {
        match crate::support::poll_once(&mut $future, &$waker) {
            ::std::task::Poll::Ready(output) => output,
            ::std::task::Poll::Pending => {
                panic!("expected {} to be ready", stringify!($future))
            }
        }
    };
}

/// Counts calls; cheap to clone into callbacks.
#[derive(Clone, Debug, Default)]
pub struct Counter(Arc<AtomicUsize>);

impl Counter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn bump(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    /// A callback that bumps this counter.
    pub fn callback(&self) -> impl FnOnce() + Send + 'static {
        let this = self.clone();
        move || this.bump()
    }
}

/// A shared, ordered log of events.
#[derive(Clone, Debug)]
pub struct Log<T>(Arc<Mutex<Vec<T>>>);

impl<T> Default for Log<T> {
    fn default() -> Self {
        Log(Arc::new(Mutex::new(Vec::new())))
    }
}

impl<T: Clone + Send + 'static> Log<T> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&self, event: T) {
        self.0.lock().unwrap().push(event);
    }

    pub fn events(&self) -> Vec<T> {
        self.0.lock().unwrap().clone()
    }

    /// A callback that pushes `event`.
    pub fn callback(&self, event: T) -> impl FnOnce() + Send + 'static {
        let this = self.clone();
        move || this.push(event)
    }
}

/// Runs a closure when dropped: shows when a callback's captures are freed.
#[derive(Debug)]
pub struct OnDrop(Option<Counter>);

impl OnDrop {
    pub fn bump(counter: &Counter) -> Self {
        OnDrop(Some(counter.clone()))
    }
}

impl Drop for OnDrop {
    fn drop(&mut self) {
        if let Some(counter) = self.0.take() {
            counter.bump();
        }
    }
}

/// The process's resident set size in bytes, from `/proc/self/status`.
/// `None` where that file does not exist.
pub fn rss_bytes() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The payload of a caught panic, as text.
pub fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "<non-text panic payload>".to_owned()
    }
}

/// Silences the default panic message for panics whose text contains
/// `marker` (tests that panic on purpose), keeping every other message.
pub fn quiet_panics_containing(marker: &'static str) {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    static MARKERS: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    MARKERS.lock().unwrap().push(marker);
    INSTALLED.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let text = panic_text(info.payload());
            let markers = MARKERS.lock().unwrap_or_else(|p| p.into_inner());
            if !markers.iter().any(|marker| text.contains(marker)) {
                default(info);
            }
        }));
    });
}
