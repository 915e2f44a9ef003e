//! Fuzz target of a whole SSTable image, read the way the engine reads a
//! table file: footer (with the file's length), index checked against the
//! footer, filter, then data blocks through their index entries.
//!
//! Fed as given and with every block crc recomputed where the footer and
//! index place the blocks. Property: once footer and index agree, every
//! block they name lies inside the image.

use super::checksums::put_crc;
use crate::storage::sstable::format::FOOTER_LEN;
use crate::storage::sstable::{decode_indexed_block, Filter, Footer, Index};
use std::ops::Range;

/// Reads a whole table image.
pub fn sst_table(data: &[u8]) {
    let mut fixed = data.to_vec();
    fix_table(&mut fixed);
    for raw in [data, &fixed[..]] {
        read_table(raw);
    }
}

fn bytes(data: &[u8], r: Range<u64>) -> Option<&[u8]> {
    let start = usize::try_from(r.start).ok()?;
    let end = usize::try_from(r.end).ok()?;
    data.get(start..end)
}

fn read_table(data: &[u8]) {
    let Some(footer_at) = data.len().checked_sub(FOOTER_LEN) else {
        return;
    };
    let footer_raw = data.get(footer_at..).unwrap_or_default();
    let Ok(footer) = Footer::parse_with_file_len(footer_raw, data.len() as u64) else {
        return;
    };
    let (Some(index_raw), Some(filter_raw)) = (
        bytes(data, footer.index_range()),
        bytes(data, footer.filter_range()),
    ) else {
        panic!("a footer that matches the file length places a block outside it");
    };
    let Ok(index) = Index::parse(index_raw) else {
        return;
    };
    if index.check_footer(&footer).is_err() {
        return;
    }
    let Ok(filter) = Filter::parse(filter_raw) else {
        return;
    };
    for entry in index.blocks() {
        let range = entry.handle.offset..entry.handle.offset + u64::from(entry.handle.len);
        let Some(raw) = bytes(data, range) else {
            panic!("an index that agrees with its footer names a block outside the table");
        };
        let Ok(block) = decode_indexed_block(entry, raw) else {
            continue;
        };
        for i in 0..block.len() {
            let Some(key) = block.key_at(i) else {
                panic!("no key {i} in a block of {}", block.len());
            };
            // The engine's point read: filter, index, block.
            if filter.may_contain(key) && index.find(key).is_some() {
                let _ = block.get(key);
            }
        }
        for e in block.into_entries() {
            let _ = e;
        }
    }
}

/// Recomputes the crcs of the footer and of the blocks it and the index
/// name, where they lie inside `data`.
fn fix_table(data: &mut [u8]) {
    let Some(footer_at) = data.len().checked_sub(FOOTER_LEN) else {
        return;
    };
    let len = data.len();
    put_crc(data, footer_at, footer_at + 4, len);
    let Ok(footer) = Footer::parse(data.get(footer_at..).unwrap_or_default()) else {
        return;
    };
    let fix = |data: &mut [u8], r: Range<u64>| {
        let (Ok(start), Ok(end)) = (usize::try_from(r.start), usize::try_from(r.end)) else {
            return;
        };
        if start < end && end <= data.len() {
            put_crc(data, start, start + 4, end);
        }
    };
    fix(data, footer.index_range());
    fix(data, footer.filter_range());
    let Some(index) = bytes(data, footer.index_range()).and_then(|b| Index::parse(b).ok()) else {
        return;
    };
    for entry in index.blocks() {
        fix(
            data,
            entry.handle.offset
                ..entry
                    .handle
                    .offset
                    .saturating_add(u64::from(entry.handle.len)),
        );
    }
}
