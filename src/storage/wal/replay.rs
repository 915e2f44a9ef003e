//! WAL recovery of one shard at start-up.
//!
//! Owns reading every `wal-*.log` segment of a shard folder in segment order,
//! checking each segment header, scanning its batches with the pure scanner
//! and handing each record to the caller in log order. Invariants:
//! - a torn tail (a partially written last batch) is logged and truncated
//!   away, so the next start sees a clean segment; so is the newest segment
//!   when its header is damaged and no batch of it verifies (its creation
//!   was cut short before any record could go to it);
//! - corruption before a segment's tail stops start-up with the file and
//!   offset named, unless `wal_replay_skip_corruption` is set, in which case
//!   the rest of that segment is skipped and the loss is logged;
//! - records are applied in sequence order across segments.

use super::format::SegmentId;
use super::format::{self, Record};
use super::scan::{self, TailState};
use super::writer::parse_segment_file_name;
use crate::config::StorageConfig;
use crate::model::Version;
use crate::storage::disk::{self, DiskFile, Mode};
use crate::storage::error::StorageError;
use bytes::Bytes;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Read size while loading a segment.
const READ_CHUNK_BYTES: usize = 1 << 20;

/// What replay found, for the writer's start and for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ReplaySummary {
    pub next_segment_no: u64,
    pub next_seq: u64,
    pub segments: u64,
    pub records: u64,
    pub bytes: u64,
    pub micros: u64,
}

fn corrupted(path: &Path, offset: u64, reason: impl std::fmt::Display) -> StorageError {
    StorageError::corrupted("WAL segment", path, Some(offset), reason)
}

/// The shard's segment files, in segment order.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StorageError> {
    let mut out = Vec::new();
    for name in disk::list_dir(dir)? {
        if let Some(no) = parse_segment_file_name(&name) {
            out.push((no, dir.join(name)));
        }
    }
    out.sort_by_key(|(no, _)| *no);
    Ok(out)
}

async fn read_all(file: &DiskFile, len: u64) -> Result<Vec<u8>, StorageError> {
    let mut data = Vec::with_capacity(len as usize);
    let mut pos = 0u64;
    while pos < len {
        let want = READ_CHUNK_BYTES.min((len - pos) as usize);
        let chunk = file.read_at(pos, want).await?;
        if chunk.is_empty() {
            break;
        }
        data.extend_from_slice(&chunk);
        pos += chunk.len() as u64;
    }
    Ok(data)
}

/// Replays every segment in `dir`, calling `apply` for each Put record in
/// log order.
pub(crate) async fn replay_dir(
    dir: &Path,
    shard_id: u32,
    config: &StorageConfig,
    mut apply: impl FnMut(Bytes, Version),
) -> Result<ReplaySummary, StorageError> {
    let started = Instant::now();
    let segments = list_segments(dir)?;
    let mut summary = ReplaySummary::default();
    for (no, path) in &segments {
        let file = DiskFile::open(path, Mode::ReadWrite).await?;
        let len = file.size().await?;
        let data = read_all(&file, len).await?;
        summary.bytes += data.len() as u64;
        summary.segments += 1;
        let Some(header) = data.first_chunk::<{ format::SEGMENT_HEADER_LEN }>() else {
            // A crash while the segment was being created: nothing in it was
            // ever acknowledged.
            tracing::warn!(file = %path.display(), bytes = data.len(), "WAL segment without a complete header: removed");
            file.close().await?;
            disk::remove(path).await?;
            continue;
        };
        if header.iter().all(|b| *b == 0) {
            // A spare segment whose preparation never finished: its header is
            // written last, and no record goes to a segment before that.
            tracing::info!(file = %path.display(), "unfinished spare WAL segment: removed");
            file.close().await?;
            disk::remove(path).await?;
            continue;
        }
        let (header, layout) = match format::parse_segment_header_layout(header) {
            Ok(parsed) => parsed,
            Err(e) => {
                // The newest segment, whose header write the power cut: no
                // record goes to a segment before its header is durable, so
                // if no batch of it verifies anywhere, nothing in it was
                // ever acknowledged.
                let named = SegmentId {
                    shard_id,
                    segment_no: *no,
                };
                let newest = segments.last().is_some_and(|(last, _)| last == no);
                if newest && !scan::holds_batch_of(&data, named) {
                    tracing::warn!(file = %path.display(), error = %e,
                        "newest WAL segment has a damaged header and no batch (its creation was cut short): removed");
                    file.close().await?;
                    disk::remove(path).await?;
                    continue;
                }
                return Err(corrupted(path, 0, e));
            }
        };
        if header.segment_no != *no || header.shard_id != shard_id {
            return Err(corrupted(
                path,
                0,
                format!(
                    "header names shard {} segment {}, expected shard {shard_id} segment {no}",
                    header.shard_id, header.segment_no
                ),
            ));
        }
        let id = SegmentId {
            shard_id,
            segment_no: *no,
        };
        let outcome = scan::scan_segment_layout(
            &data,
            id,
            layout,
            format::SEGMENT_HEADER_LEN,
            summary.next_seq,
        );
        for batch in outcome.batches {
            let next_seq = batch.next_seq();
            for record in batch.records {
                match record {
                    Record::Put { key, version } => apply(key, version),
                }
                summary.records += 1;
            }
            summary.next_seq = next_seq;
        }
        match outcome.tail {
            TailState::Clean(_) => {}
            TailState::Torn { offset, reason } => {
                tracing::warn!(file = %path.display(), offset, %reason,
                    "WAL segment ends in a partially written batch (never acknowledged): truncated");
                file.truncate(offset as u64).await?;
                file.fdatasync().await?;
            }
            TailState::Corrupt { offset, reason, .. } => {
                if !config.wal_replay_skip_corruption {
                    return Err(corrupted(
                        path,
                        offset as u64,
                        format!(
                            "{reason} (a later batch is intact, so this is not a torn write; \
                                 see storage.wal_replay_skip_corruption)"
                        ),
                    ));
                }
                tracing::error!(file = %path.display(), offset, %reason,
                    "WAL corruption skipped by configuration: the rest of this segment is LOST");
            }
        }
        file.close().await?;
    }
    summary.next_segment_no = segments.last().map_or(0, |(no, _)| no + 1);
    // (A removed spare's number is skipped too: numbers are never reused.)
    summary.micros = started.elapsed().as_micros() as u64;
    if summary.records > 0 {
        tracing::info!(
            shard = shard_id,
            segments = summary.segments,
            records = summary.records,
            bytes = summary.bytes,
            micros = summary.micros,
            "WAL replayed"
        );
    }
    Ok(summary)
}
