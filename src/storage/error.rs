//! Errors of the storage layer.
//!
//! Owns [`StorageError`], what every fallible file operation under
//! `storage/` returns: the failed I/O call (operation, path and the
//! [`std::io::Error`] itself), stored bytes that failed verification, and the
//! WAL's refusals. The pure formats keep their own precise error types
//! (`WalFormatError`, `SstError`, `CodecError`), carried here as reasons.
//!
//! Invariants:
//! - a full device is recognised by its errno (ENOSPC, EDQUOT), never by the
//!   text of a message: [`StorageError::is_disk_full`];
//! - an I/O error keeps the OS error number even when glommio reported it, and
//!   keeps the text glommio gave it, so logs and answers read as they always
//!   did;
//! - the error is `Clone` (the I/O error is shared), so the WAL writer can
//!   hand the one failure that poisoned it to every waiter.
//!
//! The engine turns a `StorageError` into its own error (and so into a wire
//! error code) with `From`, in `engine::error`.

use super::wal::format::WalFormatError;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a storage operation failed.
#[derive(Debug, Clone)]
pub(crate) enum StorageError {
    /// An I/O call failed: `op` (what was being done, e.g. "read") on `path`.
    Io {
        op: &'static str,
        path: PathBuf,
        source: Arc<io::Error>,
    },
    /// Stored bytes failed a checksum or format check: `file` names the kind
    /// of file ("manifest", "WAL segment"), `offset` the byte when known.
    Corrupted {
        file: &'static str,
        path: PathBuf,
        offset: Option<u64>,
        what: String,
    },
    /// A well-formed file that belongs to another shard.
    WrongShard {
        file: &'static str,
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    /// A record the WAL format cannot hold was refused before anything was
    /// queued (the request is invalid, the WAL is unharmed).
    InvalidRecord(WalFormatError),
    /// A batch of already checked records could not be framed (a broken
    /// invariant).
    Framing(WalFormatError),
    /// Too many WAL bytes are waiting for the disk; the caller should back off.
    WalBacklog { pending: usize, limit: usize },
    /// The WAL was closed (the shard is shutting down).
    WalClosed,
    /// The WAL's committer task ended before answering.
    WalStopped,
    /// A new WAL segment would take space kept free for flushes: the WAL
    /// waits for room as on a full disk (see `storage::space`).
    NoRoom {
        path: PathBuf,
        need_bytes: u64,
        reserve_bytes: u64,
        free_bytes: u64,
    },
    /// A write returned fewer bytes than asked.
    ShortWrite {
        path: PathBuf,
        written: usize,
        wanted: u64,
    },
}

impl StorageError {
    /// `op` on `path` failed with `e` (a std or a glommio I/O error).
    pub(crate) fn io(op: &'static str, path: &Path, e: impl IntoIoError) -> Self {
        StorageError::Io {
            op,
            path: path.to_path_buf(),
            source: Arc::new(e.into_io_error()),
        }
    }

    /// Bytes of the `file` at `path` failed verification.
    pub(crate) fn corrupted(
        file: &'static str,
        path: &Path,
        offset: Option<u64>,
        what: impl fmt::Display,
    ) -> Self {
        StorageError::Corrupted {
            file,
            path: path.to_path_buf(),
            offset,
            what: what.to_string(),
        }
    }

    /// True when the device (or the user's quota) is full: writes cannot
    /// succeed until space returns, reads keep working.
    pub(crate) fn is_disk_full(&self) -> bool {
        match self {
            StorageError::Io { source, .. } => {
                matches!(os_error(source), Some(libc::ENOSPC | libc::EDQUOT))
            }
            StorageError::NoRoom { .. } => true,
            _ => false,
        }
    }

    /// True when stored data failed verification (never to be served).
    pub(crate) fn is_corruption(&self) -> bool {
        matches!(
            self,
            StorageError::Corrupted { .. } | StorageError::WrongShard { .. }
        )
    }

    /// True when the caller asked for something storage cannot hold.
    pub(crate) fn is_invalid_request(&self) -> bool {
        matches!(self, StorageError::InvalidRecord(_))
    }

    /// True when the caller should back off and retry.
    pub(crate) fn is_overloaded(&self) -> bool {
        matches!(self, StorageError::WalBacklog { .. })
    }

    /// The OS error number of an I/O failure, if there is one.
    #[cfg(test)]
    pub(crate) fn os_error(&self) -> Option<i32> {
        match self {
            StorageError::Io { source, .. } => os_error(source),
            _ => None,
        }
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageError::Io { op, path, source } => {
                write!(f, "{op} {}: {source}", path.display())
            }
            StorageError::Corrupted {
                file,
                path,
                offset: Some(offset),
                what,
            } => write!(f, "{file} {} at byte {offset}: {what}", path.display()),
            StorageError::Corrupted {
                file,
                path,
                offset: None,
                what,
            } => write!(f, "{file} {}: {what}", path.display()),
            StorageError::WrongShard {
                file,
                path,
                found,
                expected,
            } => write!(
                f,
                "{file} {} belongs to shard {found}, not {expected}",
                path.display()
            ),
            StorageError::InvalidRecord(e) => write!(f, "the version cannot be stored: {e}"),
            StorageError::Framing(e) => write!(f, "cannot frame WAL batch: {e}"),
            StorageError::WalBacklog { pending, limit } => write!(
                f,
                "{pending} bytes of WAL records are waiting for the disk (limit {limit})"
            ),
            StorageError::WalClosed => write!(f, "the WAL is closed"),
            StorageError::WalStopped => write!(f, "the WAL committer stopped"),
            StorageError::NoRoom {
                path,
                need_bytes,
                reserve_bytes,
                free_bytes,
            } => write!(
                f,
                "create WAL segment {}: it needs {need_bytes} bytes and {reserve_bytes} more stay \
                 free for flushes, but the volume has {free_bytes} bytes free",
                path.display()
            ),
            StorageError::ShortWrite {
                path,
                written,
                wanted,
            } => write!(
                f,
                "short write to {}: {written} of {wanted} bytes",
                path.display()
            ),
        }
    }
}

impl std::error::Error for StorageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StorageError::Io { source, .. } => Some(source.as_ref()),
            StorageError::InvalidRecord(e) | StorageError::Framing(e) => Some(e),
            _ => None,
        }
    }
}

/// An I/O failure as std or glommio reports it, as a [`std::io::Error`].
pub(crate) trait IntoIoError {
    fn into_io_error(self) -> io::Error;
}

impl IntoIoError for io::Error {
    fn into_io_error(self) -> io::Error {
        self
    }
}

impl IntoIoError for glommio::GlommioError<()> {
    /// Keeps glommio's text (it may name the operation and descriptor) and
    /// the OS error number, which glommio's own conversion drops for its
    /// enhanced errors.
    fn into_io_error(self) -> io::Error {
        let errno = self.raw_os_error();
        let text = self.to_string();
        let kind = io::Error::from(self).kind();
        io::Error::new(kind, GlommioIo { errno, text })
    }
}

/// The payload of an I/O error glommio reported.
#[derive(Debug)]
struct GlommioIo {
    errno: Option<i32>,
    text: String,
}

impl fmt::Display for GlommioIo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for GlommioIo {}

/// The OS error number of `e`, also when glommio reported it.
fn os_error(e: &io::Error) -> Option<i32> {
    e.raw_os_error().or_else(|| {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<GlommioIo>())
            .and_then(|g| g.errno)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path() -> &'static Path {
        Path::new("/data/shard-000/wal-0000000000000001.log")
    }

    #[test]
    fn disk_full_is_recognised_by_errno() {
        for errno in [libc::ENOSPC, libc::EDQUOT] {
            let e = StorageError::io("write WAL", path(), io::Error::from_raw_os_error(errno));
            assert!(e.is_disk_full(), "{e}");
            assert_eq!(e.os_error(), Some(errno));
        }
        let e = StorageError::io("read", path(), io::Error::from_raw_os_error(libc::EIO));
        assert!(!e.is_disk_full());
        // The text alone does not make a full disk.
        let e = StorageError::io("write", path(), io::Error::other("os error 28"));
        assert!(!e.is_disk_full());
        // Keeping the flush reserve free counts as full.
        let e = StorageError::NoRoom {
            path: path().to_path_buf(),
            need_bytes: 10,
            reserve_bytes: 20,
            free_bytes: 5,
        };
        assert!(e.is_disk_full(), "{e}");
    }

    #[test]
    fn glommio_errors_keep_errno_and_text() {
        let inner = io::Error::from_raw_os_error(libc::ENOSPC);
        let g: glommio::GlommioError<()> = glommio::GlommioError::EnhancedIoError {
            source: inner,
            op: "Writing",
            path: Some(path().to_path_buf()),
            fd: Some(7),
        };
        let text = g.to_string();
        let e = StorageError::io("write WAL", path(), g);
        assert!(e.is_disk_full());
        assert_eq!(
            e.to_string(),
            format!("write WAL {}: {text}", path().display())
        );

        let g: glommio::GlommioError<()> = io::Error::from_raw_os_error(libc::ENOENT).into();
        let text = g.to_string();
        assert!(text.starts_with("IO error occurred: "), "{text}");
        let e = StorageError::io("open", path(), g);
        assert_eq!(e.os_error(), Some(libc::ENOENT));
        assert!(!e.is_disk_full());
        assert_eq!(e.to_string(), format!("open {}: {text}", path().display()));
    }

    #[test]
    fn corruption_names_file_path_and_offset() {
        let e = StorageError::corrupted("WAL segment", path(), Some(4096), "bad crc");
        assert!(e.is_corruption());
        assert_eq!(
            e.to_string(),
            format!("WAL segment {} at byte 4096: bad crc", path().display())
        );
        let e = StorageError::corrupted("manifest", Path::new("/d/MANIFEST"), None, "bad magic");
        assert_eq!(e.to_string(), "manifest /d/MANIFEST: bad magic");
        let e = StorageError::WrongShard {
            file: "manifest",
            path: PathBuf::from("/d/MANIFEST"),
            found: 2,
            expected: 3,
        };
        assert!(e.is_corruption());
        assert_eq!(
            e.to_string(),
            "manifest /d/MANIFEST belongs to shard 2, not 3"
        );
    }
}
