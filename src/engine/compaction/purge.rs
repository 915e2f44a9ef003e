//! Per-key reconciliation during a compaction merge: what survives of one key
//! when tables are merged, and when a deleted key may disappear entirely.
//!
//! Owns two rules:
//! - Reconciliation: the versions of a key found across a merge's inputs
//!   collapse to the pairwise-concurrent set the model's [`VersionSet`]
//!   defines (dominated versions dropped, concurrent siblings kept, repeated
//!   versions kept once). The result does not depend on the order the
//!   versions arrive in, and the kept versions come out in a canonical order.
//! - Purging: a key whose surviving versions are all tombstones past the grace
//!   period is dropped, but only where no older version of it can exist below
//!   the output (`bottommost_for_key`); otherwise dropping the tombstone would
//!   let that older version reappear.

use crate::model::{Version, VersionSet};
use std::cmp::Ordering;

/// When a merge may drop a key's tombstones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PurgeRule {
    /// Current wall-clock time, Unix milliseconds.
    pub now_unix_ms: i64,
    /// How long a tombstone is kept after it was written, milliseconds.
    pub tombstone_grace_ms: i64,
    /// True when no table below the output level may hold the key (see
    /// `picker::key_may_exist_below`) and no newer data outside this merge is
    /// relevant to it.
    pub bottommost_for_key: bool,
}

/// What a merge writes for one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MergeOutcome {
    /// Write these versions: non-empty, pairwise concurrent, in canonical order
    /// (clock entries ascending).
    Keep(Vec<Version>),
    /// Write nothing for the key.
    Purge,
}

/// Canonical order of versions: clock entries ascending; for equal clocks the
/// later timestamp first, then the larger value first (a tombstone last).
/// Applying versions in this order makes a repeated clock keep the same copy
/// whatever order the versions arrived in.
fn canonical_order(a: &Version, b: &Version) -> Ordering {
    a.clock
        .entries()
        .cmp(b.clock.entries())
        .then_with(|| b.timestamp_ms.cmp(&a.timestamp_ms))
        .then_with(|| b.value.cmp(&a.value))
}

/// True when `version` was written more than the grace period ago
/// (`timestamp_ms + tombstone_grace_ms < now_unix_ms`, saturating).
fn past_grace(version: &Version, rule: &PurgeRule) -> bool {
    version.timestamp_ms.saturating_add(rule.tombstone_grace_ms) < rule.now_unix_ms
}

/// Reconciles every version of one key found in a merge's inputs (any order;
/// duplicates possible) into the surviving set: dominated versions dropped,
/// concurrent siblings kept. If the surviving set consists only of tombstones,
/// every one past the grace period (`timestamp_ms + grace < now`), and
/// `bottommost_for_key`, the key is purged. No input at all is also `Purge`.
pub(crate) fn merge_key(
    versions: impl IntoIterator<Item = Version>,
    rule: &PurgeRule,
) -> MergeOutcome {
    let mut incoming: Vec<Version> = versions.into_iter().collect();
    incoming.sort_by(canonical_order);
    let mut kept = VersionSet::from_versions(incoming).into_versions();
    if kept.is_empty() {
        return MergeOutcome::Purge;
    }
    let purge =
        rule.bottommost_for_key && kept.iter().all(|v| v.is_tombstone() && past_grace(v, rule));
    if purge {
        return MergeOutcome::Purge;
    }
    kept.sort_by(canonical_order);
    MergeOutcome::Keep(kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Causality;
    use proptest::prelude::*;

    const GRACE_MS: i64 = 1000;

    use crate::model::version::tests::ver;

    fn rule(now_unix_ms: i64, bottommost_for_key: bool) -> PurgeRule {
        PurgeRule {
            now_unix_ms,
            tombstone_grace_ms: GRACE_MS,
            bottommost_for_key,
        }
    }

    fn kept(outcome: MergeOutcome) -> Vec<Version> {
        match outcome {
            MergeOutcome::Keep(v) => v,
            MergeOutcome::Purge => panic!("expected Keep, got Purge"),
        }
    }

    #[test]
    fn dominated_versions_are_dropped() {
        let out = kept(merge_key(
            [
                ver(&[("a", 1)], 1, Some("old")),
                ver(&[("a", 2), ("b", 1)], 3, Some("new")),
                ver(&[("b", 1)], 2, None),
            ],
            &rule(0, true),
        ));
        assert_eq!(out, vec![ver(&[("a", 2), ("b", 1)], 3, Some("new"))]);
    }

    #[test]
    fn concurrent_siblings_are_kept() {
        let out = kept(merge_key(
            [
                ver(&[("b", 1)], 2, Some("y")),
                ver(&[("a", 1)], 1, Some("x")),
            ],
            &rule(0, true),
        ));
        assert_eq!(
            out,
            vec![
                ver(&[("a", 1)], 1, Some("x")),
                ver(&[("b", 1)], 2, Some("y"))
            ]
        );
    }

    #[test]
    fn duplicates_collapse() {
        let v = ver(&[("a", 3)], 7, Some("x"));
        let out = kept(merge_key([v.clone(), v.clone(), v.clone()], &rule(0, true)));
        assert_eq!(out, vec![v]);
    }

    #[test]
    fn repeated_clock_keeps_the_same_copy_in_any_order() {
        let a = ver(&[("a", 1)], 5, Some("x"));
        let b = ver(&[("a", 1)], 9, Some("y"));
        let forward = merge_key([a.clone(), b.clone()], &rule(0, true));
        let backward = merge_key([b.clone(), a], &rule(0, true));
        assert_eq!(forward, backward);
        assert_eq!(kept(forward), vec![b]);
    }

    #[test]
    fn live_and_tombstone_siblings_are_kept() {
        let versions = [ver(&[("a", 1)], 0, None), ver(&[("b", 1)], 0, Some("x"))];
        let out = kept(merge_key(versions.clone(), &rule(i64::MAX, true)));
        assert_eq!(out.len(), 2);
        assert!(out.iter().any(Version::is_tombstone));
    }

    #[test]
    fn tombstones_within_grace_are_kept() {
        let versions = [ver(&[("a", 1)], 100, None), ver(&[("b", 1)], 500, None)];
        // The older one is past grace, the newer one is not: keep both.
        let out = kept(merge_key(versions.clone(), &rule(1200, true)));
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn expired_tombstones_are_purged_only_when_bottommost() {
        let versions = [
            ver(&[("a", 1)], 100, None),
            ver(&[("b", 1)], 200, None),
            ver(&[("a", 1)], 50, Some("dominated-by-equal-clock")),
        ];
        let now = 5000;
        assert_eq!(
            merge_key(versions.clone(), &rule(now, true)),
            MergeOutcome::Purge
        );
        let out = kept(merge_key(versions.clone(), &rule(now, false)));
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(Version::is_tombstone));
    }

    #[test]
    fn grace_boundary_is_exclusive() {
        let tomb = ver(&[("a", 1)], 1000, None);
        // timestamp + grace == now: still within grace.
        let at = merge_key([tomb.clone()], &rule(1000 + GRACE_MS, true));
        assert_eq!(at, MergeOutcome::Keep(vec![tomb.clone()]));
        let after = merge_key([tomb.clone()], &rule(1000 + GRACE_MS + 1, true));
        assert_eq!(after, MergeOutcome::Purge);
        // Extreme values saturate instead of overflowing.
        let late = ver(&[("a", 1)], i64::MAX, None);
        let out = merge_key([late.clone()], &rule(i64::MAX, true));
        assert_eq!(out, MergeOutcome::Keep(vec![late]));
    }

    #[test]
    fn no_versions_is_purge() {
        assert_eq!(merge_key(Vec::new(), &rule(0, false)), MergeOutcome::Purge);
    }

    fn arb_version() -> impl Strategy<Value = Version> {
        crate::model::version::tests::arb_version_with_timestamps(0..3000)
    }

    fn arb_versions_and_permutation() -> impl Strategy<Value = (Vec<Version>, Vec<Version>)> {
        proptest::collection::vec(arb_version(), 0..10)
            .prop_flat_map(|vs| (Just(vs.clone()), Just(vs).prop_shuffle()))
    }

    fn as_set(outcome: MergeOutcome) -> Option<Vec<Version>> {
        match outcome {
            MergeOutcome::Keep(mut v) => {
                v.sort_by(canonical_order);
                Some(v)
            }
            MergeOutcome::Purge => None,
        }
    }

    proptest! {
        /// Any permutation of the inputs gives the same outcome (as a set).
        #[test]
        fn input_order_does_not_matter(
            (versions, shuffled) in arb_versions_and_permutation(),
            now in 0i64..5000,
            bottommost in any::<bool>(),
        ) {
            let r = rule(now, bottommost);
            prop_assert_eq!(
                as_set(merge_key(versions, &r)),
                as_set(merge_key(shuffled, &r))
            );
        }

        /// Kept versions are pairwise concurrent, come from the inputs and
        /// descend every input; a purge happens exactly when the kept set
        /// would be tombstones past grace only, and only when bottommost.
        #[test]
        fn outcome_follows_the_rules(
            versions in proptest::collection::vec(arb_version(), 0..10),
            now in 0i64..5000,
            bottommost in any::<bool>(),
        ) {
            let all_expired_tombstones = |out: &[Version]| {
                out.iter().all(|v| v.is_tombstone() && v.timestamp_ms + GRACE_MS < now)
            };
            let not_bottommost = merge_key(versions.clone(), &rule(now, false));
            match merge_key(versions.clone(), &rule(now, bottommost)) {
                MergeOutcome::Keep(out) => {
                    prop_assert!(!out.is_empty());
                    prop_assert!(!(bottommost && all_expired_tombstones(&out)));
                    for (i, a) in out.iter().enumerate() {
                        for b in &out[i + 1..] {
                            prop_assert_eq!(a.clock.compare(&b.clock), Causality::Concurrent);
                        }
                    }
                    for v in &versions {
                        prop_assert!(out.iter().any(|k| k.clock.descends(&v.clock)));
                    }
                    prop_assert!(out.iter().all(|k| versions.contains(k)));
                    prop_assert_eq!(MergeOutcome::Keep(out), not_bottommost);
                }
                MergeOutcome::Purge if versions.is_empty() => {
                    prop_assert_eq!(not_bottommost, MergeOutcome::Purge);
                }
                MergeOutcome::Purge => {
                    prop_assert!(bottommost);
                    match not_bottommost {
                        MergeOutcome::Keep(out) => prop_assert!(all_expired_tombstones(&out)),
                        MergeOutcome::Purge => prop_assert!(false, "purged without bottommost"),
                    }
                }
            }
        }
    }
}
