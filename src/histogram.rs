//! Fixed-bucket duration histograms, recorded on one core without locks and
//! merged across cores when metrics are scraped.
//!
//! Owns the bucket bounds every duration metric of the node shares (request
//! latency, WAL fsync, flush, compaction), so one PromQL expression works on
//! all of them. Recording is a bucket search over a short constant table and
//! two `Cell` additions: no allocation, no atomics, no lock.
//!
//! Invariants: `counts[i]` counts durations in `(BOUNDS_US[i - 1],
//! BOUNDS_US[i]]` (the first bucket from 0, the last, `counts[BUCKETS - 1]`,
//! everything above the top bound); a snapshot's `count()` is the sum of its
//! buckets; merging adds bucket by bucket, so merged snapshots are what one
//! histogram recording every duration would hold.

use std::cell::Cell;
use std::time::Duration;

/// Upper bounds of the buckets, in microseconds: 10 µs to 60 s, about three
/// per decade (1, 2.5, 5).
pub(crate) const BOUNDS_US: [u64; 22] = [
    10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000,
    500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000, 25_000_000, 50_000_000, 60_000_000,
];

/// Buckets per histogram: one per bound, plus one above the top bound.
pub(crate) const BUCKETS: usize = BOUNDS_US.len() + 1;

/// The bucket a duration of `us` microseconds falls in.
fn bucket_of(us: u64) -> usize {
    BOUNDS_US.partition_point(|&bound| bound < us)
}

/// A histogram one core records into (not `Send`: each core has its own).
#[derive(Debug, Default)]
pub(crate) struct DurationHistogram {
    counts: [Cell<u64>; BUCKETS],
    sum_us: Cell<u64>,
}

impl DurationHistogram {
    pub(crate) fn record(&self, took: Duration) {
        self.record_us(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
    }

    pub(crate) fn record_us(&self, us: u64) {
        let c = &self.counts[bucket_of(us)];
        c.set(c.get().wrapping_add(1));
        self.sum_us.set(self.sum_us.get().wrapping_add(us));
    }

    /// What it holds now, as an owned value that can cross cores.
    pub(crate) fn snapshot(&self) -> DurationSnapshot {
        DurationSnapshot {
            counts: std::array::from_fn(|i| self.counts[i].get()),
            sum_us: self.sum_us.get(),
        }
    }
}

/// A histogram's counts at one moment (per bucket, not cumulative).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DurationSnapshot {
    pub counts: [u64; BUCKETS],
    pub sum_us: u64,
}

impl Default for DurationSnapshot {
    fn default() -> Self {
        Self {
            counts: [0; BUCKETS],
            sum_us: 0,
        }
    }
}

impl DurationSnapshot {
    /// Durations recorded.
    pub(crate) fn count(&self) -> u64 {
        self.counts.iter().fold(0u64, |a, &c| a.wrapping_add(c))
    }

    /// Adds `other`'s durations to these.
    pub(crate) fn merge(&mut self, other: &DurationSnapshot) {
        for (a, b) in self.counts.iter_mut().zip(other.counts) {
            *a = a.wrapping_add(b);
        }
        self.sum_us = self.sum_us.wrapping_add(other.sum_us);
    }

    /// `(upper bound in seconds, durations at or below it)` per bound,
    /// ascending: the cumulative buckets of the Prometheus histogram type
    /// (`+Inf` is [`count`](Self::count)).
    pub(crate) fn cumulative_seconds(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        BOUNDS_US
            .iter()
            .zip(&self.counts)
            .scan(0u64, |total, (&bound, &c)| {
                *total = total.wrapping_add(c);
                Some((bound as f64 / 1e6, *total))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_fall_in_the_bucket_whose_bound_they_do_not_exceed() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(10), 0);
        assert_eq!(bucket_of(11), 1);
        assert_eq!(bucket_of(1_000), 6);
        assert_eq!(bucket_of(60_000_000), BOUNDS_US.len() - 1);
        assert_eq!(bucket_of(60_000_001), BUCKETS - 1);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn bounds_ascend_strictly() {
        assert!(BOUNDS_US.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn snapshots_count_sum_and_accumulate() {
        let h = DurationHistogram::default();
        for us in [5, 10, 11, 900, 2_000_000, 100_000_000] {
            h.record_us(us);
        }
        h.record(Duration::from_millis(1));
        let s = h.snapshot();
        assert_eq!(s.count(), 7);
        assert_eq!(
            s.sum_us,
            5 + 10 + 11 + 900 + 2_000_000 + 100_000_000 + 1_000
        );
        let cumulative: Vec<(f64, u64)> = s.cumulative_seconds().collect();
        assert_eq!(cumulative.len(), BOUNDS_US.len());
        assert_eq!(cumulative[0], (10e-6, 2));
        assert_eq!(cumulative[1], (25e-6, 3));
        assert_eq!(cumulative[6], (1e-3, 5));
        // The 100 s duration is above every bound: only +Inf (the count)
        // holds it.
        assert_eq!(cumulative.last().map(|c| c.1), Some(6));
        assert!(cumulative.windows(2).all(|w| w[0].1 <= w[1].1));
    }

    #[test]
    fn merging_equals_recording_everything_in_one() {
        let (a, b, both) = (
            DurationHistogram::default(),
            DurationHistogram::default(),
            DurationHistogram::default(),
        );
        for (i, us) in [3u64, 70, 70, 4_000, 9_000_000, 1].into_iter().enumerate() {
            if i % 2 == 0 { &a } else { &b }.record_us(us);
            both.record_us(us);
        }
        let mut merged = a.snapshot();
        merged.merge(&b.snapshot());
        assert_eq!(merged, both.snapshot());
    }
}
