//! Work-around for a glommio 0.9 probe bug (upstream issues 605 and 670).
//!
//! On a device without polled I/O, if the first DMA file an executor opens
//! read-write is empty, glommio's probe misdetects the device and every later
//! DMA read fails with EOPNOTSUPP. Each shard therefore opens a non-empty
//! `SENTINEL` file in its folder read-write before any other DMA file.

use super::error::StorageError;
use std::path::Path;

const SENTINEL_BYTES: usize = 4096;

/// Ensures `dir/SENTINEL` exists with data and opens it once with DMA.
pub(crate) async fn touch(dir: &Path) -> Result<(), StorageError> {
    let path = dir.join("SENTINEL");
    let needs_write = std::fs::metadata(&path)
        .map(|m| m.len() < SENTINEL_BYTES as u64)
        .unwrap_or(true);
    if needs_write {
        std::fs::write(&path, vec![0x5a; SENTINEL_BYTES])
            .map_err(|e| StorageError::io("write", &path, e))?;
    }
    let file = glommio::io::OpenOptions::new()
        .read(true)
        .write(true)
        .dma_open(&path)
        .await
        .map_err(|e| StorageError::io("open", &path, e))?;
    file.close()
        .await
        .map_err(|e| StorageError::io("close", &path, e))
}
