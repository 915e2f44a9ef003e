//! Binary encoding of a key's versions, shared by WAL records and SSTable
//! entries.
//!
//! Layout (all integers big-endian):
//!
//! | field | size | notes |
//! |---|---|---|
//! | key_len | 4 | storage key length |
//! | key | key_len | length-prefixed (tenant, key) identity |
//! | version_count | 2 | 1 for WAL records; >= 1 in SSTables |
//! | versions | ... | `version_count` times the table below |
//!
//! Version:
//!
//! | field | size | notes |
//! |---|---|---|
//! | flags | 1 | bit 0: tombstone; other bits must be 0 |
//! | timestamp_ms | 8 | i64 Unix milliseconds |
//! | clock_entries | 2 | number of clock entries |
//! | entries | ... | per entry: node_len u16, node bytes (UTF-8), counter u64 (> 0) |
//! | value_len | 4 | absent for tombstones |
//! | value | value_len | absent for tombstones |
//!
//! Decoding never trusts a length: every read is bounds-checked and a
//! malformed entry is an error, never a panic. Checksums live in the framing
//! around entries (WAL batches, SSTable blocks), not here.

use crate::model::{VectorClock, Version};
use bytes::{Buf, BufMut, Bytes};

const FLAG_TOMBSTONE: u8 = 1;

/// Why bytes did not decode as an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CodecError {
    Truncated { need: usize, have: usize },
    BadFlags(u8),
    BadNodeId,
    BadClock(String),
    NoVersions,
}

impl std::fmt::Display for CodecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CodecError::Truncated { need, have } => {
                write!(f, "entry truncated: needs {need} bytes, {have} left")
            }
            CodecError::BadFlags(b) => write!(f, "entry has unknown flags {b:#04x}"),
            CodecError::BadNodeId => write!(f, "entry has a clock node id that is not UTF-8"),
            CodecError::BadClock(e) => write!(f, "entry has an invalid clock: {e}"),
            CodecError::NoVersions => write!(f, "entry holds no versions"),
        }
    }
}

impl std::error::Error for CodecError {}

/// Bytes [`encode_entry`] will write.
pub(crate) fn entry_len(key: &[u8], versions: &[Version]) -> usize {
    4 + key.len() + 2 + versions.iter().map(version_len).sum::<usize>()
}

fn version_len(v: &Version) -> usize {
    let clock: usize = v.clock.entries().iter().map(|(n, _)| 2 + n.len() + 8).sum();
    1 + 8 + 2 + clock + v.value.as_ref().map_or(0, |val| 4 + val.len())
}

/// Appends one entry. `versions` must hold 1 to 65535 versions.
pub(crate) fn encode_entry(out: &mut impl BufMut, key: &[u8], versions: &[Version]) {
    debug_assert!(!versions.is_empty() && versions.len() <= u16::MAX as usize);
    out.put_u32(key.len() as u32);
    out.put_slice(key);
    out.put_u16(versions.len() as u16);
    for v in versions {
        out.put_u8(if v.value.is_none() { FLAG_TOMBSTONE } else { 0 });
        out.put_i64(v.timestamp_ms);
        out.put_u16(v.clock.entries().len() as u16);
        for (node, counter) in v.clock.entries() {
            out.put_u16(node.len() as u16);
            out.put_slice(node.as_bytes());
            out.put_u64(*counter);
        }
        if let Some(value) = &v.value {
            out.put_u32(value.len() as u32);
            out.put_slice(value);
        }
    }
}

fn need(buf: &Bytes, n: usize) -> Result<(), CodecError> {
    if buf.remaining() < n {
        return Err(CodecError::Truncated {
            need: n,
            have: buf.remaining(),
        });
    }
    Ok(())
}

/// Decodes one entry from the front of `buf`, advancing it. Values and keys
/// are zero-copy slices of `buf`.
pub(crate) fn decode_entry(buf: &mut Bytes) -> Result<(Bytes, Vec<Version>), CodecError> {
    need(buf, 4)?;
    let key_len = buf.get_u32() as usize;
    need(buf, key_len)?;
    let key = buf.split_to(key_len);
    need(buf, 2)?;
    let count = buf.get_u16() as usize;
    if count == 0 {
        return Err(CodecError::NoVersions);
    }
    let mut versions = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        need(buf, 1 + 8 + 2)?;
        let flags = buf.get_u8();
        if flags & !FLAG_TOMBSTONE != 0 {
            return Err(CodecError::BadFlags(flags));
        }
        let timestamp_ms = buf.get_i64();
        let entries = buf.get_u16() as usize;
        let mut pairs = Vec::with_capacity(entries.min(64));
        for _ in 0..entries {
            need(buf, 2)?;
            let len = buf.get_u16() as usize;
            need(buf, len + 8)?;
            let node = buf.split_to(len);
            let node = std::str::from_utf8(&node)
                .map_err(|_| CodecError::BadNodeId)?
                .to_string();
            let counter = buf.get_u64();
            let counter = i64::try_from(counter)
                .map_err(|_| CodecError::BadClock(format!("counter {counter} out of range")))?;
            if counter == 0 {
                return Err(CodecError::BadClock("zero counter stored".into()));
            }
            pairs.push((node, counter));
        }
        let clock = VectorClock::from_entries(pairs, usize::MAX)
            .map_err(|e| CodecError::BadClock(e.to_string()))?;
        let value = if flags & FLAG_TOMBSTONE != 0 {
            None
        } else {
            need(buf, 4)?;
            let len = buf.get_u32() as usize;
            need(buf, len)?;
            Some(buf.split_to(len))
        };
        versions.push(Version {
            clock,
            timestamp_ms,
            value,
        });
    }
    Ok((key, versions))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_version() -> impl Strategy<Value = Version> {
        (
            proptest::collection::btree_map("[a-z]{1,6}", 1i64..1000, 0..4),
            any::<i64>(),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
        )
            .prop_map(|(m, ts, v)| Version {
                clock: VectorClock::from_entries(m, 64).unwrap(),
                timestamp_ms: ts,
                value: v.map(Bytes::from),
            })
    }

    proptest! {
        #[test]
        fn entries_round_trip(
            key in proptest::collection::vec(any::<u8>(), 0..40),
            versions in proptest::collection::vec(arb_version(), 1..4),
        ) {
            let mut buf = Vec::new();
            encode_entry(&mut buf, &key, &versions);
            prop_assert_eq!(buf.len(), entry_len(&key, &versions));
            let mut bytes = Bytes::from(buf);
            let (k, v) = decode_entry(&mut bytes).unwrap();
            prop_assert_eq!(&k[..], &key[..]);
            prop_assert_eq!(v, versions);
            prop_assert_eq!(bytes.remaining(), 0);
        }

        /// Any truncation is an error, never a panic.
        #[test]
        fn truncation_is_detected(versions in proptest::collection::vec(arb_version(), 1..3), cut in 0usize..200) {
            let mut buf = Vec::new();
            encode_entry(&mut buf, b"key", &versions);
            let cut = cut % buf.len();
            let mut bytes = Bytes::from(buf[..cut].to_vec());
            prop_assert!(decode_entry(&mut bytes).is_err());
        }

        /// Arbitrary bytes never panic the decoder.
        #[test]
        fn garbage_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..128)) {
            let mut bytes = Bytes::from(raw);
            let _ = decode_entry(&mut bytes);
        }
    }
}
