//! An order-independent digest of stored versions, to compare what two
//! nodes hold in the same token ranges.
//!
//! Pure. Owns [`RangeDigest`]: the count of keys and versions and the
//! wrapping sum of each version's 128-bit hash (the first 16 bytes of
//! SHA-256 over an unambiguous encoding of storage key, clock, timestamp,
//! tombstone flag and value). Invariants: the digest depends only on the
//! set of (key, version) pairs, not on the order they are added in or on
//! how they are split between shards ([`RangeDigest::merge`]), so two nodes
//! holding the same versions answer the same digest.

use super::Version;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RangeDigest {
    pub keys: u64,
    pub versions: u64,
    pub sum: u128,
}

/// The 128-bit hash of one stored version of `storage_key`.
pub fn version_hash(storage_key: &[u8], v: &Version) -> u128 {
    let mut h = Sha256::new();
    h.update((storage_key.len() as u64).to_be_bytes());
    h.update(storage_key);
    let entries = v.clock.entries();
    h.update((entries.len() as u64).to_be_bytes());
    for (node, counter) in entries {
        h.update((node.len() as u64).to_be_bytes());
        h.update(node.as_bytes());
        h.update(counter.to_be_bytes());
    }
    h.update(v.timestamp_ms.to_be_bytes());
    match &v.value {
        None => h.update([1u8]),
        Some(value) => {
            h.update([0u8]);
            h.update((value.len() as u64).to_be_bytes());
            h.update(value);
        }
    }
    let d: [u8; 32] = h.finalize().into();
    let mut first = [0u8; 16];
    first.copy_from_slice(d.get(..16).unwrap_or(&[0u8; 16]));
    u128::from_be_bytes(first)
}

impl RangeDigest {
    /// Adds one key with its stored versions.
    pub fn add_key(&mut self, storage_key: &[u8], versions: &[Version]) {
        self.keys += 1;
        for v in versions {
            self.versions += 1;
            self.sum = self.sum.wrapping_add(version_hash(storage_key, v));
        }
    }

    /// The digest of both parts (disjoint key sets).
    pub fn merge(&mut self, other: &RangeDigest) {
        self.keys += other.keys;
        self.versions += other.versions;
        self.sum = self.sum.wrapping_add(other.sum);
    }

    /// 32 lowercase hex digits.
    pub fn hex(&self) -> String {
        format!("{:032x}", self.sum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::VectorClock;
    use bytes::Bytes;

    fn v(c: i64, ts: i64, value: Option<&'static str>) -> Version {
        Version {
            clock: VectorClock::from_entries([("n".to_string(), c)], 8).unwrap(),
            timestamp_ms: ts,
            value: value.map(|s| Bytes::from_static(s.as_bytes())),
        }
    }

    #[test]
    fn order_and_split_do_not_matter() {
        let mut a = RangeDigest::default();
        a.add_key(b"k1", &[v(1, 1, Some("x")), v(2, 1, None)]);
        a.add_key(b"k2", &[v(1, 1, Some("y"))]);
        let mut b1 = RangeDigest::default();
        b1.add_key(b"k2", &[v(1, 1, Some("y"))]);
        let mut b2 = RangeDigest::default();
        b2.add_key(b"k1", &[v(2, 1, None), v(1, 1, Some("x"))]);
        b1.merge(&b2);
        assert_eq!(a, b1);
        assert_eq!(a.hex().len(), 32);
    }

    #[test]
    fn every_field_changes_the_hash() {
        let base = version_hash(b"k", &v(1, 1, Some("x")));
        assert_ne!(base, version_hash(b"j", &v(1, 1, Some("x"))));
        assert_ne!(base, version_hash(b"k", &v(2, 1, Some("x"))));
        assert_ne!(base, version_hash(b"k", &v(1, 2, Some("x"))));
        assert_ne!(base, version_hash(b"k", &v(1, 1, Some("y"))));
        assert_ne!(base, version_hash(b"k", &v(1, 1, None)));
        // An empty live value is not a tombstone.
        assert_ne!(
            version_hash(b"k", &v(1, 1, Some(""))),
            version_hash(b"k", &v(1, 1, None))
        );
    }
}
