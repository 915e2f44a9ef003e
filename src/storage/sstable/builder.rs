//! Builds an SSTable image from `(key, versions)` given in strictly
//! increasing key order.
//!
//! Owns block cutting (a block closes once its raw entries reach
//! `block_bytes_target`; an entry larger than the target gets a block of its
//! own), the zstd decision per block (kept only when it saves at least 1/8
//! and the aligned block gets shorter by at least one 4096-byte unit; after
//! attempts that do not pay, the next few blocks skip the attempt, backing
//! off to one attempt per 16 blocks on incompressible data),
//! and the index, filter and footer written by [`SstBuilder::finish`].
//!
//! Streaming: finished blocks accumulate in an internal buffer that
//! [`SstBuilder::take_ready`] drains (always a whole number of 4096-byte
//! blocks, in file order). The file is the concatenation of every
//! `take_ready` result followed by the bytes [`SstBuilder::finish`] returns;
//! a caller that never calls `take_ready` gets the whole image from `finish`.
//! Memory kept across blocks: the current block, one index entry per block
//! and 8 bytes of filter hash per key.
//!
//! Output is deterministic for the same input and settings except for the
//! filter block: xorf fills the fingerprint slots no key uses with random
//! bytes (its `uniform-random` feature, which keeps the false-positive rate
//! flat), so two builds of the same table differ there.
//!
//! Invariants: keys strictly increase (checked; a refused `add` leaves the
//! builder unchanged); every entry written decodes with
//! [`codec::decode_entry`](crate::storage::codec::decode_entry) (the clock
//! limits of the codec are checked before writing).

use super::filter::{key_hash, Filter};
use super::format::{
    align_up, seal_block, BlockKind, Footer, ALIGN, BLOCK_HEADER_LEN, FOOTER_LEN, FORMAT_VERSION,
    MAX_RAW_BLOCK_BYTES,
};
use super::SstError;
use crate::model::clock::NODE_ID_BYTES_MAX;
use crate::model::Version;
use crate::storage::codec::{encode_entry, entry_len};
use bytes::Bytes;

/// zstd level used for data blocks unless configured otherwise.
pub(crate) const DEFAULT_ZSTD_LEVEL: i32 = 1;

/// What a finished table holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SstSummary {
    pub entry_count: u64,
    pub data_block_count: u32,
    /// Data blocks stored zstd-compressed.
    pub compressed_block_count: u32,
    /// Encoded entry bytes before compression (sum of data blocks' raw_len).
    pub data_raw_bytes: u64,
    /// Bytes of the data region (aligned blocks, as stored).
    pub data_bytes: u64,
    pub index_bytes: u64,
    pub filter_bytes: u64,
    /// Length of the whole file (a multiple of 4096).
    pub file_bytes: u64,
    /// Smallest and largest key (`None` for an empty table).
    pub smallest_key: Option<Bytes>,
    pub largest_key: Option<Bytes>,
}

/// Incremental SSTable writer; see the module doc for the streaming contract.
pub(crate) struct SstBuilder {
    block_bytes_target: usize,
    zstd_level: Option<i32>,
    compressor: Option<zstd::bulk::Compressor<'static>>,
    /// Encoded entries of the block being filled.
    current: Vec<u8>,
    current_count: u32,
    first_key: Option<Bytes>,
    last_key: Option<Vec<u8>>,
    /// Encoded index entries (everything after first_key in the payload).
    index: Vec<u8>,
    hashes: Vec<u64>,
    ready: Vec<u8>,
    /// File offset of the next block.
    offset: u64,
    entry_count: u64,
    data_block_count: u32,
    compressed_block_count: u32,
    data_raw_bytes: u64,
    /// Blocks still to be stored raw without trying zstd, and the
    /// attempts in a row that did not pay (see [`SstBuilder::compress`]).
    compress_skip: u32,
    compress_misses: u32,
}

/// Most blocks stored raw without a zstd attempt after attempts that did
/// not pay: incompressible data costs one attempt per this many blocks.
const COMPRESS_SKIP_MAX_BLOCKS: u32 = 16;

impl SstBuilder {
    /// A builder cutting blocks at `block_bytes_target` raw entry bytes
    /// (clamped to 1..=MAX_RAW_BLOCK_BYTES), compressing with zstd level
    /// [`DEFAULT_ZSTD_LEVEL`].
    pub(crate) fn new(block_bytes_target: usize) -> SstBuilder {
        SstBuilder {
            block_bytes_target: block_bytes_target.clamp(1, MAX_RAW_BLOCK_BYTES),
            zstd_level: Some(DEFAULT_ZSTD_LEVEL),
            compressor: None,
            current: Vec::new(),
            current_count: 0,
            first_key: None,
            last_key: None,
            index: Vec::new(),
            hashes: Vec::new(),
            ready: Vec::new(),
            offset: 0,
            entry_count: 0,
            data_block_count: 0,
            compressed_block_count: 0,
            data_raw_bytes: 0,
            compress_skip: 0,
            compress_misses: 0,
        }
    }

    /// Sets the zstd level for data blocks (`None` writes every block raw).
    #[cfg(test)]
    pub(crate) fn with_compression(mut self, zstd_level: Option<i32>) -> SstBuilder {
        self.zstd_level = zstd_level;
        self.compressor = None;
        self
    }

    /// Entries added so far.
    pub(crate) fn entry_count(&self) -> u64 {
        self.entry_count
    }

    /// Approximate file bytes so far (blocks emitted plus the open block's
    /// raw bytes), for cutting compaction outputs at a target size.
    pub(crate) fn estimated_bytes(&self) -> u64 {
        self.offset + self.current.len() as u64
    }

    /// Appends `key` with its `versions` (1 to 65535, in stored order). The
    /// key must be greater than every key added before. On error nothing
    /// changed.
    pub(crate) fn add(&mut self, key: &[u8], versions: &[Version]) -> Result<(), SstError> {
        if let Some(prev) = &self.last_key {
            if key <= prev.as_slice() {
                return Err(SstError::KeyOrder {
                    previous: prev.clone(),
                    key: key.to_vec(),
                });
            }
        }
        check_versions(versions)?;
        let len = entry_len(key, versions);
        if len > MAX_RAW_BLOCK_BYTES {
            return Err(SstError::EntryTooLarge {
                bytes: len,
                max: MAX_RAW_BLOCK_BYTES,
            });
        }
        if self.current_count > 0 && self.current.len() + len > self.block_bytes_target {
            self.flush_block()?;
        }
        self.current.reserve(len);
        encode_entry(&mut self.current, key, versions);
        self.current_count += 1;
        self.entry_count += 1;
        self.hashes.push(key_hash(key));
        if self.first_key.is_none() {
            self.first_key = Some(Bytes::copy_from_slice(key));
        }
        match &mut self.last_key {
            Some(k) => {
                k.clear();
                k.extend_from_slice(key);
            }
            None => self.last_key = Some(key.to_vec()),
        }
        if self.current.len() >= self.block_bytes_target {
            self.flush_block()?;
        }
        Ok(())
    }

    /// Drains the bytes of the blocks finished so far (a multiple of 4096, in
    /// file order, possibly empty).
    pub(crate) fn take_ready(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.ready)
    }

    /// Bytes waiting in the ready buffer.
    pub(crate) fn ready_len(&self) -> usize {
        self.ready.len()
    }

    /// Closes the table: the last data block, the index, the filter and the
    /// footer. Returns every byte not yet taken with
    /// [`SstBuilder::take_ready`] (the whole image if it was never called).
    pub(crate) fn finish(mut self) -> Result<(Vec<u8>, SstSummary), SstError> {
        if self.current_count > 0 {
            self.flush_block()?;
        }
        let data_bytes = self.offset;

        let first_key = self.first_key.clone();
        let first = first_key.as_deref().unwrap_or(&[]);
        let mut payload = Vec::with_capacity(4 + first.len() + self.index.len());
        payload.extend_from_slice(&len_u32(first.len(), "first key")?.to_be_bytes());
        payload.extend_from_slice(first);
        payload.extend_from_slice(&self.index);
        let index = seal_block(
            BlockKind::Index,
            self.data_block_count,
            payload.len(),
            &payload,
        )?;
        let index_offset = self.offset;
        let index_len = len_u32(index.len(), "index")?;
        self.offset += index.len() as u64;
        self.ready.extend_from_slice(&index);

        let filter = Filter::build(std::mem::take(&mut self.hashes)).encode_block()?;
        let filter_offset = self.offset;
        let filter_len = len_u32(filter.len(), "filter")?;
        self.offset += filter.len() as u64;
        self.ready.extend_from_slice(&filter);

        let footer = Footer {
            format_version: FORMAT_VERSION,
            index_offset,
            index_len,
            filter_offset,
            filter_len,
            entry_count: self.entry_count,
            data_block_count: self.data_block_count,
            data_raw_bytes: self.data_raw_bytes,
        };
        self.ready.extend_from_slice(&footer.encode());
        self.offset += FOOTER_LEN as u64;

        let summary = SstSummary {
            entry_count: self.entry_count,
            data_block_count: self.data_block_count,
            compressed_block_count: self.compressed_block_count,
            data_raw_bytes: self.data_raw_bytes,
            data_bytes,
            index_bytes: index.len() as u64,
            filter_bytes: filter.len() as u64,
            file_bytes: self.offset,
            smallest_key: first_key,
            largest_key: if self.entry_count > 0 {
                self.last_key.map(Bytes::from)
            } else {
                None
            },
        };
        debug_assert_eq!(self.offset % ALIGN as u64, 0);
        Ok((self.ready, summary))
    }

    /// The zstd image of the current block if it pays. Attempts that do not
    /// pay back off exponentially (1, 2, 4 ... up to
    /// [`COMPRESS_SKIP_MAX_BLOCKS`] blocks stored raw without trying), so
    /// incompressible values (the common case for encrypted or already
    /// compressed payloads) do not spend CPU on zstd for every block of every
    /// flush and compaction; one block that pays resets the back-off.
    fn compress(&mut self) -> Option<Vec<u8>> {
        self.zstd_level?;
        if self.compress_skip > 0 {
            self.compress_skip -= 1;
            return None;
        }
        let out = self.try_compress();
        if out.is_some() {
            self.compress_misses = 0;
        } else {
            self.compress_misses = self.compress_misses.saturating_add(1);
            self.compress_skip =
                (1u32 << self.compress_misses.min(5)).min(COMPRESS_SKIP_MAX_BLOCKS) - 1;
        }
        out
    }

    fn try_compress(&mut self) -> Option<Vec<u8>> {
        let level = self.zstd_level?;
        if self.compressor.is_none() {
            self.compressor = zstd::bulk::Compressor::new(level).ok();
        }
        let out = self.compressor.as_mut()?.compress(&self.current).ok()?;
        let raw = self.current.len();
        // Worth it only if it saves 1/8 and the aligned block gets shorter:
        // otherwise disk, I/O and cache use are the same and reads would pay
        // for decompression for nothing.
        let saves = out.len() <= raw - raw / 8;
        let shorter = match (
            align_up(BLOCK_HEADER_LEN + out.len()),
            align_up(BLOCK_HEADER_LEN + raw),
        ) {
            (Some(z), Some(r)) => z < r,
            _ => false,
        };
        (saves && shorter).then_some(out)
    }

    fn flush_block(&mut self) -> Result<(), SstError> {
        let raw_len = self.current.len();
        let (block, compressed) = match self.compress() {
            Some(z) => (
                seal_block(BlockKind::DataZstd, self.current_count, raw_len, &z)?,
                true,
            ),
            None => (
                seal_block(
                    BlockKind::DataRaw,
                    self.current_count,
                    raw_len,
                    &self.current,
                )?,
                false,
            ),
        };
        let block_len = len_u32(block.len(), "block")?;
        debug_assert!(block.len() >= BLOCK_HEADER_LEN && block.len() % ALIGN == 0);
        let last = self.last_key.as_deref().unwrap_or(&[]);
        let last_len = len_u32(last.len(), "key")?;
        self.index.extend_from_slice(&last_len.to_be_bytes());
        self.index.extend_from_slice(last);
        self.index.extend_from_slice(&self.offset.to_be_bytes());
        self.index.extend_from_slice(&block_len.to_be_bytes());
        self.index
            .extend_from_slice(&self.current_count.to_be_bytes());
        self.offset += block.len() as u64;
        self.ready.extend_from_slice(&block);
        self.data_block_count += 1;
        self.compressed_block_count += u32::from(compressed);
        self.data_raw_bytes += raw_len as u64;
        self.current.clear();
        self.current_count = 0;
        Ok(())
    }
}

fn len_u32(len: usize, what: &'static str) -> Result<u32, SstError> {
    u32::try_from(len).map_err(|_| SstError::TooLarge { what, bytes: len })
}

/// The codec's limits, so that everything written decodes again.
fn check_versions(versions: &[Version]) -> Result<(), SstError> {
    if versions.is_empty() {
        return Err(SstError::InvalidEntry("no versions".into()));
    }
    if versions.len() > usize::from(u16::MAX) {
        return Err(SstError::InvalidEntry(format!(
            "{} versions, at most {} fit",
            versions.len(),
            u16::MAX
        )));
    }
    for v in versions {
        let entries = v.clock.entries();
        if entries.len() > usize::from(u16::MAX) {
            return Err(SstError::InvalidEntry(format!(
                "a clock of {} entries",
                entries.len()
            )));
        }
        for (node, counter) in entries {
            if node.is_empty() || node.len() > NODE_ID_BYTES_MAX {
                return Err(SstError::InvalidEntry(format!(
                    "a clock node id of {} bytes",
                    node.len()
                )));
            }
            if *counter == 0 || *counter > i64::MAX as u64 {
                return Err(SstError::InvalidEntry(format!(
                    "clock counter {counter} for {node:?} cannot be stored"
                )));
            }
        }
    }
    Ok(())
}
