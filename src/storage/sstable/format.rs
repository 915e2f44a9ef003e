//! SSTable byte layout: constants, the common block frame (header, crc32,
//! zero padding), the footer, and the block handle.
//!
//! Owns every fixed offset of the file format; the builder writes through
//! [`seal_block`] and [`Footer::encode`], the readers go through
//! [`open_block`] and [`Footer::parse`], so no other code knows where a field
//! lives. All integers are big-endian (as in [`crate::storage::codec`]).
//!
//! # File
//!
//! ```text
//! offset 0                                                   file_len
//! | data block 0 | data block 1 | ... | index | filter | footer |
//! ```
//!
//! Every block starts at a multiple of [`ALIGN`] (4096) and is zero-padded to
//! a multiple of [`ALIGN`], so every offset and length below is a multiple of
//! 4096 and so is the file length. Data blocks are contiguous from offset 0;
//! the index follows the last data block, the filter follows the index, and
//! the footer is the last [`ALIGN`] bytes. A table with no entries has no data
//! blocks (the index starts at offset 0).
//!
//! # Block frame (data, index and filter blocks)
//!
//! | offset | size | field | notes |
//! |---|---|---|---|
//! | 0 | 4 | crc32 | crc32 (crc32fast, IEEE) of bytes `4..block_len`: header fields, payload and padding |
//! | 4 | 1 | kind | 0 data raw, 1 data zstd, 2 index, 3 filter (4 is the footer) |
//! | 5 | 3 | reserved | zero |
//! | 8 | 4 | count | data: entries; index: data blocks; filter: distinct key hashes |
//! | 12 | 4 | stored_len | payload bytes stored after the header |
//! | 16 | 4 | raw_len | payload bytes once decompressed (= stored_len unless kind 1); data blocks: at most [`MAX_RAW_BLOCK_BYTES`] (64 MiB) |
//! | 20 | stored_len | payload | see below |
//! | 20 + stored_len | .. | padding | zero, up to `block_len = align_up(20 + stored_len)` |
//!
//! Because the crc covers everything but itself and a change to the crc field
//! makes it disagree, every single-byte change anywhere in a block is
//! detected. A block's length is implied by its header
//! (`align_up(20 + stored_len)`) and must equal the length of the buffer it is
//! parsed from; the index records it too, so a reader knows how much to read.
//!
//! # Data block payload
//!
//! `count` entries encoded back to back with
//! [`codec::encode_entry`](crate::storage::codec::encode_entry) (key, then the
//! key's versions), keys strictly increasing (bytewise). Kind 1 stores the
//! zstd frame of that byte string instead (written only when it saves at least
//! 1/8 of `raw_len` and makes the aligned block shorter). A block holds entries until their raw size reaches the
//! builder's target; an entry larger than the target gets a block of its own.
//!
//! # Index block payload (kind 2, never compressed)
//!
//! | size | field | notes |
//! |---|---|---|
//! | 4 | first_key_len | 0 when the table is empty |
//! | first_key_len | first_key | smallest key of the table |
//! | per data block (`count` times): | | |
//! | 4 | last_key_len | |
//! | last_key_len | last_key | largest key of the block; strictly increasing across blocks |
//! | 8 | offset | block offset in the file: 0 for the first, then previous offset + previous length |
//! | 4 | length | aligned block length (multiple of 4096, > 0) |
//! | 4 | entry_count | entries in the block (> 0) |
//!
//! # Filter block payload (kind 3, never compressed)
//!
//! | size | field | notes |
//! |---|---|---|
//! | 1 | filter_kind | 0 empty (no key may be present), 1 BinaryFuse8, 2 pass-through (every key may be present) |
//! | 3 | reserved | zero |
//! | 8 | seed | BinaryFuse8 descriptor (zero unless kind 1) |
//! | 4 | segment_length | power of two (kind 1) |
//! | 4 | segment_length_mask | `segment_length - 1` (kind 1) |
//! | 4 | segment_count_length | multiple of `segment_length` (kind 1) |
//! | 4 | fingerprints_len | `segment_count_length + 2 * segment_length` (kind 1), else 0 |
//! | fingerprints_len | fingerprints | one byte per slot |
//!
//! The filter's set is the 64-bit [`key_hash`](super::filter::key_hash)
//! (FNV-1a 64, then the splitmix64 finalizer) of every key in the table.
//!
//! # Footer (the last 4096 bytes)
//!
//! | offset | size | field | notes |
//! |---|---|---|---|
//! | 0 | 4 | crc32 | of bytes `4..4096` |
//! | 4 | 1 | kind | 4 |
//! | 5 | 3 | reserved | zero |
//! | 8 | 8 | magic | `b"PDBSST\0\x01"` |
//! | 16 | 4 | format_version | 1 |
//! | 20 | 8 | index_offset | = end of the data blocks |
//! | 28 | 4 | index_len | aligned |
//! | 32 | 8 | filter_offset | = index_offset + index_len |
//! | 40 | 4 | filter_len | aligned |
//! | 44 | 8 | entry_count | keys in the table |
//! | 52 | 4 | data_block_count | |
//! | 56 | 8 | data_raw_bytes | sum of the data blocks' raw_len |
//! | 64 | 4032 | padding | zero |
//!
//! The file length is `filter_offset + filter_len + 4096`.

use super::SstError;

/// Alignment of every block and of the file length (direct I/O unit).
pub(crate) const ALIGN: usize = 4096;
/// Footer magic, at bytes 8..16 of the last block.
pub(crate) const MAGIC: [u8; 8] = *b"PDBSST\0\x01";
/// The format version this code writes and reads.
pub(crate) const FORMAT_VERSION: u32 = 1;
/// Length of the block frame header (crc, kind, reserved, count, lengths).
pub(crate) const BLOCK_HEADER_LEN: usize = 20;
/// Upper bound of a data block's `raw_len`: decompression never allocates
/// more, and the builder refuses entries that would need a larger block.
/// (Index and filter blocks are never compressed, so their size is bounded
/// by the bytes read, and only by the u32 length field.)
pub(crate) const MAX_RAW_BLOCK_BYTES: usize = 64 << 20;
/// The footer is exactly one alignment unit.
pub(crate) const FOOTER_LEN: usize = ALIGN;

const FOOTER_USED: usize = 64;

/// What a block holds (byte 4 of every block).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BlockKind {
    /// Data block whose payload is the entries as they are.
    DataRaw,
    /// Data block whose payload is a zstd frame of the entries.
    DataZstd,
    Index,
    Filter,
    Footer,
}

impl BlockKind {
    pub(crate) fn to_byte(self) -> u8 {
        match self {
            BlockKind::DataRaw => 0,
            BlockKind::DataZstd => 1,
            BlockKind::Index => 2,
            BlockKind::Filter => 3,
            BlockKind::Footer => 4,
        }
    }

    pub(crate) fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            0 => BlockKind::DataRaw,
            1 => BlockKind::DataZstd,
            2 => BlockKind::Index,
            3 => BlockKind::Filter,
            4 => BlockKind::Footer,
            _ => return None,
        })
    }
}

/// Where a data block lives in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockHandle {
    /// File offset (multiple of [`ALIGN`]).
    pub offset: u64,
    /// Aligned length: how many bytes to read.
    pub len: u32,
    /// Entries in the block.
    pub entry_count: u32,
}

/// `n` rounded up to a multiple of [`ALIGN`] (None on overflow).
pub(crate) fn align_up(n: usize) -> Option<usize> {
    n.checked_add(ALIGN - 1).map(|v| v / ALIGN * ALIGN)
}

/// The decoded frame header of a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockHeader {
    pub kind: BlockKind,
    pub count: u32,
    pub stored_len: u32,
    pub raw_len: u32,
}

pub(crate) fn corrupted(what: impl Into<String>, offset: Option<u64>) -> SstError {
    SstError::Corrupted {
        what: what.into(),
        offset,
    }
}

pub(crate) fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..)?.first_chunk().map(|a| u32::from_be_bytes(*a))
}

pub(crate) fn be_u64(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..)?.first_chunk().map(|a| u64::from_be_bytes(*a))
}

/// Stores the crc of a block being built in its first four bytes (the
/// header, pushed before the crc is computed, is always there).
fn put_crc(out: &mut [u8], crc: u32) {
    if let Some(field) = out.first_chunk_mut() {
        *field = crc.to_be_bytes();
    }
}

fn crc_of(block: &[u8]) -> u32 {
    crc32fast::hash(block.get(4..).unwrap_or(&[]))
}

/// Frames `payload` as one aligned block: header, payload, zero padding, and
/// the crc32 over everything after the crc field. `raw_len` is the payload's
/// decompressed length (equal to `payload.len()` unless `kind` is
/// [`BlockKind::DataZstd`]). Fails if a length does not fit its field.
pub(crate) fn seal_block(
    kind: BlockKind,
    count: u32,
    raw_len: usize,
    payload: &[u8],
) -> Result<Vec<u8>, SstError> {
    let too_large = || SstError::TooLarge {
        what: "block payload",
        bytes: payload.len().max(raw_len),
    };
    let stored_len = u32::try_from(payload.len()).map_err(|_| too_large())?;
    let raw_len_u32 = u32::try_from(raw_len).map_err(|_| too_large())?;
    let total = BLOCK_HEADER_LEN
        .checked_add(payload.len())
        .and_then(align_up)
        .ok_or_else(too_large)?;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&[0u8; 4]);
    out.push(kind.to_byte());
    out.extend_from_slice(&[0u8; 3]);
    out.extend_from_slice(&count.to_be_bytes());
    out.extend_from_slice(&stored_len.to_be_bytes());
    out.extend_from_slice(&raw_len_u32.to_be_bytes());
    out.extend_from_slice(payload);
    out.resize(total, 0);
    let crc = crc_of(&out);
    put_crc(&mut out, crc);
    Ok(out)
}

/// Checks a whole framed block (length, crc, header fields, zero padding) and
/// returns its header and stored payload. `block` must be exactly the block:
/// its length a multiple of [`ALIGN`] equal to `align_up(20 + stored_len)`.
/// Offsets in errors are relative to the start of `block`.
pub(crate) fn open_block<'a>(
    block: &'a [u8],
    accept: &[BlockKind],
) -> Result<(BlockHeader, &'a [u8]), SstError> {
    if block.is_empty() || !block.len().is_multiple_of(ALIGN) {
        return Err(corrupted(
            format!(
                "block length {} is not a positive multiple of {ALIGN}",
                block.len()
            ),
            None,
        ));
    }
    let stored_crc = be_u32(block, 0).ok_or_else(|| corrupted("block too short", Some(0)))?;
    let crc = crc_of(block);
    if crc != stored_crc {
        return Err(corrupted(
            format!("block checksum mismatch: stored {stored_crc:#010x}, computed {crc:#010x}"),
            Some(0),
        ));
    }
    // A positive multiple of ALIGN always holds the header.
    let (head, body) = block
        .split_first_chunk::<BLOCK_HEADER_LEN>()
        .ok_or_else(|| corrupted("block too short", Some(0)))?;
    let kind = BlockKind::from_byte(head[4])
        .ok_or_else(|| corrupted(format!("unknown block kind {}", head[4]), Some(4)))?;
    if !accept.contains(&kind) {
        return Err(corrupted(
            format!("block kind {kind:?} where {accept:?} was expected"),
            Some(4),
        ));
    }
    if head[5..8] != [0, 0, 0] {
        return Err(corrupted("reserved header bytes are not zero", Some(5)));
    }
    let header_field = |at| be_u32(block, at).ok_or_else(|| corrupted("block too short", None));
    let count = header_field(8)?;
    let stored_len = header_field(12)?;
    let raw_len = header_field(16)?;
    let end = BLOCK_HEADER_LEN
        .checked_add(stored_len as usize)
        .ok_or_else(|| corrupted("stored length overflows", Some(12)))?;
    let (payload, padding) = match body.split_at_checked(stored_len as usize) {
        Some(split) if align_up(end) == Some(block.len()) => split,
        _ => {
            return Err(corrupted(
                format!(
                    "stored length {stored_len} does not match block length {}",
                    block.len()
                ),
                Some(12),
            ))
        }
    };
    let is_data = matches!(kind, BlockKind::DataRaw | BlockKind::DataZstd);
    if is_data && raw_len as usize > MAX_RAW_BLOCK_BYTES {
        return Err(corrupted(
            format!("raw length {raw_len} exceeds {MAX_RAW_BLOCK_BYTES}"),
            Some(16),
        ));
    }
    if kind != BlockKind::DataZstd && raw_len != stored_len {
        return Err(corrupted(
            format!("raw length {raw_len} differs from stored length {stored_len} in an uncompressed block"),
            Some(16),
        ));
    }
    if let Some(pos) = padding.iter().position(|&b| b != 0) {
        return Err(corrupted(
            "block padding is not zero",
            Some((end + pos) as u64),
        ));
    }
    let header = BlockHeader {
        kind,
        count,
        stored_len,
        raw_len,
    };
    Ok((header, payload))
}

/// The footer: where the index and filter are, and table totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Footer {
    pub format_version: u32,
    pub index_offset: u64,
    pub index_len: u32,
    pub filter_offset: u64,
    pub filter_len: u32,
    pub entry_count: u64,
    pub data_block_count: u32,
    pub data_raw_bytes: u64,
}

impl Footer {
    /// The [`FOOTER_LEN`] bytes of the footer block.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(FOOTER_LEN);
        out.extend_from_slice(&[0u8; 4]);
        out.push(BlockKind::Footer.to_byte());
        out.extend_from_slice(&[0u8; 3]);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&self.format_version.to_be_bytes());
        out.extend_from_slice(&self.index_offset.to_be_bytes());
        out.extend_from_slice(&self.index_len.to_be_bytes());
        out.extend_from_slice(&self.filter_offset.to_be_bytes());
        out.extend_from_slice(&self.filter_len.to_be_bytes());
        out.extend_from_slice(&self.entry_count.to_be_bytes());
        out.extend_from_slice(&self.data_block_count.to_be_bytes());
        out.extend_from_slice(&self.data_raw_bytes.to_be_bytes());
        debug_assert_eq!(out.len(), FOOTER_USED);
        out.resize(FOOTER_LEN, 0);
        let crc = crc_of(&out);
        put_crc(&mut out, crc);
        out
    }

    /// Parses the last [`FOOTER_LEN`] bytes of a file. Checks, in order: the
    /// length, the magic ([`SstError::BadMagic`]), the crc, the kind and
    /// reserved bytes, the format version ([`SstError::UnsupportedVersion`]),
    /// and that the index and filter are aligned, non-empty and adjacent.
    /// Offsets in errors are relative to the footer's start.
    pub(crate) fn parse(last_block: &[u8]) -> Result<Footer, SstError> {
        // As a fixed-size array, the constant offsets below are in range.
        let b: &[u8; FOOTER_LEN] = last_block.try_into().map_err(|_| {
            corrupted(
                format!(
                    "footer is {} bytes, expected {FOOTER_LEN}",
                    last_block.len()
                ),
                None,
            )
        })?;
        let mut magic = [0u8; 8];
        magic.copy_from_slice(&b[8..16]);
        if magic != MAGIC {
            return Err(SstError::BadMagic { found: magic });
        }
        let stored_crc = be_u32(b, 0).ok_or_else(|| corrupted("footer too short", Some(0)))?;
        let crc = crc_of(b);
        if crc != stored_crc {
            return Err(corrupted(
                format!(
                    "footer checksum mismatch: stored {stored_crc:#010x}, computed {crc:#010x}"
                ),
                Some(0),
            ));
        }
        if b[4] != BlockKind::Footer.to_byte() || b[5..8] != [0, 0, 0] {
            return Err(corrupted(
                "footer kind or reserved bytes are wrong",
                Some(4),
            ));
        }
        let u32_at = |at| be_u32(b, at).ok_or_else(|| corrupted("footer too short", None));
        let u64_at = |at| be_u64(b, at).ok_or_else(|| corrupted("footer too short", None));
        let format_version = u32_at(16)?;
        if format_version != FORMAT_VERSION {
            return Err(SstError::UnsupportedVersion(format_version));
        }
        if b[FOOTER_USED..].iter().any(|&x| x != 0) {
            return Err(corrupted(
                "footer padding is not zero",
                Some(FOOTER_USED as u64),
            ));
        }
        let footer = Footer {
            format_version,
            index_offset: u64_at(20)?,
            index_len: u32_at(28)?,
            filter_offset: u64_at(32)?,
            filter_len: u32_at(40)?,
            entry_count: u64_at(44)?,
            data_block_count: u32_at(52)?,
            data_raw_bytes: u64_at(56)?,
        };
        let aligned = |v: u64| v.is_multiple_of(ALIGN as u64);
        if !aligned(footer.index_offset)
            || !aligned(footer.index_len.into())
            || !aligned(footer.filter_len.into())
            || footer.index_len == 0
            || footer.filter_len == 0
        {
            return Err(corrupted(
                "index or filter location is not aligned or empty",
                Some(20),
            ));
        }
        if footer.index_offset.checked_add(footer.index_len.into()) != Some(footer.filter_offset) {
            return Err(corrupted("filter does not follow the index", Some(32)));
        }
        if footer.file_len().is_none() {
            return Err(corrupted("table length overflows", Some(32)));
        }
        if (footer.data_block_count == 0) != (footer.index_offset == 0)
            || (footer.data_block_count == 0) != (footer.entry_count == 0)
        {
            return Err(corrupted(
                "data block count, entry count and index offset disagree",
                Some(44),
            ));
        }
        Ok(footer)
    }

    /// Like [`Footer::parse`], and also checks that the footer describes a
    /// file of exactly `file_len` bytes.
    pub(crate) fn parse_with_file_len(
        last_block: &[u8],
        file_len: u64,
    ) -> Result<Footer, SstError> {
        let footer = Footer::parse(last_block)?;
        if footer.file_len() != Some(file_len) {
            return Err(corrupted(
                format!(
                    "footer describes a table of {:?} bytes, the file has {file_len}",
                    footer.file_len()
                ),
                file_len.checked_sub(FOOTER_LEN as u64),
            ));
        }
        Ok(footer)
    }

    /// The file length this footer implies: `filter_offset + filter_len + 4096`.
    pub(crate) fn file_len(&self) -> Option<u64> {
        self.filter_offset
            .checked_add(self.filter_len.into())?
            .checked_add(FOOTER_LEN as u64)
    }

    /// Where the index block is.
    pub(crate) fn index_range(&self) -> std::ops::Range<u64> {
        self.index_offset..self.index_offset.saturating_add(self.index_len.into())
    }

    /// Where the filter block is.
    pub(crate) fn filter_range(&self) -> std::ops::Range<u64> {
        self.filter_offset..self.filter_offset.saturating_add(self.filter_len.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn footer() -> Footer {
        Footer {
            format_version: FORMAT_VERSION,
            index_offset: 8192,
            index_len: 4096,
            filter_offset: 12288,
            filter_len: 4096,
            entry_count: 7,
            data_block_count: 2,
            data_raw_bytes: 1234,
        }
    }

    #[test]
    fn footer_round_trips_and_every_byte_flip_is_detected() {
        let f = footer();
        let bytes = f.encode();
        assert_eq!(bytes.len(), FOOTER_LEN);
        assert_eq!(Footer::parse(&bytes).unwrap(), f);
        assert_eq!(
            Footer::parse_with_file_len(&bytes, 16384 + 4096).unwrap(),
            f
        );
        assert!(Footer::parse_with_file_len(&bytes, 16384).is_err());
        for i in 0..bytes.len() {
            for mask in [0x01u8, 0xFF] {
                let mut bad = bytes.clone();
                bad[i] ^= mask;
                assert!(Footer::parse(&bad).is_err(), "flip at {i} undetected");
            }
        }
    }

    #[test]
    fn footer_reports_magic_and_version() {
        let mut bytes = footer().encode();
        bytes[8] = b'X';
        assert!(matches!(
            Footer::parse(&bytes),
            Err(SstError::BadMagic { .. })
        ));
        let mut f = footer();
        f.format_version = 2;
        assert_eq!(
            Footer::parse(&f.encode()),
            Err(SstError::UnsupportedVersion(2))
        );
    }

    #[test]
    fn sealed_blocks_open_and_reject_flips() {
        let payload = b"hello block".to_vec();
        let block = seal_block(BlockKind::Index, 3, payload.len(), &payload).unwrap();
        assert_eq!(block.len(), ALIGN);
        let (h, p) = open_block(&block, &[BlockKind::Index]).unwrap();
        assert_eq!(h.count, 3);
        assert_eq!(p, &payload[..]);
        assert!(open_block(&block, &[BlockKind::Filter]).is_err());
        for i in 0..block.len() {
            let mut bad = block.clone();
            bad[i] ^= 0x01;
            assert!(
                open_block(&bad, &[BlockKind::Index]).is_err(),
                "flip at {i}"
            );
        }
        // A payload that exactly fills a unit, and one byte more.
        let fill = vec![7u8; ALIGN - BLOCK_HEADER_LEN];
        assert_eq!(
            seal_block(BlockKind::Index, 0, fill.len(), &fill)
                .unwrap()
                .len(),
            ALIGN
        );
        let over = vec![7u8; ALIGN - BLOCK_HEADER_LEN + 1];
        assert_eq!(
            seal_block(BlockKind::Index, 0, over.len(), &over)
                .unwrap()
                .len(),
            2 * ALIGN
        );
        // Truncated or extended buffers are refused.
        assert!(open_block(&block[..ALIGN - 1], &[BlockKind::Index]).is_err());
        let mut longer = block.clone();
        longer.resize(2 * ALIGN, 0);
        assert!(open_block(&longer, &[BlockKind::Index]).is_err());
        assert!(open_block(&[], &[BlockKind::Index]).is_err());
    }
}
