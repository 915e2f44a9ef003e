//! Per-key bounds: what one key may hold, and the bytes a Read of it answers.
//!
//! Owns [`KeyBounds`] (the limits a put is checked against, built from
//! `[limits]`), the check itself and [`read_answer_bytes`], an upper bound of
//! the protobuf bytes a Read of a key answers. Pure: the shard runs the check
//! on the version set a put would leave, before anything changes.
//!
//! Rules (see docs/operations.md, "Per-key bounds"):
//! - a client put (Write, Delete) that leaves exactly one version resolves
//!   every sibling: it is accepted when its answer fits `answer_bytes_max`
//!   and its clock names at most `key_clock_ids_max` ids, or at most one id
//!   more than the key held (a coordinator's write-back of a Read clock); a
//!   blind put's stamped clock only has to fit `clock_entries_max`;
//! - any other client put must leave at most `versions_per_key_max` versions,
//!   at most `key_clock_ids_max` distinct coordinator ids over all of them,
//!   and an answer of at most `answer_bytes_max` bytes;
//! - a replica put (Repair, or versions another node already accepted) is
//!   never refused by those bounds, only counted when past them, so replicas
//!   do not diverge; it is refused only past `versions_per_key_hard_max`,
//!   the ceiling that keeps one key's reconciliation cheap for its core.
//!
//! Invariant kept by config validation: `key_clock_ids_max + 2 <=
//! clock_entries_max`, so the merged clock a Read answers plus the ids a
//! write-back adds (the coordinator's own and this node's stamp) is always a
//! clock the node accepts back.

use super::clock::VectorClock;
use super::version::VersionSet;

/// Bytes a protobuf varint of `n` takes.
fn varint_len(n: usize) -> usize {
    let bits = usize::BITS - (n | 1).leading_zeros();
    bits.div_ceil(7) as usize
}

/// Bytes of a length-delimited field holding `payload` bytes (tag + length).
fn field_len(payload: usize) -> usize {
    1 + varint_len(payload) + payload
}

/// A clock as a `VectorClock` message body (without its own tag/length).
fn clock_body_len(clock: &VectorClock) -> usize {
    clock
        .entries()
        .iter()
        // entry: node id string + int64 counter (<= 10 bytes with its tag 11).
        .map(|(node, _)| field_len(field_len(node.len()) + 11))
        .sum()
}

/// Upper bound of what ReadResponse's fixed fields take besides value and
/// clocks: success, error_code, timestamp, and an error message such as
/// "key not found".
const READ_FIXED_BYTES: usize = 2 + 2 + 11 + 64;

/// An upper bound of the protobuf bytes of the ReadResponse answering `set`
/// (whose merged clock is `merged`) for a key whose tenant id and key take
/// `tenant_key_bytes` together: the visible value in `value`, the merged
/// clock, and every version (tenant, key, value, clock, timestamp, flag) in
/// `versions` when there is more than one or none is live.
pub fn read_answer_bytes(set: &VersionSet, merged: &VectorClock, tenant_key_bytes: usize) -> usize {
    let visible = set.visible();
    let mut total = READ_FIXED_BYTES + field_len(clock_body_len(merged));
    if let Some(v) = visible {
        total += field_len(v.value.as_ref().map_or(0, |b| b.len()));
    }
    if set.len() > 1 || visible.is_none() {
        // tenant_id and key fields: two tags and two lengths at most as wide
        // as the length of both together.
        let identity = 2 + 2 * varint_len(tenant_key_bytes) + tenant_key_bytes;
        for v in set.versions() {
            let value = v.value.as_ref().map_or(0, |b| field_len(b.len()));
            let entry = identity + value + field_len(clock_body_len(&v.clock)) + 11 + 2;
            total += field_len(entry);
        }
    }
    total
}

/// What a put is, for the bounds that apply to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutKind {
    /// Write or Delete with the client's clock. `ids_before`: distinct
    /// coordinator ids over the key's versions before the put (consulted
    /// only when the put's clock names more than `key_clock_ids_max`).
    Client { ids_before: usize },
    /// Write or Delete with an empty clock, stamped by this node.
    Blind,
    /// Repair, or a version another node already accepted.
    Replica,
}

/// Where a put comes from, which decides which bounds refuse it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOrigin {
    /// Write or Delete from a coordinator: every bound applies.
    Client,
    /// Repair, or a version another node already accepted: only the hard
    /// ceiling refuses it; soft bounds are counted.
    Replica,
}

/// A bound a put would break, with the figure it would reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BoundExceeded {
    /// The clock a blind write would be stamped with is too long.
    ClockEntries { entries: usize, max: usize },
    /// A write replacing every version names too many new ids at once.
    WriteClockIds {
        ids: usize,
        ids_before: usize,
        max: usize,
    },
    /// Distinct coordinator ids over every version of the key.
    KeyClockIds { ids: usize, max: usize },
    /// Versions (siblings) of the key.
    Versions { versions: usize, max: usize },
    /// Versions past the hard ceiling (refuses replica puts too).
    VersionsHard { versions: usize, max: usize },
    /// Bytes a Read of the key would answer.
    AnswerBytes { bytes: usize, max: usize },
}

impl std::fmt::Display for BoundExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const RESOLVE: &str =
            "resolve the siblings first by writing with the vector clock a Read answers";
        match self {
            BoundExceeded::ClockEntries { entries, max } => write!(
                f,
                "a blind write or delete would stamp a vector clock of {entries} entries, over \
                 limits.clock_entries_max ({max}); write with the vector clock a Read answers, \
                 advancing one of its entries rather than adding an id"
            ),
            BoundExceeded::WriteClockIds {
                ids,
                ids_before,
                max,
            } => write!(
                f,
                "the write's vector clock names {ids} coordinator ids, over \
                 limits.key_clock_ids_max ({max}) and more than one beyond the {ids_before} \
                 the key holds; write with the vector clock a Read answers plus at most \
                 your own id"
            ),
            BoundExceeded::KeyClockIds { ids, max } => write!(
                f,
                "the key's versions would carry {ids} distinct coordinator ids, over \
                 limits.key_clock_ids_max ({max}); {RESOLVE}"
            ),
            BoundExceeded::Versions { versions, max } => write!(
                f,
                "the key would hold {versions} versions (siblings), over \
                 limits.versions_per_key_max ({max}); {RESOLVE}"
            ),
            BoundExceeded::VersionsHard { versions, max } => write!(
                f,
                "the key would hold {versions} versions (siblings), over \
                 limits.versions_per_key_hard_max ({max}); {RESOLVE}"
            ),
            BoundExceeded::AnswerBytes { bytes, max } => write!(
                f,
                "a Read of the key would answer {bytes} bytes, over limits.message_bytes_max \
                 ({max}); {RESOLVE}"
            ),
        }
    }
}

/// The per-key bounds a shard checks every put against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyBounds {
    pub clock_entries_max: usize,
    pub key_clock_ids_max: usize,
    pub versions_per_key_max: usize,
    pub versions_per_key_hard_max: usize,
    pub answer_bytes_max: usize,
}

impl Default for KeyBounds {
    /// The defaults of `[limits]` in shards.toml.
    fn default() -> Self {
        Self {
            clock_entries_max: 64,
            key_clock_ids_max: 62,
            versions_per_key_max: 100,
            versions_per_key_hard_max: 200,
            answer_bytes_max: 16 * 1024 * 1024,
        }
    }
}

impl KeyBounds {
    /// Checks the versions a key would hold after a put stored its version:
    /// `after` is the key's reconciled set with the put applied and `merged`
    /// its merged clock. `Err` refuses the put (nothing may change);
    /// `Ok(Some(_))` accepts a replica put that leaves the key past a soft
    /// bound (to be counted and logged); `Ok(None)` is within every bound.
    pub fn check(
        &self,
        after: &VersionSet,
        merged: &VectorClock,
        tenant_key_bytes: usize,
        kind: PutKind,
    ) -> Result<Option<BoundExceeded>, BoundExceeded> {
        let refused = |past: Option<BoundExceeded>| past.map_or(Ok(None), Err);
        let ids = merged.entries().len();
        match kind {
            // A blind put descends everything stored and adds at most this
            // node's id: its stamp only has to fit the format.
            PutKind::Blind => refused(
                past(ids, self.clock_entries_max, |entries, max| {
                    BoundExceeded::ClockEntries { entries, max }
                })
                .or_else(|| self.answer_past(after, merged, tenant_key_bytes)),
            ),
            // The put resolves every stored version: its clock may name one
            // id beyond the key's (a write-back), never a crowd of new ones.
            PutKind::Client { ids_before } if after.len() == 1 => {
                let write_back = ids <= ids_before.saturating_add(1);
                let wide = (ids > self.key_clock_ids_max && !write_back).then_some(
                    BoundExceeded::WriteClockIds {
                        ids,
                        ids_before,
                        max: self.key_clock_ids_max,
                    },
                );
                refused(wide.or_else(|| self.answer_past(after, merged, tenant_key_bytes)))
            }
            PutKind::Client { .. } => refused(self.soft_violation(after, merged, tenant_key_bytes)),
            PutKind::Replica => {
                let hard = past(
                    after.len(),
                    self.versions_per_key_hard_max,
                    |versions, max| BoundExceeded::VersionsHard { versions, max },
                );
                match hard {
                    Some(e) => Err(e),
                    None => Ok(self.soft_violation(after, merged, tenant_key_bytes)),
                }
            }
        }
    }

    /// The first soft bound `after` breaks, cheapest check first.
    fn soft_violation(
        &self,
        after: &VersionSet,
        merged: &VectorClock,
        tenant_key_bytes: usize,
    ) -> Option<BoundExceeded> {
        past(after.len(), self.versions_per_key_max, |versions, max| {
            BoundExceeded::Versions { versions, max }
        })
        .or_else(|| {
            past(
                merged.entries().len(),
                self.key_clock_ids_max,
                |ids, max| BoundExceeded::KeyClockIds { ids, max },
            )
        })
        .or_else(|| self.answer_past(after, merged, tenant_key_bytes))
    }

    /// The Read answer of `after` when it would pass `answer_bytes_max`.
    fn answer_past(
        &self,
        after: &VersionSet,
        merged: &VectorClock,
        tenant_key_bytes: usize,
    ) -> Option<BoundExceeded> {
        past(
            read_answer_bytes(after, merged, tenant_key_bytes),
            self.answer_bytes_max,
            |bytes, max| BoundExceeded::AnswerBytes { bytes, max },
        )
    }
}

/// `bound(figure, max)` when `figure` passes `max`.
fn past(
    figure: usize,
    max: usize,
    bound: impl FnOnce(usize, usize) -> BoundExceeded,
) -> Option<BoundExceeded> {
    (figure > max).then(|| bound(figure, max))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Version;
    use bytes::Bytes;

    fn clock(ids: impl IntoIterator<Item = String>) -> VectorClock {
        VectorClock::from_entries(ids.into_iter().map(|id| (id, 1)), 1 << 16).unwrap()
    }

    fn version(ids: impl IntoIterator<Item = String>, value: Option<usize>) -> Version {
        Version {
            clock: clock(ids),
            timestamp_ms: 1,
            value: value.map(|n| Bytes::from(vec![7u8; n])),
        }
    }

    /// `n` pairwise concurrent versions, each with its own `ids_each` ids.
    fn siblings(n: usize, ids_each: usize, value: usize) -> VersionSet {
        VersionSet::from_versions(
            (0..n).map(|i| version((0..ids_each).map(|j| format!("c{i}-{j}")), Some(value))),
        )
    }

    /// `n` pairwise concurrent versions over two ids only: `{a: i+1, b: n-i}`.
    fn antichain(n: usize, value: usize) -> VersionSet {
        VersionSet::from_versions((0..n).map(|i| {
            Version {
                clock: VectorClock::from_entries(
                    [
                        ("a".to_string(), i as i64 + 1),
                        ("b".to_string(), (n - i) as i64),
                    ],
                    64,
                )
                .unwrap(),
                timestamp_ms: 1,
                value: Some(Bytes::from(vec![7u8; value])),
            }
        }))
    }

    fn check(
        b: &KeyBounds,
        set: &VersionSet,
        kind: PutKind,
    ) -> Result<Option<BoundExceeded>, BoundExceeded> {
        b.check(set, &set.merged_clock(), 10, kind)
    }

    const CLIENT: PutKind = PutKind::Client { ids_before: 0 };

    #[test]
    fn varint_lengths() {
        assert_eq!(varint_len(0), 1);
        assert_eq!(varint_len(127), 1);
        assert_eq!(varint_len(128), 2);
        assert_eq!(varint_len(16_383), 2);
        assert_eq!(varint_len(16_384), 3);
        assert_eq!(varint_len(u32::MAX as usize), 5);
    }

    #[test]
    fn client_put_within_bounds_is_accepted() {
        let b = KeyBounds::default();
        assert_eq!(check(&b, &antichain(100, 10), CLIENT), Ok(None));
    }

    #[test]
    fn client_put_past_versions_per_key_is_refused_naming_the_figure() {
        let b = KeyBounds::default();
        let err = check(&b, &antichain(101, 10), CLIENT).unwrap_err();
        assert_eq!(
            err,
            BoundExceeded::Versions {
                versions: 101,
                max: 100
            }
        );
        let text = err.to_string();
        assert!(
            text.contains("101") && text.contains("versions_per_key_max (100)"),
            "{text}"
        );
    }

    #[test]
    fn client_put_past_key_clock_ids_is_refused() {
        let b = KeyBounds::default();
        // Two siblings of 40 ids each: 80 distinct ids.
        let err = check(&b, &siblings(2, 40, 10), CLIENT).unwrap_err();
        assert_eq!(err, BoundExceeded::KeyClockIds { ids: 80, max: 62 });
        assert!(err.to_string().contains("key_clock_ids_max (62)"));
    }

    #[test]
    fn client_put_past_answer_bytes_is_refused() {
        let b = KeyBounds::default();
        // Two concurrent 6 MiB siblings: the visible value is sent twice.
        let err = check(&b, &siblings(2, 1, 6 << 20), CLIENT).unwrap_err();
        assert!(
            matches!(err, BoundExceeded::AnswerBytes { bytes, .. } if bytes > 18 << 20),
            "{err}"
        );
    }

    #[test]
    fn a_put_that_resolves_every_sibling_may_add_one_id_never_a_crowd() {
        let b = KeyBounds::default();
        let one = |n: usize| {
            VersionSet::from_versions([version((0..n).map(|j| format!("n{j}")), Some(10))])
        };
        // Within key_clock_ids_max: fine on any key.
        assert_eq!(check(&b, &one(62), CLIENT), Ok(None));
        // 64 fresh ids at once on a new key: refused.
        assert_eq!(
            check(&b, &one(64), CLIENT),
            Err(BoundExceeded::WriteClockIds {
                ids: 64,
                ids_before: 0,
                max: 62
            })
        );
        // A write-back of a 63-id Read clock plus the coordinator's id.
        assert_eq!(
            check(&b, &one(64), PutKind::Client { ids_before: 63 }),
            Ok(None)
        );
        // A blind stamp fits up to clock_entries_max, not past it.
        assert_eq!(check(&b, &one(64), PutKind::Blind), Ok(None));
        assert_eq!(
            check(&b, &one(65), PutKind::Blind),
            Err(BoundExceeded::ClockEntries {
                entries: 65,
                max: 64
            })
        );
    }

    #[test]
    fn replica_puts_pass_soft_bounds_counted_and_stop_at_the_hard_ceiling() {
        let b = KeyBounds::default();
        let past = check(&b, &antichain(150, 10), PutKind::Replica);
        assert_eq!(
            past,
            Ok(Some(BoundExceeded::Versions {
                versions: 150,
                max: 100
            }))
        );
        let wide = check(&b, &siblings(2, 40, 10), PutKind::Replica);
        assert!(matches!(wide, Ok(Some(BoundExceeded::KeyClockIds { .. }))));
        let hard = check(&b, &antichain(201, 1), PutKind::Replica);
        assert_eq!(
            hard,
            Err(BoundExceeded::VersionsHard {
                versions: 201,
                max: 200
            })
        );
    }

    #[test]
    fn a_lone_live_version_is_counted_once() {
        let one = VersionSet::from_versions([version(["a".to_string()], Some(1000))]);
        let two = siblings(2, 1, 1000);
        let lone = read_answer_bytes(&one, &one.merged_clock(), 10);
        let pair = read_answer_bytes(&two, &two.merged_clock(), 10);
        assert!((1000..1200).contains(&lone), "{lone}");
        assert!(pair >= 3000, "{pair}");
    }
}
