//! Sequential scan of one WAL segment for replay: which batches are valid,
//! where the log ends, and whether that end is clean, torn or corrupt.
//!
//! Owns the decision recovery acts on. Pure: it reads a byte slice holding
//! the whole segment file (header included, so every offset is a file
//! offset) and never panics on any input.
//!
//! # The scan
//!
//! From `start_offset` (at least [`SEGMENT_HEADER_LEN`]) batches are decoded
//! one after another, each where the segment's [`BatchLayout`] puts it
//! (right after the previous one in version 1, on the next 4096-byte
//! boundary in version 2). Each must name this segment ([`SegmentId`]: shard and
//! segment number) and continue the sequence: its `first_seq` equals the
//! previous batch's `first_seq + record_count`; the first batch of the scan
//! may start anywhere at or above `min_seq` (earlier segments may be gone, so
//! the caller checks continuity across segments with
//! [`ScanOutcome::batches`]`[0].first_seq`). The scan stops at the first
//! position `p` that does not hold such a batch; `valid_end = p`.
//!
//! # The tail rule
//!
//! What stopped the scan at `p` falls in one of three kinds:
//!
//! 1. *Clean ends* ([`CleanEnd`]): end of data; zeros; bytes that are not a
//!    batch header; a well-formed batch of another segment (old contents of a
//!    recycled file); a well-formed batch of this segment whose `first_seq`
//!    is below the expected one (stale: a correct writer never writes one,
//!    since sequence numbers only grow within a segment and segment numbers
//!    are never reused, so it can only be older contents, like a batch of
//!    another segment).
//! 2. *Possibly torn* ([`WalFormatError::may_be_torn_write`]): a header cut
//!    short by the end of data, a header whose crc fails (or that verifies
//!    only with its magic restored), a payload cut short, a payload whose crc
//!    fails. A partially persisted last write looks exactly like this.
//! 3. *Corrupt on its own*: the checksums verify, so these bytes are what the
//!    writer wrote, yet they are wrong: a [`WalFormatError::SequenceGap`]
//!    (`first_seq` above the expected one: acknowledged records are missing),
//!    a header declaring zero records or overflowing the sequence, records
//!    that do not decode. A torn write cannot produce them (short of a crc
//!    collision) and dropping them could drop acknowledged writes, so they
//!    are always [`TailState::Corrupt`].
//!
//! For kinds 1 (except end of data) and 2, the rest of the data after `p` is
//! searched byte by byte for *evidence*: a batch header with the magic and a
//! valid header crc, naming this segment, whose `first_seq` is at least the
//! next expected sequence number. Evidence means the log went on past `p`,
//! so whatever stopped the scan is damage before the tail:
//! [`TailState::Corrupt`], and recovery must stop and name the file and
//! offset. Without evidence, kind 1 is [`TailState::Clean`] and kind 2 is
//! [`TailState::Torn`]: a partially written last batch, which recovery
//! truncates (it was never acknowledged, since a write is answered only after
//! its batch's durable write completes, and group commit has at most one
//! batch in flight).
//!
//! Both Clean and Torn mean the same to replay: the log is the batches
//! returned and ends at `valid_end`. Torn is worth a warning; Corrupt is not
//! recoverable without an operator.
//!
//! # Limits, and what the writer should do
//!
//! Evidence is a header alone (a later batch whose payload is damaged too
//! still proves the log went on). User values are arbitrary bytes, so a value
//! could hold a forged header of this segment; the worst it can cause is a
//! false Corrupt (start-up refuses), never silently dropped or invented
//! records, and only where the scan stops inside leftovers of a torn batch.
//! To keep even that from happening, the writer should start a new segment
//! after recovery rather than append to a replayed segment in place.

use super::format::{
    decode_payload, parse_batch_header, BatchLayout, CleanEnd, Record, SegmentId, WalFormatError,
    BATCH_HEADER_LEN, BATCH_MAGIC, SEGMENT_HEADER_LEN,
};

/// One valid batch found by the scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecodedBatch {
    /// File offset of the batch header.
    pub offset: usize,
    /// Header plus payload bytes.
    pub len: usize,
    /// Sequence number of `records[0]`; record `i` has `first_seq + i`.
    pub first_seq: u64,
    pub records: Vec<Record>,
}

impl DecodedBatch {
    /// File offset just past the batch.
    pub(crate) fn end(&self) -> usize {
        self.offset + self.len
    }

    /// Sequence number of the first record after this batch.
    pub(crate) fn next_seq(&self) -> u64 {
        self.first_seq.saturating_add(self.records.len() as u64)
    }

    /// Records with their sequence numbers.
    #[cfg(test)]
    pub(crate) fn sequenced(&self) -> impl Iterator<Item = (u64, &Record)> {
        (self.first_seq..).zip(self.records.iter())
    }
}

/// How the segment ends after `valid_end`. See the module's tail rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TailState {
    /// Nothing of this segment follows: the log ends here.
    Clean(CleanEnd),
    /// The batch at `offset` is partially written and nothing of this segment
    /// follows it: truncate at `offset` (= `valid_end`).
    Torn {
        offset: usize,
        reason: WalFormatError,
    },
    /// The batch at `offset` is damaged and the log went on past it (a valid
    /// header of this segment at `later_batch`), or it is wrong despite valid
    /// checksums (`later_batch` is `None`). Recovery must stop.
    Corrupt {
        offset: usize,
        reason: WalFormatError,
        later_batch: Option<usize>,
    },
}

/// Result of scanning one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScanOutcome {
    /// Valid batches in file order, sequence numbers contiguous.
    pub batches: Vec<DecodedBatch>,
    /// File offset just past the last valid batch (the scan's start when
    /// there is none): where the log ends.
    pub valid_end: usize,
    /// Sequence number the next record would get: the last batch's
    /// `next_seq`, or `min_seq` when there is no batch.
    pub next_seq: u64,
    pub tail: TailState,
}

#[cfg(test)]
impl ScanOutcome {
    pub(crate) fn is_corrupt(&self) -> bool {
        matches!(self.tail, TailState::Corrupt { .. })
    }

    /// Every record with its sequence number, in log order.
    pub(crate) fn records(&self) -> impl Iterator<Item = (u64, &Record)> {
        self.batches.iter().flat_map(DecodedBatch::sequenced)
    }
}

/// Why the sequential decode stopped.
enum Stop {
    Clean(CleanEnd),
    MaybeTorn(WalFormatError),
    Corrupt(WalFormatError, Option<usize>),
}

/// Parses the segment header at the start of `data` (the whole file), then
/// scans its batches from [`SEGMENT_HEADER_LEN`]. The caller checks the
/// returned id against the file's name and shard. (Replay checks the header
/// itself, to name the file in its error; the tests scan whole files.)
#[cfg(test)]
pub(crate) fn scan_file(
    data: &[u8],
    min_seq: u64,
) -> Result<(SegmentId, ScanOutcome), WalFormatError> {
    let id = super::format::parse_segment_header(data)?;
    Ok((id, scan_segment(data, id, SEGMENT_HEADER_LEN, min_seq)))
}

/// Scans the batches of `segment` in `data` (the whole segment file) from
/// `start_offset` (raised to [`SEGMENT_HEADER_LEN`] if below it). The first
/// batch must start at or above `min_seq`; batches are packed (format
/// version 1). The segment header itself is not
/// checked here (see [`scan_file`]).
#[cfg(test)]
pub(crate) fn scan_segment(
    data: &[u8],
    segment: SegmentId,
    start_offset: usize,
    min_seq: u64,
) -> ScanOutcome {
    scan_segment_layout(data, segment, BatchLayout::Packed, start_offset, min_seq)
}

/// [`scan_segment`] for a segment whose batches lie as `layout` says.
pub(crate) fn scan_segment_layout(
    data: &[u8],
    segment: SegmentId,
    layout: BatchLayout,
    start_offset: usize,
    min_seq: u64,
) -> ScanOutcome {
    let mut pos = start_offset.max(SEGMENT_HEADER_LEN);
    let mut next_seq = min_seq;
    let mut batches: Vec<DecodedBatch> = Vec::new();
    let stop = loop {
        match next_batch(data, pos, segment, next_seq, batches.is_empty()) {
            Ok(batch) => {
                pos = layout.next_start(batch.end());
                next_seq = batch.next_seq();
                batches.push(batch);
            }
            Err(stop) => break stop,
        }
    };
    let evidence = || find_later_batch(data, pos.saturating_add(1), segment, next_seq);
    let tail = match stop {
        Stop::Clean(CleanEnd::EndOfData) => TailState::Clean(CleanEnd::EndOfData),
        Stop::Clean(end) => match evidence() {
            Some(at) => TailState::Corrupt {
                offset: pos,
                reason: WalFormatError::NotNextBatch(end),
                later_batch: Some(at),
            },
            None => TailState::Clean(end),
        },
        Stop::MaybeTorn(reason) => match evidence() {
            Some(at) => TailState::Corrupt {
                offset: pos,
                reason,
                later_batch: Some(at),
            },
            None => TailState::Torn {
                offset: pos,
                reason,
            },
        },
        Stop::Corrupt(reason, later_batch) => TailState::Corrupt {
            offset: pos,
            reason,
            later_batch,
        },
    };
    ScanOutcome {
        batches,
        valid_end: pos,
        next_seq,
        tail,
    }
}

/// Decodes the batch at `pos` if it is the next one of `segment`.
fn next_batch(
    data: &[u8],
    pos: usize,
    segment: SegmentId,
    next_seq: u64,
    first: bool,
) -> Result<DecodedBatch, Stop> {
    let rest = match data.get(pos..) {
        Some(rest) if !rest.is_empty() => rest,
        _ => return Err(Stop::Clean(CleanEnd::EndOfData)),
    };
    let header = match parse_batch_header(rest) {
        Ok(h) => h,
        Err(WalFormatError::NoBatchMagic) => {
            let window = rest.get(..BATCH_HEADER_LEN).unwrap_or(rest);
            return Err(Stop::Clean(if window.iter().all(|&b| b == 0) {
                CleanEnd::Zeroed
            } else {
                CleanEnd::NotABatch
            }));
        }
        Err(e) => return Err(Stop::MaybeTorn(e)),
    };
    if header.segment != segment {
        return Err(Stop::Clean(CleanEnd::OtherSegment(header.segment)));
    }
    if header.first_seq < next_seq {
        return Err(Stop::Clean(CleanEnd::StaleSequence {
            expected: next_seq,
            found: header.first_seq,
        }));
    }
    if header.first_seq > next_seq && !first {
        return Err(Stop::Corrupt(
            WalFormatError::SequenceGap {
                expected: next_seq,
                found: header.first_seq,
            },
            Some(pos),
        ));
    }
    header.next_seq().map_err(|e| Stop::Corrupt(e, None))?;
    let payload = rest.get(BATCH_HEADER_LEN..).unwrap_or(&[]);
    let records = decode_payload(&header, payload).map_err(|e| {
        if e.may_be_torn_write() {
            Stop::MaybeTorn(e)
        } else {
            Stop::Corrupt(e, None)
        }
    })?;
    Ok(DecodedBatch {
        offset: pos,
        len: header.batch_len(),
        first_seq: header.first_seq,
        records,
    })
}

/// True when some batch header of `segment` verifies anywhere past the
/// segment header: the segment was used (whatever its header says).
pub(crate) fn holds_batch_of(data: &[u8], segment: SegmentId) -> bool {
    find_later_batch(data, SEGMENT_HEADER_LEN, segment, 0).is_some()
}

/// Offset of the first batch header at or after `from` that verifies, names
/// `segment` and starts at or above `next_seq`.
fn find_later_batch(data: &[u8], from: usize, segment: SegmentId, next_seq: u64) -> Option<usize> {
    let magic = BATCH_MAGIC.to_be_bytes();
    let mut i = from;
    while let Some(window) = data.get(i..) {
        let at = i + window.iter().position(|&b| b == magic[0])?;
        let candidate = data.get(at..at + BATCH_HEADER_LEN)?;
        if candidate.starts_with(&magic) {
            if let Ok(h) = parse_batch_header(candidate) {
                if h.segment == segment && h.first_seq >= next_seq {
                    return Some(at);
                }
            }
        }
        i = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::format::{encode_batch, encode_segment_header, Record};
    use super::*;
    use crate::model::{VectorClock, Version};
    use bytes::Bytes;
    use proptest::prelude::*;

    const SEG: SegmentId = SegmentId {
        shard_id: 1,
        segment_no: 9,
    };

    fn put(key: &str, counter: i64, value: Option<Vec<u8>>) -> Record {
        Record::Put {
            key: Bytes::copy_from_slice(key.as_bytes()),
            version: Version {
                clock: VectorClock::from_entries(
                    [("node-a".to_string(), counter), ("node-b".to_string(), 2)],
                    64,
                )
                .unwrap(),
                timestamp_ms: 1_700_000_000_000 + counter,
                value: value.map(Bytes::from),
            },
        }
    }

    /// Small batches of values and tombstones.
    fn small_batches(n: usize) -> Vec<Vec<Record>> {
        (0..n)
            .map(|b| {
                (0..=b % 3)
                    .map(|i| {
                        let v = (i % 2 == 0).then(|| format!("value-{b}-{i}").into_bytes());
                        put(&format!("key-{b}-{i}"), (b * 10 + i + 1) as i64, v)
                    })
                    .collect()
            })
            .collect()
    }

    /// A segment file: header, then `batches` from `first_seq`. Returns the
    /// data and each batch's (offset, end).
    fn build(
        seg: SegmentId,
        first_seq: u64,
        batches: &[Vec<Record>],
    ) -> (Vec<u8>, Vec<(usize, usize)>) {
        let mut data = encode_segment_header(seg).to_vec();
        let extents = append(&mut data, seg, first_seq, batches);
        (data, extents)
    }

    fn append(
        data: &mut Vec<u8>,
        seg: SegmentId,
        mut seq: u64,
        batches: &[Vec<Record>],
    ) -> Vec<(usize, usize)> {
        let mut extents = Vec::new();
        for b in batches {
            let start = data.len();
            encode_batch(data, seg, seq, b).unwrap();
            extents.push((start, data.len()));
            seq += b.len() as u64;
        }
        extents
    }

    fn assert_prefix(out: &ScanOutcome, batches: &[Vec<Record>], first_seq: u64, n: usize) {
        assert_eq!(out.batches.len(), n, "tail {:?}", out.tail);
        let mut seq = first_seq;
        for (got, want) in out.batches.iter().zip(batches) {
            assert_eq!(got.first_seq, seq);
            assert_eq!(&got.records, want);
            seq += want.len() as u64;
        }
        assert_eq!(out.next_seq, seq);
    }

    #[test]
    fn batches_round_trip() {
        let mut batches = small_batches(5);
        batches.push(vec![
            put("large", 3, Some(vec![0xA5; 300 * 1024])),
            put("tomb", 4, None),
            put("empty", 5, Some(Vec::new())),
        ]);
        batches.push(vec![put("", 6, None)]);
        let (data, extents) = build(SEG, 100, &batches);
        let out = scan_segment(&data, SEG, 0, 100);
        assert_prefix(&out, &batches, 100, batches.len());
        assert_eq!(out.valid_end, data.len());
        assert_eq!(out.tail, TailState::Clean(CleanEnd::EndOfData));
        for (b, (start, end)) in out.batches.iter().zip(&extents) {
            assert_eq!((b.offset, b.end()), (*start, *end));
        }
        let seqs: Vec<u64> = out.records().map(|(s, _)| s).collect();
        assert_eq!(seqs, (100..out.next_seq).collect::<Vec<_>>());

        let (id, again) = scan_file(&data, 0).unwrap();
        assert_eq!(id, SEG);
        assert_eq!(again, out);

        // Resuming mid-segment.
        let out = scan_segment(&data, SEG, extents[2].0, 0);
        assert_eq!(out.batches.len(), batches.len() - 2);
        assert_eq!(out.batches[0].offset, extents[2].0);
    }

    #[test]
    fn empty_segment_is_clean() {
        let mut data = encode_segment_header(SEG).to_vec();
        let out = scan_segment(&data, SEG, 0, 5);
        assert_eq!(out.batches, vec![]);
        assert_eq!(out.valid_end, SEGMENT_HEADER_LEN);
        assert_eq!(out.next_seq, 5);
        assert_eq!(out.tail, TailState::Clean(CleanEnd::EndOfData));
        data.resize(1 << 20, 0);
        let out = scan_segment(&data, SEG, 0, 5);
        assert_eq!(out.tail, TailState::Clean(CleanEnd::Zeroed));
        // A start beyond the data is an empty scan there.
        let out = scan_segment(&data[..10], SEG, 0, 5);
        assert_eq!(out.valid_end, SEGMENT_HEADER_LEN);
        assert_eq!(out.tail, TailState::Clean(CleanEnd::EndOfData));
        assert!(scan_file(&data[..100], 0).is_err());
    }

    #[test]
    fn zero_padded_tail_is_clean() {
        let batches = small_batches(4);
        let (mut data, _) = build(SEG, 1, &batches);
        let end = data.len();
        // Padding to the block end, then a preallocated zero region.
        data.resize(end.next_multiple_of(4096) + 64 * 1024, 0);
        let out = scan_segment(&data, SEG, 0, 1);
        assert_prefix(&out, &batches, 1, 4);
        assert_eq!(out.valid_end, end);
        assert_eq!(out.tail, TailState::Clean(CleanEnd::Zeroed));
        // A handful of zeros at the very end of the data too.
        let out = scan_segment(&data[..end + 7], SEG, 0, 1);
        assert_eq!(out.tail, TailState::Clean(CleanEnd::Zeroed));
    }

    #[test]
    fn torn_tail_at_every_length() {
        let batches = small_batches(4);
        let (data, extents) = build(SEG, 1, &batches);
        let (last_start, last_end) = extents[3];
        for cut in last_start..=last_end {
            // Data ending at the cut (an appended file).
            let out = scan_segment(&data[..cut], SEG, 0, 1);
            if cut == last_end {
                assert_prefix(&out, &batches, 1, 4);
                assert_eq!(out.tail, TailState::Clean(CleanEnd::EndOfData));
                continue;
            }
            assert_prefix(&out, &batches, 1, 3);
            assert_eq!(out.valid_end, last_start);
            if cut == last_start {
                assert_eq!(out.tail, TailState::Clean(CleanEnd::EndOfData));
            } else {
                assert!(
                    matches!(out.tail, TailState::Torn { offset, .. } if offset == last_start),
                    "cut {cut}: {:?}",
                    out.tail
                );
            }

            // Preallocated file: zeros after the cut.
            let mut z = data.clone();
            z.truncate(cut);
            z.resize(last_end + 8192, 0);
            let out = scan_segment(&z, SEG, 0, 1);
            if z[..last_end] == data[..] {
                // Only trailing zero bytes were "lost": the batch is whole.
                assert_prefix(&out, &batches, 1, 4);
                assert_eq!(out.tail, TailState::Clean(CleanEnd::Zeroed));
                continue;
            }
            assert_prefix(&out, &batches, 1, 3);
            if cut == last_start {
                assert_eq!(out.tail, TailState::Clean(CleanEnd::Zeroed));
            } else if cut < last_start + 4 {
                // The magic never fully landed: indistinguishable from old
                // bytes, and replayed the same way.
                assert_eq!(out.tail, TailState::Clean(CleanEnd::NotABatch));
            } else {
                assert!(
                    matches!(out.tail, TailState::Torn { offset, .. } if offset == last_start),
                    "zero-filled cut {cut}: {:?}",
                    out.tail
                );
            }
        }
    }

    #[test]
    fn every_byte_flip_in_a_batch_is_detected() {
        let batches = small_batches(4);
        let (mut data, extents) = build(SEG, 1, &batches);
        data.resize(data.len() + 4096, 0);
        let last = extents.len() - 1;
        for (k, &(start, end)) in extents.iter().enumerate() {
            for i in start..end {
                for bit in [0x01u8, 0xFF] {
                    let mut d = data.clone();
                    d[i] ^= bit;
                    let out = scan_segment(&d, SEG, 0, 1);
                    // Never a wrong record: exactly the batches before k.
                    assert_prefix(&out, &batches, 1, k);
                    assert_eq!(out.valid_end, start);
                    if k == last {
                        assert!(
                            matches!(&out.tail, TailState::Torn { offset, reason }
                                if *offset == start && reason.may_be_torn_write()),
                            "flip at {i}: {:?}",
                            out.tail
                        );
                    } else {
                        assert!(
                            matches!(&out.tail, TailState::Corrupt { offset, later_batch: Some(at), .. }
                                if *offset == start && *at == extents[k + 1].0),
                            "flip at {i} in batch {k}: {:?}",
                            out.tail
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn damage_before_zeros_with_later_batches_is_corrupt() {
        // A zeroed block (a lost write) in the middle of the log.
        let batches = small_batches(6);
        let (mut data, extents) = build(SEG, 1, &batches);
        let (s, e) = extents[2];
        data[s..e].fill(0);
        let out = scan_segment(&data, SEG, 0, 1);
        assert_prefix(&out, &batches, 1, 2);
        assert_eq!(
            out.tail,
            TailState::Corrupt {
                offset: s,
                reason: WalFormatError::NotNextBatch(CleanEnd::Zeroed),
                later_batch: Some(extents[3].0),
            }
        );
        assert!(out.is_corrupt());
        assert!(!out.tail_reason_string().is_empty());
    }

    #[test]
    fn recycled_segment_scans_only_its_own_batches() {
        let old_seg = SegmentId {
            shard_id: 1,
            segment_no: 7,
        };
        let old_batches = small_batches(12);
        let (old, old_extents) = build(old_seg, 1, &old_batches);
        let mut file = old.clone();
        file.resize(64 * 1024, 0);

        // Segment 9 overwrites the start with a shorter run, in three shapes:
        // ending mid-way through an old batch, ending exactly on an old batch
        // boundary, and zero-padded to the block end.
        let new_batches = vec![
            vec![put("new-a", 1, Some(vec![1; 37]))],
            vec![put("new-b", 2, None), put("new-c", 3, Some(vec![2; 5]))],
            vec![put("new-d", 4, Some(vec![3; 300]))],
        ];
        for shape in 0..3 {
            let mut data = file.clone();
            let mut head = encode_segment_header(SEG).to_vec();
            let extents = if shape == 1 {
                // Same records as the old first batches: same lengths.
                append(&mut head, SEG, 500, &old_batches[..2])
            } else {
                append(&mut head, SEG, 500, &new_batches)
            };
            let end = head.len();
            if shape == 2 {
                head.resize(end.next_multiple_of(4096), 0);
            }
            data[..head.len()].copy_from_slice(&head);
            let out = scan_segment(&data, SEG, 0, 500);
            let want = if shape == 1 {
                &old_batches[..2]
            } else {
                &new_batches[..]
            };
            assert_prefix(&out, want, 500, want.len());
            assert_eq!(out.valid_end, end);
            assert_eq!(out.valid_end, extents.last().unwrap().1);
            match shape {
                0 => {
                    assert!(old_extents.iter().all(|&(s, _)| s != end));
                    assert_eq!(out.tail, TailState::Clean(CleanEnd::NotABatch));
                }
                1 => {
                    assert_eq!(end, old_extents[2].0);
                    assert_eq!(out.tail, TailState::Clean(CleanEnd::OtherSegment(old_seg)));
                }
                _ => assert_eq!(out.tail, TailState::Clean(CleanEnd::Zeroed)),
            }
        }

        // A recycled file from another shard with the same segment number.
        let other_shard = SegmentId {
            shard_id: 2,
            segment_no: 9,
        };
        let (data, _) = build(other_shard, 1, &old_batches);
        let out = scan_segment(&data, SEG, 0, 0);
        assert_eq!(out.batches, vec![]);
        assert_eq!(
            out.tail,
            TailState::Clean(CleanEnd::OtherSegment(other_shard))
        );
    }

    #[test]
    fn sequence_rules() {
        let batches = small_batches(3);
        // Every batch below min_seq: stale, nothing replayed.
        let (data, extents) = build(SEG, 10, &batches);
        let out = scan_segment(&data, SEG, 0, 100);
        assert_eq!(out.batches, vec![]);
        assert_eq!(
            out.tail,
            TailState::Clean(CleanEnd::StaleSequence {
                expected: 100,
                found: 10
            })
        );
        // A stale first batch followed by batches at or above min_seq: the
        // segment overlaps the previous one, which is corruption.
        let out = scan_segment(&data, SEG, 0, 11);
        assert_eq!(out.batches, vec![]);
        assert_eq!(
            out.tail,
            TailState::Corrupt {
                offset: SEGMENT_HEADER_LEN,
                reason: WalFormatError::NotNextBatch(CleanEnd::StaleSequence {
                    expected: 11,
                    found: 10
                }),
                later_batch: Some(extents[1].0),
            }
        );
        // First batch above min_seq: accepted.
        let out = scan_segment(&data, SEG, 0, 3);
        assert_prefix(&out, &batches, 10, 3);

        // A gap between batches is corruption.
        let (mut data, extents) = build(SEG, 10, &batches[..2]);
        let next = 10 + (batches[0].len() + batches[1].len()) as u64;
        append(&mut data, SEG, next + 1, &batches[2..]);
        let out = scan_segment(&data, SEG, 0, 0);
        assert_prefix(&out, &batches, 10, 2);
        assert_eq!(
            out.tail,
            TailState::Corrupt {
                offset: extents[1].1,
                reason: WalFormatError::SequenceGap {
                    expected: next,
                    found: next + 1
                },
                later_batch: Some(extents[1].1),
            }
        );

        // A batch repeating older sequence numbers ends the log.
        let (mut data, _) = build(SEG, 10, &batches[..2]);
        append(&mut data, SEG, 10, &batches[2..]);
        let out = scan_segment(&data, SEG, 0, 0);
        assert_prefix(&out, &batches, 10, 2);
        assert_eq!(
            out.tail,
            TailState::Clean(CleanEnd::StaleSequence {
                expected: next,
                found: 10
            })
        );
    }

    /// Wraps `payload` in a batch with valid crcs.
    fn forge(seq: u64, count: u32, payload: &[u8]) -> Vec<u8> {
        use bytes::BufMut;
        let mut b = Vec::new();
        b.put_u32(BATCH_MAGIC);
        b.put_u32(SEG.shard_id);
        b.put_u64(SEG.segment_no);
        b.put_u64(seq);
        b.put_u32(count);
        b.put_u32(payload.len() as u32);
        b.put_u32(crc32fast::hash(payload));
        let crc = crc32fast::hash(&b);
        b.put_u32(crc);
        b.extend_from_slice(payload);
        b
    }

    #[test]
    fn checksummed_garbage_is_corrupt_even_at_the_tail() {
        let batches = small_batches(2);
        let (mut data, extents) = build(SEG, 1, &batches);
        let next = 1 + (batches[0].len() + batches[1].len()) as u64;
        data.extend_from_slice(&forge(next, 1, &[9, 0, 0, 0, 0]));
        data.resize(data.len() + 100, 0);
        let out = scan_segment(&data, SEG, 0, 1);
        assert_prefix(&out, &batches, 1, 2);
        assert_eq!(
            out.tail,
            TailState::Corrupt {
                offset: extents[1].1,
                reason: WalFormatError::UnknownRecordType {
                    index: 0,
                    record_type: 9
                },
                later_batch: None,
            }
        );
        let (mut data, _) = build(SEG, 1, &batches);
        data.extend_from_slice(&forge(next, 0, &[]));
        let out = scan_segment(&data, SEG, 0, 1);
        assert!(matches!(
            out.tail,
            TailState::Corrupt {
                reason: WalFormatError::ZeroRecordCount,
                ..
            }
        ));
    }

    impl ScanOutcome {
        fn tail_reason_string(&self) -> String {
            match &self.tail {
                TailState::Clean(end) => end.to_string(),
                TailState::Torn { reason, .. } | TailState::Corrupt { reason, .. } => {
                    reason.to_string()
                }
            }
        }
    }

    fn arb_record() -> impl Strategy<Value = Record> {
        (
            proptest::collection::vec(any::<u8>(), 0..16),
            proptest::collection::btree_map("[a-z]{1,4}", 1i64..i64::MAX, 0..3),
            any::<i64>(),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
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

    fn arb_batches() -> impl Strategy<Value = Vec<Vec<Record>>> {
        proptest::collection::vec(proptest::collection::vec(arb_record(), 1..5), 1..6)
    }

    proptest! {
        #[test]
        fn random_batches_round_trip(
            batches in arb_batches(),
            first_seq in 0u64..1 << 60,
            pad in 0usize..5000,
        ) {
            let (mut data, _) = build(SEG, first_seq, &batches);
            let end = data.len();
            data.resize(end + pad, 0);
            let out = scan_segment(&data, SEG, 0, first_seq);
            prop_assert_eq!(out.batches.len(), batches.len());
            let mut seq = first_seq;
            for (got, want) in out.batches.iter().zip(&batches) {
                prop_assert_eq!(got.first_seq, seq);
                prop_assert_eq!(&got.records, want);
                seq += want.len() as u64;
            }
            prop_assert_eq!(out.valid_end, end);
            prop_assert_eq!(out.next_seq, seq);
            prop_assert!(matches!(out.tail, TailState::Clean(_)));
        }

        #[test]
        fn garbage_never_panics(
            raw in proptest::collection::vec(any::<u8>(), 0..6000),
            with_header in any::<bool>(),
            start in 0usize..6000,
            min_seq in any::<u64>(),
        ) {
            let mut data = if with_header { encode_segment_header(SEG).to_vec() } else { Vec::new() };
            data.extend_from_slice(&raw);
            let out = scan_segment(&data, SEG, start, min_seq);
            prop_assert!(out.valid_end >= SEGMENT_HEADER_LEN);
            let _ = scan_file(&data, min_seq);
        }

        /// Random damage never yields records that were not written: the
        /// result is always a prefix of the batches, and any damage stops
        /// the scan at or before the damaged batch.
        #[test]
        fn damage_never_invents_records(
            batches in arb_batches(),
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
            cut in any::<usize>(),
        ) {
            let (mut data, extents) = build(SEG, 1, &batches);
            data.resize(data.len() + 200, 0);
            let original = data.clone();
            for (at, byte) in edits {
                let at = SEGMENT_HEADER_LEN + at % (data.len() - SEGMENT_HEADER_LEN);
                data[at] = byte;
            }
            data.truncate(SEGMENT_HEADER_LEN + cut % (data.len() - SEGMENT_HEADER_LEN + 1));
            let out = scan_segment(&data, SEG, 0, 1);
            prop_assert!(out.batches.len() <= batches.len());
            for (got, want) in out.batches.iter().zip(&batches) {
                prop_assert_eq!(&got.records, want);
            }
            // The first batch whose bytes changed or were cut is not returned.
            let first_damaged = extents.iter().position(|&(s, e)| {
                data.get(s..e) != Some(&original[s..e])
            });
            if let Some(k) = first_damaged {
                prop_assert!(out.batches.len() <= k);
            }
        }
    }
}
