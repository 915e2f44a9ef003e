//! Parsing an SSTable's index and data blocks, and [`SstImage`], a reader
//! over a whole table held in memory.
//!
//! Owns the lookup path inside a table: the index answers which data block
//! may hold a key, a decoded [`Block`] answers the key's versions. Everything
//! here works on byte buffers the caller read; nothing does I/O.
//!
//! Invariants of a parsed [`Index`]: blocks are contiguous from offset 0,
//! aligned, non-empty, and their last keys strictly increase. Invariants of a
//! decoded [`Block`]: its crc held, its payload was decompressed into at most
//! `raw_len` (<= 64 MiB) bytes, and it splits exactly into `count` entries
//! whose keys strictly increase (entry framing is checked at decode time;
//! the versions of an entry are decoded, and checked, when asked for).
//!
//! Values returned by [`Block::get`] and the iterators are zero-copy slices
//! of the block's buffer: keeping one alive keeps the whole (decompressed)
//! block alive. A long-lived cache should copy small values out.

#[cfg(test)]
use super::format::FOOTER_LEN;
use super::format::{be_u32, be_u64, corrupted, open_block, BlockHandle, BlockKind, Footer, ALIGN};
#[cfg(test)]
use super::Filter;
use super::SstError;
use crate::model::Version;
use crate::storage::codec::decode_entry;
use bytes::Bytes;

/// One data block's entry in the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    /// Largest key in the block.
    pub last_key: Bytes,
    pub handle: BlockHandle,
}

/// The parsed index block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Index {
    first_key: Option<Bytes>,
    entries: Vec<IndexEntry>,
}

/// Bytes one index entry needs besides its key.
const INDEX_ENTRY_FIXED: usize = 4 + 8 + 4 + 4;

impl Index {
    /// Parses a whole index block: crc, header, every entry, and the
    /// invariants in the module doc. Offsets in errors are relative to the
    /// block's start.
    pub(crate) fn parse(block: &[u8]) -> Result<Index, SstError> {
        let (header, payload) = open_block(block, &[BlockKind::Index])?;
        let base = super::format::BLOCK_HEADER_LEN;
        let data = Bytes::copy_from_slice(payload);
        let at = |pos: usize| Some((base + pos) as u64);
        let truncated = |pos: usize| corrupted("index entry truncated", at(pos));
        let mut pos = 0usize;
        let take_key = |pos: &mut usize| -> Result<Bytes, SstError> {
            let len = be_u32(&data, *pos).ok_or_else(|| truncated(*pos))? as usize;
            let start = *pos + 4;
            let end = start.checked_add(len).filter(|&e| e <= data.len());
            let end = end.ok_or_else(|| truncated(*pos))?;
            *pos = end;
            Ok(data.slice(start..end))
        };
        let first_key = take_key(&mut pos)?;
        let count = header.count as usize;
        if count > (data.len() - pos) / INDEX_ENTRY_FIXED {
            return Err(corrupted(
                format!("index claims {count} blocks, too many for its length"),
                Some(8),
            ));
        }
        let mut entries: Vec<IndexEntry> = Vec::with_capacity(count);
        let mut next_offset = 0u64;
        for _ in 0..count {
            let entry_pos = pos;
            let last_key = take_key(&mut pos)?;
            let offset = be_u64(&data, pos).ok_or_else(|| truncated(pos))?;
            let len = be_u32(&data, pos + 8).ok_or_else(|| truncated(pos))?;
            let entry_count = be_u32(&data, pos + 12).ok_or_else(|| truncated(pos))?;
            pos += 16;
            if offset != next_offset {
                return Err(corrupted(
                    format!("block at {offset} where {next_offset} was expected"),
                    at(entry_pos),
                ));
            }
            if len == 0 || !(len as usize).is_multiple_of(ALIGN) || entry_count == 0 {
                return Err(corrupted(
                    format!("block of {len} bytes holding {entry_count} entries"),
                    at(entry_pos),
                ));
            }
            if let Some(prev) = entries.last() {
                if last_key <= prev.last_key {
                    return Err(corrupted("index keys do not increase", at(entry_pos)));
                }
            }
            next_offset = offset
                .checked_add(u64::from(len))
                .ok_or_else(|| corrupted("block offset overflows", at(entry_pos)))?;
            entries.push(IndexEntry {
                last_key,
                handle: BlockHandle {
                    offset,
                    len,
                    entry_count,
                },
            });
        }
        if pos != data.len() {
            return Err(corrupted("index has trailing bytes", at(pos)));
        }
        let first_key = match entries.first() {
            None if first_key.is_empty() => None,
            None => return Err(corrupted("empty index carries a first key", at(0))),
            Some(e) if first_key <= e.last_key => Some(first_key),
            Some(_) => {
                return Err(corrupted(
                    "first key is above the first block's last key",
                    at(0),
                ))
            }
        };
        Ok(Index { first_key, entries })
    }

    /// Checks the index against the footer: the data blocks end where the
    /// index starts, and the block and entry counts agree.
    pub(crate) fn check_footer(&self, footer: &Footer) -> Result<(), SstError> {
        if self.data_end() != footer.index_offset
            || self.entries.len() as u64 != u64::from(footer.data_block_count)
            || self.entry_count() != footer.entry_count
        {
            return Err(corrupted(
                "index and footer disagree on blocks or entries",
                Some(footer.index_offset),
            ));
        }
        Ok(())
    }

    /// The block that holds `key` if the table does: the first block whose
    /// last key is >= `key`. `None` when `key` is outside the table's range.
    #[cfg(test)]
    pub(crate) fn find_block(&self, key: &[u8]) -> Option<BlockHandle> {
        self.find(key).map(|i| self.entries[i].handle)
    }

    /// Position in [`Index::blocks`] of the block [`Index::find_block`] names.
    pub(crate) fn find(&self, key: &[u8]) -> Option<usize> {
        if key < self.first_key.as_deref()? {
            return None;
        }
        let i = self.entries.partition_point(|e| &e.last_key[..] < key);
        (i < self.entries.len()).then_some(i)
    }

    /// Position of the first block that may hold keys >= `key` (for scans),
    /// `None` past the end.
    pub(crate) fn seek(&self, key: &[u8]) -> Option<usize> {
        let i = self.entries.partition_point(|e| &e.last_key[..] < key);
        (i < self.entries.len()).then_some(i)
    }

    /// Every data block, in key (and file) order.
    pub(crate) fn blocks(&self) -> &[IndexEntry] {
        &self.entries
    }

    /// Smallest key of the table (`None` if empty).
    #[cfg(test)]
    pub(crate) fn first_key(&self) -> Option<&Bytes> {
        self.first_key.as_ref()
    }

    /// Heap bytes this index holds in memory (entries and their keys).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<IndexEntry>()
            + self.entries.iter().map(|e| e.last_key.len()).sum::<usize>()
            + self.first_key.as_ref().map_or(0, |k| k.len())
    }

    /// Total entries over all blocks.
    pub(crate) fn entry_count(&self) -> u64 {
        self.entries
            .iter()
            .map(|e| u64::from(e.handle.entry_count))
            .sum()
    }

    /// File offset just past the last data block.
    pub(crate) fn data_end(&self) -> u64 {
        self.entries
            .last()
            .map_or(0, |e| e.handle.offset + u64::from(e.handle.len))
    }
}

/// How a data block was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Zstd,
}

/// A decoded data block.
#[derive(Debug, Clone)]
pub(crate) struct Block {
    data: Bytes,
    /// Start of every entry, then the payload length (count + 1 values).
    offsets: Vec<u32>,
    /// Key range of every entry.
    keys: Vec<(u32, u32)>,
    /// How the block was stored (the tests check the builder's choice).
    #[cfg(test)]
    compression: Compression,
}

/// Smallest encoded entry: key_len, empty key, count, one tombstone with an
/// empty clock.
const MIN_ENTRY_LEN: usize = 4 + 2 + 1 + 8 + 2;

/// Verifies and decodes one whole data block (the exact aligned bytes the
/// index names). Offsets in errors are relative to the block's start.
pub(crate) fn decode_block(block: &[u8]) -> Result<Block, SstError> {
    let (header, payload) = open_block(block, &[BlockKind::DataRaw, BlockKind::DataZstd])?;
    let raw_len = header.raw_len as usize;
    let (data, _compression) = match header.kind {
        BlockKind::DataZstd => {
            let out = zstd::bulk::decompress(payload, raw_len).map_err(|e| {
                corrupted(format!("zstd payload does not decompress: {e}"), Some(20))
            })?;
            if out.len() != raw_len {
                return Err(corrupted(
                    format!(
                        "payload decompressed to {} bytes, header says {raw_len}",
                        out.len()
                    ),
                    Some(16),
                ));
            }
            (Bytes::from(out), Compression::Zstd)
        }
        _ => (Bytes::copy_from_slice(payload), Compression::None),
    };
    let count = header.count as usize;
    if count == 0 || count > data.len() / MIN_ENTRY_LEN {
        return Err(corrupted(
            format!("block claims {count} entries in {} bytes", data.len()),
            Some(8),
        ));
    }
    let mut offsets = Vec::with_capacity(count + 1);
    let mut keys: Vec<(u32, u32)> = Vec::with_capacity(count);
    let mut pos = 0usize;
    let mut prev_key: Option<&[u8]> = None;
    for i in 0..count {
        let (k0, key, end) = scan_entry(&data, pos)
            .map_err(|why| corrupted(format!("entry {i} at payload byte {pos}: {why}"), None))?;
        if prev_key.is_some_and(|prev| key <= prev) {
            return Err(corrupted(
                format!("entry {i} at payload byte {pos}: keys do not increase"),
                None,
            ));
        }
        // data.len() <= MAX_RAW_BLOCK_BYTES, so positions fit in u32.
        offsets.push(pos as u32);
        keys.push((k0 as u32, (k0 + key.len()) as u32));
        prev_key = Some(key);
        pos = end;
    }
    if pos != data.len() {
        return Err(corrupted(
            format!("{} bytes after the last entry", data.len() - pos),
            None,
        ));
    }
    offsets.push(pos as u32);
    Ok(Block {
        data,
        offsets,
        keys,
        #[cfg(test)]
        compression: _compression,
    })
}

/// [`decode_block`] for the block `entry` names, read into `bytes`; also
/// checks the block is the one the index expects (length, entry count, last
/// key), so a misdirected read is caught. Error offsets are file offsets.
pub(crate) fn decode_indexed_block(entry: &IndexEntry, bytes: &[u8]) -> Result<Block, SstError> {
    let at = entry.handle.offset;
    if bytes.len() != entry.handle.len as usize {
        return Err(corrupted(
            format!(
                "read {} bytes for a block of {}",
                bytes.len(),
                entry.handle.len
            ),
            Some(at),
        ));
    }
    let block = decode_block(bytes).map_err(|e| e.rebase(at))?;
    if block.len() != entry.handle.entry_count as usize || block.last_key() != &entry.last_key[..] {
        return Err(corrupted("block does not match its index entry", Some(at)));
    }
    Ok(block)
}

/// The `n` bytes of `buf` at `pos`, and the position after them.
fn take_n(buf: &[u8], pos: usize, n: usize) -> Result<(&[u8], usize), &'static str> {
    match pos.checked_add(n) {
        Some(end) => buf
            .get(pos..end)
            .map(|bytes| (bytes, end))
            .ok_or("truncated"),
        None => Err("truncated"),
    }
}

/// The `N` bytes of `buf` at `pos`, and the position after them.
fn take<const N: usize>(buf: &[u8], pos: usize) -> Result<(&[u8; N], usize), &'static str> {
    match buf.get(pos..).and_then(<[u8]>::first_chunk::<N>) {
        Some(bytes) => Ok((bytes, pos + N)),
        None => Err("truncated"),
    }
}

fn u16_at(buf: &[u8], pos: usize) -> Result<(usize, usize), &'static str> {
    take(buf, pos).map(|(b, end)| (usize::from(u16::from_be_bytes(*b)), end))
}

fn u32_at(buf: &[u8], pos: usize) -> Result<(usize, usize), &'static str> {
    take(buf, pos).map(|(b, end)| (u32::from_be_bytes(*b) as usize, end))
}

/// Walks the framing of one codec entry at `pos` without decoding it:
/// returns the key's start, the key, and the entry's end. Mirrors
/// [`codec::encode_entry`](crate::storage::codec::encode_entry).
fn scan_entry(buf: &[u8], pos: usize) -> Result<(usize, &[u8], usize), &'static str> {
    let (key_len, key_start) = u32_at(buf, pos)?;
    let (key, key_end) = take_n(buf, key_start, key_len)?;
    let (count, mut pos) = u16_at(buf, key_end)?;
    if count == 0 {
        return Err("no versions");
    }
    for _ in 0..count {
        // flags(1) timestamp(8) clock entries(2)
        let (&[flags, _, _, _, _, _, _, _, _, c0, c1], p) = take::<11>(buf, pos)?;
        if flags > 1 {
            return Err("unknown version flags");
        }
        let clock_entries = u16::from_be_bytes([c0, c1]);
        pos = p;
        for _ in 0..clock_entries {
            let (node_len, p) = u16_at(buf, pos)?;
            pos = take_n(buf, p, node_len + 8)?.1;
        }
        if flags == 0 {
            let (value_len, p) = u32_at(buf, pos)?;
            pos = take_n(buf, p, value_len)?.1;
        }
    }
    Ok((key_start, key, pos))
}

impl Block {
    /// Entries in the block (never 0 for a decoded block).
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    #[cfg(test)]
    pub(crate) fn compression(&self) -> Compression {
        self.compression
    }

    /// Key of entry `i` (`None` if `i >= len()`).
    pub(crate) fn key_at(&self, i: usize) -> Option<&[u8]> {
        let &(a, b) = self.keys.get(i)?;
        self.data.get(a as usize..b as usize)
    }

    /// Largest key in the block (empty only for an empty block).
    pub(crate) fn last_key(&self) -> &[u8] {
        self.keys
            .len()
            .checked_sub(1)
            .and_then(|i| self.key_at(i))
            .unwrap_or(&[])
    }

    /// Decodes entry `i` (`i < len()`).
    pub(crate) fn entry_at(&self, i: usize) -> Result<(Bytes, Vec<Version>), SstError> {
        let (start, end) = match (self.offsets.get(i), self.offsets.get(i + 1)) {
            (Some(&s), Some(&e)) => (s as usize, e as usize),
            _ => return Err(corrupted(format!("no entry {i} in the block"), None)),
        };
        let mut buf = self.data.slice(start..end);
        decode_entry(&mut buf)
            .map_err(|e| corrupted(format!("entry {i} at payload byte {start}: {e}"), None))
    }

    /// The versions stored for `key`, if the block holds it.
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<Version>>, SstError> {
        match self.position(key) {
            Ok(i) => self.entry_at(i).map(|(_, v)| Some(v)),
            Err(_) => Ok(None),
        }
    }

    fn position(&self, key: &[u8]) -> Result<usize, usize> {
        self.keys
            // Key ranges were checked against `data` when the block was decoded.
            .binary_search_by(|&(a, b)| {
                self.data
                    .get(a as usize..b as usize)
                    .unwrap_or_default()
                    .cmp(key)
            })
    }

    /// Every entry in key order.
    #[cfg(test)]
    pub(crate) fn entries(&self) -> BlockIter<'_> {
        BlockIter {
            block: self,
            next: 0,
        }
    }

    /// Entries with keys >= `key`, in key order.
    #[cfg(test)]
    pub(crate) fn entries_from(&self, key: &[u8]) -> BlockIter<'_> {
        let next = self.position(key).unwrap_or_else(|i| i);
        BlockIter { block: self, next }
    }

    /// Every entry in key order, owning the block.
    pub(crate) fn into_entries(self) -> BlockEntries {
        BlockEntries {
            block: self,
            next: 0,
        }
    }

    /// The entries with keys >= `key`, in key order, owning the block.
    pub(crate) fn into_entries_from(self, key: &[u8]) -> BlockEntries {
        let next = self.position(key).unwrap_or_else(|i| i);
        BlockEntries { block: self, next }
    }
}

/// Borrowing iterator over a block's entries.
#[cfg(test)]
pub(crate) struct BlockIter<'a> {
    block: &'a Block,
    next: usize,
}

#[cfg(test)]
impl Iterator for BlockIter<'_> {
    type Item = Result<(Bytes, Vec<Version>), SstError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.block.len() {
            return None;
        }
        let i = self.next;
        self.next += 1;
        Some(self.block.entry_at(i))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.block.len().saturating_sub(self.next);
        (n, Some(n))
    }
}

/// Owning iterator over a block's entries.
pub(crate) struct BlockEntries {
    block: Block,
    next: usize,
}

impl Iterator for BlockEntries {
    type Item = Result<(Bytes, Vec<Version>), SstError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.block.len() {
            return None;
        }
        let i = self.next;
        self.next += 1;
        Some(self.block.entry_at(i))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.block.len().saturating_sub(self.next);
        (n, Some(n))
    }
}

/// A whole table held in memory: the reference composition of footer, index,
/// filter and blocks (the engine does the same with reads from disk). Error
/// offsets are file offsets.
#[cfg(test)]
#[derive(Debug, Clone)]
pub(crate) struct SstImage {
    data: Bytes,
    footer: Footer,
    index: Index,
    filter: Filter,
}

#[cfg(test)]
impl SstImage {
    /// Parses the footer, index and filter of a complete file image and
    /// checks they agree with each other and with its length.
    pub(crate) fn open(data: impl Into<Bytes>) -> Result<SstImage, SstError> {
        let data: Bytes = data.into();
        let len = data.len();
        if len < FOOTER_LEN || !len.is_multiple_of(ALIGN) {
            return Err(corrupted(
                format!("table length {len} is not a positive multiple of {ALIGN}"),
                None,
            ));
        }
        let footer_at = len - FOOTER_LEN;
        let footer = Footer::parse_with_file_len(&data[footer_at..], len as u64)
            .map_err(|e| e.rebase(footer_at as u64))?;
        let range = |r: std::ops::Range<u64>| r.start as usize..r.end as usize;
        let index_range = range(footer.index_range());
        let index = Index::parse(&data[index_range.clone()])
            .map_err(|e| e.rebase(index_range.start as u64))?;
        let filter_range = range(footer.filter_range());
        let filter = Filter::parse(&data[filter_range.clone()])
            .map_err(|e| e.rebase(filter_range.start as u64))?;
        index.check_footer(&footer)?;
        Ok(SstImage {
            data,
            footer,
            index,
            filter,
        })
    }

    pub(crate) fn footer(&self) -> &Footer {
        &self.footer
    }

    pub(crate) fn index(&self) -> &Index {
        &self.index
    }

    pub(crate) fn filter(&self) -> &Filter {
        &self.filter
    }

    /// Decodes data block `i` of the index.
    pub(crate) fn read_block(&self, i: usize) -> Result<Block, SstError> {
        let entry = self
            .index
            .blocks()
            .get(i)
            .ok_or_else(|| corrupted(format!("no data block {i}"), None))?;
        let start = entry.handle.offset as usize;
        let end = start + entry.handle.len as usize;
        decode_indexed_block(entry, &self.data[start..end])
    }

    /// The versions stored for `key` (filter, then index, then one block).
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<Version>>, SstError> {
        if !self.filter.may_contain(key) {
            return Ok(None);
        }
        match self.index.find(key) {
            Some(i) => self.read_block(i)?.get(key),
            None => Ok(None),
        }
    }

    /// Every entry in key order; stops after the first error.
    pub(crate) fn iter(&self) -> SstIter<'_> {
        SstIter {
            image: self,
            next_block: 0,
            current: None,
            failed: false,
        }
    }
}

/// Iterator over every entry of an [`SstImage`].
#[cfg(test)]
pub(crate) struct SstIter<'a> {
    image: &'a SstImage,
    next_block: usize,
    current: Option<BlockEntries>,
    failed: bool,
}

#[cfg(test)]
impl Iterator for SstIter<'_> {
    type Item = Result<(Bytes, Vec<Version>), SstError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        loop {
            if let Some(entries) = &mut self.current {
                match entries.next() {
                    Some(Err(e)) => {
                        self.failed = true;
                        return Some(Err(e));
                    }
                    Some(ok) => return Some(ok),
                    None => self.current = None,
                }
            }
            if self.next_block >= self.image.index.blocks().len() {
                return None;
            }
            match self.image.read_block(self.next_block) {
                Ok(block) => self.current = Some(block.into_entries()),
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
            self.next_block += 1;
        }
    }
}
