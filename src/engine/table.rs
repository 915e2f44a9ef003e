//! One open SSTable of a shard: its file, index and filter, and the glommio
//! DMA I/O that writes and reads it.
//!
//! Owns writing a memtable out as a table file (blocks streamed as the
//! builder finishes them, then one fdatasync) and point reads (filter, index,
//! one block read, verified). The pure format lives in
//! `storage::sstable`. Invariants: a table is opened only from a complete,
//! synced file named by the manifest; every block read is checksum-verified
//! before use, and a failed check is reported as corruption, never as data.

use super::EngineError;
use crate::model::{Version, VersionSet};
use crate::storage::manifest::{table_file_name, TableMeta};
use crate::storage::sstable::{self, Filter, Footer, Index, SstBuilder, SstError};
use bytes::Bytes;
use glommio::io::{DmaFile, OpenOptions};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Bytes written per DMA write while streaming a table out.
const WRITE_CHUNK_BYTES: usize = 1 << 20;

pub struct Table {
    pub meta: TableMeta,
    path: PathBuf,
    file: Rc<DmaFile>,
    index: Index,
    filter: Filter,
}

fn io(path: &Path, what: &str, e: impl std::fmt::Display) -> EngineError {
    let text = e.to_string();
    if text.contains("os error 28") {
        return EngineError::DiskFull;
    }
    EngineError::Internal {
        what: format!("{what} {}: {text}", path.display()),
    }
}

fn sst_error(path: &Path, e: SstError) -> EngineError {
    if e.is_corruption() {
        EngineError::Corrupted {
            what: format!("SSTable {}: {e}", path.display()),
        }
    } else {
        EngineError::Internal {
            what: format!("SSTable {}: {e}", path.display()),
        }
    }
}

async fn read_exact(
    file: &DmaFile,
    path: &Path,
    pos: u64,
    len: usize,
) -> Result<Vec<u8>, EngineError> {
    let got = file
        .read_at(pos, len)
        .await
        .map_err(|e| io(path, "read", e))?;
    if got.len() != len {
        return Err(EngineError::Corrupted {
            what: format!(
                "SSTable {}: short read of {} bytes at {pos}, wanted {len}",
                path.display(),
                got.len()
            ),
        });
    }
    Ok(got.to_vec())
}

impl Table {
    /// Writes `entries` (strictly increasing keys) as table `file_no` in
    /// `dir`, durably, and returns its manifest entry (level 0).
    pub async fn write<'a>(
        dir: &Path,
        file_no: u64,
        entries: impl Iterator<Item = (&'a Bytes, &'a VersionSet)>,
        block_bytes_target: usize,
    ) -> Result<TableMeta, EngineError> {
        let path = dir.join(table_file_name(file_no));
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .dma_open(&path)
            .await
            .map_err(|e| io(&path, "create", e))?;
        let mut builder = SstBuilder::new(block_bytes_target);
        let mut pos = 0u64;
        for (key, set) in entries {
            builder
                .add(key, set.versions())
                .map_err(|e| sst_error(&path, e))?;
            if builder.ready_len() >= WRITE_CHUNK_BYTES {
                let chunk = builder.take_ready();
                pos = write_chunk(&file, &path, pos, &chunk).await?;
            }
            // Block compression is CPU work: let foreground tasks run.
            glommio::yield_if_needed().await;
        }
        let (rest, summary) = builder.finish().map_err(|e| sst_error(&path, e))?;
        let end = write_chunk(&file, &path, pos, &rest).await?;
        debug_assert_eq!(end, summary.file_bytes);
        file.fdatasync().await.map_err(|e| io(&path, "sync", e))?;
        file.close().await.map_err(|e| io(&path, "close", e))?;
        let d = glommio::io::Directory::open(dir)
            .await
            .map_err(|e| io(dir, "open", e))?;
        d.sync().await.map_err(|e| io(dir, "sync", e))?;
        Ok(TableMeta {
            level: 0,
            file_no,
            file_bytes: summary.file_bytes,
            entries: summary.entry_count,
            smallest: summary.smallest_key.unwrap_or_default(),
            largest: summary.largest_key.unwrap_or_default(),
        })
    }

    /// Opens a table the manifest lists: footer, index and filter are read
    /// and verified now and kept in memory.
    pub async fn open(dir: &Path, meta: TableMeta) -> Result<Self, EngineError> {
        let path = dir.join(table_file_name(meta.file_no));
        let file = OpenOptions::new()
            .read(true)
            .dma_open(&path)
            .await
            .map_err(|e| io(&path, "open", e))?;
        let len = file.file_size().await.map_err(|e| io(&path, "stat", e))?;
        if len != meta.file_bytes || len < sstable::format::FOOTER_LEN as u64 {
            return Err(EngineError::Corrupted {
                what: format!(
                    "SSTable {}: {len} bytes, the manifest says {}",
                    path.display(),
                    meta.file_bytes
                ),
            });
        }
        let footer_pos = len - sstable::format::FOOTER_LEN as u64;
        let raw = read_exact(&file, &path, footer_pos, sstable::format::FOOTER_LEN).await?;
        let footer = Footer::parse_with_file_len(&raw, len)
            .map_err(|e| sst_error(&path, e.rebase(footer_pos)))?;
        let r = footer.index_range();
        let raw = read_exact(&file, &path, r.start, (r.end - r.start) as usize).await?;
        let index = Index::parse(&raw).map_err(|e| sst_error(&path, e.rebase(r.start)))?;
        index
            .check_footer(&footer)
            .map_err(|e| sst_error(&path, e))?;
        let r = footer.filter_range();
        let raw = read_exact(&file, &path, r.start, (r.end - r.start) as usize).await?;
        let filter = Filter::parse(&raw).map_err(|e| sst_error(&path, e.rebase(r.start)))?;
        Ok(Self {
            meta,
            path,
            file: Rc::new(file),
            index,
            filter,
        })
    }

    /// The versions this table holds for `key`, if any.
    pub async fn get(&self, key: &[u8]) -> Result<Option<Vec<Version>>, EngineError> {
        if !self.filter.may_contain(key) {
            return Ok(None);
        }
        let Some(i) = self.index.find(key) else {
            return Ok(None);
        };
        let entry = &self.index.blocks()[i];
        let raw = read_exact(
            &self.file,
            &self.path,
            entry.handle.offset,
            entry.handle.len as usize,
        )
        .await?;
        let block =
            sstable::decode_indexed_block(entry, &raw).map_err(|e| sst_error(&self.path, e))?;
        block.get(key).map_err(|e| sst_error(&self.path, e))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

async fn write_chunk(
    file: &DmaFile,
    path: &Path,
    pos: u64,
    chunk: &[u8],
) -> Result<u64, EngineError> {
    if chunk.is_empty() {
        return Ok(pos);
    }
    debug_assert_eq!(chunk.len() % sstable::ALIGN, 0);
    let mut buf = file.alloc_dma_buffer(chunk.len());
    buf.as_bytes_mut().copy_from_slice(chunk);
    let written = file
        .write_at(buf, pos)
        .await
        .map_err(|e| io(path, "write", e))?;
    if written != chunk.len() {
        return Err(EngineError::Internal {
            what: format!(
                "short write to {}: {written} of {} bytes",
                path.display(),
                chunk.len()
            ),
        });
    }
    Ok(pos + chunk.len() as u64)
}
