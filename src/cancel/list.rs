//! The registration list of one source: a slab of slots threaded by a
//! doubly-linked list, newest first.
//!
//! Why a slab: registering and unregistering on a live token must not allocate
//! in the steady state (a vacated slot is reused by the next registration) and
//! must be O(1) in both directions. Why the links: callbacks run newest first
//! (LIFO, as .NET), and removing one from the middle must not shift the rest.
//!
//! A [`Key`] names a slot *and* the generation it was filled in; a slot's
//! generation changes every time it is vacated, so a stale key (its entry ran,
//! was removed, or was dropped by `try_reset`) never matches a later occupant.

use std::sync::Weak;
use std::task::Waker;

use super::state::Inner;

/// Marks the end of a chain.
const NIL: u32 = u32::MAX;

/// What a registration asks the source to do when it is cancelled.
pub(crate) enum Entry {
    /// A user callback, run synchronously by the cancelling thread.
    Callback(Box<dyn FnOnce() + Send>),
    /// A pending `cancelled()` future, woken by the cancelling thread.
    Waker(Waker),
    /// A linked child source, cancelled (iteratively, never recursively) by
    /// the cancelling thread. Weak: a child is owned by its handles, not by
    /// its parents.
    Child(Weak<Inner>),
}

/// The name of one registration: slot index and generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Key {
    slot: u32,
    generation: u64,
}

struct Slot {
    /// Bumped each time the slot is vacated.
    generation: u64,
    /// Towards older entries (or the next free slot when vacant).
    next: u32,
    /// Towards newer entries.
    prev: u32,
    entry: Option<Entry>,
}

/// The registrations of one source, newest first.
pub(crate) struct List {
    slots: Vec<Slot>,
    /// The newest entry, the first to run.
    head: u32,
    /// The first vacant slot.
    free: u32,
    len: usize,
}

impl Default for List {
    fn default() -> Self {
        List {
            slots: Vec::new(),
            head: NIL,
            free: NIL,
            len: 0,
        }
    }
}

impl List {
    /// The number of live entries.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Adds `entry` as the newest.
    pub(crate) fn push(&mut self, entry: Entry) -> Key {
        let index = if self.free != NIL {
            let index = self.free;
            self.free = self.slots[index as usize].next;
            index
        } else {
            // Most sources only ever hold one entry (a waiter, or a linked
            // child's link): start with room for exactly one rather than
            // Vec's default four, then grow by doubling as usual.
            if self.slots.capacity() == 0 {
                self.slots.reserve_exact(1);
            }
            // u32::MAX is NIL; four billion live registrations on one token
            // exhaust memory long before this.
            let index = u32::try_from(self.slots.len()).expect("too many registrations");
            self.slots.push(Slot {
                generation: 0,
                next: NIL,
                prev: NIL,
                entry: None,
            });
            index
        };
        let old_head = self.head;
        let slot = &mut self.slots[index as usize];
        slot.entry = Some(entry);
        slot.next = old_head;
        slot.prev = NIL;
        let generation = slot.generation;
        if old_head != NIL {
            self.slots[old_head as usize].prev = index;
        }
        self.head = index;
        self.len += 1;
        Key {
            slot: index,
            generation,
        }
    }

    /// Removes and returns the entry named by `key`, if it is still here.
    pub(crate) fn remove(&mut self, key: Key) -> Option<Entry> {
        let slot = self.slots.get(key.slot as usize)?;
        if slot.generation != key.generation || slot.entry.is_none() {
            return None;
        }
        Some(self.vacate(key.slot))
    }

    /// Removes and returns the newest entry.
    pub(crate) fn pop(&mut self) -> Option<(Key, Entry)> {
        if self.head == NIL {
            return None;
        }
        let index = self.head;
        let key = Key {
            slot: index,
            generation: self.slots[index as usize].generation,
        };
        Some((key, self.vacate(index)))
    }

    /// The entry named by `key`, if it is still here.
    pub(crate) fn get_mut(&mut self, key: Key) -> Option<&mut Entry> {
        let slot = self.slots.get_mut(key.slot as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        slot.entry.as_mut()
    }

    /// Removes every entry for which `drop_it` is true, returning them so
    /// the caller can drop them outside its lock.
    pub(crate) fn remove_where(&mut self, mut drop_it: impl FnMut(&Entry) -> bool) -> Vec<Entry> {
        let mut removed = Vec::new();
        let mut index = self.head;
        while index != NIL {
            let slot = &self.slots[index as usize];
            let older = slot.next;
            if slot.entry.as_ref().is_some_and(&mut drop_it) {
                removed.push(self.vacate(index));
            }
            index = older;
        }
        removed
    }

    /// Unlinks slot `index` (which must be occupied) and puts it on the free
    /// chain with a new generation.
    fn vacate(&mut self, index: u32) -> Entry {
        let (prev, next) = {
            let slot = &self.slots[index as usize];
            (slot.prev, slot.next)
        };
        if prev != NIL {
            self.slots[prev as usize].next = next;
        } else {
            self.head = next;
        }
        if next != NIL {
            self.slots[next as usize].prev = prev;
        }
        let free = self.free;
        let slot = &mut self.slots[index as usize];
        let entry = slot.entry.take().expect("vacating an occupied slot");
        slot.generation = slot.generation.wrapping_add(1);
        slot.next = free;
        slot.prev = NIL;
        self.free = index;
        self.len -= 1;
        entry
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn callback() -> Entry {
        Entry::Callback(Box::new(|| {}))
    }

    #[test]
    fn pops_newest_first_and_skips_removed() {
        let mut list = List::default();
        let a = list.push(callback());
        let b = list.push(callback());
        let c = list.push(callback());
        assert!(list.remove(b).is_some());
        assert!(list.remove(b).is_none(), "a key removes once");
        assert_eq!(list.pop().map(|(k, _)| k), Some(c));
        assert_eq!(list.pop().map(|(k, _)| k), Some(a));
        assert!(list.pop().is_none());
        assert_eq!(list.len(), 0);
    }

    #[test]
    fn reused_slot_gets_a_new_generation() {
        let mut list = List::default();
        let a = list.push(callback());
        assert!(list.remove(a).is_some());
        let b = list.push(callback());
        assert_eq!(a.slot, b.slot, "the vacated slot is reused");
        assert!(list.remove(a).is_none(), "the stale key does not match");
        assert!(list.get_mut(a).is_none());
        assert!(list.remove(b).is_some());
    }

    #[test]
    fn churn_does_not_grow_the_slab() {
        let mut list = List::default();
        let keep = list.push(callback());
        for _ in 0..10_000 {
            let key = list.push(callback());
            list.remove(key);
        }
        assert_eq!(list.slots.len(), 2);
        assert!(list.remove(keep).is_some());
    }
}
