//! Whole-table tests: round trips through builder and readers, streaming,
//! compression choice, single-byte corruption of every byte of a file, and
//! garbage input to every parser.

use super::format::{seal_block, BlockKind, BLOCK_HEADER_LEN, FOOTER_LEN};
use super::*;
use crate::model::{VectorClock, Version};
use crate::storage::codec::encode_entry;
use bytes::Bytes;
use proptest::prelude::*;
use std::collections::BTreeMap;

/// Deterministic test randomness: seeded `fastrand` with the two draws
/// these tests use.
type Rng = fastrand::Rng;

trait Draws {
    fn below(&mut self, n: u64) -> u64;
    fn bytes(&mut self, n: usize) -> Vec<u8>;
}

impl Draws for Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.u64(..n)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        std::iter::repeat_with(|| self.u8(..)).take(n).collect()
    }
}

fn version(rng: &mut Rng, value: Option<Vec<u8>>) -> Version {
    let nodes = rng.below(3) as usize;
    let clock = VectorClock::from_entries(
        (0..nodes).map(|i| (format!("node-{i}"), 1 + rng.below(1000) as i64)),
        64,
    )
    .unwrap();
    Version {
        clock,
        timestamp_ms: rng.u64(..) as i64,
        value: value.map(Bytes::from),
    }
}

type Entries = Vec<(Vec<u8>, Vec<Version>)>;

/// `n` random entries (sorted, distinct keys), 1-3 versions each, ~15%
/// tombstones, and every `large_every`-th value `large_len` bytes.
fn random_entries(seed: u64, n: usize, large_every: usize, large_len: usize) -> Entries {
    let mut rng = Rng::with_seed(seed);
    let mut map = BTreeMap::new();
    while map.len() < n {
        let len = 1 + rng.below(40) as usize;
        let key: Vec<u8> = (0..len).map(|_| b'a' + rng.below(26) as u8).collect();
        map.insert(key, ());
    }
    map.into_keys()
        .enumerate()
        .map(|(i, key)| {
            let count = 1 + rng.below(3) as usize;
            let versions = (0..count)
                .map(|_| {
                    let value = if rng.below(100) < 15 {
                        None
                    } else if large_every > 0 && i % large_every == large_every - 1 {
                        Some(rng.bytes(large_len))
                    } else {
                        let len = rng.below(200) as usize;
                        Some(rng.bytes(len))
                    };
                    version(&mut rng, value)
                })
                .collect();
            (key, versions)
        })
        .collect()
}

fn build(entries: &Entries, target: usize) -> (Vec<u8>, SstSummary) {
    let mut b = SstBuilder::new(target);
    for (k, v) in entries {
        b.add(k, v).unwrap();
    }
    b.finish().unwrap()
}

fn absent_key(rng: &mut Rng) -> Vec<u8> {
    // Upper-case letters never occur in generated keys.
    let len = 1 + rng.below(40) as usize;
    (0..len).map(|_| b'A' + rng.below(26) as u8).collect()
}

#[test]
fn round_trip_through_the_individual_parsers() {
    let entries = random_entries(1, 3000, 250, 40_000);
    let (image, summary) = build(&entries, 16 << 10);
    assert_eq!(image.len() % ALIGN, 0);
    assert_eq!(summary.file_bytes, image.len() as u64);
    assert_eq!(summary.entry_count, entries.len() as u64);
    assert_eq!(summary.smallest_key.as_deref(), Some(&entries[0].0[..]));
    assert_eq!(
        summary.largest_key.as_deref(),
        Some(&entries[entries.len() - 1].0[..])
    );
    assert!(summary.data_block_count > 20);

    let footer =
        Footer::parse_with_file_len(&image[image.len() - FOOTER_LEN..], image.len() as u64)
            .unwrap();
    let r = footer.index_range();
    let index = Index::parse(&image[r.start as usize..r.end as usize]).unwrap();
    let r = footer.filter_range();
    let filter = Filter::parse(&image[r.start as usize..r.end as usize]).unwrap();
    index.check_footer(&footer).unwrap();
    assert_eq!(index.blocks().len() as u32, summary.data_block_count);
    assert_eq!(index.first_key().map(|k| &k[..]), Some(&entries[0].0[..]));
    // Large values sit in blocks of their own, longer than one unit.
    assert!(index
        .blocks()
        .iter()
        .any(|b| b.handle.len as usize > 2 * ALIGN));

    let read = |h: BlockHandle| &image[h.offset as usize..h.offset as usize + h.len as usize];
    for (key, versions) in &entries {
        assert!(filter.may_contain(key));
        let i = index.find(key).unwrap();
        let handle = index.find_block(key).unwrap();
        assert_eq!(handle, index.blocks()[i].handle);
        let block = decode_indexed_block(&index.blocks()[i], read(handle)).unwrap();
        assert_eq!(block.get(key).unwrap().as_ref(), Some(versions));
    }

    let mut rng = Rng::with_seed(99);
    let mut positives = 0;
    let probes = 5000;
    for _ in 0..probes {
        let key = absent_key(&mut rng);
        if filter.may_contain(&key) {
            positives += 1;
        }
        if let Some(h) = index.find_block(&key) {
            assert_eq!(decode_block(read(h)).unwrap().get(&key).unwrap(), None);
        }
    }
    assert!(
        positives * 20 < probes,
        "{positives} false positives of {probes}"
    );
}

#[test]
fn full_scan_returns_every_entry_in_order() {
    let entries = random_entries(2, 2000, 300, 30_000);
    let (image, summary) = build(&entries, 8 << 10);
    let table = SstImage::open(image.clone()).unwrap();
    let scanned: Vec<(Vec<u8>, Vec<Version>)> = table
        .iter()
        .map(|r| r.map(|(k, v)| (k.to_vec(), v)))
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(scanned, entries);
    // The same by hand, block by block.
    let mut n = 0;
    for entry in table.index().blocks() {
        let h = entry.handle;
        let block = decode_block(&image[h.offset as usize..(h.offset + u64::from(h.len)) as usize])
            .unwrap();
        assert_eq!(block.len(), h.entry_count as usize);
        for e in block.entries() {
            let (k, v) = e.unwrap();
            assert_eq!((k.to_vec(), v), entries[n]);
            n += 1;
        }
    }
    assert_eq!(n as u64, summary.entry_count);
    // Seeks: entries_from and Index::seek.
    let probe = &entries[777].0;
    let i = table.index().seek(probe).unwrap();
    let block = table.read_block(i).unwrap();
    let (k, _) = block.entries_from(probe).next().unwrap().unwrap();
    assert_eq!(&k[..], &probe[..]);
    for (k, v) in &entries {
        assert_eq!(table.get(k).unwrap().as_ref(), Some(v));
    }
}

#[test]
fn streaming_output_equals_the_whole_image() {
    let entries = random_entries(3, 1500, 100, 20_000);
    let (whole, summary) = build(&entries, 4096);
    let mut b = SstBuilder::new(4096);
    let mut streamed = Vec::new();
    for (k, v) in &entries {
        b.add(k, v).unwrap();
        let chunk = b.take_ready();
        assert_eq!(chunk.len() % ALIGN, 0);
        streamed.extend_from_slice(&chunk);
    }
    assert!(!streamed.is_empty());
    let (tail, summary2) = b.finish().unwrap();
    streamed.extend_from_slice(&tail);
    // Byte for byte the same, except the filter's unused fingerprint slots,
    // which xorf fills at random.
    assert_eq!(streamed.len(), whole.len());
    let f = *SstImage::open(whole.clone()).unwrap().footer();
    let filter = f.filter_range();
    let differs = streamed
        .iter()
        .zip(&whole)
        .enumerate()
        .filter(|(i, _)| !filter.contains(&(*i as u64)))
        .any(|(_, (a, b))| a != b);
    assert!(!differs, "streamed image differs");
    let a = SstImage::open(streamed).unwrap();
    assert_eq!(a.iter().count(), entries.len());
    assert_eq!(summary, summary2);
}

fn versions_with(value: Vec<u8>) -> Vec<Version> {
    vec![Version {
        clock: VectorClock::from_entries([("n".to_string(), 1)], 8).unwrap(),
        timestamp_ms: 5,
        value: Some(Bytes::from(value)),
    }]
}

#[test]
fn compression_is_used_only_where_it_pays() {
    let mut rng = Rng::with_seed(4);
    let compressible: Entries = (0..400u32)
        .map(|i| {
            (
                format!("key{i:06}").into_bytes(),
                versions_with(vec![b'a'; 300]),
            )
        })
        .collect();
    let (image, s) = build(&compressible, 16 << 10);
    assert!(s.data_block_count > 1);
    assert_eq!(s.compressed_block_count, s.data_block_count);
    assert!(s.data_bytes <= s.data_raw_bytes / 3);
    let t = SstImage::open(image).unwrap();
    for i in 0..t.index().blocks().len() {
        assert_eq!(t.read_block(i).unwrap().compression(), Compression::Zstd);
    }
    assert_eq!(t.iter().count(), 400);

    let random: Entries = (0..400u32)
        .map(|i| {
            (
                format!("key{i:06}").into_bytes(),
                versions_with(rng.bytes(300)),
            )
        })
        .collect();
    let (image, s) = build(&random, 16 << 10);
    assert_eq!(s.compressed_block_count, 0);
    let t = SstImage::open(image).unwrap();
    for i in 0..t.index().blocks().len() {
        assert_eq!(t.read_block(i).unwrap().compression(), Compression::None);
    }

    // Compression off.
    let mut b = SstBuilder::new(16 << 10).with_compression(None);
    for (k, v) in &compressible {
        b.add(k, v).unwrap();
    }
    assert_eq!(b.finish().unwrap().1.compressed_block_count, 0);
}

#[test]
fn compression_attempts_back_off_on_incompressible_data_and_resume() {
    let mut rng = Rng::with_seed(9);
    // 100 blocks of random values, then 40 blocks of compressible ones
    // (one 5000-byte entry per block: two 4 KiB units raw, one zstd).
    let entries: Entries = (0..140u32)
        .map(|i| {
            let value = if i < 100 {
                rng.bytes(5000)
            } else {
                vec![b'z'; 5000]
            };
            (format!("key{i:06}").into_bytes(), versions_with(value))
        })
        .collect();
    let (image, s) = build(&entries, 4 << 10);
    assert_eq!(s.data_block_count, 140);
    // Back-off skips at most 15 blocks after the last failed attempt, then
    // every compressible block pays.
    assert!(s.compressed_block_count >= 40 - 15, "{s:?}");
    let t = SstImage::open(image).unwrap();
    assert_eq!(t.iter().count(), 140);
    for i in 0..100 {
        assert_eq!(t.read_block(i).unwrap().compression(), Compression::None);
    }
    assert_eq!(t.read_block(139).unwrap().compression(), Compression::Zstd);
}

#[test]
fn largest_values_round_trip() {
    let mut rng = Rng::with_seed(5);
    let big = rng.bytes(8 << 20);
    let entries: Entries = vec![
        (b"a".to_vec(), versions_with(vec![1; 10])),
        (b"b".to_vec(), versions_with(big)),
        (b"c".to_vec(), versions_with(vec![b'z'; 8 << 20])),
        (b"d".to_vec(), versions_with(vec![2; 10])),
    ];
    let (image, s) = build(&entries, 16 << 10);
    assert_eq!(s.data_block_count, 4);
    let t = SstImage::open(image).unwrap();
    for (k, v) in &entries {
        assert_eq!(t.get(k).unwrap().as_ref(), Some(v));
    }
    assert_eq!(t.read_block(2).unwrap().compression(), Compression::Zstd);
}

#[test]
fn empty_table_is_valid() {
    let (image, s) = SstBuilder::new(4096).finish().unwrap();
    assert_eq!(image.len(), 3 * ALIGN);
    assert_eq!(s.entry_count, 0);
    assert_eq!(s.smallest_key, None);
    assert_eq!(s.largest_key, None);
    let t = SstImage::open(image).unwrap();
    assert_eq!(t.get(b"x").unwrap(), None);
    assert_eq!(t.iter().count(), 0);
    assert_eq!(t.index().find_block(b"x"), None);
    assert!(!t.filter().may_contain(b"x"));
}

#[test]
fn builder_refuses_bad_input_and_stays_usable() {
    let v = versions_with(vec![1]);
    let mut b = SstBuilder::new(4096);
    b.add(b"b", &v).unwrap();
    assert!(matches!(b.add(b"b", &v), Err(SstError::KeyOrder { .. })));
    assert!(matches!(b.add(b"a", &v), Err(SstError::KeyOrder { .. })));
    assert!(matches!(b.add(b"c", &[]), Err(SstError::InvalidEntry(_))));
    let mut clock = VectorClock::from_entries([("n".to_string(), i64::MAX)], 8).unwrap();
    clock.increment("n");
    let unstorable = vec![Version {
        clock,
        timestamp_ms: 0,
        value: None,
    }];
    assert!(matches!(
        b.add(b"c", &unstorable),
        Err(SstError::InvalidEntry(_))
    ));
    let huge = versions_with(vec![0; format::MAX_RAW_BLOCK_BYTES]);
    let err = b.add(b"c", &huge).unwrap_err();
    assert!(matches!(err, SstError::EntryTooLarge { .. }));
    assert!(!err.is_corruption());
    b.add(b"c", &v).unwrap();
    let (image, s) = b.finish().unwrap();
    assert_eq!(s.entry_count, 2);
    let t = SstImage::open(image).unwrap();
    assert_eq!(t.iter().count(), 2);
    assert_eq!(t.get(b"c").unwrap(), Some(v));
}

#[test]
fn index_lookup_edges() {
    let entries: Entries = (0..50u32)
        .map(|i| {
            (
                format!("k{:03}", i * 2).into_bytes(),
                versions_with(vec![7; 100]),
            )
        })
        .collect();
    let (image, _) = build(&entries, 600);
    let t = SstImage::open(image).unwrap();
    let index = t.index();
    assert!(index.blocks().len() > 5);
    assert_eq!(index.find_block(b"a"), None); // below the first key
    assert_eq!(index.find_block(b"k0981"), None); // above the last key
    assert_eq!(index.find(b"k000"), Some(0));
    for (i, e) in index.blocks().iter().enumerate() {
        assert_eq!(index.find(&e.last_key), Some(i));
    }
    assert_eq!(t.get(b"k001").unwrap(), None); // between keys
}

/// Which block (start, len) of `image` holds byte `pos`.
fn block_of(t: &SstImage, image_len: usize, pos: usize) -> (usize, usize) {
    let f = t.footer();
    let mut spans: Vec<(usize, usize)> = t
        .index()
        .blocks()
        .iter()
        .map(|e| (e.handle.offset as usize, e.handle.len as usize))
        .collect();
    spans.push((f.index_offset as usize, f.index_len as usize));
    spans.push((f.filter_offset as usize, f.filter_len as usize));
    spans.push((image_len - FOOTER_LEN, FOOTER_LEN));
    spans
        .into_iter()
        .find(|&(s, l)| pos >= s && pos < s + l)
        .unwrap()
}

#[test]
fn every_single_byte_flip_is_detected() {
    // Two data blocks (one zstd, one raw), index, filter and footer: five
    // units, every byte of which gets flipped.
    let mut rng = Rng::with_seed(6);
    let mut entries: Entries = (0..36u32)
        .map(|i| {
            (
                format!("a{i:03}").into_bytes(),
                versions_with(vec![b'x'; 200]),
            )
        })
        .collect();
    entries.extend((0..10u32).map(|i| {
        (
            format!("b{i:03}").into_bytes(),
            versions_with(rng.bytes(200)),
        )
    }));
    // 36 entries of 236 bytes fill a block exactly: 8496 raw bytes take
    // three units raw, one unit compressed. The ten random entries after them
    // make a one-unit block that cannot shrink, so it stays raw.
    let entry = crate::storage::codec::entry_len(&entries[0].0, &entries[0].1);
    assert_eq!(entry, 236);
    let mut b = SstBuilder::new(36 * entry);
    for (k, v) in &entries {
        b.add(k, v).unwrap();
    }
    let (image, s) = b.finish().unwrap();
    assert_eq!(s.data_block_count, 2);
    assert_eq!(s.compressed_block_count, 1);
    assert_eq!(image.len(), 5 * ALIGN);
    let t = SstImage::open(image.clone()).unwrap();
    let f = *t.footer();

    for pos in 0..image.len() {
        let (start, len) = block_of(&t, image.len(), pos);
        for mask in [0x01u8, 0xFF] {
            let mut bad = image.clone();
            bad[pos] ^= mask;
            let block = &bad[start..start + len];
            let err = if start as u64 == f.index_offset {
                Index::parse(block).unwrap_err()
            } else if start as u64 == f.filter_offset {
                Filter::parse(block).unwrap_err()
            } else if start == image.len() - FOOTER_LEN {
                Footer::parse(block).unwrap_err()
            } else {
                let i = t.index().find_block_position(start as u64).unwrap();
                decode_indexed_block(&t.index().blocks()[i], block).unwrap_err()
            };
            assert!(err.is_corruption(), "flip at {pos}: {err}");
            // Through the whole-table path too: open, or a full scan, fails.
            if mask == 0x01 {
                let whole =
                    SstImage::open(bad).and_then(|t| t.iter().collect::<Result<Vec<_>, _>>());
                assert!(whole.is_err(), "flip at {pos} undetected by a full scan");
            }
        }
    }
}

#[test]
fn errors_name_file_offsets() {
    let entries = random_entries(7, 300, 0, 0);
    let (mut image, _) = build(&entries, 4096);
    let t = SstImage::open(image.clone()).unwrap();
    let second = t.index().blocks()[1].handle.offset;
    image[second as usize + 100] ^= 0x10;
    let t = SstImage::open(image).unwrap();
    let err = t.read_block(1).unwrap_err();
    assert_eq!(
        err,
        SstError::Corrupted {
            what: match &err {
                SstError::Corrupted { what, .. } => what.clone(),
                _ => unreachable!(),
            },
            offset: Some(second),
        }
    );
    assert!(err.to_string().contains(&format!("offset {second}")));
}

impl Index {
    /// Test helper: position of the block starting at `offset`.
    fn find_block_position(&self, offset: u64) -> Option<usize> {
        self.blocks().iter().position(|e| e.handle.offset == offset)
    }
}

fn arb_version() -> impl Strategy<Value = Version> {
    (
        proptest::collection::btree_map("[a-d]{1,4}", 1i64..1_000_000, 0..4),
        any::<i64>(),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
    )
        .prop_map(|(m, ts, v)| Version {
            clock: VectorClock::from_entries(m, 64).unwrap(),
            timestamp_ms: ts,
            value: v.map(Bytes::from),
        })
}

fn arb_entries() -> impl Strategy<Value = BTreeMap<Vec<u8>, Vec<Version>>> {
    proptest::collection::btree_map(
        proptest::collection::vec(any::<u8>(), 0..24),
        proptest::collection::vec(arb_version(), 1..4),
        0..80,
    )
}

/// Valid entry bytes, to feed mutated blocks that pass the crc.
fn entry_bytes(entries: &BTreeMap<Vec<u8>, Vec<Version>>) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in entries {
        encode_entry(&mut out, k, v);
    }
    out
}

/// A small table for tampering tests: 3 data blocks (zstd and raw).
fn small_table() -> (Vec<u8>, Entries) {
    let mut rng = Rng::with_seed(8);
    let entries: Entries = (0..30u32)
        .map(|i| {
            let value = if i % 2 == 0 {
                vec![b'q'; 150]
            } else {
                rng.bytes(150)
            };
            (format!("key{i:03}").into_bytes(), versions_with(value))
        })
        .collect();
    let (image, s) = build(&entries, 1800);
    assert!(s.data_block_count >= 3);
    (image, entries)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// One byte of any block's header or payload changed and that block's
    /// crc recomputed (a writer bug, or a deliberate forgery): opening,
    /// reading every key and scanning must err or succeed, never panic.
    #[test]
    fn resealed_tampering_never_panics(
        which in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let (mut image, entries) = small_table();
        let blocks: Vec<(usize, usize)> = {
            let t = SstImage::open(image.clone()).unwrap();
            let f = t.footer();
            let mut b: Vec<(usize, usize)> = t
                .index()
                .blocks()
                .iter()
                .map(|e| (e.handle.offset as usize, e.handle.len as usize))
                .collect();
            b.push((f.index_offset as usize, f.index_len as usize));
            b.push((f.filter_offset as usize, f.filter_len as usize));
            b.push((image.len() - FOOTER_LEN, FOOTER_LEN));
            b
        };
        let (start, len) = blocks[which.index(blocks.len())];
        let block = &mut image[start..start + len];
        let stored = u32::from_be_bytes([block[12], block[13], block[14], block[15]]) as usize;
        let used = (BLOCK_HEADER_LEN + stored).clamp(68, len);
        let pos = 4 + at.index(used - 4);
        block[pos] = byte;
        let crc = crc32fast::hash(&block[4..]);
        block[..4].copy_from_slice(&crc.to_be_bytes());
        if let Ok(t) = SstImage::open(image) {
            for (k, _) in &entries {
                let _ = t.get(k);
            }
            let _ = t.get(b"zzz");
            let _ = t.iter().count();
        }
    }

    #[test]
    fn random_tables_round_trip(
        entries in arb_entries(),
        target in 1usize..6000,
        compress in any::<bool>(),
    ) {
        let mut b = SstBuilder::new(target).with_compression(compress.then_some(3));
        for (k, v) in &entries {
            b.add(k, v).unwrap();
        }
        let (image, s) = b.finish().unwrap();
        prop_assert_eq!(image.len() % ALIGN, 0);
        prop_assert_eq!(s.entry_count, entries.len() as u64);
        let t = SstImage::open(image).unwrap();
        for (k, v) in &entries {
            let got = t.get(k).unwrap();
            prop_assert_eq!(got.as_ref(), Some(v));
        }
        let scanned: Vec<(Vec<u8>, Vec<Version>)> = t
            .iter()
            .map(|r| r.map(|(k, v)| (k.to_vec(), v)))
            .collect::<Result<_, _>>()
            .unwrap();
        let expected: Vec<(Vec<u8>, Vec<Version>)> = entries.into_iter().collect();
        prop_assert_eq!(scanned, expected);
    }

    #[test]
    fn garbage_never_panics_any_parser(raw in proptest::collection::vec(any::<u8>(), 0..9000)) {
        let _ = Footer::parse(&raw);
        let _ = Index::parse(&raw);
        let _ = Filter::parse(&raw);
        let _ = decode_block(&raw);
        let mut aligned = raw.clone();
        aligned.resize(ALIGN * (1 + raw.len() / ALIGN), 0);
        let _ = Footer::parse(&aligned[..FOOTER_LEN]);
        let _ = Index::parse(&aligned);
        let _ = decode_block(&aligned);
        if let Ok(t) = SstImage::open(aligned) {
            let _ = t.get(b"k");
            let _ = t.iter().count();
        }
    }

    /// Garbage behind a valid frame and crc reaches the deeper checks.
    #[test]
    fn framed_garbage_never_panics(
        count in any::<u32>(),
        small_count in 0u32..40,
        payload in proptest::collection::vec(any::<u8>(), 0..3000),
        raw_len in any::<u32>(),
    ) {
        for c in [count, small_count] {
            let index = seal_block(BlockKind::Index, c, payload.len(), &payload).unwrap();
            if let Ok(i) = Index::parse(&index) {
                let _ = i.find_block(b"abc");
                let _ = i.entry_count();
            }
            let raw = seal_block(BlockKind::DataRaw, c, payload.len(), &payload).unwrap();
            if let Ok(b) = decode_block(&raw) {
                let _ = b.get(b"abc");
                let _ = b.entries().count();
            }
            for rl in [raw_len, raw_len % 100_000] {
                let z = seal_block(BlockKind::DataZstd, c, rl as usize, &payload).unwrap();
                if let Ok(b) = decode_block(&z) {
                    let _ = b.entries().count();
                }
            }
        }
    }

    /// Valid entries with one byte changed and the crc recomputed: decoding
    /// errs or yields something, never panics.
    #[test]
    fn mutated_entries_behind_a_valid_crc_never_panic(
        entries in arb_entries(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        compress in any::<bool>(),
    ) {
        prop_assume!(!entries.is_empty());
        let mut raw = entry_bytes(&entries);
        let i = at.index(raw.len());
        raw[i] = byte;
        let n = entries.len() as u32;
        let block = if compress {
            let z = zstd::bulk::compress(&raw, 1).unwrap();
            seal_block(BlockKind::DataZstd, n, raw.len(), &z).unwrap()
        } else {
            seal_block(BlockKind::DataRaw, n, raw.len(), &raw).unwrap()
        };
        if let Ok(b) = decode_block(&block) {
            for e in b.entries() {
                let _ = e;
            }
            for k in entries.keys() {
                let _ = b.get(k);
            }
        }
    }

    #[test]
    fn framed_garbage_footer_never_panics(fields in proptest::collection::vec(any::<u8>(), 48)) {
        let mut f = vec![0u8; FOOTER_LEN];
        f[4] = 4;
        f[8..16].copy_from_slice(&MAGIC);
        f[16..20].copy_from_slice(&FORMAT_VERSION.to_be_bytes());
        f[20..68].copy_from_slice(&fields);
        for b in &mut f[64..68] {
            *b = 0;
        }
        let crc = crc32fast::hash(&f[4..]);
        f[..4].copy_from_slice(&crc.to_be_bytes());
        if let Ok(footer) = Footer::parse(&f) {
            let _ = footer.file_len();
            let _ = footer.index_range();
            let _ = footer.filter_range();
        }
    }
}

#[test]
fn block_header_length_is_documented() {
    assert_eq!(BLOCK_HEADER_LEN, 20);
    assert_eq!(MAGIC, *b"PDBSST\0\x01");
}
