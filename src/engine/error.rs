//! Errors of the storage engine layer.
//!
//! Every failure a shard can answer is one variant here; the server layer maps
//! each to a wire error code. `is_corruption()` singles out data that failed
//! verification, which is reported as CORRUPTED_DATA and never served.
//! Storage failures arrive as [`StorageError`] and become an `EngineError`
//! through `From`, which keeps their text and picks the variant (so the wire
//! code) from what the storage error says: a full disk, corruption, a refused
//! record, a WAL backlog, or anything else.

use crate::storage::error::StorageError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EngineError {
    /// Stored data failed a checksum or format check.
    Corrupted { what: String },
    /// The device is full; writes are refused, reads keep working. `what`
    /// names the operation and the file that found it full.
    DiskFull { what: String },
    /// Too much work is queued; the caller should back off.
    Overloaded { what: String },
    /// The request cannot be carried out as asked (answered INVALID_REQUEST).
    Invalid { what: String },
    /// Anything else: an I/O error or a broken invariant.
    Internal { what: String },
}

impl EngineError {
    #[cfg(test)]
    pub(crate) fn is_corruption(&self) -> bool {
        matches!(self, EngineError::Corrupted { .. })
    }
}

impl From<StorageError> for EngineError {
    fn from(e: StorageError) -> Self {
        if e.is_disk_full() {
            EngineError::DiskFull {
                what: e.to_string(),
            }
        } else if e.is_corruption() {
            EngineError::Corrupted {
                what: e.to_string(),
            }
        } else if e.is_invalid_request() {
            EngineError::Invalid {
                what: e.to_string(),
            }
        } else if e.is_overloaded() {
            EngineError::Overloaded {
                what: e.to_string(),
            }
        } else {
            EngineError::Internal {
                what: e.to_string(),
            }
        }
    }
}

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EngineError::Corrupted { what } => write!(f, "corrupted data: {what}"),
            EngineError::DiskFull { what } => {
                write!(
                    f,
                    "disk full: writes are refused until space returns ({what})"
                )
            }
            EngineError::Overloaded { what } => write!(f, "overloaded: {what}"),
            EngineError::Invalid { what } => write!(f, "invalid request: {what}"),
            EngineError::Internal { what } => write!(f, "internal error: {what}"),
        }
    }
}

impl std::error::Error for EngineError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::wal::format::WalFormatError;
    use std::io;

    fn path() -> &'static std::path::Path {
        std::path::Path::new("/data/shard-001/MANIFEST")
    }

    #[test]
    fn disk_full_by_errno_not_text() {
        let full = io::Error::from_raw_os_error(libc::ENOSPC);
        let e = EngineError::from(StorageError::io("write", path(), full));
        assert!(matches!(e, EngineError::DiskFull { .. }), "{e:?}");
        assert!(
            e.to_string().contains("/data/shard-001/MANIFEST"),
            "names the file: {e}"
        );
        let quota = io::Error::from_raw_os_error(libc::EDQUOT);
        assert!(matches!(
            EngineError::from(StorageError::io("sync", path(), quota)),
            EngineError::DiskFull { .. }
        ));
        let lookalike = io::Error::other("No space left (os error 28)");
        assert_eq!(
            EngineError::from(StorageError::io("write", path(), lookalike)),
            EngineError::Internal {
                what: "write /data/shard-001/MANIFEST: No space left (os error 28)".into()
            }
        );
    }

    #[test]
    fn storage_errors_keep_their_code_and_text() {
        let eio = io::Error::from_raw_os_error(libc::EIO);
        let text = eio.to_string();
        assert_eq!(
            EngineError::from(StorageError::io("read", path(), eio)),
            EngineError::Internal {
                what: format!("read /data/shard-001/MANIFEST: {text}")
            }
        );
        assert_eq!(
            EngineError::from(StorageError::corrupted(
                "manifest",
                path(),
                None,
                "checksum mismatch"
            )),
            EngineError::Corrupted {
                what: "manifest /data/shard-001/MANIFEST: checksum mismatch".into()
            }
        );
        assert_eq!(
            EngineError::from(StorageError::corrupted("WAL segment", path(), Some(9), "x")),
            EngineError::Corrupted {
                what: "WAL segment /data/shard-001/MANIFEST at byte 9: x".into()
            }
        );
        assert_eq!(
            EngineError::from(StorageError::WrongShard {
                file: "manifest",
                path: path().into(),
                found: 1,
                expected: 2
            }),
            EngineError::Corrupted {
                what: "manifest /data/shard-001/MANIFEST belongs to shard 1, not 2".into()
            }
        );
        assert_eq!(
            EngineError::from(StorageError::InvalidRecord(WalFormatError::EmptyBatch)),
            EngineError::Invalid {
                what: "the version cannot be stored: a batch needs at least one record".into()
            }
        );
        assert_eq!(
            EngineError::from(StorageError::WalBacklog {
                pending: 10,
                limit: 8
            }),
            EngineError::Overloaded {
                what: "10 bytes of WAL records are waiting for the disk (limit 8)".into()
            }
        );
        for (e, what) in [
            (StorageError::WalClosed, "the WAL is closed"),
            (StorageError::WalStopped, "the WAL committer stopped"),
            (
                StorageError::Framing(WalFormatError::EmptyBatch),
                "cannot frame WAL batch: a batch needs at least one record",
            ),
        ] {
            assert_eq!(
                EngineError::from(e),
                EngineError::Internal { what: what.into() }
            );
        }
    }
}
