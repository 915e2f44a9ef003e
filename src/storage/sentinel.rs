//! Work-around for a glommio 0.9 probe bug (upstream issues 605 and 670).
//!
//! On a device without polled I/O, if the first DMA file an executor opens
//! read-write is empty, glommio's probe misdetects the device and every later
//! DMA read fails with EOPNOTSUPP. Each shard therefore opens a non-empty
//! `SENTINEL` file in its folder read-write before any other DMA file.

use super::disk::{self, DiskFile, Mode};
use super::error::StorageError;
use std::path::Path;

const SENTINEL_BYTES: usize = 4096;

/// Ensures `dir/SENTINEL` exists with data and opens it once with DMA.
pub(crate) async fn touch(dir: &Path) -> Result<(), StorageError> {
    let path = dir.join("SENTINEL");
    let needs_write = disk::read_file(&path)?.is_none_or(|b| b.len() < SENTINEL_BYTES);
    if needs_write {
        // Written without DMA: an empty file opened for DMA first is what
        // misleads the probe.
        disk::write_file(&path, vec![0x5a; SENTINEL_BYTES]).await?;
    }
    DiskFile::open(&path, Mode::ReadWrite).await?.close().await
}
