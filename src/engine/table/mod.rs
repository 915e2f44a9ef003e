//! One open SSTable of a shard: its file, index and filter, and the glommio
//! DMA I/O that writes and reads it.
//!
//! Owns opening a table (footer, index and filter kept in memory), point
//! reads (key range, filter, index, one block read, verified), and, in its
//! submodules, streaming table creation ([`writer`]) and sequential scans
//! for compaction ([`scan`]). The pure format lives in
//! `storage::sstable`. Invariants: a table is opened only from a complete,
//! synced file named by the manifest, and never changes once open (its
//! level is the tree version's to say, not the table's); every block read
//! is checksum-verified before use, and a failed check is reported as
//! corruption, never as data.

use super::EngineError;
use crate::model::{Version, VersionSet};
use crate::storage::disk::{DiskFile, Mode};
use crate::storage::manifest::{table_file_name, TableMeta};
use crate::storage::sstable::{self, Filter, Footer, Index, SstError};
use bytes::Bytes;
use std::path::{Path, PathBuf};
use std::rc::Rc;

pub(crate) mod scan;
pub(crate) mod writer;

pub(crate) use scan::RunScan;
pub(crate) use writer::TableWriter;

pub(crate) struct Table {
    /// The manifest entry the table was opened with; its `level` is where
    /// the table was at open, so only [`Table::meta_at`] hands it out.
    meta: TableMeta,
    path: PathBuf,
    file: Rc<DiskFile>,
    index: Index,
    filter: Filter,
}

pub(crate) fn sst_error(path: &Path, e: SstError) -> EngineError {
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

pub(crate) async fn read_exact(
    file: &DiskFile,
    path: &Path,
    pos: u64,
    len: usize,
) -> Result<Vec<u8>, EngineError> {
    let got = file.read_at(pos, len).await?;
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
    pub(crate) async fn write<'a>(
        dir: &Path,
        file_no: u64,
        entries: impl Iterator<Item = (&'a Bytes, &'a VersionSet)>,
        block_bytes_target: usize,
    ) -> Result<TableMeta, EngineError> {
        let mut writer = TableWriter::create(dir, file_no, block_bytes_target).await?;
        for (key, set) in entries {
            if let Err(e) = writer.add(key, set.versions()).await {
                writer.abandon().await;
                return Err(e);
            }
            // Block compression is CPU work: let foreground tasks run.
            glommio::yield_if_needed().await;
        }
        writer.finish(0).await
    }

    /// Opens a table the manifest lists: footer, index and filter are read
    /// and verified now and kept in memory.
    pub(crate) async fn open(dir: &Path, meta: TableMeta) -> Result<Self, EngineError> {
        let path = dir.join(table_file_name(meta.file_no));
        let file = DiskFile::open(&path, Mode::Read).await?;
        let len = file.size().await?;
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
    pub(crate) async fn get(&self, key: &[u8]) -> Result<Option<Vec<Version>>, EngineError> {
        if key < &self.meta.smallest[..]
            || key > &self.meta.largest[..]
            || !self.filter.may_contain(key)
        {
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

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn file_no(&self) -> u64 {
        self.meta.file_no
    }

    pub(crate) fn file_bytes(&self) -> u64 {
        self.meta.file_bytes
    }

    /// Keys the table holds.
    pub(crate) fn entries(&self) -> u64 {
        self.meta.entries
    }

    /// Smallest key (inclusive).
    pub(crate) fn smallest(&self) -> &Bytes {
        &self.meta.smallest
    }

    /// Largest key (inclusive).
    pub(crate) fn largest(&self) -> &Bytes {
        &self.meta.largest
    }

    /// Memory the open table holds: its index and filter.
    pub(crate) fn memory_bytes(&self) -> u64 {
        (self.index.heap_bytes() + self.filter.heap_bytes()) as u64
    }

    /// The manifest entry of this table at `level`.
    pub(crate) fn meta_at(&self, level: u8) -> TableMeta {
        TableMeta {
            level,
            ..self.meta.clone()
        }
    }
}
