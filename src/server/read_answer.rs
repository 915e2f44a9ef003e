//! The Read answer, encoded straight from a key's versions.
//!
//! Owns the bytes of a successful or not-found `ReadResponse` as a
//! [`Frame`]: fields in prost's order (ascending tag, default values
//! omitted), so the bytes are exactly prost's encoding of
//! [`super::convert::read_response`] (property tested), but values of at
//! least [`SHARED_VALUE_BYTES_MIN`] bytes are referenced where the shard
//! holds them instead of copied, and clocks are written from the engine's
//! types without building wire structs first. A key with a hundred 64 KiB
//! siblings is then answered without copying its 6.4 MB.
//!
//! Invariant: the length in the gRPC prefix equals the bytes that follow it.

use crate::model::{VectorClock, Version, VersionSet};
use crate::proto::grpc::{Frame, PREFIX_BYTES};
use crate::proto::ErrorCode;
use bytes::{BufMut, Bytes, BytesMut};
use prost::encoding::{encode_varint, encoded_len_varint};

/// Values this large are sent from where they are stored; smaller ones are
/// copied next to their field headers (a chunk costs more than a copy).
pub const SHARED_VALUE_BYTES_MIN: usize = 4096;

const WIRE_VARINT: u8 = 0;
const WIRE_LEN: u8 = 2;
const NOT_FOUND: &str = "key not found";

// ReadResponse, KeyValueEntry, VectorClock and VectorClockEntry field tags
// (proto/storage.proto).
const READ_SUCCESS: u8 = 1;
const READ_VALUE: u8 = 2;
const READ_CLOCK: u8 = 3;
const READ_ERROR_MESSAGE: u8 = 4;
const READ_ERROR_CODE: u8 = 5;
const READ_VERSIONS: u8 = 6;
const READ_TIMESTAMP: u8 = 7;
const ENTRY_TENANT: u8 = 1;
const ENTRY_KEY: u8 = 2;
const ENTRY_VALUE: u8 = 3;
const ENTRY_CLOCK: u8 = 4;
const ENTRY_TIMESTAMP: u8 = 5;
const ENTRY_TOMBSTONE: u8 = 6;
const CLOCK_ENTRIES: u8 = 1;
const CLOCK_NODE: u8 = 1;
const CLOCK_COUNTER: u8 = 2;

fn lv(n: usize) -> usize {
    encoded_len_varint(n as u64)
}

/// A length-delimited field of `payload` bytes, or nothing when empty and
/// `omit_empty` (proto3 omits empty strings and bytes, not messages).
fn delimited_len(payload: usize, omit_empty: bool) -> usize {
    if payload == 0 && omit_empty {
        0
    } else {
        1 + lv(payload) + payload
    }
}

/// int64 fields: negative values take ten bytes, zero is omitted.
fn int64_len(v: i64) -> usize {
    if v == 0 {
        0
    } else {
        1 + encoded_len_varint(v as u64)
    }
}

/// Counters past `i64::MAX` go out clamped, as `convert::clock_to_wire` does.
fn wire_counter(counter: u64) -> i64 {
    i64::try_from(counter).unwrap_or(i64::MAX)
}

fn clock_entry_len(node: &str, counter: u64) -> usize {
    delimited_len(node.len(), true) + int64_len(wire_counter(counter))
}

fn clock_len(clock: &VectorClock) -> usize {
    clock
        .entries()
        .iter()
        .map(|(n, c)| delimited_len(clock_entry_len(n, *c), false))
        .sum()
}

fn value_len(v: &Version) -> usize {
    v.value.as_ref().map_or(0, Bytes::len)
}

fn entry_len(tenant_id: &str, key: &str, v: &Version) -> usize {
    delimited_len(tenant_id.len(), true)
        + delimited_len(key.len(), true)
        + delimited_len(value_len(v), true)
        + delimited_len(clock_len(&v.clock), false)
        + int64_len(v.timestamp_ms)
        + if v.is_tombstone() { 2 } else { 0 }
}

/// Chunks being written: small fields accumulate in `buf`, shared values are
/// chunks of their own.
struct Writer {
    chunks: Vec<Bytes>,
    buf: BytesMut,
}

impl Writer {
    fn key(&mut self, tag: u8, wire: u8) {
        self.buf.put_u8((tag << 3) | wire);
    }

    fn varint_field(&mut self, tag: u8, v: u64) {
        self.key(tag, WIRE_VARINT);
        encode_varint(v, &mut self.buf);
    }

    fn int64_field(&mut self, tag: u8, v: i64) {
        if v != 0 {
            self.varint_field(tag, v as u64);
        }
    }

    fn header(&mut self, tag: u8, len: usize) {
        self.key(tag, WIRE_LEN);
        encode_varint(len as u64, &mut self.buf);
    }

    fn str_field(&mut self, tag: u8, s: &str) {
        if !s.is_empty() {
            self.header(tag, s.len());
            self.buf.put_slice(s.as_bytes());
        }
    }

    fn bytes_field(&mut self, tag: u8, b: &Bytes) {
        if b.is_empty() {
            return;
        }
        self.header(tag, b.len());
        if b.len() >= SHARED_VALUE_BYTES_MIN {
            let head = self.buf.split().freeze();
            self.chunks.push(head);
            self.chunks.push(b.clone());
        } else {
            self.buf.put_slice(b);
        }
    }

    fn clock_field(&mut self, tag: u8, clock: &VectorClock) {
        self.header(tag, clock_len(clock));
        for (node, counter) in clock.entries() {
            self.header(CLOCK_ENTRIES, clock_entry_len(node, *counter));
            self.str_field(CLOCK_NODE, node);
            self.int64_field(CLOCK_COUNTER, wire_counter(*counter));
        }
    }

    fn entry_field(&mut self, tenant_id: &str, key: &str, v: &Version) {
        self.header(READ_VERSIONS, entry_len(tenant_id, key, v));
        self.str_field(ENTRY_TENANT, tenant_id);
        self.str_field(ENTRY_KEY, key);
        if let Some(value) = &v.value {
            self.bytes_field(ENTRY_VALUE, value);
        }
        self.clock_field(ENTRY_CLOCK, &v.clock);
        self.int64_field(ENTRY_TIMESTAMP, v.timestamp_ms);
        if v.is_tombstone() {
            self.varint_field(ENTRY_TOMBSTONE, 1);
        }
    }
}

/// The framed ReadResponse for the stored `set` of (`tenant_id`, `key`):
/// the visible sibling's value and timestamp, the merged clock of every
/// version, and every version in `versions` unless a lone live version
/// already says it all (see `proto/storage.proto`).
pub fn encode(tenant_id: &str, key: &str, set: &VersionSet) -> Frame {
    let visible = set.visible();
    // A lone version's clock is the merged clock: borrowed, not rebuilt.
    let merged = match set.versions() {
        [] => None,
        [only] => Some(std::borrow::Cow::Borrowed(&only.clock)),
        _ => Some(std::borrow::Cow::Owned(set.merged_clock())),
    };
    let with_versions = set.len() > 1 || visible.is_none();
    let error_code = if visible.is_some() {
        ErrorCode::Unknown
    } else {
        ErrorCode::KeyNotFound
    };

    let mut len = 0;
    if let Some(v) = visible {
        len += 2 + delimited_len(value_len(v), true);
    }
    if let Some(c) = &merged {
        len += delimited_len(clock_len(c), false);
    }
    if visible.is_none() {
        len += delimited_len(NOT_FOUND.len(), true) + 1 + lv(error_code as usize);
    }
    if with_versions {
        len += set
            .versions()
            .iter()
            .map(|v| delimited_len(entry_len(tenant_id, key, v), false))
            .sum::<usize>();
    }
    if let Some(v) = visible {
        len += int64_len(v.timestamp_ms);
    }

    let shared = if with_versions {
        set.versions()
            .iter()
            .filter(|v| value_len(v) >= SHARED_VALUE_BYTES_MIN)
            .count()
    } else {
        0
    } + visible.map_or(0, |v| usize::from(value_len(v) >= SHARED_VALUE_BYTES_MIN));
    let mut w = Writer {
        // No shared value: one buffer, no chunk list to allocate.
        chunks: if shared == 0 {
            Vec::new()
        } else {
            Vec::with_capacity(2 * shared + 1)
        },
        buf: BytesMut::with_capacity(PREFIX_BYTES + len.min(64 * 1024)),
    };
    w.buf.put_u8(0);
    w.buf.put_u32(len as u32);
    if let Some(v) = visible {
        w.varint_field(READ_SUCCESS, 1);
        if let Some(value) = &v.value {
            w.bytes_field(READ_VALUE, value);
        }
    }
    if let Some(c) = &merged {
        w.clock_field(READ_CLOCK, c);
    }
    if visible.is_none() {
        w.str_field(READ_ERROR_MESSAGE, NOT_FOUND);
        w.varint_field(READ_ERROR_CODE, error_code as u64);
    }
    if with_versions {
        for v in set.versions() {
            w.entry_field(tenant_id, key, v);
        }
    }
    if let Some(v) = visible {
        w.int64_field(READ_TIMESTAMP, v.timestamp_ms);
    }
    if w.chunks.is_empty() {
        return Frame::One(w.buf.freeze());
    }
    let mut chunks = w.chunks;
    if !w.buf.is_empty() {
        chunks.push(w.buf.freeze());
    }
    debug_assert_eq!(
        chunks.iter().map(Bytes::len).sum::<usize>(),
        PREFIX_BYTES + len
    );
    Frame::from_chunks(chunks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::grpc::encode_frame;
    use crate::server::convert::read_response;
    use proptest::prelude::*;

    fn arb_version() -> impl Strategy<Value = Version> {
        (
            proptest::collection::btree_map("[a-z]{1,20}", 1i64..i64::MAX, 0..6),
            prop_oneof![Just(0i64), any::<i64>()],
            proptest::option::of(prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..64),
                proptest::collection::vec(any::<u8>(), 4090..4200),
            ]),
        )
            .prop_map(|(m, ts, v)| Version {
                clock: VectorClock::from_entries(m, 64).unwrap(),
                timestamp_ms: ts,
                value: v.map(Bytes::from),
            })
    }

    fn bytes_of(frame: Frame) -> Vec<u8> {
        frame
            .into_chunks()
            .iter()
            .flat_map(|c| c.iter().copied())
            .collect()
    }

    proptest! {
        /// Byte for byte what prost encodes for the same answer.
        #[test]
        fn equals_prost_encoding(
            versions in proptest::collection::vec(arb_version(), 0..5),
            tenant in "[a-z]{1,12}",
            key in "[a-z]{1,12}",
        ) {
            let set = VersionSet::from_versions(versions);
            let reference = encode_frame(&read_response(&tenant, &key, &set));
            let frame = encode(&tenant, &key, &set);
            prop_assert_eq!(frame.len(), reference.len());
            prop_assert_eq!(bytes_of(frame), reference.to_vec());
        }
    }

    #[test]
    fn large_values_are_sent_from_where_they_are_stored() {
        let value = Bytes::from(vec![9u8; 64 * 1024]);
        let v = |id: &str| Version {
            clock: VectorClock::from_entries([(id.to_string(), 1)], 8).unwrap(),
            timestamp_ms: 1,
            value: Some(value.clone()),
        };
        let set = VersionSet::from_versions([v("a"), v("b")]);
        let chunks = encode("t", "k", &set).into_chunks();
        let shared = chunks
            .iter()
            .filter(|c| c.as_ptr() == value.as_ptr())
            .count();
        // The visible value, and both siblings in `versions`.
        assert_eq!(shared, 3);
    }
}
