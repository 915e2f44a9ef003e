//! Durable storage of a shard: encodings, WAL, SSTables, manifest, data
//! directory and its lock. Pure formats (`codec`, `*::format`) are kept apart from the
//! glommio file I/O that uses them.
//!
//! Layering: this layer depends only on `model` and `config`, never on the
//! engine above it. Its file operations fail with [`error::StorageError`]
//! (operation, path and the I/O error; corruption; WAL refusals), which the
//! engine turns into its own error; the pure formats report their own
//! precise error types.

// Stricter rules than the crate's for a layer that must never panic on
// bytes from disk or the wire: no unwrap or expect, no unchecked indexing
// or slicing (tests are exempt, see clippy.toml).
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

pub(crate) mod codec;
pub(crate) mod datadir;
pub(crate) mod disk;
pub(crate) mod error;
pub(crate) mod lock;
pub(crate) mod manifest;
pub(crate) mod sentinel;
pub(crate) mod space;
pub(crate) mod sstable;
pub(crate) mod streams_file;
pub(crate) mod wal;

/// A temporary directory for tests that do direct I/O: under the build's
/// target folder (on the project's disk), since tmpfs has no O_DIRECT.
#[cfg(test)]
pub(crate) fn test_dir() -> tempfile::TempDir {
    let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("test-tmp");
    let _ = std::fs::create_dir_all(&base);
    tempfile::tempdir_in(base).expect("create a test directory under target/")
}
