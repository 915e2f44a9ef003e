//! Streaming creation of one SSTable file with direct-I/O writes through
//! the storage I/O seam.
//!
//! Owns the file while it is being written: entries go through the pure
//! [`SstBuilder`], finished blocks are written as they accumulate (about
//! [`WRITE_CHUNK_BYTES`] at a time), and [`TableWriter::finish`] writes the
//! index, filter and footer, fdatasyncs the file and its directory and
//! returns the manifest entry. Invariants: a file is complete and durable
//! before `finish` returns its [`TableMeta`]; a writer that is abandoned (or
//! fails) removes its file, so no partial table is left behind (a crash
//! leaves an unlisted file that start-up removes).

use super::sst_error;
use crate::engine::EngineError;
use crate::model::Version;
use crate::storage::disk::{self, DiskFile, Mode};
use crate::storage::error::StorageError;
use crate::storage::manifest::{table_file_name, TableMeta};
use crate::storage::sstable::{self, SstBuilder};
use std::path::{Path, PathBuf};

/// Bytes written per DMA write while streaming a table out.
pub(crate) const WRITE_CHUNK_BYTES: usize = 1 << 20;

pub(crate) struct TableWriter {
    dir: PathBuf,
    path: PathBuf,
    file_no: u64,
    file: Option<DiskFile>,
    builder: Option<SstBuilder>,
    /// Bytes written to the file so far.
    pos: u64,
}

impl TableWriter {
    /// Creates (truncating) table file `file_no` in `dir`.
    pub(crate) async fn create(
        dir: &Path,
        file_no: u64,
        block_bytes_target: usize,
    ) -> Result<Self, EngineError> {
        let path = dir.join(table_file_name(file_no));
        let file = DiskFile::open(&path, Mode::Create).await?;
        Ok(Self {
            dir: dir.to_path_buf(),
            path,
            file_no,
            file: Some(file),
            builder: Some(SstBuilder::new(block_bytes_target)),
            pos: 0,
        })
    }

    /// Entries added so far.
    pub(crate) fn entry_count(&self) -> u64 {
        self.builder.as_ref().map_or(0, SstBuilder::entry_count)
    }

    /// Bytes written to the file so far.
    pub(crate) fn written_bytes(&self) -> u64 {
        self.pos
    }

    /// Approximate size of the file if finished now (bytes).
    pub(crate) fn estimated_bytes(&self) -> u64 {
        self.builder.as_ref().map_or(0, SstBuilder::estimated_bytes)
    }

    /// Adds one entry (keys strictly increasing); returns the bytes written
    /// to disk by this call (0 unless a chunk of blocks was due).
    pub(crate) async fn add(
        &mut self,
        key: &[u8],
        versions: &[Version],
    ) -> Result<u64, EngineError> {
        let (Some(builder), Some(file)) = (self.builder.as_mut(), self.file.as_ref()) else {
            return Err(closed(&self.path));
        };
        builder
            .add(key, versions)
            .map_err(|e| sst_error(&self.path, e))?;
        if builder.ready_len() < WRITE_CHUNK_BYTES {
            return Ok(0);
        }
        let chunk = builder.take_ready();
        let pos = write_chunk(file, &self.path, self.pos, &chunk).await?;
        let written = pos - self.pos;
        self.pos = pos;
        Ok(written)
    }

    /// Writes the rest, syncs file and directory, and returns the table's
    /// manifest entry at `level`. On error the file is removed.
    pub(crate) async fn finish(mut self, level: u8) -> Result<TableMeta, EngineError> {
        let result = self.finish_inner(level).await;
        if result.is_err() {
            self.abandon().await;
        }
        result
    }

    async fn finish_inner(&mut self, level: u8) -> Result<TableMeta, EngineError> {
        let (Some(builder), Some(file)) = (self.builder.take(), self.file.as_ref()) else {
            return Err(closed(&self.path));
        };
        let (rest, summary) = builder.finish().map_err(|e| sst_error(&self.path, e))?;
        let end = write_chunk(file, &self.path, self.pos, &rest).await?;
        if end != summary.file_bytes {
            return Err(EngineError::Internal {
                what: format!(
                    "{}: wrote {end} bytes, the builder reports {}",
                    self.path.display(),
                    summary.file_bytes
                ),
            });
        }
        self.pos = end;
        file.fdatasync().await?;
        if let Some(file) = self.file.take() {
            file.close().await?;
        }
        disk::sync_dir(&self.dir).await?;
        Ok(TableMeta {
            level,
            file_no: self.file_no,
            file_bytes: summary.file_bytes,
            entries: summary.entry_count,
            smallest: summary.smallest_key.unwrap_or_default(),
            largest: summary.largest_key.unwrap_or_default(),
        })
    }

    /// Closes and removes the unfinished file (best effort: a file left
    /// behind is unlisted and removed at the next start).
    pub(crate) async fn abandon(mut self) {
        if let Some(file) = self.file.take() {
            let _ = file.close().await;
        }
        if let Err(e) = disk::remove(&self.path).await {
            tracing::warn!(file = %self.path.display(), error = %e, "cannot remove an unfinished table");
        }
    }
}

fn closed(path: &Path) -> EngineError {
    EngineError::Internal {
        what: format!("{}: table writer already finished", path.display()),
    }
}

async fn write_chunk(
    file: &DiskFile,
    path: &Path,
    pos: u64,
    chunk: &[u8],
) -> Result<u64, EngineError> {
    if chunk.is_empty() {
        return Ok(pos);
    }
    debug_assert_eq!(chunk.len() % sstable::ALIGN, 0);
    let mut buf = file.alloc(chunk.len());
    buf.as_bytes_mut().copy_from_slice(chunk);
    let written = file.write_at(buf, pos).await?;
    if written != chunk.len() {
        return Err(StorageError::ShortWrite {
            path: path.to_path_buf(),
            written,
            wanted: chunk.len() as u64,
        }
        .into());
    }
    Ok(pos + chunk.len() as u64)
}
