//! TinyLFU frequency history: a count-min sketch with 4-bit counters and aging.
//!
//! Owns the approximate lookup counts that the cache's admission policy
//! compares. Each key hash selects one 4-bit counter in each of four rows
//! (the rows share one table of `u64` words, sixteen counters per word); the
//! estimate is the minimum of the four, so it never undercounts between
//! agings. No doorkeeper is used: 4-bit counters with halving already keep the
//! table small (one word per cached entry), as in Caffeine.
//!
//! Invariants:
//! - counters saturate at 15;
//! - after `sample_size` counted increments every counter is halved and the
//!   increment count is reduced to match, so history ages continuously;
//! - the table length is a power of two in `[MIN_TABLE_WORDS, MAX_TABLE_WORDS]`
//!   and grows (clearing the history) to cover the number of cached entries.
//!
//! Hashing is the caller's: it passes a 64-bit key hash from a fixed-seed
//! hasher, so estimates are deterministic for a given sequence of calls.

const MIN_TABLE_WORDS: usize = 16;
/// Caps the table at 8 MiB; beyond about a million entries estimates degrade
/// gracefully (more collisions) instead of the sketch growing further.
const MAX_TABLE_WORDS: usize = 1 << 20;
/// Increments per table word between agings (TinyLFU's sample size `W = 10·C`).
const SAMPLE_INCREMENTS_PER_WORD: u64 = 10;
const MAX_COUNT: u64 = 15;
/// The low bit of every 4-bit counter.
const ONE_MASK: u64 = 0x1111_1111_1111_1111;
/// Clears the bit that a right shift carries into each counter's top bit.
const RESET_MASK: u64 = 0x7777_7777_7777_7777;
const ROW_SEEDS: [u64; 4] = [
    0x97cb_3127_e0c9_fb7d,
    0xc2b2_ae3d_27d4_eb4f,
    0x1656_67b1_9e37_79f9,
    0x85eb_ca77_c2b2_ae63,
];

/// Approximate, aging lookup frequencies (0..=15) keyed by 64-bit hash.
pub(super) struct FrequencySketch {
    table: Vec<u64>,
    sample_size: u64,
    increments: u64,
}

impl FrequencySketch {
    /// A sketch sized for about `expected_entries` distinct hot keys.
    pub(super) fn new(expected_entries: usize) -> Self {
        let words = table_words_for(expected_entries);
        Self {
            table: vec![0; words],
            sample_size: SAMPLE_INCREMENTS_PER_WORD * words as u64,
            increments: 0,
        }
    }

    /// Grows the table, clearing the history, when `entries` exceeds the
    /// number of table words (and the cap allows a larger table).
    pub(super) fn ensure_capacity(&mut self, entries: usize) {
        if entries > self.table.len() && self.table.len() < MAX_TABLE_WORDS {
            *self = Self::new(entries);
        }
    }

    /// Counted increments between agings; also the cache's sample period.
    pub(super) fn sample_size(&self) -> u64 {
        self.sample_size
    }

    /// The estimated recent frequency of `hash`, in `0..=15`.
    pub(super) fn frequency(&self, hash: u64) -> u8 {
        (0..ROW_SEEDS.len())
            .map(|row| {
                let (word, shift) = self.counter(hash, row);
                ((self.table[word] >> shift) & MAX_COUNT) as u8
            })
            .min()
            .unwrap_or(0)
    }

    /// Records one occurrence of `hash`; ages the history when the sample is full.
    pub(super) fn increment(&mut self, hash: u64) {
        let mut added = false;
        for row in 0..ROW_SEEDS.len() {
            let (word, shift) = self.counter(hash, row);
            if (self.table[word] >> shift) & MAX_COUNT < MAX_COUNT {
                self.table[word] += 1 << shift;
                added = true;
            }
        }
        if added {
            self.increments += 1;
            if self.increments >= self.sample_size {
                self.age();
            }
        }
    }

    /// Halves every counter. Odd counters lose half a count each to the
    /// truncation; the increment count is reduced by the same amount (four
    /// counters per increment) before halving, as in Caffeine.
    fn age(&mut self) {
        let mut odd_counters = 0u64;
        for word in &mut self.table {
            odd_counters += u64::from((*word & ONE_MASK).count_ones());
            *word = (*word >> 1) & RESET_MASK;
        }
        self.increments = self.increments.saturating_sub(odd_counters / 4) / 2;
    }

    /// The word index and bit shift of `hash`'s counter in `row`.
    fn counter(&self, hash: u64, row: usize) -> (usize, u32) {
        let seed = ROW_SEEDS[row];
        let mut mixed = hash.wrapping_add(seed).wrapping_mul(seed);
        mixed ^= mixed >> 32;
        // The table length is a power of two, so masking selects a word.
        let word = (mixed as usize) & (self.table.len() - 1);
        // The top four bits of the product pick one of the word's 16 counters.
        let shift = ((mixed >> 60) as u32) * 4;
        (word, shift)
    }
}

fn table_words_for(entries: usize) -> usize {
    entries
        .clamp(MIN_TABLE_WORDS, MAX_TABLE_WORDS)
        .next_power_of_two()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash_of(i: u64) -> u64 {
        ahash::RandomState::with_seeds(1, 2, 3, 4).hash_one(i)
    }

    #[test]
    fn counts_and_saturates_at_fifteen() {
        let mut sketch = FrequencySketch::new(1024);
        let h = hash_of(7);
        assert_eq!(sketch.frequency(h), 0);
        for expected in 1..=15 {
            sketch.increment(h);
            assert!(sketch.frequency(h) >= expected);
        }
        for _ in 0..10 {
            sketch.increment(h);
        }
        assert_eq!(sketch.frequency(h), 15);
    }

    #[test]
    fn aging_halves_counts() {
        let mut sketch = FrequencySketch::new(64);
        let hot = hash_of(1);
        for _ in 0..12 {
            sketch.increment(hot);
        }
        let before = sketch.frequency(hot);
        assert!(before >= 12);
        // Distinct cold keys fill the sample and trigger an aging.
        let increments_before_age = sketch.sample_size() - sketch.increments;
        for cold in 1_000..1_000 + increments_before_age {
            sketch.increment(hash_of(cold));
        }
        assert!(sketch.increments < sketch.sample_size() / 2 + 1);
        let after = sketch.frequency(hot);
        assert!(after <= before / 2 + 2, "before {before}, after {after}");
        assert!(after >= before / 2, "before {before}, after {after}");
    }

    #[test]
    fn distinguishes_hot_from_cold_keys() {
        let mut sketch = FrequencySketch::new(4096);
        for round in 0..8u64 {
            for key in 0..100u64 {
                sketch.increment(hash_of(key));
            }
            sketch.increment(hash_of(10_000 + round));
        }
        let hot_min = (0..100).map(|k| sketch.frequency(hash_of(k))).min();
        let cold_max = (10_000..10_008).map(|k| sketch.frequency(hash_of(k))).max();
        assert!(hot_min >= Some(8));
        assert!(cold_max <= Some(3), "cold estimate {cold_max:?}");
    }

    #[test]
    fn grows_with_entries_up_to_the_cap() {
        let mut sketch = FrequencySketch::new(0);
        assert_eq!(sketch.table.len(), MIN_TABLE_WORDS);
        sketch.ensure_capacity(MIN_TABLE_WORDS);
        assert_eq!(sketch.table.len(), MIN_TABLE_WORDS);
        sketch.ensure_capacity(1000);
        assert_eq!(sketch.table.len(), 1024);
        assert_eq!(sketch.sample_size(), 10_240);
        sketch.ensure_capacity(usize::MAX);
        assert_eq!(sketch.table.len(), MAX_TABLE_WORDS);
    }
}
