//! Contract tests of the adaptive cache: hit and miss counting, invalidation,
//! replacement, the disabled and oversize cases, the byte budget, the internal
//! consistency of map and lists, and, against a model, that a lookup never
//! returns a stale value.

use std::collections::{BTreeSet, HashMap};

use bytes::Bytes;
use proptest::prelude::*;

use super::lru::LruCache;
use super::{AdaptiveCache, CacheStats};

fn key(i: u64) -> Bytes {
    Bytes::from(format!("key-{i}"))
}

/// The miss-then-fill path the shard uses.
fn read_through(cache: &mut AdaptiveCache<u64>, i: u64, charge_bytes: u64) -> bool {
    if cache.get(&key(i)).is_some() {
        return true;
    }
    cache.insert(key(i), i, charge_bytes);
    false
}

#[test]
fn counts_hits_and_misses() {
    let mut cache = AdaptiveCache::new(10_000);
    assert_eq!(cache.get(b"a"), None);
    cache.insert(Bytes::from_static(b"a"), 1, 100);
    assert_eq!(cache.get(b"a"), Some(&1));
    assert_eq!(cache.get(b"a"), Some(&1));
    assert_eq!(cache.get(b"b"), None);
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.inserts), (2, 2, 1));
    assert_eq!((stats.evictions, stats.rejections), (0, 0));
    assert_eq!((stats.entries, stats.bytes), (1, 100));
    assert_eq!(
        (stats.capacity_bytes, stats.window_bytes_target),
        (10_000, 100)
    );
    assert_eq!((cache.len(), cache.bytes()), (1, 100));
    assert!(!cache.is_empty());
    cache.assert_consistent();
}

#[test]
fn remove_invalidates_without_counting_an_eviction() {
    let mut cache = AdaptiveCache::new(10_000);
    for i in 0..20 {
        read_through(&mut cache, i, 100);
    }
    // Hit some keys so they sit in every segment.
    for i in 0..10 {
        assert!(read_through(&mut cache, i, 100));
    }
    for i in [0, 5, 15, 19] {
        assert!(cache.contains(&key(i)));
        assert!(cache.remove(&key(i)));
        assert!(!cache.contains(&key(i)));
        assert_eq!(cache.get(&key(i)), None);
        assert!(!cache.remove(&key(i)));
        cache.assert_consistent();
    }
    assert_eq!(cache.len(), 16);
    assert_eq!(cache.bytes(), 1_600);
    assert_eq!(cache.stats().evictions, 0);
}

#[test]
fn clear_empties_every_segment_and_keeps_counters() {
    let mut cache = AdaptiveCache::new(10_000);
    for i in 0..20 {
        read_through(&mut cache, i, 100);
    }
    for i in 0..10 {
        assert!(read_through(&mut cache, i, 100));
    }
    let before = cache.stats();
    cache.clear();
    cache.assert_consistent();
    assert!(cache.is_empty());
    assert_eq!(cache.bytes(), 0);
    assert_eq!(cache.stats().hits, before.hits);
    assert_eq!(cache.get(&key(3)), None);
    // Usable again afterwards.
    read_through(&mut cache, 3, 100);
    assert!(read_through(&mut cache, 3, 100));
}

#[test]
fn replacing_updates_value_and_charge_in_every_segment() {
    let mut cache = AdaptiveCache::new(100_000);
    for i in 0..50 {
        read_through(&mut cache, i, 100);
    }
    for i in 0..25 {
        assert!(read_through(&mut cache, i, 100));
    }
    let before = cache.bytes();
    // Key 49 is in the window, key 30 in probation, key 0 in protected.
    for (n, i) in [49u64, 30, 0].into_iter().enumerate() {
        cache.insert(key(i), 1_000 + i, 300);
        assert_eq!(cache.get(&key(i)), Some(&(1_000 + i)));
        assert_eq!(cache.bytes(), before + 200 * (n as u64 + 1));
        cache.assert_consistent();
    }
    assert_eq!(cache.len(), 50);
}

#[test]
fn capacity_zero_disables_the_cache() {
    let mut cache = AdaptiveCache::new(0);
    cache.insert(key(1), 1, 10);
    assert_eq!(cache.get(&key(1)), None);
    assert_eq!(cache.get(&key(1)), None);
    assert!(!cache.contains(&key(1)));
    assert!(cache.is_empty());
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses), (0, 2));
    assert_eq!((stats.inserts, stats.rejections, stats.bytes), (0, 1, 0));
    cache.assert_consistent();
}

#[test]
fn oversize_entry_is_not_cached_and_drops_a_stale_value() {
    let mut cache = AdaptiveCache::new(8_000);
    cache.insert(key(1), 1, 1_001);
    assert!(!cache.contains(&key(1)));
    assert_eq!(cache.stats().rejections, 1);
    cache.insert(key(1), 2, 1_000);
    assert_eq!(cache.get(&key(1)), Some(&2));
    // The replacement is too large to cache, so the old value must go too.
    cache.insert(key(1), 3, 5_000);
    assert_eq!(cache.get(&key(1)), None);
    assert!(cache.is_empty());
    cache.assert_consistent();
}

#[test]
fn zero_charge_counts_as_one_byte() {
    let mut cache = AdaptiveCache::new(1_000);
    for i in 0..5_000 {
        read_through(&mut cache, i, 0);
        assert!(cache.bytes() <= 1_000);
    }
    assert!(cache.len() <= 1_000);
    cache.assert_consistent();
}

#[test]
fn frequent_keys_survive_a_scan_that_flushes_lru() {
    let mut cache = AdaptiveCache::new(100 * 100);
    let mut lru = LruCache::new(100 * 100);
    for _ in 0..5 {
        for i in 0..60 {
            read_through(&mut cache, i, 100);
            if lru.get(&key(i)).is_none() {
                lru.insert(key(i), i, 100);
            }
        }
    }
    for i in 1_000..3_000 {
        read_through(&mut cache, i, 100);
        lru.insert(key(i), i, 100);
        cache.assert_consistent();
    }
    let kept = (0..60).filter(|&i| cache.contains(&key(i))).count();
    let kept_by_lru = (0..60).filter(|&i| lru.get(&key(i)).is_some()).count();
    eprintln!("hot keys kept after the scan: adaptive {kept} of 60, LRU {kept_by_lru}");
    assert!(kept >= 55, "adaptive kept {kept} of 60 hot keys");
    assert_eq!(kept_by_lru, 0);
}

#[test]
fn lru_evicts_least_recently_used_within_budget() {
    let mut lru = LruCache::new(2_000);
    for i in 0..20 {
        lru.insert(key(i), i, 100);
    }
    assert_eq!(lru.get(&key(0)), Some(&0));
    lru.insert(key(20), 20, 100);
    assert!(lru.get(&key(1)).is_none(), "key 1 was least recently used");
    lru.insert(key(21), 21, 250);
    assert!((2..5).all(|i| lru.get(&key(i)).is_none()));
    assert_eq!((lru.len(), lru.bytes()), (18, 1_950));
    lru.insert(key(0), 100, 251);
    assert_eq!(
        lru.get(&key(0)),
        None,
        "oversize replacement drops the old value"
    );
    assert!(lru.remove(&key(21)));
    assert_eq!(lru.bytes(), 1_600);
}

#[derive(Debug, Clone)]
enum Op {
    Get(u64),
    Insert(u64, u64),
    Remove(u64),
}

/// Replays `ops`, checking after every call that the budget and internal
/// consistency hold and that every returned value is the last one inserted
/// for its key since it was last removed. Returns the final statistics and
/// every window target seen.
fn check_against_model(capacity_bytes: u64, ops: &[Op]) -> (CacheStats, BTreeSet<u64>) {
    let mut cache = AdaptiveCache::new(capacity_bytes);
    let mut latest: HashMap<u64, u64> = HashMap::new();
    let mut window_targets = BTreeSet::new();
    for (version, op) in (0u64..).zip(ops) {
        match *op {
            Op::Get(k) => {
                if let Some(&value) = cache.get(&key(k)) {
                    assert_eq!(
                        latest.get(&k),
                        Some(&value),
                        "key {k} returned a stale value"
                    );
                }
            }
            Op::Insert(k, charge_bytes) => {
                cache.insert(key(k), version, charge_bytes);
                latest.insert(k, version);
            }
            Op::Remove(k) => {
                let was_cached = cache.remove(&key(k));
                assert!(latest.remove(&k).is_some() || !was_cached);
            }
        }
        let (Op::Get(k) | Op::Insert(k, _) | Op::Remove(k)) = *op;
        assert!(!cache.contains(&key(k)) || latest.contains_key(&k));
        assert!(cache.bytes() <= capacity_bytes);
        cache.assert_consistent();
        window_targets.insert(cache.stats().window_bytes_target);
    }
    for (k, value) in &latest {
        if let Some(cached) = cache.get(&key(*k)) {
            assert_eq!(cached, value);
        }
    }
    (cache.stats(), window_targets)
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0u64..40).prop_map(Op::Get),
        4 => ((0u64..40), (0u64..400)).prop_map(|(k, c)| Op::Insert(k, c)),
        1 => (0u64..40).prop_map(Op::Remove),
    ]
}

proptest! {
    #[test]
    fn never_returns_stale_values_and_stays_in_budget(
        capacity_bytes in prop_oneof![Just(0u64), 1u64..6_000],
        ops in prop::collection::vec(op_strategy(), 1..600),
    ) {
        check_against_model(capacity_bytes, &ops);
    }
}

/// Long enough for many hill-climber periods and sketch agings.
#[test]
fn long_random_run_against_model() {
    let mut rng = fastrand::Rng::with_seed(0x0dd5_eed5);
    let ops: Vec<Op> = (0..60_000)
        .map(|_| {
            // Skewed keys: small ids are far more likely.
            let key_range = rng.u64(..300) + 1;
            let k = rng.u64(..key_range);
            match rng.u64(..10) {
                0..=5 => Op::Get(k),
                6..=8 => Op::Insert(k, 20 + rng.u64(..300)),
                _ => Op::Remove(k),
            }
        })
        .collect();
    let (stats, window_targets) = check_against_model(20_000, &ops);
    assert!(stats.hits > 0 && stats.evictions > 0 && stats.rejections > 0);
    assert!(
        window_targets.len() > 1,
        "the hill climber moved the window"
    );
}
