//! Plain byte-budgeted LRU: the baseline the adaptive cache is measured against.
//!
//! Owns its entries in one recency list. It takes the same calls and the same
//! charge rules as [`super::AdaptiveCache`] (zero charge counts as one byte;
//! entries over 1/8 of the capacity are not cached), so hit ratios compare
//! like for like.
//!
//! Invariants: `bytes() <= capacity_bytes` after every call; the map and the
//! list hold the same slots.

use ahash::AHashMap;
use bytes::Bytes;

use super::list::{Charged, List, Slab};
use super::MAX_CHARGE_DIVISOR;

struct Entry<V> {
    key: Bytes,
    value: V,
    charge_bytes: u64,
}

impl<V> Charged for Entry<V> {
    fn charge_bytes(&self) -> u64 {
        self.charge_bytes
    }
}

pub(super) struct LruCache<V> {
    map: AHashMap<Bytes, usize>,
    slab: Slab<Entry<V>>,
    list: List,
    capacity_bytes: u64,
}

impl<V> LruCache<V> {
    pub(super) fn new(capacity_bytes: u64) -> Self {
        Self {
            map: AHashMap::new(),
            slab: Slab::new(),
            list: List::new(),
            capacity_bytes,
        }
    }

    pub(super) fn get(&mut self, key: &[u8]) -> Option<&V> {
        let idx = *self.map.get(key)?;
        self.list.move_to_back(&mut self.slab, idx);
        Some(&self.slab.get(idx).value)
    }

    pub(super) fn insert(&mut self, key: Bytes, value: V, charge_bytes: u64) {
        let charge_bytes = charge_bytes.max(1);
        self.remove(&key);
        if self.capacity_bytes == 0 || charge_bytes > self.capacity_bytes / MAX_CHARGE_DIVISOR {
            return;
        }
        let idx = self.slab.insert(Entry {
            key: key.clone(),
            value,
            charge_bytes,
        });
        self.list.push_back(&mut self.slab, idx);
        self.map.insert(key, idx);
        while self.list.bytes() > self.capacity_bytes {
            let Some(victim) = self.list.front() else {
                break;
            };
            self.remove_slot(victim);
        }
    }

    pub(super) fn remove(&mut self, key: &[u8]) -> bool {
        match self.map.get(key).copied() {
            Some(idx) => {
                self.remove_slot(idx);
                true
            }
            None => false,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    pub(super) fn bytes(&self) -> u64 {
        self.list.bytes()
    }

    fn remove_slot(&mut self, idx: usize) {
        self.list.unlink(&mut self.slab, idx);
        let entry = self.slab.remove(idx);
        self.map.remove(&entry.key);
    }
}
