//! Fuzz targets of the SSTable parts a reader parses one by one: footer,
//! index block, data block and filter block.
//!
//! Each is fed as given and as a block: zero-padded to the 4096-byte
//! alignment with its crc32 recomputed. Properties: a footer and a filter
//! re-encode to exactly their bytes; an index finds every block by its last
//! key and agrees with a footer built from its own totals; a data block's
//! keys strictly increase and every entry that decodes is found by `get`.

use super::checksums::put_crc;
use crate::storage::sstable::format::{Footer, ALIGN, FOOTER_LEN};
use crate::storage::sstable::reader::decode_block;
use crate::storage::sstable::{Filter, Index};

/// `data` zero-padded to a positive multiple of [`ALIGN`] with the block
/// crc (bytes 0..4, over the rest) recomputed.
pub(super) fn as_block(data: &[u8]) -> Vec<u8> {
    let len = data.len().max(1).div_ceil(ALIGN) * ALIGN;
    let mut out = data.to_vec();
    out.resize(len, 0);
    put_crc(&mut out, 0, 4, len);
    out
}

/// `Footer::parse` of the last block of a table.
pub fn sst_footer(data: &[u8]) {
    let mut fixed = data.to_vec();
    fixed.resize(FOOTER_LEN, 0);
    put_crc(&mut fixed, 0, 4, FOOTER_LEN);
    for raw in [data, &fixed[..]] {
        let Ok(footer) = Footer::parse(raw) else {
            continue;
        };
        assert_eq!(footer.encode(), raw, "footer round trip");
        let Some(file_len) = footer.file_len() else {
            panic!("a parsed footer has no file length");
        };
        assert!(
            Footer::parse_with_file_len(raw, file_len).is_ok(),
            "footer refuses its own file length"
        );
    }
}

/// `Index::parse` of an index block.
pub fn sst_index(data: &[u8]) {
    for raw in [data.to_vec(), as_block(data)] {
        let Ok(index) = Index::parse(&raw) else {
            continue;
        };
        let blocks = index.blocks();
        let mut offset = 0u64;
        for (i, e) in blocks.iter().enumerate() {
            assert_eq!(e.handle.offset, offset, "index blocks are not contiguous");
            offset += u64::from(e.handle.len);
            assert_eq!(index.seek(&e.last_key), Some(i), "seek by last key");
            assert_eq!(index.find(&e.last_key), Some(i), "find by last key");
        }
        assert_eq!(index.data_end(), offset, "data_end");
        let footer = Footer {
            format_version: crate::storage::sstable::FORMAT_VERSION,
            index_offset: offset,
            index_len: raw.len() as u32,
            filter_offset: offset + raw.len() as u64,
            filter_len: ALIGN as u32,
            entry_count: index.entry_count(),
            data_block_count: blocks.len() as u32,
            data_raw_bytes: 0,
        };
        assert!(
            index.check_footer(&footer).is_ok(),
            "index disagrees with its own totals"
        );
    }
}

/// `decode_block` of a data block (raw or zstd).
pub fn sst_block(data: &[u8]) {
    for raw in [data.to_vec(), as_block(data)] {
        let Ok(block) = decode_block(&raw) else {
            continue;
        };
        let n = block.len();
        assert!(n > 0, "a decoded block is empty");
        let mut prev: Option<Vec<u8>> = None;
        for i in 0..n {
            let Some(key) = block.key_at(i) else {
                panic!("no key {i} in a block of {n}");
            };
            assert!(
                prev.as_deref().is_none_or(|p| p < key),
                "block keys do not increase"
            );
            prev = Some(key.to_vec());
            if let Ok((k, versions)) = block.entry_at(i) {
                assert_eq!(&k[..], key, "entry key differs from key_at");
                match block.get(key) {
                    Ok(Some(found)) => assert_eq!(found, versions, "get returns another entry"),
                    other => panic!("get misses a decodable entry: {other:?}"),
                }
            }
        }
        assert!(block.key_at(n).is_none(), "key past the end");
        assert_eq!(Some(block.last_key()), prev.as_deref(), "last_key");
        let last = prev.unwrap_or_default();
        assert_eq!(block.clone().into_entries().count(), n, "entry count");
        assert!(
            block.into_entries_from(&last).count() <= 1,
            "entries after the last key"
        );
    }
}

/// `Filter::parse` of a filter block.
pub fn sst_filter(data: &[u8]) {
    for raw in [data.to_vec(), as_block(data)] {
        let Ok(filter) = Filter::parse(&raw) else {
            continue;
        };
        match filter.encode_block() {
            Ok(again) => assert_eq!(again, raw, "filter round trip"),
            Err(e) => panic!("a parsed filter does not encode: {e}"),
        }
        for key in data.chunks(7).take(64) {
            let _ = filter.may_contain(key);
        }
        let _ = filter.heap_bytes();
    }
}
