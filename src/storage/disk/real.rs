//! The production side of the I/O seam: glommio's io_uring files (direct
//! I/O) for data, plain system calls for the few directory operations
//! glommio does not offer.
//!
//! Invariant: nothing here decides policy (retries, what an error means);
//! each function is one operation, its error naming the operation and path.

use super::EntryKind;
use crate::storage::error::StorageError;
use glommio::io::{DmaFile, OpenOptions};
use std::path::Path;

pub(super) async fn open(path: &Path, mode: super::Mode) -> Result<DmaFile, StorageError> {
    let mut o = OpenOptions::new();
    let op = match mode {
        super::Mode::Read => {
            o.read(true);
            "open"
        }
        super::Mode::ReadWrite => {
            o.read(true).write(true);
            "open"
        }
        super::Mode::AppendDurable => {
            o.write(true).custom_flags(libc::O_DSYNC);
            "open"
        }
        super::Mode::Create => {
            // Write only: glommio's device probe misreads a file opened
            // read-write while empty (see `storage::sentinel`).
            o.write(true).create(true).truncate(true);
            "create"
        }
    };
    o.dma_open(path)
        .await
        .map_err(|e| StorageError::io(op, path, e))
}

pub(super) async fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    let d = glommio::io::Directory::open(dir)
        .await
        .map_err(|e| StorageError::io("open directory", dir, e))?;
    d.sync()
        .await
        .map_err(|e| StorageError::io("sync directory", dir, e))
}

pub(super) async fn remove(path: &Path) -> Result<(), StorageError> {
    match glommio::io::remove(path)
        .await
        .map_err(std::io::Error::from)
    {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(StorageError::io("remove", path, e))
        }
        _ => Ok(()),
    }
}

pub(super) async fn write_file(path: &Path, bytes: Vec<u8>) -> Result<(), StorageError> {
    let file = glommio::io::BufferedFile::create(path)
        .await
        .map_err(|e| StorageError::io("create", path, e))?;
    let len = bytes.len();
    let written = file
        .write_at(bytes, 0)
        .await
        .map_err(|e| StorageError::io("write", path, e))?;
    if written != len {
        return Err(StorageError::ShortWrite {
            path: path.to_path_buf(),
            written,
            wanted: len as u64,
        });
    }
    file.fdatasync()
        .await
        .map_err(|e| StorageError::io("sync", path, e))?;
    file.close()
        .await
        .map_err(|e| StorageError::io("close", path, e))
}

pub(super) fn replace_file_blocking(
    tmp: &Path,
    dst: &Path,
    bytes: &[u8],
) -> Result<(), StorageError> {
    use std::io::Write;
    let mut f = std::fs::File::create(tmp).map_err(|e| StorageError::io("create", tmp, e))?;
    f.write_all(bytes)
        .map_err(|e| StorageError::io("write", tmp, e))?;
    f.sync_all().map_err(|e| StorageError::io("sync", tmp, e))?;
    std::fs::rename(tmp, dst).map_err(|e| StorageError::io("rename", dst, e))?;
    let dir = dst.parent().unwrap_or(Path::new("."));
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::io("sync directory", dir, e))
}

pub(super) fn list_dir(dir: &Path) -> Result<Vec<String>, StorageError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| StorageError::io("list", dir, e))? {
        let entry = entry.map_err(|e| StorageError::io("list", dir, e))?;
        if let Some(name) = entry.file_name().to_str() {
            out.push(name.to_string());
        }
    }
    Ok(out)
}

pub(super) fn entry_kind(path: &Path) -> Result<Option<EntryKind>, StorageError> {
    use std::os::unix::fs::FileTypeExt;
    let m = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StorageError::io("access", path, e)),
    };
    let t = m.file_type();
    Ok(Some(if t.is_dir() {
        EntryKind::Dir
    } else if t.is_file() {
        EntryKind::File
    } else if t.is_socket() {
        EntryKind::Other("a socket")
    } else if t.is_fifo() {
        EntryKind::Other("a named pipe")
    } else if t.is_block_device() || t.is_char_device() {
        EntryKind::Other("a device")
    } else {
        EntryKind::Other("not a directory")
    }))
}

#[allow(unsafe_code)] // one call: statvfs(3)
pub(super) fn space(path: &Path) -> Result<super::Space, StorageError> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        StorageError::io(
            "statvfs",
            path,
            std::io::Error::from(std::io::ErrorKind::InvalidInput),
        )
    })?;
    // SAFETY: statvfs is plain old data; all-zero bytes are a valid value.
    let mut out: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `out` a valid, writable
    // statvfs for the duration of the call.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut out) };
    if rc != 0 {
        return Err(StorageError::io(
            "statvfs",
            path,
            std::io::Error::last_os_error(),
        ));
    }
    let unit = out.f_frsize as u64;
    // Blocks reserved for root (ext4's 5% by default) are not the node's:
    // neither in what is free nor in the volume's size.
    let reserved = (out.f_bfree as u64).saturating_sub(out.f_bavail as u64);
    Ok(super::Space {
        total_bytes: (out.f_blocks as u64)
            .saturating_sub(reserved)
            .saturating_mul(unit),
        free_bytes: (out.f_bavail as u64).saturating_mul(unit),
    })
}
