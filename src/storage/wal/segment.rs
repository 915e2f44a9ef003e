//! One WAL segment file being written: creation (with the space check) and
//! aligned, durable batch appends.
//!
//! Owns the segment file's name, its preparation (preallocation, optional
//! zero-fill, header written last, then the file and its directory synced)
//! and the position of the next batch. Invariants:
//! - batches are written through a handle opened [`Mode::AppendDurable`]
//!   (O_DSYNC), so a batch is durable when its write completes and needs no
//!   fdatasync of its own;
//! - a segment is created only when the volume keeps `reserve_bytes` free
//!   after it ([`crate::storage::space::segment_fits`]); otherwise creation
//!   fails with [`StorageError::NoRoom`], a disk-full error;
//! - a creation that fails removes its file (best effort; replay removes a
//!   headerless leftover), so a retry can take the same number;
//! - each batch starts on a [`ALIGN`] boundary and no written block is ever
//!   written again (format version 2).

use super::format::{self, Record};
use crate::storage::disk::{self, DiskFile, Mode};
use crate::storage::error::StorageError;
use crate::storage::space;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Write unit: multiple of every logical block size in use (512 or 4096).
pub(crate) const ALIGN: u64 = 4096;

/// Zero-fill write size when preparing a spare segment.
const PREWRITE_CHUNK_BYTES: usize = 1 << 20;

/// The file name of segment `no`.
pub(crate) fn segment_file_name(no: u64) -> String {
    format!("wal-{no:016}.log")
}

/// Parses a segment file name back to its number.
pub(crate) fn parse_segment_file_name(name: &str) -> Option<u64> {
    name.strip_prefix("wal-")?
        .strip_suffix(".log")?
        .parse()
        .ok()
}

/// How segments are made: where, for which shard, how large, and what
/// free space they must leave.
#[derive(Debug, Clone)]
pub(super) struct SegmentSpec {
    pub dir: PathBuf,
    pub shard_id: u32,
    pub bytes_max: u64,
    pub reserve_bytes: u64,
}

/// The open segment, owned by the committer task.
pub(super) struct Segment {
    file: DiskFile,
    path: PathBuf,
    pub no: u64,
    /// Where the next batch goes: the block boundary after the last one.
    pub pos: u64,
}

/// A checked batch, encoded by [`Segment::append`] straight into its write
/// buffer.
pub(super) struct BatchToWrite<'a> {
    pub segment: format::SegmentId,
    pub first_seq: u64,
    pub records: &'a [Record],
    /// Header plus payload bytes.
    pub len: usize,
}

impl Segment {
    /// Creates segment `no` if the volume has room for it and the reserve.
    /// With `prewrite`, the whole body is written with zeros first: later
    /// group commits then overwrite written blocks, and their durable
    /// writes need no ext4 journal commit for extent conversion.
    pub(super) async fn create(
        spec: &SegmentSpec,
        no: u64,
        prewrite: bool,
    ) -> Result<Self, StorageError> {
        let path = spec.dir.join(segment_file_name(no));
        let room = disk::space(&spec.dir)?;
        if !space::segment_fits(room, spec.bytes_max, spec.reserve_bytes) {
            return Err(StorageError::NoRoom {
                path,
                need_bytes: spec.bytes_max,
                reserve_bytes: spec.reserve_bytes,
                free_bytes: room.free_bytes,
            });
        }
        match Self::create_file(spec, &path, no, prewrite).await {
            Ok(segment) => Ok(segment),
            Err(e) => {
                if let Err(gone) = disk::remove(&path).await {
                    tracing::warn!(file = %path.display(), error = %gone,
                        "cannot remove a WAL segment whose creation failed (start-up removes it)");
                }
                Err(e)
            }
        }
    }

    async fn create_file(
        spec: &SegmentSpec,
        path: &Path,
        no: u64,
        prewrite: bool,
    ) -> Result<Self, StorageError> {
        let file = DiskFile::open(path, Mode::Create).await?;
        file.pre_allocate(spec.bytes_max).await?;
        if prewrite {
            let mut pos = format::SEGMENT_HEADER_LEN as u64;
            while pos < spec.bytes_max {
                let len = PREWRITE_CHUNK_BYTES.min((spec.bytes_max - pos) as usize);
                let zeros = file.alloc(len);
                file.write_at(zeros, pos).await?;
                pos += len as u64;
                glommio::yield_if_needed().await;
            }
        }
        let header = format::encode_segment_header(format::SegmentId {
            shard_id: spec.shard_id,
            segment_no: no,
        });
        let mut buf = file.alloc(format::SEGMENT_HEADER_LEN);
        buf.as_bytes_mut().copy_from_slice(&header);
        file.write_at(buf, 0).await?;
        file.fdatasync().await?;
        disk::sync_dir(&spec.dir).await?;
        // Batches go through a second handle whose writes are durable when
        // they complete (O_DSYNC): one I/O per group commit, not a write
        // and then an fdatasync.
        let appends = DiskFile::open(path, Mode::AppendDurable).await?;
        file.close().await?;
        Ok(Self {
            file: appends,
            path: path.to_path_buf(),
            no,
            pos: format::SEGMENT_HEADER_LEN as u64,
        })
    }

    /// Writes the batch of `records` (`batch.len` bytes, as
    /// [`format::checked_batch_len`] said) at the next block boundary: one
    /// aligned write of the batch and zeros up to the following boundary,
    /// the batch encoded in place in the buffer. No block written before is
    /// written again. The write is durable when it completes. Returns the
    /// bytes written and how long the write took.
    pub(super) async fn append(
        &mut self,
        batch: BatchToWrite<'_>,
    ) -> Result<(u64, Duration), StorageError> {
        let padded = (batch.len as u64).div_ceil(ALIGN) * ALIGN;
        let mut buf = self.file.alloc(padded as usize);
        let bytes = buf.as_bytes_mut();
        let have = bytes.len();
        let dst = bytes.get_mut(..batch.len).ok_or(StorageError::Framing(
            format::WalFormatError::BufferTooSmall {
                need: batch.len,
                have,
            },
        ))?;
        let encoded = format::encode_batch_into(dst, batch.segment, batch.first_seq, batch.records)
            .map_err(StorageError::Framing)?;
        debug_assert_eq!(encoded, batch.len);
        let started = Instant::now();
        let written = self.file.write_at(buf, self.pos).await?;
        let took = started.elapsed();
        if written as u64 != padded {
            return Err(StorageError::ShortWrite {
                path: self.path.clone(),
                written,
                wanted: padded,
            });
        }
        self.pos += padded;
        Ok((padded, took))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip() {
        assert_eq!(segment_file_name(42), "wal-0000000000000042.log");
        assert_eq!(parse_segment_file_name(&segment_file_name(42)), Some(42));
        assert_eq!(parse_segment_file_name("wal-x.log"), None);
        assert_eq!(parse_segment_file_name("sst-0001.sst"), None);
    }
}
