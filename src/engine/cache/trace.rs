//! Trace-driven tests: the adaptive cache against plain LRU on skewed,
//! scan-polluted and variable-size workloads, and the hill climber's response
//! to recency-heavy and frequency-heavy traces.
//!
//! Owns the deterministic workload generators (seeded `fastrand`, a Zipf
//! sampler over a precomputed CDF) and the fill-on-miss replayer. Every trace
//! is seeded, so the reported hit ratios are the same on every run. Both
//! caches see the same trace and byte budget; the replayer checks the budget
//! after every call.

use std::time::Instant;

use bytes::Bytes;

use super::lru::LruCache;
use super::AdaptiveCache;

/// Zipf(s) over ranks `0..n` (rank 0 most popular), sampled by binary search
/// of the cumulative distribution.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Self {
        let mut total = 0.0;
        let mut cdf: Vec<f64> = (1..=n)
            .map(|rank| {
                total += (rank as f64).powf(-s);
                total
            })
            .collect();
        for c in &mut cdf {
            *c /= total;
        }
        Self { cdf }
    }

    fn sample(&self, rng: &mut fastrand::Rng) -> u64 {
        let u = rng.f64();
        let rank = self.cdf.partition_point(|&c| c <= u);
        rank.min(self.cdf.len() - 1) as u64
    }
}

/// Maps a rank to a key id; an odd multiplier is a bijection on `u64`, so
/// ids stay unique while hot ranks spread over the key (and hash) space.
fn scramble(rank: u64) -> u64 {
    rank.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

const KEY_LEN_BYTES: u64 = 8;
const FIXED_CHARGE_BYTES: u64 = 1024 + KEY_LEN_BYTES;
const ZIPF_KEYS: usize = 100_000;
const ZIPF_SKEW: f64 = 0.99;

/// Between 100 B and 16 KiB, fixed per key and independent of popularity.
fn variable_charge_bytes(id: u64) -> u64 {
    100 + fastrand::Rng::with_seed(id).u64(..16 * 1024 - 100 + 1)
}

/// The calls the replayer needs, for both caches.
trait Policy {
    fn lookup(&mut self, key: &[u8]) -> bool;
    fn fill(&mut self, key: &[u8], charge_bytes: u64);
    fn bytes(&self) -> u64;
}

impl Policy for AdaptiveCache<u64> {
    fn lookup(&mut self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }
    fn fill(&mut self, key: &[u8], charge_bytes: u64) {
        self.insert(Bytes::copy_from_slice(key), 0, charge_bytes);
    }
    fn bytes(&self) -> u64 {
        AdaptiveCache::bytes(self)
    }
}

impl Policy for LruCache<u64> {
    fn lookup(&mut self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }
    fn fill(&mut self, key: &[u8], charge_bytes: u64) {
        self.insert(Bytes::copy_from_slice(key), 0, charge_bytes);
    }
    fn bytes(&self) -> u64 {
        LruCache::bytes(self)
    }
}

#[derive(Clone, Copy)]
struct Access {
    id: u64,
    /// Part of a sequential scan rather than the skewed workload.
    scan: bool,
}

#[derive(Default, Clone, Copy)]
struct HitRatio {
    hits: u64,
    lookups: u64,
}

impl HitRatio {
    fn record(&mut self, hit: bool) {
        self.hits += u64::from(hit);
        self.lookups += 1;
    }

    fn value(self) -> f64 {
        self.hits as f64 / self.lookups.max(1) as f64
    }
}

/// Hit ratios over the measured part of a replay.
struct Measured {
    overall: HitRatio,
    skewed: HitRatio,
}

/// Replays `trace` with fill on miss; accesses before `warmup` are not
/// measured. Checks the byte budget after every call.
fn replay(
    cache: &mut impl Policy,
    capacity_bytes: u64,
    trace: &[Access],
    warmup: usize,
    charge_bytes: impl Fn(u64) -> u64,
) -> Measured {
    let mut measured = Measured {
        overall: HitRatio::default(),
        skewed: HitRatio::default(),
    };
    for (i, access) in trace.iter().enumerate() {
        let key = access.id.to_be_bytes();
        let hit = cache.lookup(&key);
        if !hit {
            cache.fill(&key, charge_bytes(access.id));
            assert!(cache.bytes() <= capacity_bytes, "over budget at access {i}");
        }
        if i >= warmup {
            measured.overall.record(hit);
            if !access.scan {
                measured.skewed.record(hit);
            }
        }
    }
    measured
}

fn zipf_trace(seed: u64, len: usize) -> Vec<Access> {
    let zipf = Zipf::new(ZIPF_KEYS, ZIPF_SKEW);
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..len)
        .map(|_| Access {
            id: scramble(zipf.sample(&mut rng)),
            scan: false,
        })
        .collect()
}

/// Runs `trace` through both caches at `capacity_bytes`, prints the hit
/// ratios and returns `(adaptive, lru)`.
fn compare(
    name: &str,
    capacity_bytes: u64,
    trace: &[Access],
    warmup: usize,
    charge_bytes: impl Fn(u64) -> u64 + Copy,
) -> (Measured, Measured) {
    let started = Instant::now();
    let mut adaptive = AdaptiveCache::new(capacity_bytes);
    let adaptive_ratios = replay(&mut adaptive, capacity_bytes, trace, warmup, charge_bytes);
    let mut lru = LruCache::new(capacity_bytes);
    let lru_ratios = replay(&mut lru, capacity_bytes, trace, warmup, charge_bytes);
    adaptive.assert_consistent();
    eprintln!(
        "{name}: adaptive {:.4} (skewed {:.4}) vs LRU {:.4} (skewed {:.4}); \
         window target {} of {} bytes; {} accesses x2 in {:?}",
        adaptive_ratios.overall.value(),
        adaptive_ratios.skewed.value(),
        lru_ratios.overall.value(),
        lru_ratios.skewed.value(),
        adaptive.stats().window_bytes_target,
        capacity_bytes,
        trace.len(),
        started.elapsed(),
    );
    (adaptive_ratios, lru_ratios)
}

const WARMUP_ACCESSES: usize = 200_000;
const MEASURED_ACCESSES: usize = 1_000_000;

#[test]
fn zipf_trace_beats_lru() {
    let trace = zipf_trace(0x5eed_0001, WARMUP_ACCESSES + MEASURED_ACCESSES);
    let capacity_bytes = ZIPF_KEYS as u64 * FIXED_CHARGE_BYTES / 10;
    let (adaptive, lru) = compare(
        "zipf(0.99)",
        capacity_bytes,
        &trace,
        WARMUP_ACCESSES,
        |_| FIXED_CHARGE_BYTES,
    );
    assert!(adaptive.overall.value() > lru.overall.value());
}

#[test]
fn scan_polluted_zipf_trace_beats_lru() {
    const SKEWED_PER_SCAN: usize = 10_000;
    const SCAN_LEN: u64 = 20_000;
    const SKEWED_WARMUP: usize = 100_000;
    const SKEWED_MEASURED: usize = 400_000;
    let skewed = zipf_trace(0x5eed_0002, SKEWED_WARMUP + SKEWED_MEASURED);
    let mut trace = Vec::new();
    let mut warmup = 0;
    let mut next_scan_rank = ZIPF_KEYS as u64;
    for (i, access) in skewed.into_iter().enumerate() {
        if i == SKEWED_WARMUP {
            warmup = trace.len();
        }
        if i > 0 && i % SKEWED_PER_SCAN == 0 {
            // Ranks past the Zipf key space scramble to never-seen ids.
            trace.extend(
                (next_scan_rank..next_scan_rank + SCAN_LEN).map(|rank| Access {
                    id: scramble(rank),
                    scan: true,
                }),
            );
            next_scan_rank += SCAN_LEN;
        }
        trace.push(access);
    }
    let capacity_bytes = ZIPF_KEYS as u64 * FIXED_CHARGE_BYTES / 10;
    let (adaptive, lru) = compare(
        "scan-polluted zipf(0.99)",
        capacity_bytes,
        &trace,
        warmup,
        |_| FIXED_CHARGE_BYTES,
    );
    assert!(adaptive.skewed.value() > lru.skewed.value());
    assert!(adaptive.overall.value() > lru.overall.value());
}

#[test]
fn variable_size_zipf_trace_beats_lru() {
    let trace = zipf_trace(0x5eed_0003, WARMUP_ACCESSES + MEASURED_ACCESSES);
    let data_set_bytes: u64 = (0..ZIPF_KEYS as u64)
        .map(|rank| variable_charge_bytes(scramble(rank)))
        .sum();
    let capacity_bytes = data_set_bytes / 10;
    let (adaptive, lru) = compare(
        "variable-size zipf(0.99)",
        capacity_bytes,
        &trace,
        WARMUP_ACCESSES,
        variable_charge_bytes,
    );
    assert!(adaptive.overall.value() > lru.overall.value());
}

/// Replays `trace` with fixed charges; returns the window target after every
/// `every` accesses, and the hit ratio.
fn window_targets(cache: &mut AdaptiveCache<u64>, trace: &[u64], every: usize) -> (Vec<u64>, f64) {
    let mut targets = Vec::new();
    let mut ratio = HitRatio::default();
    for (i, &id) in trace.iter().enumerate() {
        let key = id.to_be_bytes();
        let hit = cache.get(&key).is_some();
        if !hit {
            cache.insert(Bytes::copy_from_slice(&key), id, FIXED_CHARGE_BYTES);
        }
        ratio.record(hit);
        if (i + 1) % every == 0 {
            targets.push(cache.stats().window_bytes_target);
        }
    }
    (targets, ratio.value())
}

fn percent_of(bytes: &[u64], capacity_bytes: u64) -> Vec<u64> {
    bytes.iter().map(|&b| b * 100 / capacity_bytes).collect()
}

const CLIMB_CACHE_ENTRIES: u64 = 2_000;
const CLIMB_CHECKPOINTS: usize = 40;

#[test]
fn hill_climber_grows_the_window_for_a_recency_heavy_trace() {
    // Uniform accesses to a working set of 75% of the cache that slides by
    // one key every ten accesses: each key is hot for about ten accesses and
    // then never seen again, so stale keys out-frequency the new ones and
    // only recency (a large window) keeps the new ones cached.
    const WORKING_SET: u64 = 1_500;
    const ACCESSES_PER_SLIDE: u64 = 10;
    let mut rng = fastrand::Rng::with_seed(0x5eed_0005);
    let trace: Vec<u64> = (0..600_000u64)
        .map(|t| scramble(t / ACCESSES_PER_SLIDE + rng.u64(..WORKING_SET)))
        .collect();
    let capacity_bytes = CLIMB_CACHE_ENTRIES * FIXED_CHARGE_BYTES;
    let every = trace.len() / CLIMB_CHECKPOINTS;

    let mut cache = AdaptiveCache::new(capacity_bytes);
    let initial = cache.stats().window_bytes_target;
    let (targets, adaptive) = window_targets(&mut cache, &trace, every);
    let (_, fixed) = window_targets(
        &mut AdaptiveCache::with_fixed_window(capacity_bytes),
        &trace,
        every,
    );
    let accesses: Vec<Access> = trace.iter().map(|&id| Access { id, scan: false }).collect();
    let lru = replay(
        &mut LruCache::new(capacity_bytes),
        capacity_bytes,
        &accesses,
        0,
        |_| FIXED_CHARGE_BYTES,
    );
    eprintln!(
        "recency trace: adaptive {adaptive:.4}, fixed 1% window {fixed:.4}, LRU {:.4}; \
         window % of capacity: {:?}",
        lru.overall.value(),
        percent_of(&targets, capacity_bytes),
    );
    let last_half = &targets[targets.len() / 2..];
    assert!(
        last_half.iter().all(|&t| t >= capacity_bytes / 2),
        "initial {initial}, then {targets:?}"
    );
    assert!(adaptive > fixed + 0.2, "adapting the window pays off");
}

#[test]
fn hill_climber_keeps_the_window_small_for_a_frequency_heavy_trace() {
    let trace: Vec<u64> = zipf_trace(0x5eed_0004, 1_200_000)
        .into_iter()
        .map(|access| access.id)
        .collect();
    let capacity_bytes = CLIMB_CACHE_ENTRIES * FIXED_CHARGE_BYTES;
    let every = trace.len() / CLIMB_CHECKPOINTS;

    let mut cache = AdaptiveCache::new(capacity_bytes);
    let initial = cache.stats().window_bytes_target;
    let (targets, adaptive) = window_targets(&mut cache, &trace, every);
    let (_, fixed) = window_targets(
        &mut AdaptiveCache::with_fixed_window(capacity_bytes),
        &trace,
        every,
    );
    eprintln!(
        "frequency trace: adaptive {adaptive:.4}, fixed 1% window {fixed:.4}; \
         window % of capacity: {:?}",
        percent_of(&targets, capacity_bytes),
    );
    // The first sample shrinks the window; afterwards the hit ratio is nearly
    // flat across small windows, so the climber wanders among them, but on
    // average it stays small and costs little.
    assert!(targets[0] <= initial, "{targets:?}");
    let mean = targets.iter().sum::<u64>() / targets.len() as u64;
    assert!(
        mean <= capacity_bytes / 8,
        "mean window {mean} bytes: {targets:?}"
    );
    assert!(
        adaptive > fixed - 0.01,
        "adaptive {adaptive}, fixed {fixed}"
    );
}
