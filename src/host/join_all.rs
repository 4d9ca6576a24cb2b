//! [`JoinAll`]: many futures polled by one task, each woken on its own, so a
//! concurrent phase needs one task rather than one per call (the role
//! `FuturesUnordered` plays in the `futures` crate, without the dependency).
//!
//! Each slot has its own waker; waking it queues the slot (once) and wakes
//! the task. A poll only polls the queued slots, so finishing N futures costs
//! O(N), not O(N²).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use super::run::lock;

pub(crate) struct JoinAll<F> {
    slots: Vec<Option<(F, Arc<SlotWaker>)>>,
    queue: Arc<Queue>,
    live: usize,
}

/// The slots woken since the last poll, and the task to wake.
struct Queue {
    ready: Mutex<Vec<usize>>,
    task: Mutex<Option<Waker>>,
}

struct SlotWaker {
    slot: usize,
    /// Set while the slot is in `ready`: a slot is queued at most once.
    queued: AtomicBool,
    queue: Arc<Queue>,
}

impl Wake for SlotWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            lock(&self.queue.ready).push(self.slot);
            // Clone out, so the task's waker runs outside the lock.
            let task = lock(&self.queue.task).clone();
            if let Some(task) = task {
                task.wake();
            }
        }
    }
}

impl<F: Future + Unpin> JoinAll<F> {
    /// Room for `capacity` futures before the slots grow.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        JoinAll {
            slots: Vec::with_capacity(capacity),
            queue: Arc::new(Queue {
                ready: Mutex::new(Vec::new()),
                task: Mutex::new(None),
            }),
            live: 0,
        }
    }

    /// Futures added and not finished yet.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// Adds `fut` and polls it once now; its output if that finished it,
    /// else the slot it waits in.
    pub(crate) fn push_and_poll(
        &mut self,
        fut: F,
        cx: &mut Context<'_>,
    ) -> Result<F::Output, usize> {
        self.register(cx);
        let slot = self.slots.len();
        let waker = Arc::new(SlotWaker {
            slot,
            queued: AtomicBool::new(false),
            queue: Arc::clone(&self.queue),
        });
        self.slots.push(Some((fut, waker)));
        self.live += 1;
        match self.poll_slot(slot) {
            Some(output) => Ok(output),
            None => Err(slot),
        }
    }

    /// Polls the woken slots; calls `done(slot, output)` for each that finished.
    pub(crate) fn poll_woken(
        &mut self,
        cx: &mut Context<'_>,
        mut done: impl FnMut(usize, F::Output),
    ) {
        self.register(cx);
        loop {
            let ready = std::mem::take(&mut *lock(&self.queue.ready));
            if ready.is_empty() {
                return;
            }
            for slot in ready {
                if let Some(output) = self.poll_slot(slot) {
                    done(slot, output);
                }
            }
        }
    }

    fn register(&self, cx: &mut Context<'_>) {
        let mut task = lock(&self.queue.task);
        if !task.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *task = Some(cx.waker().clone());
        }
    }

    fn poll_slot(&mut self, slot: usize) -> Option<F::Output> {
        let (fut, waker) = self.slots[slot].as_mut()?;
        // Cleared before polling: a wake during the poll queues it again.
        waker.queued.store(false, Ordering::Release);
        let slot_waker = Waker::from(Arc::clone(waker));
        let poll = Pin::new(fut).poll(&mut Context::from_waker(&slot_waker));
        match poll {
            Poll::Ready(output) => {
                self.slots[slot] = None;
                self.live -= 1;
                Some(output)
            }
            Poll::Pending => None,
        }
    }
}
