//! The streams a shard is sending to other nodes (range moves), kept so a
//! restarted node resumes them.
//!
//! Owns the `STREAMS` file of a shard directory: its encoding and its
//! crash-safe replacement (the manifest's procedure,
//! [`super::manifest::store_file`]). A missing file means no streams.
//! Invariants: a stream is listed before StartStreaming answers success and
//! unlisted before StopStreaming does; a file that fails its checksum or
//! names another format version is reported as corruption, never guessed at.
//!
//! Layout (integers big-endian):
//!
//! | field | size | notes |
//! |---|---|---|
//! | magic | 8 | `PDBSTRM\x01` |
//! | format version | 4 | 1 |
//! | stream count | 4 | |
//! | streams | ... | per stream: source node id, target node id, target address (each u16 length + UTF-8 bytes), started_unix_ms i64, range count u32, ranges (start u64, end u64 each) |
//! | crc32 | 4 | over every byte before it |

use super::error::StorageError;
use super::manifest::{checked_body, store_file, StoreError};
use bytes::{Buf, BufMut, Bytes};
use std::path::Path;

const MAGIC: &[u8; 8] = b"PDBSTRM\x01";
pub(crate) const FORMAT_VERSION: u32 = 1;
pub(crate) const FILE_NAME: &str = "STREAMS";

/// One persisted stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StreamRecord {
    pub source_node_id: String,
    pub target_node_id: String,
    /// "host:port" the stream sends to.
    pub target_addr: String,
    pub started_unix_ms: i64,
    /// `(start, end]` token ranges.
    pub ranges: Vec<(u64, u64)>,
}

pub(crate) fn encode(streams: &[StreamRecord]) -> Vec<u8> {
    let mut out = Vec::new();
    out.put_slice(MAGIC);
    out.put_u32(FORMAT_VERSION);
    out.put_u32(streams.len() as u32);
    let put_str = |out: &mut Vec<u8>, s: &str| {
        // Ids and addresses are validated far below 64 KiB on the way in.
        let b = s
            .as_bytes()
            .get(..s.len().min(u16::MAX as usize))
            .unwrap_or_default();
        out.put_u16(b.len() as u16);
        out.put_slice(b);
    };
    for s in streams {
        put_str(&mut out, &s.source_node_id);
        put_str(&mut out, &s.target_node_id);
        put_str(&mut out, &s.target_addr);
        out.put_i64(s.started_unix_ms);
        out.put_u32(s.ranges.len() as u32);
        for (a, b) in &s.ranges {
            out.put_u64(*a);
            out.put_u64(*b);
        }
    }
    let crc = crc32fast::hash(&out);
    out.put_u32(crc);
    out
}

fn get_str(b: &mut Bytes) -> Result<String, String> {
    if b.remaining() < 2 {
        return Err("truncated string length".into());
    }
    let n = b.get_u16() as usize;
    if b.remaining() < n {
        return Err("truncated string".into());
    }
    String::from_utf8(b.split_to(n).to_vec()).map_err(|_| "a string is not UTF-8".to_string())
}

pub(crate) fn decode(raw: &[u8]) -> Result<Vec<StreamRecord>, String> {
    let mut b = checked_body(raw, MAGIC, FORMAT_VERSION, 4, "streams file")?;
    let count = b.get_u32() as usize;
    let mut streams = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let source_node_id = get_str(&mut b)?;
        let target_node_id = get_str(&mut b)?;
        let target_addr = get_str(&mut b)?;
        if b.remaining() < 8 + 4 {
            return Err("truncated stream".into());
        }
        let started_unix_ms = b.get_i64();
        let n = b.get_u32() as usize;
        if b.remaining() < n.saturating_mul(16) {
            return Err("truncated range list".into());
        }
        let ranges = (0..n).map(|_| (b.get_u64(), b.get_u64())).collect();
        streams.push(StreamRecord {
            source_node_id,
            target_node_id,
            target_addr,
            started_unix_ms,
            ranges,
        });
    }
    if b.has_remaining() {
        return Err(format!("{} trailing bytes", b.remaining()));
    }
    Ok(streams)
}

/// The streams listed in `dir`; none when the file does not exist.
pub(crate) fn load(dir: &Path) -> Result<Vec<StreamRecord>, StorageError> {
    let path = dir.join(FILE_NAME);
    match super::disk::read_file(&path)? {
        Some(raw) => {
            decode(&raw).map_err(|reason| StorageError::corrupted("streams", &path, None, reason))
        }
        None => Ok(Vec::new()),
    }
}

/// Replaces the list durably (see [`store_file`] for what a failure means).
pub(crate) async fn store(dir: &Path, streams: &[StreamRecord]) -> Result<(), StoreError> {
    store_file(dir, FILE_NAME, encode(streams)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<StreamRecord> {
        vec![
            StreamRecord {
                source_node_id: "node-a".into(),
                target_node_id: "node-b".into(),
                target_addr: "127.0.0.1:50052".into(),
                started_unix_ms: 1_700_000_000_000,
                ranges: vec![(1, 2), (u64::MAX - 1, 5)],
            },
            StreamRecord {
                source_node_id: "node-a".into(),
                target_node_id: "node-c".into(),
                target_addr: "10.0.0.3:50051".into(),
                started_unix_ms: 1,
                ranges: vec![(7, 7)],
            },
        ]
    }

    #[test]
    fn round_trip_and_every_flip_and_cut_detected() {
        let raw = encode(&sample());
        assert_eq!(decode(&raw).unwrap(), sample());
        assert_eq!(decode(&encode(&[])).unwrap(), vec![]);
        for i in 0..raw.len() {
            let mut bad = raw.clone();
            bad[i] ^= 0x10;
            assert!(decode(&bad).is_err(), "flip at {i} not detected");
        }
        for cut in 0..raw.len() {
            assert!(decode(&raw[..cut]).is_err(), "cut at {cut} not detected");
        }
    }

    #[test]
    fn another_format_version_is_refused_by_name() {
        let mut raw = encode(&sample());
        raw[11] = 2;
        let body = raw.len() - 4;
        let crc = crc32fast::hash(&raw[..body]);
        raw[body..].copy_from_slice(&crc.to_be_bytes());
        let e = decode(&raw).unwrap_err();
        assert!(e.contains("format version 2"), "{e}");
    }
}
