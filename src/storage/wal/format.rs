//! Byte layout of WAL segment files: the segment header, batches and records.
//!
//! Owns encoding and decoding of each piece, bounds-checked and free of I/O.
//! The sequential scan of a whole segment (and the torn-versus-corrupt
//! decision) lives in [`super::scan`].
//!
//! # Segment file
//!
//! A segment file is preallocated to its full size and may be recycled, so
//! bytes past the last batch are zeros or old contents of an earlier segment.
//! It is a 4096-byte segment header, then batches. Offsets in this module and
//! in [`super::scan`] are file offsets. All integers are big-endian.
//!
//! The format version says where batches lie ([`BatchLayout`]):
//!
//! | version | layout | written by |
//! |---|---|---|
//! | 1 | packed: each batch right after the previous one; the writer rewrote the partial last 4096-byte block on each group commit | earlier releases (still read) |
//! | 2 | aligned: each batch starts on a 4096-byte boundary, zeros after it up to the next one; no written block is ever written again | this release |
//!
//! Version 2 exists because rewriting a block that holds acknowledged bytes
//! relies on the device writing 4096 bytes atomically: a power cut in the
//! middle of that rewrite could garble a batch that was already answered.
//!
//! ## Segment header (bytes 0 .. 4096)
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `PDBWAL\0\x01` ([`SEGMENT_MAGIC`]) |
//! | 8 | 4 | format version (1 or 2; [`FORMAT_VERSION`] = 2 is written) |
//! | 12 | 4 | shard id |
//! | 16 | 8 | segment number (monotonic per shard, never reused) |
//! | 24 | 4 | crc32 of bytes 0 .. 24 |
//! | 28 | 4068 | zero |
//!
//! The padding must be zero, so every byte of the header is checked. Later
//! format versions must keep bytes 0 .. 28 as they are.
//!
//! ## Batch (one per group commit, starting at offset 4096, then after the previous batch as the layout says)
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `0xB7A15EC3` ([`BATCH_MAGIC`]) |
//! | 4 | 4 | shard id |
//! | 8 | 8 | segment number |
//! | 16 | 8 | first_seq: sequence number of the first record |
//! | 24 | 4 | record_count (>= 1) |
//! | 28 | 4 | payload_len (bytes of records that follow the header) |
//! | 32 | 4 | payload_crc: crc32 of the payload |
//! | 36 | 4 | header_crc: crc32 of bytes 0 .. 36 |
//! | 40 | payload_len | records, back to back |
//!
//! Record `i` of a batch has sequence number `first_seq + i`; sequence
//! numbers are contiguous per shard across batches and segments.
//!
//! ## Record (inside a payload)
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | record_type: 1 = Put; every other value is an error |
//! | 1 | 4 | body_len |
//! | 5 | body_len | body |
//!
//! A Put body is one [`crate::storage::codec`] entry holding exactly one
//! version, and must be consumed exactly.
//!
//! # Why no trailer
//!
//! The header carries its own crc, so once it verifies, `payload_len` is
//! trustworthy and the batch's extent is known; the payload crc (itself
//! covered by the header crc) then proves every payload byte is the one the
//! writer meant. A torn write leaves either a header that fails its crc, a
//! payload that runs past the end of the data, or payload bytes (old contents
//! or zeros) that fail the payload crc. A trailer would repeat what the two
//! crcs already prove.
//!
//! # Why the shard id and segment number in every batch
//!
//! Segments are preallocated and recycled: old batches of an earlier segment
//! stay in the file after the current write position, with valid crcs. Every
//! batch names its segment, so a scan stops at the first batch of another
//! segment and never replays old contents as new records. The shard id costs
//! nothing (the header would otherwise have 4 spare bytes) and also keeps a
//! file recycled across shards from being mistaken for this shard's log.
//!
//! # Invariants
//!
//! - [`encode_batch_into`] only produces what [`decode_payload`] accepts: a record
//!   the decoder would refuse (a clock counter above `i64::MAX`, an oversized
//!   field) is refused at encode time, before any byte is written.
//! - Decoding never trusts a length and never panics: every read is
//!   bounds-checked, and allocation is bounded by the input's size.

use crate::model::Version;
use crate::storage::codec::{self, CodecError};
use bytes::{BufMut, Bytes};
use std::fmt;

/// Length of the segment header; the first batch starts here.
pub(crate) const SEGMENT_HEADER_LEN: usize = 4096;
/// First 8 bytes of every segment file.
pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"PDBWAL\0\x01";
/// The segment format this code writes.
pub(crate) const FORMAT_VERSION: u32 = 2;
/// The oldest segment format this code reads.
pub(crate) const FORMAT_VERSION_MIN: u32 = 1;
/// The boundary version-2 batches start on.
pub(crate) const BATCH_ALIGN: usize = 4096;

/// Where a segment's batches lie, by its format version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BatchLayout {
    /// Version 1: back to back.
    Packed,
    /// Version 2: each on a [`BATCH_ALIGN`] boundary.
    Aligned,
}

impl BatchLayout {
    pub(crate) fn of_version(version: u32) -> Option<Self> {
        match version {
            1 => Some(BatchLayout::Packed),
            2 => Some(BatchLayout::Aligned),
            _ => None,
        }
    }

    /// Where the batch after one ending at `end` starts.
    pub(crate) fn next_start(self, end: usize) -> usize {
        match self {
            BatchLayout::Packed => end,
            BatchLayout::Aligned => end.div_ceil(BATCH_ALIGN).saturating_mul(BATCH_ALIGN),
        }
    }
}

const SEG_MAGIC_AT: usize = 0;
const SEG_VERSION_AT: usize = 8;
const SEG_SHARD_AT: usize = 12;
const SEG_NO_AT: usize = 16;
const SEG_CRC_AT: usize = 24;
const SEG_FIELDS_END: usize = 28;

/// First 4 bytes of every batch. Not ASCII, so text values rarely contain it.
pub(crate) const BATCH_MAGIC: u32 = 0xB7A1_5EC3;
/// Fixed length of a batch header.
pub(crate) const BATCH_HEADER_LEN: usize = 40;
/// Largest payload a batch may carry (the field is a u32).
pub(crate) const MAX_PAYLOAD_LEN: usize = u32::MAX as usize;

const B_MAGIC_AT: usize = 0;
const B_SHARD_AT: usize = 4;
const B_SEGMENT_AT: usize = 8;
const B_FIRST_SEQ_AT: usize = 16;
const B_COUNT_AT: usize = 24;
const B_PAYLOAD_LEN_AT: usize = 28;
const B_PAYLOAD_CRC_AT: usize = 32;
const B_HEADER_CRC_AT: usize = 36;

/// Record type of a Put (a value or a tombstone).
pub(crate) const RECORD_PUT: u8 = 1;
/// Bytes before a record's body: type and body length.
pub(crate) const RECORD_HEADER_LEN: usize = 5;

/// Which log a segment (and each of its batches) belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct SegmentId {
    pub shard_id: u32,
    pub segment_no: u64,
}

impl fmt::Display for SegmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "shard {} segment {}", self.shard_id, self.segment_no)
    }
}

/// One logical WAL record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Record {
    /// Store `version` (a value or a tombstone) under the storage key `key`.
    Put { key: Bytes, version: Version },
}

impl Record {
    /// Bytes this record takes inside a payload (type, length and body).
    pub(crate) fn encoded_len(&self) -> usize {
        RECORD_HEADER_LEN + self.body_len()
    }

    fn body_len(&self) -> usize {
        match self {
            Record::Put { key, version } => codec::entry_len(key, std::slice::from_ref(version)),
        }
    }
}

/// What follows the last valid batch when nothing of this segment does
/// (judged by [`super::scan`]; defined here, with the errors that name it,
/// so the format depends on nothing above it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CleanEnd {
    /// The data ends at `valid_end`.
    EndOfData,
    /// Zeros (a preallocated file, or the writer's padding).
    Zeroed,
    /// Bytes that are not a batch header (old contents of a recycled file).
    NotABatch,
    /// A well-formed batch of another segment (old contents of a recycled
    /// file).
    OtherSegment(SegmentId),
    /// A well-formed batch of this segment with a lower sequence number than
    /// expected (older contents).
    StaleSequence { expected: u64, found: u64 },
}

impl fmt::Display for CleanEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CleanEnd::EndOfData => write!(f, "end of data"),
            CleanEnd::Zeroed => write!(f, "zeros"),
            CleanEnd::NotABatch => write!(f, "bytes that are not a batch"),
            CleanEnd::OtherSegment(id) => write!(f, "a batch of {id}"),
            CleanEnd::StaleSequence { expected, found } => write!(
                f,
                "a stale batch starting at seq {found} (expected {expected})"
            ),
        }
    }
}

/// Why WAL bytes did not encode or decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WalFormatError {
    // Segment header.
    SegmentHeaderTruncated {
        have: usize,
    },
    BadSegmentMagic,
    SegmentHeaderChecksum {
        stored: u32,
        computed: u32,
    },
    UnsupportedFormatVersion(u32),
    SegmentHeaderPadding {
        offset: usize,
    },

    // Encoding.
    EmptyBatch,
    TooManyRecords {
        count: usize,
    },
    PayloadTooLarge {
        len: usize,
        max: usize,
    },
    SeqOverflow {
        first_seq: u64,
        record_count: u64,
    },
    Unencodable {
        index: usize,
        what: &'static str,
    },
    BufferTooSmall {
        need: usize,
        have: usize,
    },

    // Batch framing: failures a torn (partially persisted) write can cause.
    /// Fewer than [`BATCH_HEADER_LEN`] bytes left, starting like a batch.
    TruncatedHeader {
        have: usize,
    },
    /// A header intact except for its magic (it verifies with the magic
    /// restored).
    BadBatchMagic,
    HeaderChecksum {
        stored: u32,
        computed: u32,
    },
    TruncatedPayload {
        need: usize,
        have: usize,
    },
    PayloadChecksum {
        stored: u32,
        computed: u32,
    },

    // Not a batch at all (what a clean end looks like).
    /// The bytes do not start with the batch magic and are not a damaged
    /// header.
    NoBatchMagic,

    // Checksummed yet invalid: the writer wrote these bytes, but they do not
    // decode (a bug or an unknown format), so they are never a torn write.
    ZeroRecordCount,
    UnknownRecordType {
        index: usize,
        record_type: u8,
    },
    RecordTruncated {
        index: usize,
        need: usize,
        have: usize,
    },
    BadRecord {
        index: usize,
        error: CodecError,
    },
    RecordVersionCount {
        index: usize,
        count: usize,
    },
    RecordTrailingBytes {
        index: usize,
        extra: usize,
    },
    RecordCountMismatch {
        header: u32,
        found: usize,
    },

    // Scan-level (see `super::scan`).
    /// A well-formed batch of this segment whose first_seq is beyond the next
    /// expected sequence number: records are missing.
    SequenceGap {
        expected: u64,
        found: u64,
    },
    /// Where the next batch should be, something that is not one, described
    /// by the clean end it would otherwise have been (reported when a later
    /// batch of this segment proves the log went on).
    NotNextBatch(CleanEnd),
}

impl WalFormatError {
    /// True for failures a partially persisted (torn) write can produce:
    /// only these may be truncated away as a torn tail.
    pub(crate) fn may_be_torn_write(&self) -> bool {
        matches!(
            self,
            WalFormatError::TruncatedHeader { .. }
                | WalFormatError::BadBatchMagic
                | WalFormatError::HeaderChecksum { .. }
                | WalFormatError::TruncatedPayload { .. }
                | WalFormatError::PayloadChecksum { .. }
        )
    }
}

impl fmt::Display for WalFormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use WalFormatError as E;
        match self {
            E::SegmentHeaderTruncated { have } => write!(
                f,
                "segment header truncated: {have} of {SEGMENT_HEADER_LEN} bytes"
            ),
            E::BadSegmentMagic => write!(f, "not a WAL segment (bad magic)"),
            E::SegmentHeaderChecksum { stored, computed } => write!(
                f,
                "segment header checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
            ),
            E::UnsupportedFormatVersion(v) => write!(
                f,
                "unsupported WAL format version {v} (this build reads {FORMAT_VERSION_MIN} to {FORMAT_VERSION})"
            ),
            E::SegmentHeaderPadding { offset } => {
                write!(f, "segment header padding is not zero at offset {offset}")
            }
            E::EmptyBatch => write!(f, "a batch needs at least one record"),
            E::TooManyRecords { count } => {
                write!(f, "a batch holds at most {} records, got {count}", u32::MAX)
            }
            E::PayloadTooLarge { len, max } => {
                write!(f, "batch payload of {len} bytes exceeds the limit of {max}")
            }
            E::SeqOverflow {
                first_seq,
                record_count,
            } => write!(
                f,
                "sequence numbers overflow: first_seq {first_seq} + {record_count} records"
            ),
            E::Unencodable { index, what } => write!(f, "record {index} cannot be encoded: {what}"),
            E::BufferTooSmall { need, have } => {
                write!(f, "batch needs {need} bytes, buffer has {have}")
            }
            E::TruncatedHeader { have } => write!(
                f,
                "batch header truncated: {have} of {BATCH_HEADER_LEN} bytes"
            ),
            E::BadBatchMagic => write!(f, "batch header has a damaged magic"),
            E::HeaderChecksum { stored, computed } => write!(
                f,
                "batch header checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
            ),
            E::TruncatedPayload { need, have } => {
                write!(
                    f,
                    "batch payload truncated: needs {need} bytes, {have} left"
                )
            }
            E::PayloadChecksum { stored, computed } => write!(
                f,
                "batch payload checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
            ),
            E::NoBatchMagic => write!(f, "no batch here (bad magic)"),
            E::ZeroRecordCount => write!(f, "batch header declares zero records"),
            E::UnknownRecordType { index, record_type } => {
                write!(f, "record {index} has unknown type {record_type}")
            }
            E::RecordTruncated { index, need, have } => write!(
                f,
                "record {index} truncated: needs {need} bytes, {have} left in the payload"
            ),
            E::BadRecord { index, error } => write!(f, "record {index} does not decode: {error}"),
            E::RecordVersionCount { index, count } => write!(
                f,
                "record {index} holds {count} versions, a WAL record holds exactly 1"
            ),
            E::RecordTrailingBytes { index, extra } => {
                write!(f, "record {index} has {extra} bytes after its entry")
            }
            E::RecordCountMismatch { header, found } => write!(
                f,
                "batch header declares {header} records, payload holds {found}"
            ),
            E::SequenceGap { expected, found } => write!(
                f,
                "sequence gap: expected a batch starting at seq {expected}, found {found}"
            ),
            E::NotNextBatch(end) => write!(f, "expected the next batch, found {end}"),
        }
    }
}

impl std::error::Error for WalFormatError {}

fn be_u32(buf: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    if let Some(s) = buf.get(at..at + 4) {
        b.copy_from_slice(s);
    }
    u32::from_be_bytes(b)
}

fn be_u64(buf: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    if let Some(s) = buf.get(at..at + 8) {
        b.copy_from_slice(s);
    }
    u64::from_be_bytes(b)
}

// ---------------------------------------------------------------------------
// Segment header

/// The 4096-byte header a segment file starts with.
pub(crate) fn encode_segment_header(id: SegmentId) -> [u8; SEGMENT_HEADER_LEN] {
    encode_segment_header_version(id, FORMAT_VERSION)
}

/// [`encode_segment_header`] of a given format version (tests write the
/// old ones).
pub(crate) fn encode_segment_header_version(
    id: SegmentId,
    version: u32,
) -> [u8; SEGMENT_HEADER_LEN] {
    let mut out = [0u8; SEGMENT_HEADER_LEN];
    out[SEG_MAGIC_AT..SEG_VERSION_AT].copy_from_slice(&SEGMENT_MAGIC);
    out[SEG_VERSION_AT..SEG_SHARD_AT].copy_from_slice(&version.to_be_bytes());
    out[SEG_SHARD_AT..SEG_NO_AT].copy_from_slice(&id.shard_id.to_be_bytes());
    out[SEG_NO_AT..SEG_CRC_AT].copy_from_slice(&id.segment_no.to_be_bytes());
    let crc = crc32fast::hash(&out[..SEG_CRC_AT]);
    out[SEG_CRC_AT..SEG_FIELDS_END].copy_from_slice(&crc.to_be_bytes());
    out
}

/// Parses and fully verifies a segment header from the first
/// [`SEGMENT_HEADER_LEN`] bytes of `buf` (which may be the whole file).
#[cfg(test)]
pub(crate) fn parse_segment_header(buf: &[u8]) -> Result<SegmentId, WalFormatError> {
    parse_segment_header_layout(buf).map(|(id, _)| id)
}

/// [`parse_segment_header`], with the batch layout its version gives.
pub(crate) fn parse_segment_header_layout(
    buf: &[u8],
) -> Result<(SegmentId, BatchLayout), WalFormatError> {
    // As a fixed-size array, the constant field ranges below are in range.
    let Some(h) = buf.first_chunk::<SEGMENT_HEADER_LEN>() else {
        return Err(WalFormatError::SegmentHeaderTruncated { have: buf.len() });
    };
    if h[SEG_MAGIC_AT..SEG_VERSION_AT] != SEGMENT_MAGIC {
        return Err(WalFormatError::BadSegmentMagic);
    }
    let stored = be_u32(h, SEG_CRC_AT);
    let computed = crc32fast::hash(&h[..SEG_CRC_AT]);
    if stored != computed {
        return Err(WalFormatError::SegmentHeaderChecksum { stored, computed });
    }
    let version = be_u32(h, SEG_VERSION_AT);
    let Some(layout) = BatchLayout::of_version(version) else {
        return Err(WalFormatError::UnsupportedFormatVersion(version));
    };
    if let Some(i) = h[SEG_FIELDS_END..].iter().position(|&b| b != 0) {
        return Err(WalFormatError::SegmentHeaderPadding {
            offset: SEG_FIELDS_END + i,
        });
    }
    let id = SegmentId {
        shard_id: be_u32(h, SEG_SHARD_AT),
        segment_no: be_u64(h, SEG_NO_AT),
    };
    Ok((id, layout))
}

// ---------------------------------------------------------------------------
// Batch encoding

/// Payload bytes of `records` (saturating; the encoder refuses oversize).
pub(crate) fn payload_len(records: &[Record]) -> usize {
    records
        .iter()
        .fold(0usize, |acc, r| acc.saturating_add(r.encoded_len()))
}

/// Total bytes a batch of `records` takes (header + payload), saturating.
#[cfg(test)]
pub(crate) fn batch_len(records: &[Record]) -> usize {
    BATCH_HEADER_LEN.saturating_add(payload_len(records))
}

/// Checks one record alone, before it is queued: a record refused here
/// would make a whole batch unencodable (and the writer poisoned).
pub(crate) fn check_record(record: &Record) -> Result<(), WalFormatError> {
    check_encodable(0, record)
}

/// Refuses what the decoder would not accept back.
fn check_encodable(index: usize, record: &Record) -> Result<(), WalFormatError> {
    let bad = |what| Err(WalFormatError::Unencodable { index, what });
    match record {
        Record::Put { key, version } => {
            if key.len() > u32::MAX as usize {
                return bad("key longer than u32::MAX bytes");
            }
            let entries = version.clock.entries();
            if entries.len() > u16::MAX as usize {
                return bad("clock has more than 65535 entries");
            }
            for (node, counter) in entries {
                if node.is_empty() || node.len() > u16::MAX as usize {
                    return bad("clock node id empty or longer than 65535 bytes");
                }
                if *counter == 0 || *counter > i64::MAX as u64 {
                    return bad("clock counter is zero or above i64::MAX");
                }
            }
            if version
                .value
                .as_ref()
                .is_some_and(|v| v.len() > u32::MAX as usize)
            {
                return bad("value longer than u32::MAX bytes");
            }
            if record.body_len() > u32::MAX as usize {
                return bad("record body longer than u32::MAX bytes");
            }
        }
    }
    Ok(())
}

/// Validates a batch and returns its payload length.
fn check_batch(
    first_seq: u64,
    records: &[Record],
    max_payload: usize,
) -> Result<usize, WalFormatError> {
    if records.is_empty() {
        return Err(WalFormatError::EmptyBatch);
    }
    let count = u32::try_from(records.len()).map_err(|_| WalFormatError::TooManyRecords {
        count: records.len(),
    })?;
    if first_seq.checked_add(u64::from(count)).is_none() {
        return Err(WalFormatError::SeqOverflow {
            first_seq,
            record_count: u64::from(count),
        });
    }
    for (i, r) in records.iter().enumerate() {
        check_encodable(i, r)?;
    }
    let len = payload_len(records);
    if len > max_payload.min(MAX_PAYLOAD_LEN) {
        return Err(WalFormatError::PayloadTooLarge {
            len,
            max: max_payload.min(MAX_PAYLOAD_LEN),
        });
    }
    Ok(len)
}

/// Checks that `records` form an encodable batch starting at `first_seq`
/// and returns the batch's length (header + payload): what
/// [`encode_batch_into`] will write, known before any buffer is allocated.
pub(crate) fn checked_batch_len(
    first_seq: u64,
    records: &[Record],
) -> Result<usize, WalFormatError> {
    Ok(BATCH_HEADER_LEN + check_batch(first_seq, records, MAX_PAYLOAD_LEN)?)
}

/// Appends one batch to `out` and returns its length. On error nothing is
/// appended. (The tests' convenience; the writer encodes in place with
/// [`encode_batch_into`].)
#[cfg(test)]
pub(crate) fn encode_batch(
    out: &mut Vec<u8>,
    segment: SegmentId,
    first_seq: u64,
    records: &[Record],
) -> Result<usize, WalFormatError> {
    encode_batch_limited(out, segment, first_seq, records, MAX_PAYLOAD_LEN)
}

#[cfg(test)]
fn encode_batch_limited(
    out: &mut Vec<u8>,
    segment: SegmentId,
    first_seq: u64,
    records: &[Record],
    max_payload: usize,
) -> Result<usize, WalFormatError> {
    let len = BATCH_HEADER_LEN + check_batch(first_seq, records, max_payload)?;
    let start = out.len();
    out.resize(start + len, 0);
    let (header, payload) = out[start..].split_first_chunk_mut().unwrap();
    write_batch(header, payload, segment, first_seq, records);
    Ok(len)
}

/// Writes one batch at the start of `buf` (for example a direct-I/O buffer
/// at the write position) and returns its length. Bytes after it are left
/// untouched; on error nothing is written.
pub(crate) fn encode_batch_into(
    buf: &mut [u8],
    segment: SegmentId,
    first_seq: u64,
    records: &[Record],
) -> Result<usize, WalFormatError> {
    let len = BATCH_HEADER_LEN + check_batch(first_seq, records, MAX_PAYLOAD_LEN)?;
    let have = buf.len();
    // `len` is at least the header's length, so the second split never fails.
    let Some((header, payload)) = buf
        .get_mut(..len)
        .and_then(<[u8]>::split_first_chunk_mut::<BATCH_HEADER_LEN>)
    else {
        return Err(WalFormatError::BufferTooSmall { need: len, have });
    };
    write_batch(header, payload, segment, first_seq, records);
    Ok(len)
}

/// `header` and `payload` are exactly the batch's; the batch was checked.
fn write_batch(
    header: &mut [u8; BATCH_HEADER_LEN],
    payload: &mut [u8],
    segment: SegmentId,
    first_seq: u64,
    records: &[Record],
) {
    let mut w: &mut [u8] = payload;
    for r in records {
        match r {
            Record::Put { key, version } => {
                w.put_u8(RECORD_PUT);
                w.put_u32(r.body_len() as u32);
                codec::encode_entry(&mut w, key, std::slice::from_ref(version));
            }
        }
    }
    debug_assert!(w.is_empty(), "record lengths disagree with their encoding");
    let payload_crc = crc32fast::hash(payload);
    let mut h: &mut [u8] = header.as_mut_slice();
    h.put_u32(BATCH_MAGIC);
    h.put_u32(segment.shard_id);
    h.put_u64(segment.segment_no);
    h.put_u64(first_seq);
    h.put_u32(records.len() as u32);
    h.put_u32(payload.len() as u32);
    h.put_u32(payload_crc);
    let header_crc = crc32fast::hash(&header[..B_HEADER_CRC_AT]);
    header[B_HEADER_CRC_AT..].copy_from_slice(&header_crc.to_be_bytes());
}

// ---------------------------------------------------------------------------
// Batch decoding

/// A batch header whose magic and crc verified. Its fields are what the
/// writer wrote; whether they make sense here (segment, sequence, count) is
/// for the caller to judge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchHeader {
    pub segment: SegmentId,
    pub first_seq: u64,
    pub record_count: u32,
    pub payload_len: u32,
    pub payload_crc: u32,
}

impl BatchHeader {
    /// Header plus payload.
    pub(crate) fn batch_len(&self) -> usize {
        BATCH_HEADER_LEN + self.payload_len as usize
    }

    /// The sequence number of the record after this batch's last; an error
    /// for a header that declares no records or overflows.
    pub(crate) fn next_seq(&self) -> Result<u64, WalFormatError> {
        if self.record_count == 0 {
            return Err(WalFormatError::ZeroRecordCount);
        }
        self.first_seq
            .checked_add(u64::from(self.record_count))
            .ok_or(WalFormatError::SeqOverflow {
                first_seq: self.first_seq,
                record_count: u64::from(self.record_count),
            })
    }
}

/// Parses a batch header at the start of `buf`, checking magic and crc.
///
/// Errors: [`WalFormatError::NoBatchMagic`] when the bytes are not a batch
/// header at all; [`WalFormatError::TruncatedHeader`] when fewer than
/// [`BATCH_HEADER_LEN`] bytes remain but they start like one;
/// [`WalFormatError::BadBatchMagic`] when only the magic is damaged;
/// [`WalFormatError::HeaderChecksum`] otherwise.
pub(crate) fn parse_batch_header(buf: &[u8]) -> Result<BatchHeader, WalFormatError> {
    let magic = BATCH_MAGIC.to_be_bytes();
    // As a fixed-size array, the constant field ranges below are in range.
    let Some(h) = buf.first_chunk::<BATCH_HEADER_LEN>() else {
        // Starts like a header: the bytes there agree with the magic.
        if !buf.is_empty() && buf.iter().zip(magic).all(|(&b, m)| b == m) {
            return Err(WalFormatError::TruncatedHeader { have: buf.len() });
        }
        return Err(WalFormatError::NoBatchMagic);
    };
    let stored = be_u32(h, B_HEADER_CRC_AT);
    if h[B_MAGIC_AT..B_SHARD_AT] != magic {
        // Our header with a damaged magic still verifies with it restored.
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&magic);
        hasher.update(&h[B_SHARD_AT..B_HEADER_CRC_AT]);
        if hasher.finalize() == stored {
            return Err(WalFormatError::BadBatchMagic);
        }
        return Err(WalFormatError::NoBatchMagic);
    }
    let computed = crc32fast::hash(&h[..B_HEADER_CRC_AT]);
    if stored != computed {
        return Err(WalFormatError::HeaderChecksum { stored, computed });
    }
    Ok(BatchHeader {
        segment: SegmentId {
            shard_id: be_u32(h, B_SHARD_AT),
            segment_no: be_u64(h, B_SEGMENT_AT),
        },
        first_seq: be_u64(h, B_FIRST_SEQ_AT),
        record_count: be_u32(h, B_COUNT_AT),
        payload_len: be_u32(h, B_PAYLOAD_LEN_AT),
        payload_crc: be_u32(h, B_PAYLOAD_CRC_AT),
    })
}

/// Verifies the payload crc, then decodes its records. `buf` starts at the
/// payload and may extend past it. Keys and values share one copy of the
/// payload.
pub(crate) fn decode_payload(
    header: &BatchHeader,
    buf: &[u8],
) -> Result<Vec<Record>, WalFormatError> {
    let need = header.payload_len as usize;
    let Some(payload) = buf.get(..need) else {
        return Err(WalFormatError::TruncatedPayload {
            need,
            have: buf.len(),
        });
    };
    let computed = crc32fast::hash(payload);
    if computed != header.payload_crc {
        return Err(WalFormatError::PayloadChecksum {
            stored: header.payload_crc,
            computed,
        });
    }
    decode_records(header.record_count, &Bytes::copy_from_slice(payload))
}

fn decode_records(count: u32, payload: &Bytes) -> Result<Vec<Record>, WalFormatError> {
    if count == 0 {
        return Err(WalFormatError::ZeroRecordCount);
    }
    let cap = (count as usize).min(payload.len() / RECORD_HEADER_LEN);
    let mut records = Vec::with_capacity(cap);
    let mut pos = 0usize;
    while pos < payload.len() {
        let index = records.len();
        if index >= count as usize {
            return Err(WalFormatError::RecordCountMismatch {
                header: count,
                found: index + 1,
            });
        }
        let have = payload.len() - pos;
        let Some(&[record_type, l0, l1, l2, l3]) = payload
            .get(pos..)
            .and_then(<[u8]>::first_chunk::<RECORD_HEADER_LEN>)
        else {
            return Err(WalFormatError::RecordTruncated {
                index,
                need: RECORD_HEADER_LEN,
                have,
            });
        };
        let body_len = u32::from_be_bytes([l0, l1, l2, l3]) as usize;
        if record_type != RECORD_PUT {
            return Err(WalFormatError::UnknownRecordType { index, record_type });
        }
        let body_at = pos + RECORD_HEADER_LEN;
        let have = payload.len() - body_at;
        if body_len > have {
            return Err(WalFormatError::RecordTruncated {
                index,
                need: RECORD_HEADER_LEN + body_len,
                have: have + RECORD_HEADER_LEN,
            });
        }
        let mut body = payload.slice(body_at..body_at + body_len);
        let (key, mut versions) = codec::decode_entry(&mut body)
            .map_err(|error| WalFormatError::BadRecord { index, error })?;
        if !body.is_empty() {
            return Err(WalFormatError::RecordTrailingBytes {
                index,
                extra: body.len(),
            });
        }
        let (Some(version), true) = (versions.pop(), versions.is_empty()) else {
            return Err(WalFormatError::RecordVersionCount {
                index,
                count: versions.len() + 1,
            });
        };
        records.push(Record::Put { key, version });
        pos = body_at + body_len;
    }
    if records.len() != count as usize {
        return Err(WalFormatError::RecordCountMismatch {
            header: count,
            found: records.len(),
        });
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::VectorClock;
    use proptest::prelude::*;

    fn put(key: &str, clock: &[(&str, i64)], value: Option<Vec<u8>>) -> Record {
        Record::Put {
            key: Bytes::copy_from_slice(key.as_bytes()),
            version: Version {
                clock: VectorClock::from_entries(
                    clock.iter().map(|(n, c)| (n.to_string(), *c)),
                    64,
                )
                .unwrap(),
                timestamp_ms: 1_700_000_000_000,
                value: value.map(Bytes::from),
            },
        }
    }

    const SEG: SegmentId = SegmentId {
        shard_id: 3,
        segment_no: 42,
    };

    #[test]
    fn segment_header_round_trips() {
        for id in [
            SEG,
            SegmentId {
                shard_id: 0,
                segment_no: 0,
            },
            SegmentId {
                shard_id: u32::MAX,
                segment_no: u64::MAX,
            },
        ] {
            let h = encode_segment_header(id);
            assert_eq!(&h[..8], b"PDBWAL\0\x01");
            assert_eq!(parse_segment_header(&h), Ok(id));
            // A whole file parses by its first 4096 bytes.
            let mut file = h.to_vec();
            file.extend_from_slice(&[0xAB; 100]);
            assert_eq!(parse_segment_header(&file), Ok(id));
        }
    }

    #[test]
    fn every_segment_header_byte_flip_is_detected() {
        let h = encode_segment_header(SEG);
        for i in 0..SEGMENT_HEADER_LEN {
            for bit in [0x01u8, 0x80, 0xFF] {
                let mut bad = h;
                bad[i] ^= bit;
                assert!(parse_segment_header(&bad).is_err(), "flip at {i}");
            }
        }
        for len in 0..SEGMENT_HEADER_LEN {
            assert_eq!(
                parse_segment_header(&h[..len]),
                Err(WalFormatError::SegmentHeaderTruncated { have: len })
            );
        }
    }

    #[test]
    fn segment_header_errors_name_the_problem() {
        let mut h = encode_segment_header(SEG);
        h[0] = b'X';
        assert_eq!(
            parse_segment_header(&h),
            Err(WalFormatError::BadSegmentMagic)
        );
        let mut h = encode_segment_header(SEG);
        h[100] = 1;
        assert_eq!(
            parse_segment_header(&h),
            Err(WalFormatError::SegmentHeaderPadding { offset: 100 })
        );
        // Both versions this build reads parse, with their layouts.
        for (v, layout) in [(1, BatchLayout::Packed), (2, BatchLayout::Aligned)] {
            let h = encode_segment_header_version(SEG, v);
            assert_eq!(parse_segment_header_layout(&h), Ok((SEG, layout)));
        }
        // A future version with a valid crc is refused by version.
        let mut h = encode_segment_header(SEG);
        h[8..12].copy_from_slice(&3u32.to_be_bytes());
        let crc = crc32fast::hash(&h[..24]);
        h[24..28].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(
            parse_segment_header(&h),
            Err(WalFormatError::UnsupportedFormatVersion(3))
        );
    }

    #[test]
    fn batch_layout_matches_the_table() {
        let records = vec![put("k", &[("n", 1)], Some(b"v".to_vec()))];
        let mut out = vec![0xEE]; // appended after existing bytes
        let len = encode_batch(&mut out, SEG, 7, &records).unwrap();
        assert_eq!(len, out.len() - 1);
        assert_eq!(len, batch_len(&records));
        let b = &out[1..];
        assert_eq!(be_u32(b, 0), BATCH_MAGIC);
        assert_eq!(be_u32(b, 4), 3);
        assert_eq!(be_u64(b, 8), 42);
        assert_eq!(be_u64(b, 16), 7);
        assert_eq!(be_u32(b, 24), 1);
        assert_eq!(be_u32(b, 28) as usize, len - BATCH_HEADER_LEN);
        assert_eq!(be_u32(b, 32), crc32fast::hash(&b[40..]));
        assert_eq!(be_u32(b, 36), crc32fast::hash(&b[..36]));
        assert_eq!(b[40], RECORD_PUT);
        assert_eq!(
            be_u32(b, 41) as usize,
            len - BATCH_HEADER_LEN - RECORD_HEADER_LEN
        );

        let h = parse_batch_header(b).unwrap();
        assert_eq!(h.segment, SEG);
        assert_eq!(h.first_seq, 7);
        assert_eq!(h.next_seq(), Ok(8));
        assert_eq!(h.batch_len(), len);
        assert_eq!(decode_payload(&h, &b[BATCH_HEADER_LEN..]).unwrap(), records);

        let mut buf = vec![0x55u8; len + 10];
        assert_eq!(encode_batch_into(&mut buf, SEG, 7, &records), Ok(len));
        assert_eq!(&buf[..len], b);
        assert!(buf[len..].iter().all(|&x| x == 0x55));
        assert_eq!(
            encode_batch_into(&mut buf[..len - 1], SEG, 7, &records),
            Err(WalFormatError::BufferTooSmall {
                need: len,
                have: len - 1
            })
        );
    }

    #[test]
    fn encoder_refuses_what_the_decoder_would_not_accept() {
        let mut out = Vec::new();
        assert_eq!(
            encode_batch(&mut out, SEG, 0, &[]),
            Err(WalFormatError::EmptyBatch)
        );
        let one = [put("k", &[("n", 1)], None)];
        assert!(matches!(
            encode_batch(&mut out, SEG, u64::MAX, &one),
            Err(WalFormatError::SeqOverflow { .. })
        ));
        assert!(encode_batch(&mut out, SEG, u64::MAX - 1, &one).is_ok());
        out.clear();

        // A saturated counter (u64::MAX) encodes but codec refuses it back.
        let mut clock = VectorClock::from_entries([("n".to_string(), i64::MAX)], 64).unwrap();
        clock.increment("n");
        let rec = Record::Put {
            key: Bytes::from_static(b"k"),
            version: Version {
                clock,
                timestamp_ms: 0,
                value: None,
            },
        };
        assert!(matches!(
            encode_batch(&mut out, SEG, 0, &[one[0].clone(), rec]),
            Err(WalFormatError::Unencodable { index: 1, .. })
        ));
        assert!(out.is_empty());

        let big = [put("k", &[("n", 1)], Some(vec![0; 1000]))];
        let p = payload_len(&big);
        assert!(matches!(
            encode_batch_limited(&mut out, SEG, 0, &big, p - 1),
            Err(WalFormatError::PayloadTooLarge { .. })
        ));
        assert!(out.is_empty());
        assert_eq!(
            encode_batch_limited(&mut out, SEG, 0, &big, p),
            Ok(p + BATCH_HEADER_LEN)
        );
    }

    /// Builds a batch whose crcs are valid around an arbitrary payload.
    fn forge(first_seq: u64, count: u32, payload: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.put_u32(BATCH_MAGIC);
        b.put_u32(SEG.shard_id);
        b.put_u64(SEG.segment_no);
        b.put_u64(first_seq);
        b.put_u32(count);
        b.put_u32(payload.len() as u32);
        b.put_u32(crc32fast::hash(payload));
        let crc = crc32fast::hash(&b);
        b.put_u32(crc);
        b.extend_from_slice(payload);
        b
    }

    fn decode(batch: &[u8]) -> Result<Vec<Record>, WalFormatError> {
        let h = parse_batch_header(batch)?;
        h.next_seq()?;
        decode_payload(&h, &batch[BATCH_HEADER_LEN..])
    }

    #[test]
    fn checksummed_but_invalid_payloads_are_refused() {
        let mut good = Vec::new();
        encode_batch(&mut good, SEG, 0, &[put("k", &[("n", 1)], None)]).unwrap();
        let payload = good[BATCH_HEADER_LEN..].to_vec();

        assert_eq!(
            decode(&forge(0, 0, &payload)),
            Err(WalFormatError::ZeroRecordCount)
        );
        assert_eq!(
            decode(&forge(0, 2, &payload)),
            Err(WalFormatError::RecordCountMismatch {
                header: 2,
                found: 1
            })
        );
        let mut two = payload.clone();
        two.extend_from_slice(&payload);
        assert_eq!(
            decode(&forge(0, 1, &two)),
            Err(WalFormatError::RecordCountMismatch {
                header: 1,
                found: 2
            })
        );
        let mut p = payload.clone();
        p[0] = 2;
        assert_eq!(
            decode(&forge(0, 1, &p)),
            Err(WalFormatError::UnknownRecordType {
                index: 0,
                record_type: 2
            })
        );
        let mut p = payload.clone();
        p.push(0);
        let n = be_u32(&p, 1) + 1;
        p[1..5].copy_from_slice(&n.to_be_bytes());
        assert_eq!(
            decode(&forge(0, 1, &p)),
            Err(WalFormatError::RecordTrailingBytes { index: 0, extra: 1 })
        );
        assert!(matches!(
            decode(&forge(0, 1, &payload[..payload.len() - 1])),
            Err(WalFormatError::RecordTruncated { index: 0, .. })
        ));
        assert!(matches!(
            decode(&forge(0, 1, &payload[..3])),
            Err(WalFormatError::RecordTruncated { index: 0, .. })
        ));
        // Two versions in one entry.
        let Record::Put { key, version } = put("k", &[("n", 1)], None);
        let mut body = Vec::new();
        codec::encode_entry(&mut body, &key, &[version.clone(), version]);
        let mut p = vec![RECORD_PUT];
        p.put_u32(body.len() as u32);
        p.extend_from_slice(&body);
        assert_eq!(
            decode(&forge(0, 1, &p)),
            Err(WalFormatError::RecordVersionCount { index: 0, count: 2 })
        );
        // A bad entry inside.
        let mut p = payload.clone();
        // The tombstone's flags byte: then ts 8, entries 2, node_len 2, "n", counter 8.
        let at = p.len() - 22;
        assert_eq!(p[at], 1);
        p[at] = 0x80;
        assert!(matches!(
            decode(&forge(0, 1, &p)),
            Err(WalFormatError::BadRecord { index: 0, .. })
        ));
        for e in [
            WalFormatError::ZeroRecordCount,
            WalFormatError::UnknownRecordType {
                index: 0,
                record_type: 9,
            },
        ] {
            assert!(!e.may_be_torn_write());
            assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn header_damage_is_classified() {
        let mut b = Vec::new();
        encode_batch(&mut b, SEG, 0, &[put("k", &[("n", 1)], None)]).unwrap();
        for i in 0..4 {
            let mut x = b.clone();
            x[i] ^= 0x10;
            assert_eq!(parse_batch_header(&x), Err(WalFormatError::BadBatchMagic));
            x[10] ^= 1;
            assert_eq!(parse_batch_header(&x), Err(WalFormatError::NoBatchMagic));
        }
        for i in 4..BATCH_HEADER_LEN {
            let mut x = b.clone();
            x[i] ^= 0x01;
            assert!(matches!(
                parse_batch_header(&x),
                Err(WalFormatError::HeaderChecksum { .. })
            ));
        }
        for n in 1..BATCH_HEADER_LEN {
            assert_eq!(
                parse_batch_header(&b[..n]),
                Err(WalFormatError::TruncatedHeader { have: n })
            );
        }
        assert_eq!(parse_batch_header(&[]), Err(WalFormatError::NoBatchMagic));
        assert_eq!(
            parse_batch_header(&[0; 10]),
            Err(WalFormatError::NoBatchMagic)
        );
        assert_eq!(
            parse_batch_header(&[0; 100]),
            Err(WalFormatError::NoBatchMagic)
        );
    }

    fn arb_record() -> impl Strategy<Value = Record> {
        (
            proptest::collection::vec(any::<u8>(), 0..24),
            proptest::collection::btree_map("[a-z]{1,6}", 1i64..i64::MAX, 0..4),
            any::<i64>(),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
        )
            .prop_map(|(key, clock, ts, value)| Record::Put {
                key: Bytes::from(key),
                version: Version {
                    clock: VectorClock::from_entries(clock, 64).unwrap(),
                    timestamp_ms: ts,
                    value: value.map(Bytes::from),
                },
            })
    }

    proptest! {
        #[test]
        fn batches_round_trip(
            records in proptest::collection::vec(arb_record(), 1..8),
            first_seq in 0u64..u64::MAX / 2,
            shard_id in any::<u32>(),
            segment_no in any::<u64>(),
        ) {
            let seg = SegmentId { shard_id, segment_no };
            let mut out = Vec::new();
            let len = encode_batch(&mut out, seg, first_seq, &records).unwrap();
            prop_assert_eq!(len, batch_len(&records));
            let h = parse_batch_header(&out).unwrap();
            prop_assert_eq!(h.segment, seg);
            prop_assert_eq!(h.first_seq, first_seq);
            prop_assert_eq!(h.next_seq().unwrap(), first_seq + records.len() as u64);
            prop_assert_eq!(decode_payload(&h, &out[BATCH_HEADER_LEN..]).unwrap(), records);
        }

        #[test]
        fn garbage_never_panics_the_decoders(
            raw in proptest::collection::vec(any::<u8>(), 0..200),
            count in any::<u32>(),
        ) {
            let _ = parse_segment_header(&raw);
            let _ = parse_batch_header(&raw);
            let _ = decode_records(count, &Bytes::from(raw.clone()));
            // Garbage behind valid crcs reaches the record decoder.
            let _ = decode(&forge(0, count, &raw));
        }
    }
}
