//! The most requested keys of one shard: a Space-Saving heavy-hitters
//! sketch (Metwally, Agrawal and El Abbadi, "Efficient Computation of
//! Frequent and Top-k Elements in Data Streams", 2005) over the storage
//! keys of the keyed requests the shard executes.
//!
//! Owns a fixed number of counters (`storage.hot_keys_tracked`), each a
//! key with its count and error. A tracked key's count goes up by one per
//! observation; an untracked key, when every counter is taken, replaces the
//! key of the smallest count `m` and gets count `m + 1`, error `m`.
//!
//! Invariants, with `N` the observations since start and `k` the capacity:
//! - at most `k` keys are tracked (memory: `k` keys, each with a counter
//!   and an index entry of a few words); the counts sum to `N`;
//! - a tracked key's true count lies in `[count - error, count]`, and its
//!   error is at most the smallest count, itself at most `N / k`; while at
//!   most `k` distinct keys were seen every count is exact (error 0);
//! - an untracked key was seen at most the smallest count's times, so every
//!   key seen more than `N / k` times is tracked;
//! - with `k = 0` nothing is tracked and observing costs one comparison.
//!
//! Cost per observation: one hash lookup and an increment for a tracked
//! key, with no allocation; for an untracked key a scan of the `k` counts.
//! A tracked key holds a clone of the request's storage key (`Bytes`, its
//! own allocation in [`crate::model::KeyRef`]), so no key is copied.

use bytes::Bytes;
use std::collections::HashMap;

/// One tracked key.
#[derive(Debug)]
struct Counter {
    key: Bytes,
    /// Observations counted for the key: at least its true count.
    count: u64,
    /// How much of `count` may belong to the keys it replaced.
    error: u64,
}

/// The sketch (see the module invariants). Used on its shard's core only.
#[derive(Debug)]
pub(crate) struct HotKeys {
    capacity: usize,
    counters: Vec<Counter>,
    /// The index in `counters` of each tracked key.
    slots: HashMap<Bytes, usize, ahash::RandomState>,
}

impl HotKeys {
    /// A sketch of `capacity` counters; 0 tracks nothing.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            counters: Vec::with_capacity(capacity),
            slots: HashMap::with_capacity_and_hasher(capacity, ahash::RandomState::new()),
        }
    }

    /// Counts one request for `key`.
    pub(crate) fn observe(&mut self, key: &Bytes) {
        if self.capacity == 0 {
            return;
        }
        if let Some(&slot) = self.slots.get(key.as_ref()) {
            if let Some(c) = self.counters.get_mut(slot) {
                c.count = c.count.saturating_add(1);
            }
            return;
        }
        if self.counters.len() < self.capacity {
            self.slots.insert(key.clone(), self.counters.len());
            self.counters.push(Counter {
                key: key.clone(),
                count: 1,
                error: 0,
            });
            return;
        }
        // Full: the first counter of the smallest count takes the key.
        let Some((slot, c)) = self
            .counters
            .iter_mut()
            .enumerate()
            .min_by_key(|(_, c)| c.count)
        else {
            return;
        };
        self.slots.remove(c.key.as_ref());
        self.slots.insert(key.clone(), slot);
        c.key = key.clone();
        c.error = c.count;
        c.count = c.count.saturating_add(1);
    }

    /// The `n` keys of the highest counts with their counts, highest first;
    /// equal counts in key order.
    pub(crate) fn top(&self, n: usize) -> Vec<(Bytes, u64)> {
        let mut ranked: Vec<&Counter> = self.counters.iter().collect();
        ranked.sort_unstable_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
        ranked
            .into_iter()
            .take(n)
            .map(|c| (c.key.clone(), c.count))
            .collect()
    }

    #[cfg(test)]
    /// The count and error of `key`, if tracked.
    fn counter(&self, key: &[u8]) -> Option<(u64, u64)> {
        let slot = *self.slots.get(key)?;
        self.counters.get(slot).map(|c| (c.count, c.error))
    }

    #[cfg(test)]
    /// Checks the structural invariants: at most `capacity` counters, the
    /// index names exactly the tracked keys, errors below counts.
    fn check(&self) {
        assert!(self.counters.len() <= self.capacity);
        assert_eq!(self.slots.len(), self.counters.len());
        for (i, c) in self.counters.iter().enumerate() {
            assert_eq!(self.slots.get(c.key.as_ref()), Some(&i));
            assert!(c.error < c.count, "{c:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn key(i: u64) -> Bytes {
        Bytes::from(format!("key-{i}"))
    }

    /// xorshift64*: reproducible from the seed, no crate needed.
    struct Rng(u64);

    impl Rng {
        fn next_u64(&mut self) -> u64 {
            let mut x = self.0.max(1);
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            x.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next_u64() % n
        }
    }

    #[test]
    fn counts_are_exact_while_keys_fit() {
        let mut s = HotKeys::new(8);
        let mut want = HashMap::new();
        for round in 0..50u64 {
            for i in 0..8u64 {
                if (round + i) % (i + 1) == 0 {
                    s.observe(&key(i));
                    *want.entry(i).or_insert(0u64) += 1;
                }
            }
        }
        s.check();
        for (i, n) in &want {
            assert_eq!(s.counter(&key(*i)), Some((*n, 0)), "key {i}");
        }
        let top = s.top(8);
        assert_eq!(top.len(), want.len());
        assert!(top.windows(2).all(|w| w[0].1 >= w[1].1), "{top:?}");
        assert_eq!(top[0], (key(0), 50));
    }

    #[test]
    fn ties_rank_in_key_order_and_top_is_truncated() {
        let mut s = HotKeys::new(4);
        for k in [b"c", b"a", b"b", b"a"] {
            s.observe(&Bytes::from_static(k));
        }
        assert_eq!(
            s.top(10),
            vec![
                (Bytes::from_static(b"a"), 2),
                (Bytes::from_static(b"b"), 1),
                (Bytes::from_static(b"c"), 1),
            ]
        );
        assert_eq!(s.top(1), vec![(Bytes::from_static(b"a"), 2)]);
        assert!(s.top(0).is_empty());
    }

    #[test]
    fn replacement_takes_the_smallest_count_and_records_its_error() {
        let mut s = HotKeys::new(2);
        for k in [b"a", b"a", b"a", b"b", b"b"] {
            s.observe(&Bytes::from_static(k));
        }
        s.observe(&Bytes::from_static(b"c"));
        s.check();
        assert_eq!(s.counter(b"a"), Some((3, 0)));
        assert_eq!(s.counter(b"b"), None);
        assert_eq!(s.counter(b"c"), Some((3, 2)));
        s.observe(&Bytes::from_static(b"c"));
        assert_eq!(s.counter(b"c"), Some((4, 2)));
    }

    #[test]
    fn zero_capacity_tracks_nothing() {
        let mut s = HotKeys::new(0);
        for i in 0..100 {
            s.observe(&key(i % 3));
        }
        s.check();
        assert!(s.top(10).is_empty());
    }

    #[test]
    fn a_heavy_key_among_uniform_ones_is_reported_within_the_bound() {
        const CAPACITY: usize = 32;
        let mut rng = Rng(7);
        let mut s = HotKeys::new(CAPACITY);
        let heavy = Bytes::from_static(b"heavy");
        let mut heavy_true = 0u64;
        let mut n = 0u64;
        for _ in 0..20_000 {
            // One request in ten for the heavy key, the rest spread over
            // 5000 keys.
            if rng.below(10) == 0 {
                s.observe(&heavy);
                heavy_true += 1;
            } else {
                s.observe(&key(rng.below(5000)));
            }
            n += 1;
        }
        s.check();
        let (count, error) = s.counter(&heavy).expect("the heavy key is tracked");
        assert!(
            count - error <= heavy_true && heavy_true <= count,
            "{count} {error} {heavy_true}"
        );
        assert!(error <= n / CAPACITY as u64, "{error}");
        assert_eq!(s.top(1), vec![(heavy, count)]);
    }

    #[test]
    fn every_key_above_n_over_capacity_is_tracked_seed_by_seed() {
        for seed in 1..=40u64 {
            let mut rng = Rng(seed);
            let capacity = 1 + rng.below(32) as usize;
            let distinct = 1 + rng.below(200);
            let mut s = HotKeys::new(capacity);
            let mut exact: HashMap<u64, u64> = HashMap::new();
            let n = 1 + rng.below(5000);
            for _ in 0..n {
                // Skewed: the product of two uniform draws favours low keys.
                let i = rng.below(distinct) * rng.below(distinct) / distinct;
                s.observe(&key(i));
                *exact.entry(i).or_default() += 1;
            }
            s.check();
            let total: u64 = s.top(capacity).iter().map(|(_, c)| c).sum();
            assert_eq!(total, n, "seed {seed}: the counts sum to N");
            let min = s.top(capacity).last().map_or(0, |(_, c)| *c);
            for (i, &f) in &exact {
                match s.counter(&key(*i)) {
                    Some((count, error)) => assert!(
                        count - error <= f && f <= count && error <= n / capacity as u64,
                        "seed {seed} key {i}: true {f}, count {count}, error {error}"
                    ),
                    None => {
                        assert!(
                            f * capacity as u64 <= n,
                            "seed {seed} key {i}: true {f} > N/k ({n}/{capacity}) untracked"
                        );
                        assert!(f <= min, "seed {seed} key {i}: {f} above the minimum {min}");
                    }
                }
            }
        }
    }
}
