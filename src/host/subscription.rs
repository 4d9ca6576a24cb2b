//! The subscription to a host's events ([`LifecycleEvents`]) and the feed
//! behind it: a ring of the last 4096 events, which each subscriber reads
//! at its own pace.
//!
//! # Why not `tokio::sync::broadcast`
//!
//! The semantics are broadcast's (each subscriber sees every event sent
//! after it subscribed; one that falls more than 4096 behind misses the
//! oldest and learns how many; the sender never waits). This was a tokio
//! `broadcast` channel, and measured (callgrind, `benches/host.rs`, 10,000
//! hosted services with a subscriber, four events per service) it cost
//! about 570 instructions per service of the host's 4,500: a second lock
//! beside the report recorder's, a lock per slot, and a walk of the waiter
//! list on every send. Here the ring shares the recorder's mutex (the feed
//! holds it as `extra`): one lock per event, a push, and a wake-up only
//! when a subscriber is waiting (an atomic load otherwise).
//!
//! # Invariants and races
//!
//! - Sequence numbers: the ring holds events `first .. first + len`; a
//!   subscriber's `next` is the number of the next event it reads. All
//!   three are read and written under the feed's mutex only.
//! - Lost wake-ups: a subscriber about to wait counts itself in `waiting`,
//!   enables its `Notified`, then looks at the ring again under the mutex;
//!   the sender pushes under the mutex, then reads `waiting`. Either the
//!   subscriber's second look sees the event, or its count was made before
//!   the sender's push (the mutex orders them) and the sender wakes it.
//!   Both sides use `SeqCst`.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use super::events::LifecycleEvent;
use super::inner::lock;
use super::recorder::Recorder;

/// How many events a subscriber may fall behind before it misses some.
const CAPACITY: usize = 4096;

/// Why [`LifecycleEvents::recv`] returned no event.
///
/// # Examples
///
/// ```
/// use apphost::host::RecvError;
/// assert_eq!(RecvError::Lagged(3).to_string(), "missed 3 lifecycle events");
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvError {
    /// The subscriber fell behind and missed this many events; the next
    /// `recv` returns the oldest event still held.
    Lagged(u64),
    /// The host was dropped and every event was received.
    Closed,
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::Lagged(n) => write!(f, "missed {n} lifecycle events"),
            RecvError::Closed => f.write_str("the host is gone"),
        }
    }
}

impl std::error::Error for RecvError {}

/// The events held for subscribers, and what shares their lock.
pub(crate) struct Feed {
    state: Mutex<FeedState>,
    notify: Notify,
    /// Subscribers about to wait or waiting (see the module docs).
    waiting: AtomicUsize,
    subscribers: AtomicUsize,
}

pub(crate) struct FeedState {
    /// The report's recorder, under the same lock (see the module docs).
    pub(crate) recorder: Recorder,
    ring: VecDeque<LifecycleEvent>,
    /// The sequence number of `ring[0]`.
    first: u64,
    /// The host is gone: no event will come.
    closed: bool,
}

impl Feed {
    pub(crate) fn new() -> Arc<Feed> {
        Arc::new(Feed {
            state: Mutex::new(FeedState {
                recorder: Recorder::default(),
                ring: VecDeque::new(),
                first: 0,
                closed: false,
            }),
            notify: Notify::new(),
            waiting: AtomicUsize::new(0),
            subscribers: AtomicUsize::new(0),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, FeedState> {
        lock(&self.state)
    }

    /// Whether anyone subscribes (a hint: read without the lock).
    pub(crate) fn subscribed(&self) -> bool {
        self.subscribers.load(Ordering::Relaxed) > 0
    }

    /// After an event was pushed and the lock released: wakes the
    /// subscribers waiting for it.
    pub(crate) fn wake(&self) {
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.notify.notify_waiters();
        }
    }

    /// The host is gone: subscribers get what is held, then `Closed`.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.notify.notify_waiters();
    }

    /// A subscription from the next event on.
    pub(crate) fn subscribe(self: &Arc<Self>) -> LifecycleEvents {
        let state = self.lock();
        self.subscribers.fetch_add(1, Ordering::AcqRel);
        LifecycleEvents {
            feed: Arc::clone(self),
            next: state.first + state.ring.len() as u64,
        }
    }
}

impl FeedState {
    /// Holds `event` for the subscribers (only while there are some).
    pub(crate) fn push(&mut self, event: LifecycleEvent, subscribed: bool) {
        if !subscribed {
            return;
        }
        if self.ring.len() == CAPACITY {
            self.ring.pop_front();
            self.first += 1;
        }
        self.ring.push_back(event);
    }
}

/// A subscription to a host's [`LifecycleEvent`]s, from
/// [`Host::events`](crate::host::Host::events) or
/// [`HostBuilder::events`](crate::host::HostBuilder::events). It receives
/// every event emitted after it was made. It holds up to 4096 events not
/// yet received; past that, the oldest are dropped and the next receive
/// says how many were missed ([`RecvError::Lagged`]). The host never waits
/// for it. Dropping it unsubscribes.
///
/// # Examples
///
/// ```
/// use apphost::CancellationToken;
/// use apphost::host::{Host, HostState, LifecycleEvent};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let host = Host::builder().build().unwrap();
/// let mut events = host.events();
/// host.stop(CancellationToken::none()).await.unwrap();
/// let mut stopped = false;
/// while let Ok(Some(event)) = events.try_recv() {
///     println!("{}", serde_json::to_string(&event).unwrap());
///     stopped |= matches!(event, LifecycleEvent::StateChanged { state: HostState::Stopped, .. });
/// }
/// assert!(stopped);
/// # }
/// ```
pub struct LifecycleEvents {
    feed: Arc<Feed>,
    /// The sequence number of the next event to receive.
    next: u64,
}

/// Counts a subscriber in [`Feed::waiting`] while it exists.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl LifecycleEvents {
    /// Waits for the next event.
    ///
    /// # Errors
    ///
    /// [`RecvError::Lagged`] when events were missed (receive again for the
    /// next one held), [`RecvError::Closed`] once the host is gone.
    ///
    /// # Examples
    ///
    /// ```
    /// # use apphost::CancellationToken;
    /// # use apphost::host::{Host, HostState, LifecycleEvent};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let host = Host::builder().build().unwrap();
    /// let mut events = host.events();
    /// host.start(CancellationToken::none()).await.unwrap();
    /// let event = events.recv().await.unwrap();
    /// assert!(matches!(event, LifecycleEvent::StateChanged { state: HostState::Starting, .. }));
    /// # }
    /// ```
    pub async fn recv(&mut self) -> Result<LifecycleEvent, RecvError> {
        loop {
            if let Some(received) = self.try_recv().transpose() {
                return received;
            }
            let feed = Arc::clone(&self.feed);
            let mut notified = std::pin::pin!(feed.notify.notified());
            let _waiting = Waiting::new(&feed.waiting);
            notified.as_mut().enable();
            // The second look (see the module docs: lost wake-ups).
            if let Some(received) = self.try_recv().transpose() {
                return received;
            }
            notified.await;
        }
    }

    /// The next event if one is waiting; `Ok(None)` if none is.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// let host = apphost::Host::builder().build().unwrap();
    /// let mut events = host.events();
    /// assert_eq!(events.try_recv().unwrap().map(|_| ()), None);
    /// ```
    pub fn try_recv(&mut self) -> Result<Option<LifecycleEvent>, RecvError> {
        let state = self.feed.lock();
        if self.next < state.first {
            let missed = state.first - self.next;
            self.next = state.first;
            return Err(RecvError::Lagged(missed));
        }
        // In range: `next - first` is at most the ring's length.
        let index = usize::try_from(self.next - state.first).unwrap_or(usize::MAX);
        match state.ring.get(index) {
            Some(event) => {
                self.next += 1;
                Ok(Some(event.clone()))
            }
            None if state.closed => Err(RecvError::Closed),
            None => Ok(None),
        }
    }
}

impl Drop for LifecycleEvents {
    fn drop(&mut self) {
        let mut state = self.feed.lock();
        if self.feed.subscribers.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The last one: nobody will read what is held.
            let held = state.ring.len() as u64;
            state.first += held;
            state.ring = VecDeque::new();
        }
    }
}

impl fmt::Debug for LifecycleEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LifecycleEvents")
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}
