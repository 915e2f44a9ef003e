//! Index-based doubly linked lists threaded through a shared slab.
//!
//! Owns the storage of cache entries ([`Slab`]) and the recency lists
//! ([`List`]) that order them. Links are slot indices, not pointers, so the
//! lists need no unsafe code; freed slots are reused through a free list.
//!
//! Invariants:
//! - a slot is either occupied or on the free list, never both;
//! - an occupied slot is linked on at most one list at a time; an unlinked
//!   slot has both links set to [`NIL`];
//! - a list's `len` and `bytes` are the number and the summed charge of the
//!   slots linked on it, so an entry's charge must not change while linked
//!   (unlink, change, relink);
//! - `head` is the least recently used end, `tail` the most recently used.

/// The "no slot" link value.
pub(super) const NIL: usize = usize::MAX;

/// An item that occupies part of a byte budget.
pub(super) trait Charged {
    fn charge_bytes(&self) -> u64;
}

struct Node<T> {
    item: T,
    prev: usize,
    next: usize,
}

enum Slot<T> {
    Occupied(Node<T>),
    Free,
}

/// Slot storage for list nodes, with a free list of vacated slots.
pub(super) struct Slab<T> {
    slots: Vec<Slot<T>>,
    free: Vec<usize>,
}

impl<T> Slab<T> {
    pub(super) fn new() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
        }
    }

    /// Stores `item` in a vacant slot, unlinked, and returns the slot index.
    pub(super) fn insert(&mut self, item: T) -> usize {
        let slot = Slot::Occupied(Node {
            item,
            prev: NIL,
            next: NIL,
        });
        match self.free.pop() {
            Some(idx) => {
                self.slots[idx] = slot;
                idx
            }
            None => {
                self.slots.push(slot);
                self.slots.len() - 1
            }
        }
    }

    /// Vacates slot `idx`, which the caller has unlinked, and returns its item.
    pub(super) fn remove(&mut self, idx: usize) -> T {
        match std::mem::replace(&mut self.slots[idx], Slot::Free) {
            Slot::Occupied(node) => {
                debug_assert!(
                    node.prev == NIL && node.next == NIL,
                    "removed a linked slot"
                );
                self.free.push(idx);
                node.item
            }
            Slot::Free => panic!("slot {idx} removed twice; only occupied slots are reachable"),
        }
    }

    pub(super) fn get(&self, idx: usize) -> &T {
        &self.node(idx).item
    }

    pub(super) fn get_mut(&mut self, idx: usize) -> &mut T {
        &mut self.node_mut(idx).item
    }

    fn node(&self, idx: usize) -> &Node<T> {
        match &self.slots[idx] {
            Slot::Occupied(node) => node,
            Slot::Free => panic!("slot {idx} is free; every mapped or linked slot is occupied"),
        }
    }

    fn node_mut(&mut self, idx: usize) -> &mut Node<T> {
        match &mut self.slots[idx] {
            Slot::Occupied(node) => node,
            Slot::Free => panic!("slot {idx} is free; every mapped or linked slot is occupied"),
        }
    }
}

/// A recency list over slab slots, tracking its length and summed charge.
pub(super) struct List {
    head: usize,
    tail: usize,
    len: usize,
    bytes: u64,
}

impl List {
    pub(super) fn new() -> Self {
        Self {
            head: NIL,
            tail: NIL,
            len: 0,
            bytes: 0,
        }
    }

    /// The least recently used slot, if any.
    pub(super) fn front(&self) -> Option<usize> {
        (self.head != NIL).then_some(self.head)
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Links the unlinked slot `idx` at the most recently used end.
    pub(super) fn push_back<T: Charged>(&mut self, slab: &mut Slab<T>, idx: usize) {
        debug_assert!(self.head != idx, "slot {idx} is already linked");
        let old_tail = self.tail;
        let node = slab.node_mut(idx);
        debug_assert!(
            node.prev == NIL && node.next == NIL,
            "slot {idx} is already linked"
        );
        node.prev = old_tail;
        node.next = NIL;
        let charge_bytes = node.item.charge_bytes();
        if old_tail == NIL {
            self.head = idx;
        } else {
            slab.node_mut(old_tail).next = idx;
        }
        self.tail = idx;
        self.len += 1;
        self.bytes += charge_bytes;
    }

    /// Unlinks slot `idx`, which must be linked on this list.
    pub(super) fn unlink<T: Charged>(&mut self, slab: &mut Slab<T>, idx: usize) {
        let node = slab.node_mut(idx);
        let (prev, next) = (node.prev, node.next);
        node.prev = NIL;
        node.next = NIL;
        let charge_bytes = node.item.charge_bytes();
        if prev == NIL {
            debug_assert_eq!(self.head, idx, "slot {idx} is not on this list");
            self.head = next;
        } else {
            slab.node_mut(prev).next = next;
        }
        if next == NIL {
            debug_assert_eq!(self.tail, idx, "slot {idx} is not on this list");
            self.tail = prev;
        } else {
            slab.node_mut(next).prev = prev;
        }
        self.len -= 1;
        self.bytes -= charge_bytes;
    }

    /// Moves slot `idx`, linked on this list, to the most recently used end.
    pub(super) fn move_to_back<T: Charged>(&mut self, slab: &mut Slab<T>, idx: usize) {
        if self.tail != idx {
            self.unlink(slab, idx);
            self.push_back(slab, idx);
        }
    }

    /// The linked slots from least to most recently used, checking that the
    /// backward links mirror the forward ones.
    #[cfg(test)]
    pub(super) fn slots<T>(&self, slab: &Slab<T>) -> Vec<usize> {
        let mut out = Vec::with_capacity(self.len);
        let mut prev = NIL;
        let mut idx = self.head;
        while idx != NIL {
            let node = slab.node(idx);
            assert_eq!(node.prev, prev, "backward link of slot {idx}");
            out.push(idx);
            prev = idx;
            idx = node.next;
        }
        assert_eq!(self.tail, prev, "tail is the last slot reached");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Charged for u64 {
        fn charge_bytes(&self) -> u64 {
            *self
        }
    }

    #[test]
    fn push_unlink_move_keep_order_and_bytes() {
        let mut slab = Slab::new();
        let mut list = List::new();
        let a = slab.insert(1u64);
        let b = slab.insert(10u64);
        let c = slab.insert(100u64);
        for idx in [a, b, c] {
            list.push_back(&mut slab, idx);
        }
        assert_eq!(list.slots(&slab), vec![a, b, c]);
        assert_eq!(list.bytes(), 111);
        list.move_to_back(&mut slab, a);
        assert_eq!(list.slots(&slab), vec![b, c, a]);
        list.unlink(&mut slab, c);
        assert_eq!(list.slots(&slab), vec![b, a]);
        assert_eq!((list.len(), list.bytes()), (2, 11));
        assert_eq!(slab.remove(c), 100);
        let d = slab.insert(1000u64);
        assert_eq!(d, c, "vacated slot is reused");
        list.push_back(&mut slab, d);
        assert_eq!(list.front(), Some(b));
        assert_eq!(list.bytes(), 1011);
    }
}
