//! What the engine waits on for the calls in flight: their tasks
//! ([`Tasks`]), and a map keyed by service index ([`IndexMap`]).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::task::{JoinError, JoinHandle};

use super::outcome::Caught;

/// What the engine waits on for one call: a hosted call's task, or a
/// background service's `execute` task (whose outcome that task reports).
pub(crate) enum Waiting {
    Call(usize, JoinHandle<Caught>),
    Execute(usize, JoinHandle<()>),
}

impl Waiting {
    pub(crate) fn index(&self) -> usize {
        match self {
            Waiting::Call(i, _) | Waiting::Execute(i, _) => *i,
        }
    }

    fn abort(&self) {
        match self {
            Waiting::Call(_, h) => h.abort(),
            Waiting::Execute(_, h) => h.abort(),
        }
    }
}

impl Future for Waiting {
    type Output = (usize, Result<Option<Caught>, JoinError>);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Waiting::Call(i, h) => Pin::new(h).poll(cx).map(|r| (*i, r.map(Some))),
            Waiting::Execute(i, h) => Pin::new(h).poll(cx).map(|r| (*i, r.map(|()| None))),
        }
    }
}

/// The tasks of the calls in flight. One at a time is the common case (a
/// sequential phase): it is polled directly, with no `FuturesUnordered`
/// node to allocate (measured: the node's aligned allocation and the
/// map's hashing were half the cost of a background service's stop).
#[derive(Default)]
pub(crate) struct Tasks {
    solo: Option<Waiting>,
    many: FuturesUnordered<Waiting>,
}

impl Tasks {
    pub(crate) fn push(&mut self, waiting: Waiting) {
        if self.solo.is_none() && self.many.is_empty() {
            self.solo = Some(waiting);
            return;
        }
        if let Some(solo) = self.solo.take() {
            self.many.push(solo);
        }
        self.many.push(waiting);
    }

    pub(crate) fn abort(&self, index: usize) {
        let solo = self.solo.iter().find(|t| t.index() == index);
        if let Some(task) = solo.or_else(|| self.many.iter().find(|t| t.index() == index)) {
            task.abort();
        }
    }

    pub(crate) fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<<Waiting as Future>::Output>> {
        if let Some(solo) = &mut self.solo {
            let ready = Pin::new(solo).poll(cx);
            if ready.is_ready() {
                self.solo = None;
            }
            return ready.map(Some);
        }
        self.many.poll_next_unpin(cx)
    }
}

/// Hashes service indices for the flight map: they are small distinct
/// integers, so a multiplication spreads them well enough, at a fraction of
/// SipHash's cost.
#[derive(Default, Clone, Copy)]
pub(crate) struct IndexHasher(u64);

impl std::hash::Hasher for IndexHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.0 = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

pub(crate) type IndexMap<V> = HashMap<usize, V, std::hash::BuildHasherDefault<IndexHasher>>;
