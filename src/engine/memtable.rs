//! The in-memory, ordered table of a shard's latest writes.
//!
//! Owns a map from storage key to the key's [`VersionSet`] and an account of
//! the bytes it holds. Single-threaded by construction (one per shard, touched
//! only by its core), so it needs no locks. Invariant: `bytes` equals the sum of
//! `entry_bytes` over all entries, kept on every mutation.

use crate::model::{ApplyOutcome, Version, VersionSet};
use bytes::Bytes;
use std::collections::BTreeMap;

/// Fixed per-entry overhead charged on top of key and version bytes
/// (B-tree node share, the `Bytes` handle, the `Vec` header).
const ENTRY_OVERHEAD_BYTES: usize = 64;

fn entry_bytes(key: &Bytes, set: &VersionSet) -> usize {
    ENTRY_OVERHEAD_BYTES + key.len() + set.heap_bytes()
}

#[derive(Debug, Default)]
pub(crate) struct Memtable {
    map: BTreeMap<Bytes, VersionSet>,
    bytes: usize,
}

impl Memtable {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The stored versions of `key`, if any.
    pub(crate) fn get(&self, key: &[u8]) -> Option<&VersionSet> {
        self.map.get(key)
    }

    /// Applies `version` to `key` under the clock rules; returns what happened
    /// and the versions the key holds afterwards.
    pub(crate) fn apply(&mut self, key: &Bytes, version: Version) -> (ApplyOutcome, &VersionSet) {
        let set = self.map.entry(key.clone()).or_default();
        let before = if set.is_empty() {
            0
        } else {
            entry_bytes(key, set)
        };
        let outcome = set.apply(version);
        let after = entry_bytes(key, set);
        self.bytes = self.bytes - before + after;
        (outcome, set)
    }

    /// Number of keys held (tombstone-only keys included).
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Approximate bytes held, for flush decisions and metrics.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Entries with keys within the bounds, in storage-key order.
    pub(crate) fn range<'a>(
        &'a self,
        lower: std::ops::Bound<&'a [u8]>,
        upper: std::ops::Bound<&'a [u8]>,
    ) -> impl Iterator<Item = (&'a Bytes, &'a VersionSet)> + 'a {
        self.map
            .range::<[u8], (std::ops::Bound<&[u8]>, std::ops::Bound<&[u8]>)>((lower, upper))
    }

    /// Entries in storage-key order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Bytes, &VersionSet)> {
        self.map.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::VectorClock;

    fn version(node: &str, counter: i64, value: &'static str) -> Version {
        Version {
            clock: VectorClock::from_entries([(node.to_string(), counter)], 8).unwrap(),
            timestamp_ms: 1,
            value: Some(Bytes::from_static(value.as_bytes())),
        }
    }

    #[test]
    fn byte_account_follows_contents() {
        let mut m = Memtable::new();
        let k = Bytes::from_static(b"k");
        m.apply(&k, version("a", 1, "short"));
        let one = m.bytes();
        assert!(one > 5);
        m.apply(&k, version("a", 2, "a much longer value than before"));
        assert!(m.bytes() > one);
        m.apply(&k, version("a", 3, "x"));
        let expected: usize = m.iter().map(|(k, s)| entry_bytes(k, s)).sum();
        assert_eq!(m.bytes(), expected);
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn stale_write_leaves_bytes_unchanged() {
        let mut m = Memtable::new();
        let k = Bytes::from_static(b"k");
        m.apply(&k, version("a", 2, "v"));
        let before = m.bytes();
        let (outcome, _) = m.apply(&k, version("a", 1, "older"));
        assert_eq!(outcome, ApplyOutcome::Stale);
        assert_eq!(m.bytes(), before);
    }
}
