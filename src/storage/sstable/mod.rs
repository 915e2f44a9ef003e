//! SSTables: immutable sorted tables of `key -> versions`, as pure byte
//! formats. No file I/O happens here: the builder produces aligned byte
//! buffers to write, and the readers parse buffers the caller read (with
//! glommio DMA in the engine).
//!
//! - [`format`] owns the byte layout (tables in its doc), the block frame
//!   (crc32 over the whole aligned block) and the footer;
//! - [`builder`] turns strictly increasing `(key, versions)` into data blocks
//!   (zstd where it pays), an index, a filter and a footer, block by block;
//! - [`reader`] parses the index and data blocks, and offers [`SstImage`], a
//!   reader over a whole in-memory image that shows how the parts combine;
//! - [`filter`] owns the stable key hash and the binary fuse filter.
//!
//! Invariants: every block starts and ends on a 4096-byte boundary; every
//! byte of every block is covered by that block's crc32; parsing never trusts
//! a length or offset (malformed input is an [`SstError`], never a panic) and
//! never allocates more than [`format::MAX_RAW_BLOCK_BYTES`] for one block
//! beyond the input's own size.
//!
//! How a point read uses this (the engine does the I/O):
//! 1. read the last 4096 bytes, [`Footer::parse_with_file_len`];
//! 2. read the index and filter blocks, [`Index::parse`], [`Filter::parse`],
//!    [`Index::check_footer`] (keep these per open table);
//! 3. per lookup: [`Filter::may_contain`], [`Index::find_block`], read that
//!    block, [`decode_indexed_block`], [`Block::get`].

pub(crate) mod builder;
pub(crate) mod filter;
pub(crate) mod format;
pub(crate) mod reader;

pub(crate) use builder::SstBuilder;
pub(crate) use filter::Filter;
pub(crate) use format::{Footer, ALIGN, FORMAT_VERSION, MAGIC};
pub(crate) use reader::{decode_indexed_block, BlockEntries, Index};
// The in-memory reference reader and the rest the tests use by name.
#[cfg(test)]
pub(crate) use builder::SstSummary;
#[cfg(test)]
pub(crate) use format::BlockHandle;
#[cfg(test)]
pub(crate) use reader::{decode_block, Compression, SstImage};

/// Why a table could not be built or parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SstError {
    /// The bytes are not a valid table (checksum mismatch, impossible length
    /// or offset, malformed entry...). `offset` is relative to the buffer the
    /// failing parse was given unless rebased with [`SstError::rebase`] (the
    /// in-memory reader and [`decode_indexed_block`] report file offsets).
    Corrupted { what: String, offset: Option<u64> },
    /// The last block does not carry the SSTable magic.
    BadMagic { found: [u8; 8] },
    /// A format version this code does not read.
    UnsupportedVersion(u32),
    /// `add` was called with a key not greater than the previous one.
    KeyOrder { previous: Vec<u8>, key: Vec<u8> },
    /// `add` was given versions the format cannot hold (none, more than
    /// 65535, a clock the codec cannot round-trip).
    InvalidEntry(String),
    /// One entry would need a block larger than [`format::MAX_RAW_BLOCK_BYTES`].
    EntryTooLarge { bytes: usize, max: usize },
    /// A length does not fit its field (index or filter beyond 4 GiB).
    TooLarge { what: &'static str, bytes: usize },
}

impl SstError {
    /// True when the error says stored bytes are bad (as opposed to misuse of
    /// the builder or a table from a newer format version).
    pub(crate) fn is_corruption(&self) -> bool {
        matches!(self, SstError::Corrupted { .. } | SstError::BadMagic { .. })
    }

    /// Turns a block-relative offset into a file offset by adding `base` (the
    /// block's offset in the file); an unknown offset becomes `base`.
    pub(crate) fn rebase(self, base: u64) -> SstError {
        match self {
            SstError::Corrupted { what, offset } => SstError::Corrupted {
                what,
                offset: Some(base.saturating_add(offset.unwrap_or(0))),
            },
            other => other,
        }
    }
}

fn preview(key: &[u8]) -> String {
    let shown: String = key
        .iter()
        .take(32)
        .flat_map(|&b| std::ascii::escape_default(b))
        .map(char::from)
        .collect();
    if key.len() > 32 {
        format!("\"{shown}\"... ({} bytes)", key.len())
    } else {
        format!("\"{shown}\"")
    }
}

impl std::fmt::Display for SstError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SstError::Corrupted {
                what,
                offset: Some(o),
            } => write!(f, "sstable corrupted at offset {o}: {what}"),
            SstError::Corrupted { what, offset: None } => write!(f, "sstable corrupted: {what}"),
            SstError::BadMagic { found } => {
                write!(
                    f,
                    "not an sstable: magic {found:02x?}, expected {MAGIC:02x?}"
                )
            }
            SstError::UnsupportedVersion(v) => write!(
                f,
                "sstable format version {v} is not supported (this build reads {FORMAT_VERSION})"
            ),
            SstError::KeyOrder { previous, key } => write!(
                f,
                "sstable keys out of order: {} after {}",
                preview(key),
                preview(previous)
            ),
            SstError::InvalidEntry(why) => write!(f, "sstable entry refused: {why}"),
            SstError::EntryTooLarge { bytes, max } => write!(
                f,
                "sstable entry of {bytes} bytes exceeds the block limit of {max}"
            ),
            SstError::TooLarge { what, bytes } => {
                write!(
                    f,
                    "sstable {what} of {bytes} bytes is too large for the format"
                )
            }
        }
    }
}

impl std::error::Error for SstError {}

#[cfg(test)]
mod tests;
