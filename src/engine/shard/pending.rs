//! Versions on their way to the disk: queued in the WAL, not yet durable.
//!
//! Owns the write-side overlay of a shard. A put that stores a version
//! queues its WAL record and records the version here instead of in the
//! memtable; only once the record is durable does the put move it into the
//! memtable of the generation it was queued in. So:
//! - readers (Get, scans, streams, flushes) see only durable versions: a
//!   version whose WAL commit fails is never served, and simply dropped;
//! - the next put of the same key decides (stale or stored, the clock of a
//!   blind write) against the pending versions too, so log order stays the
//!   order of decisions;
//! - each memtable generation has a gate every put of that generation holds
//!   until its version is in that memtable (or dropped): a flush waits for
//!   the gate of its immutable memtable, so a table never misses a durable
//!   version whose record lies in the WAL segments the flush makes
//!   obsolete.
//!
//! Invariant: an entry lives from the WAL submit to the ticket's answer;
//! entries are bounded by the WAL's pending-bytes limit.

use crate::model::{Version, VersionSet};
use bytes::Bytes;
use glommio::sync::{Gate, Pass};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

/// Pending versions of each key, with the id of their [`PendingWrite`].
type ByKey = HashMap<Bytes, Vec<(u64, Version)>, ahash::RandomState>;

/// The overlay (see the module documentation).
pub(super) struct Pending {
    by_key: RefCell<ByKey>,
    next_id: Cell<u64>,
    generation: Cell<u64>,
    gate: RefCell<Rc<Gate>>,
}

/// One pending version; hand it back to [`Pending::take`].
pub(super) struct PendingWrite {
    id: u64,
    key: Bytes,
    /// The memtable generation the version belongs to.
    pub(super) generation: u64,
    _pass: Option<Pass>,
}

impl Pending {
    pub(super) fn new() -> Self {
        Self {
            by_key: RefCell::new(HashMap::default()),
            next_id: Cell::new(0),
            generation: Cell::new(0),
            gate: RefCell::new(Rc::new(Gate::new())),
        }
    }

    /// The active memtable's generation.
    pub(super) fn generation(&self) -> u64 {
        self.generation.get()
    }

    /// Applies the pending versions of `key` to `set` (the write path's
    /// view).
    pub(super) fn overlay(&self, key: &[u8], set: &mut VersionSet) {
        if let Some(list) = self.by_key.borrow().get(key) {
            for (_, v) in list {
                set.apply(v.clone());
            }
        }
    }

    /// Records `version` of `key` as queued in the WAL.
    pub(super) fn add(&self, key: &Bytes, version: Version) -> PendingWrite {
        // The active generation's gate is closed only after `rotate` has
        // replaced it, so entering cannot fail.
        let pass = self.gate.borrow().enter().ok();
        debug_assert!(pass.is_some(), "the active generation's gate is open");
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        self.by_key
            .borrow_mut()
            .entry(key.clone())
            .or_default()
            .push((id, version));
        PendingWrite {
            id,
            key: key.clone(),
            generation: self.generation.get(),
            _pass: pass,
        }
    }

    /// Removes the entry of `w`, giving its version back.
    pub(super) fn take(&self, w: &PendingWrite) -> Option<Version> {
        let mut map = self.by_key.borrow_mut();
        let list = map.get_mut(&w.key)?;
        let at = list.iter().position(|(id, _)| *id == w.id)?;
        let (_, version) = list.remove(at);
        if list.is_empty() {
            map.remove(&w.key);
        }
        Some(version)
    }

    /// Starts the next memtable generation; returns the gate of the one
    /// that ends (its memtable is becoming immutable).
    pub(super) fn rotate(&self) -> Rc<Gate> {
        self.generation.set(self.generation.get() + 1);
        self.gate.replace(Rc::new(Gate::new()))
    }

    /// Versions pending now (for metrics and tests).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.by_key.borrow().values().map(Vec::len).sum()
    }
}
