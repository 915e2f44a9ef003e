//! Per-shard read cache: a byte-budgeted W-TinyLFU with an adaptive window.
//!
//! Owns cached values keyed by user key, their byte charges, the recency
//! segments that order them, the frequency sketch that admits them and the
//! hill climber that balances recency against frequency. Single-threaded: a
//! shard owns its cache outright.
//!
//! Policy (Einziger et al., "TinyLFU: A Highly Efficient Cache Admission
//! Policy"; window adaptation as in Caffeine):
//! - A new entry enters the *window*, an LRU of `window_max_bytes` (initially
//!   1% of the capacity).
//! - Entries pushed out of the window become candidates for the *main*
//!   segmented LRU: *probation* (about 20% of main) and *protected*
//!   (`protected_max_bytes`, initially 80% of main). A hit in probation
//!   promotes to protected; protected overflow is demoted to probation.
//! - While the cache is over budget, a candidate duels the least recently used
//!   probation entry (or, if probation holds only candidates, the least
//!   recently used protected one). The candidate is admitted only if its
//!   estimated frequency is strictly higher; ties reject. A warm candidate
//!   (frequency at least `HASH_FLOOD_ADMIT_FREQUENCY`) is also admitted with
//!   probability 1/128, so colliding a hot victim's counters cannot pin the
//!   main segment (hash flooding).
//! - Every sample period (the sketch's aging period of `10 ×` its table
//!   words, one word per cached entry rounded up to a power of two, and at
//!   least `MIN_SAMPLE_LOOKUPS` lookups) the hill climber moves target bytes
//!   between the window and the protected segment: on in the same direction
//!   while the hit ratio holds or rises, back when it drops (see `climber`).
//!   The window share is the cache's dynamic recency/frequency weight.
//!   Resizing is lazy: later inserts move or evict entries to fit the targets.
//! - The sketch counts lookups (`get`), hits and misses alike, so a key's
//!   frequency builds up before it is first inserted; `insert` does not count,
//!   so the miss-then-fill path counts once.
//!
//! Budgets are in bytes of caller-supplied charge. An entry whose charge
//! exceeds `capacity / MAX_CHARGE_DIVISOR` (1/8 of the capacity) is not
//! cached, so one entry cannot flush a large part of the cache; a zero charge
//! counts as one byte, so the entry count is bounded by the byte capacity.
//!
//! Invariants (checked after every call by the tests):
//! - `bytes() <= capacity_bytes` after every public call;
//! - every key in the map names an occupied slot holding that key, linked on
//!   exactly the list its `segment` names; the lists hold nothing else, and
//!   each list's length and bytes match its entries;
//! - `window_max_bytes + protected_max_bytes <= capacity_bytes`;
//! - a lookup never returns a value other than the last one inserted for its
//!   key: replacing a key updates it in place, and a replacement that is not
//!   cached removes the old value.

mod climber;
mod list;
#[cfg(test)]
mod lru;
mod sketch;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod trace;

use std::fmt;

use ahash::AHashMap;
use bytes::Bytes;

use climber::HillClimber;
use list::{Charged, List, Slab};
use sketch::FrequencySketch;

/// The window's initial share of the capacity.
const INITIAL_WINDOW_FRACTION: f64 = 0.01;
/// The protected segment's initial share of the main segment.
const PROTECTED_FRACTION: f64 = 0.80;
/// Entries charged more than `capacity / MAX_CHARGE_DIVISOR` are not cached.
const MAX_CHARGE_DIVISOR: u64 = 8;
/// Candidates at least this frequent may be admitted at random on a loss.
const HASH_FLOOD_ADMIT_FREQUENCY: u8 = 6;
/// One in `HASH_FLOOD_ADMIT_MASK + 1` warm losing candidates is admitted.
const HASH_FLOOD_ADMIT_MASK: u64 = 127;
/// The shortest hill-climbing sample, so tiny caches do not adapt to noise.
const MIN_SAMPLE_LOOKUPS: u64 = 1024;
/// Fixed seeds: sketch estimates, hence admissions, are reproducible.
const KEY_HASH_SEEDS: [u64; 4] = [
    0x243f_6a88_85a3_08d3,
    0x1319_8a2e_0370_7344,
    0xa409_3822_299f_31d0,
    0x082e_fa98_ec4e_6c89,
];
const ADMIT_RNG_SEED: u64 = 0x4528_21e6_38d0_1377;

/// Counters and sizes of an [`AdaptiveCache`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CacheStats {
    /// Lookups that found the key.
    pub hits: u64,
    /// Lookups that did not (including every lookup of a disabled cache).
    pub misses: u64,
    /// Inserts that stored their value, replacements included (the value may
    /// still lose admission to the main segment later).
    pub inserts: u64,
    /// Entries removed to make room for others.
    pub evictions: u64,
    /// Values not kept: oversize or disabled-cache inserts, and window
    /// candidates that lost admission to the main segment.
    pub rejections: u64,
    pub entries: u64,
    pub bytes: u64,
    pub capacity_bytes: u64,
    /// The window's current target size, set by the hill climber.
    pub window_bytes_target: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Segment {
    Window,
    Probation,
    Protected,
}

struct Entry<V> {
    key: Bytes,
    value: V,
    charge_bytes: u64,
    /// The key's sketch hash, kept so victims need not be rehashed.
    hash: u64,
    segment: Segment,
}

impl<V> Charged for Entry<V> {
    fn charge_bytes(&self) -> u64 {
        self.charge_bytes
    }
}

/// A byte-budgeted W-TinyLFU cache with a hill-climbing window; see the
/// module documentation for the policy and invariants.
pub(crate) struct AdaptiveCache<V> {
    map: AHashMap<Bytes, usize>,
    slab: Slab<Entry<V>>,
    window: List,
    probation: List,
    protected: List,
    capacity_bytes: u64,
    max_charge_bytes: u64,
    window_max_bytes: u64,
    protected_max_bytes: u64,
    sketch: FrequencySketch,
    key_hasher: ahash::RandomState,
    climber: HillClimber,
    admit_rng: u64,
    hits: u64,
    misses: u64,
    inserts: u64,
    evictions: u64,
    rejections: u64,
}

impl<V> AdaptiveCache<V> {
    /// `capacity_bytes == 0` disables the cache: `get` always misses (and
    /// counts the miss), `insert` stores nothing.
    pub(crate) fn new(capacity_bytes: u64) -> Self {
        let window_max_bytes = (capacity_bytes as f64 * INITIAL_WINDOW_FRACTION) as u64;
        let main_bytes = capacity_bytes - window_max_bytes;
        let protected_max_bytes = (main_bytes as f64 * PROTECTED_FRACTION) as u64;
        let [k0, k1, k2, k3] = KEY_HASH_SEEDS;
        Self {
            map: AHashMap::new(),
            slab: Slab::new(),
            window: List::new(),
            probation: List::new(),
            protected: List::new(),
            capacity_bytes,
            max_charge_bytes: capacity_bytes / MAX_CHARGE_DIVISOR,
            window_max_bytes,
            protected_max_bytes,
            sketch: FrequencySketch::new(0),
            key_hasher: ahash::RandomState::with_seeds(k0, k1, k2, k3),
            climber: HillClimber::new(capacity_bytes),
            admit_rng: ADMIT_RNG_SEED,
            hits: 0,
            misses: 0,
            inserts: 0,
            evictions: 0,
            rejections: 0,
        }
    }

    /// Looks `key` up; counts a hit or a miss, records the access in the
    /// sketch, promotes on hit.
    pub(crate) fn get(&mut self, key: &[u8]) -> Option<&V> {
        if self.capacity_bytes == 0 {
            self.misses += 1;
            return None;
        }
        self.sketch.increment(self.hash(key));
        let found = self.map.get(key).copied();
        self.climber.record(found.is_some());
        let sample_lookups = self.sketch.sample_size().max(MIN_SAMPLE_LOOKUPS);
        if let Some(amount_bytes) = self.climber.adjustment(sample_lookups) {
            // Only moves targets and demotes; `found` stays valid.
            self.resize_window(amount_bytes);
        }
        let Some(idx) = found else {
            self.misses += 1;
            return None;
        };
        self.hits += 1;
        self.on_hit(idx);
        Some(&self.slab.get(idx).value)
    }

    /// Inserts or replaces `key` with `value` charged `charge_bytes` (caller
    /// includes key length and overhead). May evict; may reject (admission) —
    /// a rejected insert stores nothing.
    pub(crate) fn insert(&mut self, key: Bytes, value: V, charge_bytes: u64) {
        let charge_bytes = charge_bytes.max(1);
        if self.capacity_bytes == 0 || charge_bytes > self.max_charge_bytes {
            // Whatever is cached under `key` is stale now.
            self.remove(&key);
            self.rejections += 1;
            return;
        }
        self.inserts += 1;
        if let Some(&idx) = self.map.get(&key[..]) {
            let segment = self.slab.get(idx).segment;
            self.unlink(idx);
            let entry = self.slab.get_mut(idx);
            entry.value = value;
            entry.charge_bytes = charge_bytes;
            self.link(idx, segment);
            self.demote_protected_overflow();
        } else {
            let hash = self.hash(&key);
            let idx = self.slab.insert(Entry {
                key: key.clone(),
                value,
                charge_bytes,
                hash,
                segment: Segment::Window,
            });
            self.link(idx, Segment::Window);
            self.map.insert(key, idx);
            self.sketch.ensure_capacity(self.map.len());
        }
        self.evict_to_budget();
    }

    /// Removes `key` if present (invalidation; not counted as an eviction).
    /// Returns whether it was present.
    pub(crate) fn remove(&mut self, key: &[u8]) -> bool {
        match self.map.get(key).copied() {
            Some(idx) => {
                self.remove_slot(idx);
                true
            }
            None => false,
        }
    }

    /// Removes every entry (invalidation; counters, the frequency sketch
    /// and the window size are kept).
    pub(crate) fn clear(&mut self) {
        let slots: Vec<usize> = self.map.values().copied().collect();
        for idx in slots {
            self.remove_slot(idx);
        }
    }

    #[cfg(test)]
    pub(crate) fn contains(&self, key: &[u8]) -> bool {
        self.map.contains_key(key)
    }

    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits,
            misses: self.misses,
            inserts: self.inserts,
            evictions: self.evictions,
            rejections: self.rejections,
            entries: self.map.len() as u64,
            bytes: self.bytes(),
            capacity_bytes: self.capacity_bytes,
            window_bytes_target: self.window_max_bytes,
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The summed charge of the cached entries.
    pub(crate) fn bytes(&self) -> u64 {
        self.window.bytes() + self.probation.bytes() + self.protected.bytes()
    }

    fn hash(&self, key: &[u8]) -> u64 {
        self.key_hasher.hash_one(key)
    }

    fn on_hit(&mut self, idx: usize) {
        match self.slab.get(idx).segment {
            Segment::Window => self.window.move_to_back(&mut self.slab, idx),
            Segment::Probation => {
                self.unlink(idx);
                self.link(idx, Segment::Protected);
                self.demote_protected_overflow();
            }
            Segment::Protected => self.protected.move_to_back(&mut self.slab, idx),
        }
    }

    /// Applies a hill-climber step: a positive amount moves target bytes
    /// from the protected segment to the window, a negative one back.
    fn resize_window(&mut self, amount_bytes: i64) {
        let quota_bytes = amount_bytes.unsigned_abs();
        if amount_bytes > 0 {
            let quota_bytes = quota_bytes.min(self.protected_max_bytes);
            self.protected_max_bytes -= quota_bytes;
            self.window_max_bytes += quota_bytes;
            self.demote_protected_overflow();
        } else {
            let quota_bytes = quota_bytes.min(self.window_max_bytes);
            self.window_max_bytes -= quota_bytes;
            self.protected_max_bytes += quota_bytes;
        }
    }

    fn demote_protected_overflow(&mut self) {
        while self.protected.bytes() > self.protected_max_bytes {
            let Some(idx) = self.protected.front() else {
                break;
            };
            self.unlink(idx);
            self.link(idx, Segment::Probation);
        }
    }

    /// Moves window overflow into probation, each candidate dueling for room
    /// while the cache is over budget, then evicts until within budget.
    fn evict_to_budget(&mut self) {
        while self.window.bytes() > self.window_max_bytes {
            let Some(candidate) = self.window.front() else {
                break;
            };
            self.unlink(candidate);
            self.link(candidate, Segment::Probation);
            self.admit_or_reject(candidate);
        }
        // Reached when main is over its share (after a replacement grew an
        // entry, or after the window target grew): plain LRU eviction.
        while self.bytes() > self.capacity_bytes {
            let victim = self
                .probation
                .front()
                .or_else(|| self.protected.front())
                .or_else(|| self.window.front());
            let Some(victim) = victim else {
                break;
            };
            self.remove_slot(victim);
            self.evictions += 1;
        }
    }

    /// While over budget, `candidate` (now probation's most recent entry)
    /// must out-frequency each victim it displaces, or it is dropped.
    fn admit_or_reject(&mut self, candidate: usize) {
        while self.bytes() > self.capacity_bytes {
            let victim = match self.probation.front() {
                Some(idx) if idx != candidate => Some(idx),
                _ => self.protected.front(),
            };
            let Some(victim) = victim else {
                break;
            };
            let candidate_hash = self.slab.get(candidate).hash;
            let victim_hash = self.slab.get(victim).hash;
            if self.admit(candidate_hash, victim_hash) {
                self.remove_slot(victim);
                self.evictions += 1;
            } else {
                self.remove_slot(candidate);
                self.rejections += 1;
                return;
            }
        }
    }

    fn admit(&mut self, candidate_hash: u64, victim_hash: u64) -> bool {
        let candidate_frequency = self.sketch.frequency(candidate_hash);
        let victim_frequency = self.sketch.frequency(victim_hash);
        if candidate_frequency > victim_frequency {
            return true;
        }
        candidate_frequency >= HASH_FLOOD_ADMIT_FREQUENCY
            && self.next_random() & HASH_FLOOD_ADMIT_MASK == 0
    }

    /// SplitMix64; deterministic so admission is reproducible.
    fn next_random(&mut self) -> u64 {
        self.admit_rng = self.admit_rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.admit_rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn link(&mut self, idx: usize, segment: Segment) {
        let list = match segment {
            Segment::Window => &mut self.window,
            Segment::Probation => &mut self.probation,
            Segment::Protected => &mut self.protected,
        };
        list.push_back(&mut self.slab, idx);
        self.slab.get_mut(idx).segment = segment;
    }

    fn unlink(&mut self, idx: usize) {
        let list = match self.slab.get(idx).segment {
            Segment::Window => &mut self.window,
            Segment::Probation => &mut self.probation,
            Segment::Protected => &mut self.protected,
        };
        list.unlink(&mut self.slab, idx);
    }

    fn remove_slot(&mut self, idx: usize) {
        self.unlink(idx);
        let entry = self.slab.remove(idx);
        self.map.remove(&entry.key);
    }

    /// A cache whose window stays at its initial share, for comparisons.
    #[cfg(test)]
    fn with_fixed_window(capacity_bytes: u64) -> Self {
        let mut cache = Self::new(capacity_bytes);
        cache.climber = HillClimber::new(0);
        cache
    }

    /// Panics unless the map, the slab and the lists agree and the budgets hold.
    #[cfg(test)]
    fn assert_consistent(&self) {
        assert!(self.bytes() <= self.capacity_bytes, "over budget");
        assert!(self.window_max_bytes + self.protected_max_bytes <= self.capacity_bytes);
        let mut linked = 0;
        for (segment, list) in [
            (Segment::Window, &self.window),
            (Segment::Probation, &self.probation),
            (Segment::Protected, &self.protected),
        ] {
            let slots = list.slots(&self.slab);
            assert_eq!(slots.len(), list.len(), "{segment:?} length");
            let mut bytes = 0;
            for idx in slots {
                let entry = self.slab.get(idx);
                assert_eq!(entry.segment, segment, "slot {idx} segment");
                assert_eq!(self.map.get(&entry.key), Some(&idx), "slot {idx} mapped");
                assert!(entry.charge_bytes <= self.max_charge_bytes);
                bytes += entry.charge_bytes;
            }
            assert_eq!(bytes, list.bytes(), "{segment:?} bytes");
            linked += list.len();
        }
        assert_eq!(linked, self.map.len(), "every mapped slot is linked once");
    }
}

impl<V> fmt::Debug for AdaptiveCache<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveCache")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}
