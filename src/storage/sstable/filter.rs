//! The SSTable's key filter: a binary fuse filter (xorf `BinaryFuse8`, about
//! 9 bits per key, false-positive rate about 0.4%) over a stable 64-bit hash
//! of every key, and its block encoding (layout in [`super::format`]).
//!
//! Invariants: [`key_hash`] never changes for a given format version (it is
//! written into files, so it is pinned by fixed test vectors and uses no
//! randomly seeded or unstable hasher); a filter never answers "absent" for a
//! key that was in its set (no false negatives); a parsed filter's descriptor
//! is validated against its fingerprint array so a lookup can never index
//! out of bounds, whatever the bytes were.

use super::format::{be_u32, be_u64, corrupted, open_block, seal_block, BlockKind};
use super::SstError;
use xorf::{BinaryFuse8, Descriptor, Filter as _};

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64 of `bytes`.
pub(crate) fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h = FNV_OFFSET;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// The splitmix64 finalizer (Stafford's "mix13" variant as used by
/// splitmix64), a bijection on u64 that spreads every input bit over the
/// output.
pub(crate) fn splitmix64_finalize(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The filter hash of a storage key: `splitmix64_finalize(fnv1a64(key))`.
/// Part of the file format (filter kind 1): never change it.
pub(crate) fn key_hash(key: &[u8]) -> u64 {
    splitmix64_finalize(fnv1a64(key))
}

const FILTER_EMPTY: u8 = 0;
const FILTER_BFUSE8: u8 = 1;
const FILTER_PASS: u8 = 2;
const DESCRIPTOR_LEN: usize = 28;

#[derive(Debug, Clone)]
enum Repr {
    /// No keys: nothing may be present.
    Empty,
    Fuse(BinaryFuse8),
    /// Construction failed: everything may be present.
    Pass,
}

/// A key filter (built by the builder, parsed by readers).
#[derive(Debug, Clone)]
pub(crate) struct Filter {
    repr: Repr,
    /// Distinct hashes the filter was built from.
    key_count: u32,
}

impl Filter {
    /// Heap bytes this filter holds in memory (its fingerprints).
    pub(crate) fn heap_bytes(&self) -> usize {
        match &self.repr {
            Repr::Fuse(f) => f.fingerprints.len(),
            Repr::Empty | Repr::Pass => 0,
        }
    }

    /// Builds a filter over `hashes` (any order, duplicates allowed: they are
    /// removed first, as binary fuse construction needs distinct keys).
    pub(crate) fn build(mut hashes: Vec<u64>) -> Filter {
        hashes.sort_unstable();
        hashes.dedup();
        let key_count = u32::try_from(hashes.len()).unwrap_or(u32::MAX);
        let repr = if hashes.is_empty() {
            Repr::Empty
        } else {
            match BinaryFuse8::try_from(&hashes[..]) {
                Ok(f) => Repr::Fuse(f),
                Err(_) => Repr::Pass,
            }
        };
        Filter { repr, key_count }
    }

    /// False means `key` is certainly not in the table.
    pub(crate) fn may_contain(&self, key: &[u8]) -> bool {
        self.may_contain_hash(key_hash(key))
    }

    /// [`Filter::may_contain`] for a precomputed [`key_hash`] (one hash can
    /// probe the filters of many tables).
    pub(crate) fn may_contain_hash(&self, hash: u64) -> bool {
        match &self.repr {
            Repr::Empty => false,
            Repr::Fuse(f) => f.contains(&hash),
            Repr::Pass => true,
        }
    }

    /// Distinct key hashes the filter was built from.
    #[cfg(test)]
    pub(crate) fn key_count(&self) -> u32 {
        self.key_count
    }

    /// True when the filter is pass-through (construction failed) and so
    /// never rules a key out.
    #[cfg(test)]
    pub(crate) fn is_pass_through(&self) -> bool {
        matches!(self.repr, Repr::Pass)
    }

    /// The whole aligned filter block.
    pub(crate) fn encode_block(&self) -> Result<Vec<u8>, SstError> {
        let (kind, fps): (u8, &[u8]) = match &self.repr {
            Repr::Empty => (FILTER_EMPTY, &[]),
            Repr::Fuse(f) => (FILTER_BFUSE8, &f.fingerprints),
            Repr::Pass => (FILTER_PASS, &[]),
        };
        let fps_len = u32::try_from(fps.len()).map_err(|_| SstError::TooLarge {
            what: "filter",
            bytes: fps.len(),
        })?;
        let mut payload = Vec::with_capacity(DESCRIPTOR_LEN + fps.len());
        payload.push(kind);
        payload.extend_from_slice(&[0u8; 3]);
        let d = match &self.repr {
            Repr::Fuse(f) => f.descriptor.clone(),
            _ => Descriptor {
                seed: 0,
                segment_length: 0,
                segment_length_mask: 0,
                segment_count_length: 0,
            },
        };
        payload.extend_from_slice(&d.seed.to_be_bytes());
        payload.extend_from_slice(&d.segment_length.to_be_bytes());
        payload.extend_from_slice(&d.segment_length_mask.to_be_bytes());
        payload.extend_from_slice(&d.segment_count_length.to_be_bytes());
        payload.extend_from_slice(&fps_len.to_be_bytes());
        payload.extend_from_slice(fps);
        seal_block(BlockKind::Filter, self.key_count, payload.len(), &payload)
    }

    /// Parses a whole filter block (crc, header and descriptor checked).
    /// Offsets in errors are relative to the block's start.
    pub(crate) fn parse(block: &[u8]) -> Result<Filter, SstError> {
        let (header, p) = open_block(block, &[BlockKind::Filter])?;
        let at = |o: usize| Some((super::format::BLOCK_HEADER_LEN + o) as u64);
        let (descriptor, fps) = p
            .split_first_chunk::<DESCRIPTOR_LEN>()
            .ok_or_else(|| corrupted("filter descriptor truncated", at(0)))?;
        let kind = descriptor[0];
        if descriptor[1..4] != [0, 0, 0] {
            return Err(corrupted("filter reserved bytes are not zero", at(1)));
        }
        let field32 = |o| be_u32(descriptor, o).ok_or_else(|| corrupted("filter truncated", at(o)));
        let seed = be_u64(descriptor, 4).ok_or_else(|| corrupted("filter truncated", at(4)))?;
        let segment_length = field32(12)?;
        let segment_length_mask = field32(16)?;
        let segment_count_length = field32(20)?;
        let fps_len = field32(24)? as usize;
        if fps.len() != fps_len {
            return Err(corrupted(
                format!(
                    "filter holds {} fingerprint bytes, descriptor says {fps_len}",
                    fps.len()
                ),
                at(24),
            ));
        }
        let key_count = header.count;
        let repr = match kind {
            FILTER_EMPTY | FILTER_PASS => {
                if seed != 0
                    || segment_length != 0
                    || segment_length_mask != 0
                    || segment_count_length != 0
                    || fps_len != 0
                {
                    return Err(corrupted("non-fuse filter carries a descriptor", at(4)));
                }
                if kind == FILTER_EMPTY {
                    if key_count != 0 {
                        return Err(corrupted("empty filter claims keys", Some(8)));
                    }
                    Repr::Empty
                } else {
                    Repr::Pass
                }
            }
            FILTER_BFUSE8 => {
                // Lookups index h0 < scl, h1 < scl + sl and h2 < scl + 2 sl
                // (each xor with the mask stays inside its segment; h0 < scl
                // needs scl > 0), and compute h0 + 2 sl in u32: check all of
                // that here.
                let sl = u64::from(segment_length);
                let scl = u64::from(segment_count_length);
                let valid = segment_length.is_power_of_two()
                    && segment_length_mask == segment_length - 1
                    && scl >= sl
                    && scl % sl == 0
                    && scl + 2 * sl <= u64::from(u32::MAX)
                    && fps_len as u64 == scl + 2 * sl
                    && key_count > 0;
                if !valid {
                    return Err(corrupted("filter descriptor is inconsistent", at(4)));
                }
                Repr::Fuse(BinaryFuse8 {
                    descriptor: Descriptor {
                        seed,
                        segment_length,
                        segment_length_mask,
                        segment_count_length,
                    },
                    fingerprints: fps.to_vec().into_boxed_slice(),
                })
            }
            other => {
                return Err(corrupted(format!("unknown filter kind {other}"), at(0)));
            }
        };
        Ok(Filter { repr, key_count })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fnv1a64_matches_reference_vectors() {
        // Reference values of the FNV-1a 64 specification.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn splitmix64_matches_reference_vectors() {
        // splitmix64 seeded with 0 yields finalize(k * 0x9e3779b97f4a7c15)
        // for k = 1, 2, 3: its published first outputs.
        let gamma: u64 = 0x9e37_79b9_7f4a_7c15;
        assert_eq!(splitmix64_finalize(gamma), 0xe220_a839_7b1d_cdaf);
        assert_eq!(
            splitmix64_finalize(gamma.wrapping_mul(2)),
            0x6e78_9e6a_a1b9_65f4
        );
        assert_eq!(
            splitmix64_finalize(gamma.wrapping_mul(3)),
            0x06c4_5d18_8009_454f
        );
        assert_eq!(splitmix64_finalize(0), 0);
    }

    #[test]
    fn key_hash_is_pinned() {
        // Pinned outputs (cross-checked with an independent Python
        // implementation): a change here changes the file format.
        assert_eq!(key_hash(b""), splitmix64_finalize(0xcbf2_9ce4_8422_2325));
        assert_eq!(key_hash(b""), 0xf52a_15e9_a9b5_e89b);
        assert_eq!(key_hash(b"a"), 0x02c0_bdbf_4814_20f8);
        assert_eq!(key_hash(b"foobar"), 0x404d_a9e3_b740_78c2);
        assert_eq!(key_hash(&[0, 0, 0, 1, b'k']), 0xaa43_79ad_3285_f66e);
    }

    #[test]
    fn empty_single_and_duplicate_sets() {
        let empty = Filter::build(vec![]);
        assert!(!empty.may_contain(b"x"));
        let parsed = Filter::parse(&empty.encode_block().unwrap()).unwrap();
        assert!(!parsed.may_contain(b"x"));
        assert_eq!(parsed.key_count(), 0);

        for n in 1..40u64 {
            let mut hashes: Vec<u64> = (0..n).map(|i| key_hash(&i.to_be_bytes())).collect();
            hashes.extend(hashes.clone()); // duplicates
            let f = Filter::build(hashes);
            assert_eq!(f.key_count(), n as u32);
            assert!(!f.is_pass_through(), "construction failed for {n} keys");
            let parsed = Filter::parse(&f.encode_block().unwrap()).unwrap();
            for i in 0..n {
                assert!(parsed.may_contain(&i.to_be_bytes()));
            }
        }
    }

    #[test]
    fn false_positive_rate_is_low() {
        let keys: Vec<Vec<u8>> = (0..10_000u32)
            .map(|i| format!("key-{i}").into_bytes())
            .collect();
        let f = Filter::build(keys.iter().map(|k| key_hash(k)).collect());
        let f = Filter::parse(&f.encode_block().unwrap()).unwrap();
        assert!(keys.iter().all(|k| f.may_contain(k)));
        let fp = (0..10_000u32)
            .filter(|i| f.may_contain(format!("other-{i}").as_bytes()))
            .count();
        assert!(fp < 100, "{fp} false positives in 10000");
    }

    #[test]
    fn every_byte_flip_is_detected() {
        let f = Filter::build((0..300u64).map(|i| key_hash(&i.to_le_bytes())).collect());
        let block = f.encode_block().unwrap();
        for i in 0..block.len() {
            for mask in [0x01u8, 0xFF] {
                let mut bad = block.clone();
                bad[i] ^= mask;
                assert!(Filter::parse(&bad).is_err(), "flip at {i}");
            }
        }
    }

    #[test]
    fn descriptors_that_would_index_out_of_bounds_are_refused() {
        // (segment_length, mask, segment_count_length, fingerprints)
        let cases = [
            (1u32, 0u32, 0u32, 2u32), // scl = 0: h2 can reach 2 sl
            (4, 3, 0, 8),
            (4, 3, 4, 8),                         // too few fingerprints
            (4, 2, 8, 16),                        // mask is not sl - 1
            (6, 5, 12, 24),                       // sl not a power of two
            (4, 3, 6, 14),                        // scl not a multiple of sl
            (1 << 31, (1 << 31) - 1, 1 << 31, 0), // u32 overflow
        ];
        for (sl, mask, scl, n) in cases {
            let mut p = vec![FILTER_BFUSE8, 0, 0, 0];
            p.extend_from_slice(&7u64.to_be_bytes());
            p.extend_from_slice(&sl.to_be_bytes());
            p.extend_from_slice(&mask.to_be_bytes());
            p.extend_from_slice(&scl.to_be_bytes());
            p.extend_from_slice(&n.to_be_bytes());
            p.resize(p.len() + n as usize, 0);
            assert!(
                Filter::parse(&framed(1, &p)).is_err(),
                "{sl} {mask} {scl} {n}"
            );
        }
    }

    /// Frames an arbitrary payload as a valid filter block, so parsing gets
    /// past the crc and exercises the descriptor checks.
    fn framed(count: u32, payload: &[u8]) -> Vec<u8> {
        seal_block(BlockKind::Filter, count, payload.len(), payload).unwrap()
    }

    proptest! {
        #[test]
        fn garbage_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..9000)) {
            let _ = Filter::parse(&raw);
        }

        #[test]
        fn framed_garbage_never_panics_and_probes_safely(
            count in any::<u32>(),
            kind in 0u8..4,
            seed in any::<u64>(),
            sl_shift in 0u32..20,
            mask_delta in 0u32..2,
            segments in 0u32..8,
            extra in 0usize..3,
            fps in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let sl = 1u32 << sl_shift;
            let scl = sl.saturating_mul(segments);
            let want = (scl as u64 + 2 * sl as u64).min(1 << 22) as usize;
            let mut fingerprints = fps.clone();
            fingerprints.resize(want.saturating_sub(extra % 2), 7);
            let mut p = vec![kind, 0, 0, 0];
            p.extend_from_slice(&seed.to_be_bytes());
            p.extend_from_slice(&sl.to_be_bytes());
            p.extend_from_slice(&(sl - 1 + mask_delta).to_be_bytes());
            p.extend_from_slice(&scl.to_be_bytes());
            p.extend_from_slice(&(fingerprints.len() as u32).to_be_bytes());
            p.extend_from_slice(&fingerprints);
            if let Ok(f) = Filter::parse(&framed(count, &p)) {
                for k in 0..200u64 {
                    let _ = f.may_contain_hash(k.wrapping_mul(0x9e37_79b9_7f4a_7c15));
                }
            }
        }

        #[test]
        fn framed_random_payload_never_panics(count in any::<u32>(), p in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(f) = Filter::parse(&framed(count, &p)) {
                for k in 0..50u64 {
                    let _ = f.may_contain_hash(k);
                }
            }
        }
    }
}
