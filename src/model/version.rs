//! Versions of one key and the reconciliation rules of the wire contract.
//!
//! Owns [`Version`] (clock, timestamp, value or tombstone) and [`VersionSet`]
//! (the siblings stored for a key). Invariants of a `VersionSet` after every
//! operation: no stored version descends another (all are pairwise
//! concurrent), so there are no duplicates and no dominated versions; applying
//! a version that some stored version descends changes nothing.

use super::clock::{Causality, VectorClock};
use bytes::Bytes;
use std::cmp::Ordering;

/// One version of a key: a value, or a tombstone when `value` is `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub clock: VectorClock,
    /// Wall-clock Unix milliseconds when the node accepted it; display and
    /// tie-break only, never used for causality.
    pub timestamp_ms: i64,
    pub value: Option<Bytes>,
}

impl Version {
    pub fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }

    /// Approximate heap bytes, for memtable accounting.
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.clock.heap_bytes()
            + self.value.as_ref().map_or(0, |v| v.len())
    }

    /// Deterministic order for choosing which sibling a plain read answers:
    /// later timestamp wins, then the larger value, then the larger clock
    /// entries, so every replica picks the same sibling from the same set.
    fn display_order(&self, other: &Version) -> Ordering {
        self.timestamp_ms
            .cmp(&other.timestamp_ms)
            .then_with(|| self.value.cmp(&other.value))
            .then_with(|| self.clock.entries().cmp(other.clock.entries()))
    }
}

/// What applying a version did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// The version was stored (possibly replacing dominated versions).
    Stored { replaced: usize },
    /// A stored version already descends it: nothing changed.
    Stale,
}

/// The siblings of one key. See the module invariants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionSet {
    versions: Vec<Version>,
}

impl VersionSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a set by applying each version in turn (used on replay and merge).
    pub fn from_versions<I: IntoIterator<Item = Version>>(versions: I) -> Self {
        let mut set = Self::new();
        for v in versions {
            set.apply(v);
        }
        set
    }

    /// Takes versions that already form a reconciled set (read back from
    /// one table, or from the cache) without comparing them again: `O(n)`
    /// instead of the `O(n^2)` of [`VersionSet::from_versions`]. Debug
    /// builds check the invariant.
    pub fn from_reconciled(versions: Vec<Version>) -> Self {
        debug_assert!(
            versions.iter().enumerate().all(|(i, a)| versions
                .iter()
                .skip(i + 1)
                .all(|b| a.clock.compare(&b.clock) == Causality::Concurrent)),
            "versions given as reconciled hold a dominated or repeated clock"
        );
        Self { versions }
    }

    /// Merges sets that are each already reconciled (one per table holding
    /// the key), equal to [`VersionSet::from_versions`] over their
    /// concatenation (for equal clocks, the earlier set's version is kept)
    /// but comparing only versions of different sets, each pair once.
    pub fn merge_reconciled(mut sets: Vec<Vec<Version>>) -> Self {
        if sets.len() > 1 {
            sets.retain(|s| !s.is_empty());
        }
        if sets.len() <= 1 {
            return Self::from_reconciled(sets.pop().unwrap_or_default());
        }
        let mut dropped: Vec<Vec<bool>> = sets.iter().map(|s| vec![false; s.len()]).collect();
        // Each set against every later one, each pair of versions once.
        let (mut sets_rest, mut dropped_rest) = (sets.as_slice(), dropped.as_mut_slice());
        while let (Some((a_set, later_sets)), Some((a_gone, later_gone))) =
            (sets_rest.split_first(), dropped_rest.split_first_mut())
        {
            for (b_set, b_gone) in later_sets.iter().zip(later_gone.iter_mut()) {
                for (a, a_dropped) in a_set.iter().zip(a_gone.iter_mut()) {
                    for (b, b_dropped) in b_set.iter().zip(b_gone.iter_mut()) {
                        match a.clock.compare(&b.clock) {
                            Causality::Equal | Causality::After => *b_dropped = true,
                            Causality::Before => *a_dropped = true,
                            Causality::Concurrent => {}
                        }
                    }
                }
            }
            (sets_rest, dropped_rest) = (later_sets, later_gone);
        }
        let versions = sets
            .into_iter()
            .zip(dropped)
            .flat_map(|(set, gone)| {
                set.into_iter()
                    .zip(gone)
                    .filter_map(|(v, gone)| (!gone).then_some(v))
            })
            .collect();
        Self { versions }
    }

    pub fn versions(&self) -> &[Version] {
        &self.versions
    }

    pub fn into_versions(self) -> Vec<Version> {
        self.versions
    }

    pub fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }

    pub fn len(&self) -> usize {
        self.versions.len()
    }

    /// Applies `incoming` by clock dominance: a stale or repeated version
    /// changes nothing; otherwise every stored version it descends is replaced
    /// and concurrent ones stay beside it as siblings.
    pub fn apply(&mut self, incoming: Version) -> ApplyOutcome {
        if self
            .versions
            .iter()
            .any(|v| v.clock.descends(&incoming.clock))
        {
            return ApplyOutcome::Stale;
        }
        let before = self.versions.len();
        self.versions
            .retain(|v| incoming.clock.compare(&v.clock) != Causality::After);
        let replaced = before - self.versions.len();
        self.versions.push(incoming);
        ApplyOutcome::Stored { replaced }
    }

    /// Merge (entry-wise max) of every stored clock, tombstones included.
    pub fn merged_clock(&self) -> VectorClock {
        VectorClock::merge_all(self.versions.iter().map(|v| &v.clock))
    }

    /// The clock a blind write (or delete) gets on this node: it descends
    /// every stored version, so applying it overwrites them all.
    /// `None` when this node's counter is already at the largest value the
    /// formats carry (`i64::MAX`): no clock can then descend the stored ones.
    pub fn blind_clock(&self, node_id: &str) -> Option<VectorClock> {
        let mut clock = self.merged_clock();
        clock.try_increment(node_id).then_some(clock)
    }

    /// The sibling a plain read answers: the latest live (non-tombstone)
    /// version, ties broken deterministically. `None` when only tombstones
    /// (or nothing) are stored.
    pub fn visible(&self) -> Option<&Version> {
        self.versions
            .iter()
            .filter(|v| !v.is_tombstone())
            .max_by(|a, b| a.display_order(b))
    }

    /// Approximate heap bytes, for memtable accounting.
    pub fn heap_bytes(&self) -> usize {
        self.versions.iter().map(Version::heap_bytes).sum()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    fn vc(pairs: &[(&str, i64)]) -> VectorClock {
        VectorClock::from_entries(pairs.iter().map(|(n, c)| (n.to_string(), *c)), 64).unwrap()
    }

    /// A version with clock `pairs`, timestamp `ts` and `value` (`None`: a
    /// tombstone).
    pub(crate) fn ver(pairs: &[(&str, i64)], ts: i64, value: Option<&'static str>) -> Version {
        Version {
            clock: vc(pairs),
            timestamp_ms: ts,
            value: value.map(|s| Bytes::from_static(s.as_bytes())),
        }
    }

    #[test]
    fn newer_version_replaces_older() {
        let mut set = VersionSet::new();
        assert_eq!(
            set.apply(ver(&[("a", 1)], 1, Some("x"))),
            ApplyOutcome::Stored { replaced: 0 }
        );
        assert_eq!(
            set.apply(ver(&[("a", 2)], 2, Some("y"))),
            ApplyOutcome::Stored { replaced: 1 }
        );
        assert_eq!(set.len(), 1);
        assert_eq!(set.visible().unwrap().value.as_deref(), Some(&b"y"[..]));
    }

    #[test]
    fn stale_and_repeated_writes_change_nothing() {
        let mut set = VersionSet::new();
        set.apply(ver(&[("a", 2)], 1, Some("x")));
        assert_eq!(
            set.apply(ver(&[("a", 1)], 5, Some("old"))),
            ApplyOutcome::Stale
        );
        assert_eq!(
            set.apply(ver(&[("a", 2)], 5, Some("again"))),
            ApplyOutcome::Stale
        );
        assert_eq!(set.len(), 1);
        assert_eq!(set.visible().unwrap().value.as_deref(), Some(&b"x"[..]));
    }

    #[test]
    fn concurrent_versions_become_siblings_and_merge_resolves_them() {
        let mut set = VersionSet::new();
        set.apply(ver(&[("a", 1)], 1, Some("x")));
        set.apply(ver(&[("b", 1)], 2, Some("y")));
        assert_eq!(set.len(), 2);
        assert_eq!(set.merged_clock(), vc(&[("a", 1), ("b", 1)]));
        assert_eq!(set.visible().unwrap().value.as_deref(), Some(&b"y"[..]));
        // A write carrying the merged clock plus its own tick resolves both.
        set.apply(ver(&[("a", 2), ("b", 1)], 3, Some("z")));
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn blind_clock_dominates_everything() {
        let mut set = VersionSet::new();
        set.apply(ver(&[("a", 1)], 1, Some("x")));
        set.apply(ver(&[("b", 3)], 1, Some("y")));
        let clock = set.blind_clock("node").unwrap();
        for v in set.versions() {
            assert_eq!(clock.compare(&v.clock), Causality::After);
        }
        set.apply(Version {
            clock,
            timestamp_ms: 2,
            value: None,
        });
        assert_eq!(set.len(), 1);
        assert!(set.visible().is_none());
    }

    #[test]
    fn visible_ignores_tombstones_and_breaks_ties_deterministically() {
        let mut set = VersionSet::new();
        set.apply(ver(&[("a", 1)], 9, None));
        set.apply(ver(&[("b", 1)], 5, Some("p")));
        set.apply(ver(&[("c", 1)], 5, Some("q")));
        assert_eq!(set.visible().unwrap().value.as_deref(), Some(&b"q"[..]));
        let mut other = VersionSet::new();
        for v in set.versions().iter().rev() {
            other.apply(v.clone());
        }
        assert_eq!(other.visible(), set.visible());
    }

    fn arb_version() -> impl Strategy<Value = Version> {
        arb_version_with_timestamps(0..4)
    }

    /// Small versions (clocks over nodes a-c, values x/y or a tombstone)
    /// with timestamps from `timestamps_ms`; shared with other modules'
    /// property tests.
    pub(crate) fn arb_version_with_timestamps(
        timestamps_ms: std::ops::Range<i64>,
    ) -> impl Strategy<Value = Version> {
        (
            proptest::collection::btree_map("[a-c]", 0i64..4, 0..3),
            timestamps_ms,
            proptest::option::of("[xy]"),
        )
            .prop_map(|(m, ts, v)| Version {
                clock: VectorClock::from_entries(m, 64).unwrap(),
                timestamp_ms: ts,
                value: v.map(Bytes::from),
            })
    }

    proptest! {
        /// After any sequence of applies, stored versions are pairwise
        /// concurrent, and every applied version is either stored or
        /// descended by a stored one (nothing is lost that is not dominated).
        #[test]
        fn apply_keeps_only_undominated_versions(ops in proptest::collection::vec(arb_version(), 0..12)) {
            let mut set = VersionSet::new();
            for v in &ops {
                set.apply(v.clone());
            }
            let stored = set.versions();
            for (i, a) in stored.iter().enumerate() {
                for (j, b) in stored.iter().enumerate() {
                    if i != j {
                        prop_assert_eq!(a.clock.compare(&b.clock), Causality::Concurrent);
                    }
                }
            }
            for v in &ops {
                prop_assert!(stored.iter().any(|s| s.clock.descends(&v.clock)));
            }
        }

        /// Merging reconciled sets equals rebuilding from all their versions.
        #[test]
        fn merge_reconciled_equals_from_versions(
            sets in proptest::collection::vec(proptest::collection::vec(arb_version(), 0..6), 0..4)
        ) {
            let reconciled: Vec<Vec<Version>> = sets
                .into_iter()
                .map(|s| VersionSet::from_versions(s).into_versions())
                .collect();
            let all: Vec<Version> = reconciled.iter().flatten().cloned().collect();
            prop_assert_eq!(
                VersionSet::merge_reconciled(reconciled),
                VersionSet::from_versions(all)
            );
        }

        /// The order writes arrive in does not change the set of clocks kept.
        #[test]
        fn final_clocks_do_not_depend_on_order(ops in proptest::collection::vec(arb_version(), 0..8)) {
            let forward = VersionSet::from_versions(ops.iter().cloned());
            let backward = VersionSet::from_versions(ops.iter().rev().cloned());
            let mut f: Vec<_> = forward.versions().iter().map(|v| v.clock.clone()).collect();
            let mut b: Vec<_> = backward.versions().iter().map(|v| v.clock.clone()).collect();
            f.sort_by(|x, y| x.entries().cmp(y.entries()));
            b.sort_by(|x, y| x.entries().cmp(y.entries()));
            prop_assert_eq!(f, b);
            prop_assert_eq!(forward.merged_clock(), backward.merged_clock());
        }
    }
}
