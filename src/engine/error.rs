//! Errors of the storage engine layer.
//!
//! Every failure a shard can answer is one variant here; the server layer maps
//! each to a wire error code. `is_corruption()` singles out data that failed
//! verification, which is reported as CORRUPTED_DATA and never served.

use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineError {
    /// Stored data failed a checksum or format check.
    Corrupted { what: String },
    /// The device is full; writes are refused, reads keep working.
    DiskFull,
    /// Too much work is queued; the caller should back off.
    Overloaded { what: String },
    /// The request cannot be carried out as asked (answered INVALID_REQUEST).
    Invalid { what: String },
    /// Anything else: an I/O error or a broken invariant.
    Internal { what: String },
}

impl EngineError {
    pub fn is_corruption(&self) -> bool {
        matches!(self, EngineError::Corrupted { .. })
    }

    /// An I/O failure doing `what` on `path`.
    pub fn io(path: &Path, what: &str, e: impl std::fmt::Display) -> Self {
        EngineError::Internal {
            what: format!("{what} {}: {e}", path.display()),
        }
    }

    /// [`EngineError::io`] for work that can run out of space: a full
    /// device (ENOSPC) is [`EngineError::DiskFull`].
    pub fn io_or_disk_full(path: &Path, what: &str, e: impl std::fmt::Display) -> Self {
        let text = e.to_string();
        if text.contains("os error 28") || text.contains("No space left") {
            return EngineError::DiskFull;
        }
        Self::io(path, what, text)
    }
}

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EngineError::Corrupted { what } => write!(f, "corrupted data: {what}"),
            EngineError::DiskFull => write!(f, "disk full: writes are refused until space returns"),
            EngineError::Overloaded { what } => write!(f, "overloaded: {what}"),
            EngineError::Invalid { what } => write!(f, "invalid request: {what}"),
            EngineError::Internal { what } => write!(f, "internal error: {what}"),
        }
    }
}

impl std::error::Error for EngineError {}
