//! Fuzz targets of the WAL: one batch (header and payload) and the scan of
//! a whole segment file.
//!
//! Properties: decoded records re-encode (as a batch of the same segment
//! and first sequence number) to a batch of the same length whose records
//! decode back equal; a scan's batches are contiguous in the file and in
//! sequence numbers, end at `valid_end`, and its tail offsets agree with it.

use super::checksums::{put_crc, u32_at};
use crate::storage::wal::format::{
    decode_payload, encode_batch_into, parse_batch_header, parse_segment_header_layout,
    BatchLayout, Record, SegmentId, BATCH_HEADER_LEN, BATCH_MAGIC, SEGMENT_HEADER_LEN,
};
use crate::storage::wal::scan::{scan_segment_layout, TailState};

/// One batch at the start of `data`, as given and with its checksums
/// recomputed.
pub fn wal_batch(data: &[u8]) {
    let mut fixed = data.to_vec();
    fix_batch(&mut fixed, 0);
    for raw in [data, &fixed[..]] {
        let Ok(header) = parse_batch_header(raw) else {
            continue;
        };
        // The scan refuses a header whose sequence numbers overflow before
        // it decodes the payload; so does the encoder.
        if header.next_seq().is_err() {
            continue;
        }
        let payload = raw.get(BATCH_HEADER_LEN..).unwrap_or_default();
        if let Ok(records) = decode_payload(&header, payload) {
            assert_eq!(records.len(), header.record_count as usize, "record count");
            check_reencode(
                header.segment,
                header.first_seq,
                &records,
                header.batch_len(),
            );
        }
    }
}

/// A whole segment file, as given and with its checksums recomputed.
pub fn wal_scan(data: &[u8]) {
    let mut fixed = data.to_vec();
    fix_segment(&mut fixed);
    for raw in [data, &fixed[..]] {
        check_scan(raw);
    }
}

fn check_scan(data: &[u8]) {
    // Replay checks the header itself; scan whatever segment it names, in
    // both layouts.
    let (segment, _) = parse_segment_header_layout(data).unwrap_or((
        SegmentId {
            shard_id: u32_at(data, 12).unwrap_or(0),
            segment_no: super::checksums::u64_at(data, 16).unwrap_or(0),
        },
        BatchLayout::Packed,
    ));
    let min_seq = super::checksums::u64_at(data, SEGMENT_HEADER_LEN + 16).unwrap_or(0);
    for (min_seq, layout) in [
        (0, BatchLayout::Packed),
        (min_seq, BatchLayout::Packed),
        (0, BatchLayout::Aligned),
        (min_seq, BatchLayout::Aligned),
    ] {
        let out = scan_segment_layout(data, segment, layout, 0, min_seq);
        let mut pos = SEGMENT_HEADER_LEN;
        let mut seq = out.batches.first().map_or(min_seq, |b| b.first_seq);
        assert!(seq >= min_seq, "first batch below min_seq");
        for b in &out.batches {
            assert_eq!(b.offset, pos, "batches are not where the layout puts them");
            assert_eq!(b.first_seq, seq, "sequence numbers are not contiguous");
            assert!(b.end() <= data.len(), "batch past the end of the data");
            check_reencode(segment, b.first_seq, &b.records, b.len);
            pos = layout.next_start(b.end());
            seq = b.next_seq();
        }
        assert_eq!(out.valid_end, pos, "valid_end is not after the last batch");
        assert_eq!(out.next_seq, seq, "next_seq");
        match out.tail {
            TailState::Clean(_) => {}
            TailState::Torn { offset, .. } => assert_eq!(offset, pos, "torn offset"),
            TailState::Corrupt {
                offset,
                later_batch,
                ..
            } => {
                assert_eq!(offset, pos, "corrupt offset");
                if let Some(later) = later_batch {
                    assert!(later >= pos && later < data.len(), "later batch offset");
                }
            }
        }
    }
}

/// Re-encodes `records` as a batch and decodes it back.
fn check_reencode(segment: SegmentId, first_seq: u64, records: &[Record], len: usize) {
    let mut buf = vec![0u8; len];
    let n = match encode_batch_into(&mut buf, segment, first_seq, records) {
        Ok(n) => n,
        Err(e) => panic!("decoded records do not re-encode: {e}"),
    };
    assert_eq!(n, len, "re-encoded batch length");
    let header = match parse_batch_header(&buf) {
        Ok(h) => h,
        Err(e) => panic!("re-encoded batch header does not parse: {e}"),
    };
    let payload = buf.get(BATCH_HEADER_LEN..).unwrap_or_default();
    match decode_payload(&header, payload) {
        Ok(back) => assert_eq!(back, records, "batch round trip"),
        Err(e) => panic!("re-encoded batch does not decode: {e}"),
    }
}

/// Recomputes the segment header's crc, then the crcs of the batches that
/// follow one another from the end of the header.
fn fix_segment(data: &mut [u8]) {
    put_crc(data, 24, 0, 24);
    let mut pos = SEGMENT_HEADER_LEN;
    while let Some(next) = fix_batch(data, pos) {
        pos = next;
    }
}

/// Recomputes the crcs of a batch at `pos` that starts with the magic;
/// returns where the next batch would start when its payload is inside
/// `data`.
fn fix_batch(data: &mut [u8], pos: usize) -> Option<usize> {
    if u32_at(data, pos)? != BATCH_MAGIC {
        return None;
    }
    let payload_len = u32_at(data, pos + 28)? as usize;
    let start = pos + BATCH_HEADER_LEN;
    let end = start.checked_add(payload_len)?;
    let fits = end <= data.len();
    if fits {
        put_crc(data, pos + 32, start, end);
    }
    put_crc(data, pos + 36, pos, pos + 36);
    fits.then_some(end)
}
