//! Token ranges of the ring, as coordinators send them when ranges move.
//!
//! Owns [`TokenRange`] and [`TokenRanges`]: a range is `(start, end]` on the
//! 64-bit ring, wrapping past `u64::MAX` when `start >= end`; `start == end`
//! is the whole ring (the coordinator's convention for a single vnode).
//! Invariant: membership is a pure function of the two bounds, so every node
//! and every shard agrees on which tokens a range holds.

/// `(start, end]`, wrapping when `start >= end`; `start == end`: every token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenRange {
    pub start: u64,
    pub end: u64,
}

impl TokenRange {
    pub fn new(start: u64, end: u64) -> Self {
        Self { start, end }
    }

    /// True when `token` lies in the range.
    pub fn contains(&self, token: u64) -> bool {
        if self.start < self.end {
            self.start < token && token <= self.end
        } else if self.start > self.end {
            token > self.start || token <= self.end
        } else {
            true
        }
    }

    /// True when the range holds some token of `[lo, hi]` (a shard's slice).
    pub fn overlaps(&self, lo: u64, hi: u64) -> bool {
        if lo > hi {
            return false;
        }
        if self.start == self.end {
            return true;
        }
        let overlaps_plain = |s: u64, e: u64| s < hi && e >= lo && s < e;
        if self.start < self.end {
            overlaps_plain(self.start, self.end)
        } else {
            // (start, MAX] and [0, end].
            (self.start < u64::MAX && overlaps_plain(self.start, u64::MAX)) || self.end >= lo
        }
    }
}

impl std::fmt::Display for TokenRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "({:#018x}, {:#018x}]", self.start, self.end)
    }
}

/// A set of token ranges (in any order, possibly overlapping).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenRanges {
    ranges: Vec<TokenRange>,
}

impl TokenRanges {
    pub fn new(mut ranges: Vec<TokenRange>) -> Self {
        ranges.sort_unstable();
        ranges.dedup();
        Self { ranges }
    }

    pub fn ranges(&self) -> &[TokenRange] {
        &self.ranges
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// True when some range holds `token`.
    pub fn contains(&self, token: u64) -> bool {
        self.ranges.iter().any(|r| r.contains(token))
    }

    /// True when some range holds a token of `[lo, hi]`.
    pub fn overlaps(&self, lo: u64, hi: u64) -> bool {
        self.ranges.iter().any(|r| r.overlaps(lo, hi))
    }
}

/// The tokens shard `shard` of `shards` owns, `[lo, hi]` (see
/// [`super::owner_shard`]).
pub fn shard_token_span(shard: usize, shards: usize) -> (u64, u64) {
    let n = shards.max(1) as u128;
    let s = shard as u128;
    // Smallest t with (t * n) >> 64 == s is ceil(s * 2^64 / n).
    let lo = ((s << 64).div_ceil(n)).min(u64::MAX as u128) as u64;
    let hi = (((s + 1) << 64).div_ceil(n))
        .saturating_sub(1)
        .min(u64::MAX as u128) as u64;
    (lo, hi)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::owner_shard;
    use proptest::prelude::*;

    #[test]
    fn plain_range_is_open_below_closed_above() {
        let r = TokenRange::new(10, 20);
        assert!(!r.contains(10));
        assert!(r.contains(11));
        assert!(r.contains(20));
        assert!(!r.contains(21));
    }

    #[test]
    fn wrapping_range_holds_both_ends_of_the_ring() {
        let r = TokenRange::new(u64::MAX - 5, 3);
        assert!(r.contains(u64::MAX));
        assert!(r.contains(0));
        assert!(r.contains(3));
        assert!(!r.contains(4));
        assert!(!r.contains(u64::MAX - 5));
    }

    #[test]
    fn equal_bounds_are_the_whole_ring() {
        let r = TokenRange::new(7, 7);
        assert!(r.contains(7));
        assert!(r.contains(0));
        assert!(r.contains(u64::MAX));
    }

    #[test]
    fn shard_spans_tile_the_ring() {
        for n in 1..9 {
            let mut next = 0u64;
            for s in 0..n {
                let (lo, hi) = shard_token_span(s, n);
                assert_eq!(lo, next, "shard {s} of {n}");
                assert_eq!(owner_shard(lo, n), s);
                assert_eq!(owner_shard(hi, n), s);
                next = hi.wrapping_add(1);
            }
            assert_eq!(next, 0, "the last shard ends at u64::MAX");
        }
    }

    proptest! {
        #[test]
        fn overlap_agrees_with_membership(start: u64, end: u64, a: u64, b: u64, t: u64) {
            let r = TokenRange::new(start, end);
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            let inside = lo.saturating_add(t % (hi - lo).saturating_add(1).max(1));
            if r.contains(inside) && inside <= hi {
                prop_assert!(r.overlaps(lo, hi));
            }
            // Every member of a range overlaps a one-token span of itself.
            prop_assert_eq!(r.contains(t), r.overlaps(t, t));
        }

        #[test]
        fn wrapping_range_is_the_complement_of_its_reverse(start: u64, end: u64, t: u64) {
            prop_assume!(start != end);
            let r = TokenRange::new(start, end);
            let rev = TokenRange::new(end, start);
            prop_assert_ne!(r.contains(t), rev.contains(t));
        }
    }
}
