//! The storage layer's one I/O seam: every file operation of a shard (WAL
//! segments, SSTables, manifest, small state files, the data directory) goes
//! through this module.
//!
//! Owns [`DiskFile`] (an open file: positioned DMA reads and writes,
//! fdatasync, preallocation, truncation), the directory operations (sync,
//! rename, remove, list, create) and whole-file helpers for small files.
//! Production runs on glommio's io_uring files ([`real`]); tests install a
//! simulated disk for their thread ([`sim`]) that fails chosen operations
//! (EIO, ENOSPC, short writes), runs out of space, and loses power: every
//! write no sync covered (fdatasync, or its own through a handle opened
//! [`Mode::AppendDurable`]), and every name no directory sync covered,
//! is dropped, optionally tearing the block the last unsynced write began in.
//!
//! Invariants:
//! - every failure is a [`StorageError`] naming the operation and the path,
//!   keeping the OS error (a full device is known by its errno);
//! - a write returns the bytes written; callers treat fewer than asked as a
//!   failure ([`StorageError::ShortWrite`]);
//! - in a build without tests the seam is the glommio call and nothing else
//!   (the simulated variants do not exist).

use super::error::StorageError;
use std::ops::Deref;
use std::path::{Path, PathBuf};

mod real;
#[cfg(test)]
pub(crate) mod sim;

/// How a file is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Read only; the file must exist.
    Read,
    /// Read and write; the file must exist.
    ReadWrite,
    /// Write only, created empty (truncated if it exists).
    Create,
    /// Write only, the file must exist, and every write is durable when it
    /// completes (O_DSYNC): its data and whatever metadata reading it back
    /// needs, as a write followed by fdatasync would make them.
    AppendDurable,
}

/// What a directory entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryKind {
    Dir,
    File,
    /// A socket, pipe, device or link: named for error messages.
    Other(&'static str),
}

/// A buffer to write from, aligned for direct I/O.
pub(crate) enum WriteBuf {
    Dma(glommio::io::DmaBuffer),
    #[cfg(test)]
    Heap(Vec<u8>),
}

impl WriteBuf {
    pub(crate) fn as_bytes_mut(&mut self) -> &mut [u8] {
        match self {
            WriteBuf::Dma(b) => b.as_bytes_mut(),
            #[cfg(test)]
            WriteBuf::Heap(v) => v,
        }
    }
}

/// Bytes read from a file.
pub(crate) enum ReadBytes {
    Dma(glommio::io::ReadResult),
    #[cfg(test)]
    Heap(Vec<u8>),
}

impl Deref for ReadBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            ReadBytes::Dma(r) => r,
            #[cfg(test)]
            ReadBytes::Heap(v) => v,
        }
    }
}

enum Inner {
    Dma(glommio::io::DmaFile),
    #[cfg(test)]
    Sim(sim::SimFile),
}

/// An open file of the storage layer.
pub(crate) struct DiskFile {
    inner: Inner,
    path: PathBuf,
}

impl DiskFile {
    /// Opens `path` for direct I/O.
    pub(crate) async fn open(path: &Path, mode: Mode) -> Result<Self, StorageError> {
        #[cfg(test)]
        if let Some(disk) = sim::current() {
            let file = disk.open(path, mode)?;
            return Ok(Self {
                inner: Inner::Sim(file),
                path: path.to_path_buf(),
            });
        }
        let file = real::open(path, mode).await?;
        Ok(Self {
            inner: Inner::Dma(file),
            path: path.to_path_buf(),
        })
    }

    /// A zeroed buffer of `len` bytes (a multiple of the block size for
    /// direct I/O) to fill and hand to [`DiskFile::write_at`].
    pub(crate) fn alloc(&self, len: usize) -> WriteBuf {
        match &self.inner {
            Inner::Dma(f) => {
                let mut b = f.alloc_dma_buffer(len);
                b.as_bytes_mut().fill(0);
                WriteBuf::Dma(b)
            }
            #[cfg(test)]
            Inner::Sim(_) => WriteBuf::Heap(vec![0; len]),
        }
    }

    /// Reads up to `len` bytes at `pos` (fewer at the end of the file).
    pub(crate) async fn read_at(&self, pos: u64, len: usize) -> Result<ReadBytes, StorageError> {
        match &self.inner {
            Inner::Dma(f) => f
                .read_at(pos, len)
                .await
                .map(ReadBytes::Dma)
                .map_err(|e| StorageError::io("read", &self.path, e)),
            #[cfg(test)]
            Inner::Sim(f) => f.read_at(pos, len).await.map(ReadBytes::Heap),
        }
    }

    /// Writes `buf` at `pos`; returns the bytes written.
    pub(crate) async fn write_at(&self, buf: WriteBuf, pos: u64) -> Result<usize, StorageError> {
        match (&self.inner, buf) {
            (Inner::Dma(f), WriteBuf::Dma(b)) => f
                .write_at(b, pos)
                .await
                .map_err(|e| StorageError::io("write", &self.path, e)),
            #[cfg(test)]
            (Inner::Sim(f), buf) => {
                let bytes = match buf {
                    WriteBuf::Heap(v) => v,
                    WriteBuf::Dma(b) => b.as_bytes().to_vec(),
                };
                f.write_at(&bytes, pos).await
            }
            #[cfg(test)]
            (Inner::Dma(f), WriteBuf::Heap(v)) => {
                let mut b = f.alloc_dma_buffer(v.len());
                b.as_bytes_mut().copy_from_slice(&v);
                f.write_at(b, pos)
                    .await
                    .map_err(|e| StorageError::io("write", &self.path, e))
            }
        }
    }

    /// Makes the file's data (and its size) durable.
    pub(crate) async fn fdatasync(&self) -> Result<(), StorageError> {
        match &self.inner {
            Inner::Dma(f) => f
                .fdatasync()
                .await
                .map_err(|e| StorageError::io("fdatasync", &self.path, e)),
            #[cfg(test)]
            Inner::Sim(f) => f.fdatasync().await,
        }
    }

    /// Reserves `len` bytes of space (the file's size becomes `len`).
    pub(crate) async fn pre_allocate(&self, len: u64) -> Result<(), StorageError> {
        match &self.inner {
            Inner::Dma(f) => f
                .pre_allocate(len, false)
                .await
                .map_err(|e| StorageError::io("preallocate", &self.path, e)),
            #[cfg(test)]
            Inner::Sim(f) => f.pre_allocate(len),
        }
    }

    pub(crate) async fn truncate(&self, len: u64) -> Result<(), StorageError> {
        match &self.inner {
            Inner::Dma(f) => f
                .truncate(len)
                .await
                .map_err(|e| StorageError::io("truncate", &self.path, e)),
            #[cfg(test)]
            Inner::Sim(f) => f.truncate(len),
        }
    }

    pub(crate) async fn size(&self) -> Result<u64, StorageError> {
        match &self.inner {
            Inner::Dma(f) => f
                .file_size()
                .await
                .map_err(|e| StorageError::io("stat", &self.path, e)),
            #[cfg(test)]
            Inner::Sim(f) => f.size(),
        }
    }

    pub(crate) async fn close(self) -> Result<(), StorageError> {
        match self.inner {
            Inner::Dma(f) => f
                .close()
                .await
                .map_err(|e| StorageError::io("close", &self.path, e)),
            #[cfg(test)]
            Inner::Sim(f) => f.close(),
        }
    }
}

/// Makes the names in `dir` (files created, renamed or removed) durable.
pub(crate) async fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    #[cfg(test)]
    if let Some(disk) = sim::current() {
        return disk.sync_dir(dir);
    }
    real::sync_dir(dir).await
}

/// Renames `from` to `to`, replacing `to`.
pub(crate) async fn rename(from: &Path, to: &Path) -> Result<(), StorageError> {
    #[cfg(test)]
    if let Some(disk) = sim::current() {
        return disk.rename(from, to);
    }
    glommio::io::rename(from, to)
        .await
        .map_err(|e| StorageError::io("rename", to, e))
}

/// Removes the file at `path`; one already gone is not an error.
pub(crate) async fn remove(path: &Path) -> Result<(), StorageError> {
    #[cfg(test)]
    if let Some(disk) = sim::current() {
        return disk.remove(path);
    }
    real::remove(path).await
}

/// Writes `bytes` as the whole content of a new file at `path` (replacing
/// one there) and fdatasyncs it; the name is durable only after
/// [`sync_dir`] of its folder.
pub(crate) async fn write_file(path: &Path, bytes: Vec<u8>) -> Result<(), StorageError> {
    #[cfg(test)]
    if let Some(disk) = sim::current() {
        return disk.write_file(path, &bytes).await;
    }
    real::write_file(path, bytes).await
}

/// Replaces file `name` of `dir` with `bytes` atomically and durably
/// (`<name>.tmp` written and synced, renamed over `name`, the folder
/// synced), with blocking calls: for start-up work before any executor
/// runs, such as the data directory's META.
pub(crate) fn replace_file_blocking(
    dir: &Path,
    name: &str,
    bytes: &[u8],
) -> Result<(), StorageError> {
    let tmp = dir.join(format!("{name}.tmp"));
    let dst = dir.join(name);
    #[cfg(test)]
    if let Some(disk) = sim::current() {
        return disk.replace_file_blocking(&tmp, &dst, bytes);
    }
    real::replace_file_blocking(&tmp, &dst, bytes)
}

/// The whole content of a small file; `None` when there is none.
pub(crate) fn read_file(path: &Path) -> Result<Option<Vec<u8>>, StorageError> {
    #[cfg(test)]
    if let Some(disk) = sim::current() {
        return disk.read_file(path);
    }
    match std::fs::read(path) {
        Ok(raw) => Ok(Some(raw)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StorageError::io("read", path, e)),
    }
}

/// The names in `dir` (files and folders), unsorted.
pub(crate) fn list_dir(dir: &Path) -> Result<Vec<String>, StorageError> {
    #[cfg(test)]
    if let Some(disk) = sim::current() {
        return disk.list_dir(dir);
    }
    real::list_dir(dir)
}

/// What is at `path`; `None` when nothing is.
pub(crate) fn entry_kind(path: &Path) -> Result<Option<EntryKind>, StorageError> {
    #[cfg(test)]
    if let Some(disk) = sim::current() {
        return Ok(disk.entry_kind(path));
    }
    real::entry_kind(path)
}

/// Size and free space of the file system holding `path`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Space {
    /// Bytes of the file system's data blocks an unprivileged process may
    /// use (blocks reserved for root excluded).
    pub total_bytes: u64,
    /// Bytes an unprivileged process may still allocate.
    pub free_bytes: u64,
}

/// [`Space`] of the file system holding `path` (statvfs).
pub(crate) fn space(path: &Path) -> Result<Space, StorageError> {
    #[cfg(test)]
    if let Some(disk) = sim::current() {
        return Ok(disk.space());
    }
    real::space(path)
}

/// Creates `dir` and its missing parents.
pub(crate) fn create_dir_all(dir: &Path) -> Result<(), StorageError> {
    #[cfg(test)]
    if let Some(disk) = sim::current() {
        disk.create_dir_all(dir);
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|e| StorageError::io("create directory", dir, e))
}
