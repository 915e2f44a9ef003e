//! Vector clocks in the tests: wire clocks from literals, wire clocks as
//! maps (node id -> counter) for comparisons that ignore entry order, and the
//! clock rules (descend, merge) for the tests' models. The rules are not
//! written out again here: maps are converted to the node's own
//! [`VectorClock`], whose unit and property tests hold it to the entry-wise
//! definitions.

use pairdb_storage::model::VectorClock;
use std::collections::BTreeMap;

use super::pb;

/// A wire clock from `(node id, counter)` pairs.
pub fn clock(entries: &[(&str, i64)]) -> Option<pb::VectorClock> {
    Some(pb::VectorClock {
        entries: entries
            .iter()
            .map(|(n, c)| pb::VectorClockEntry {
                coordinator_node_id: n.to_string(),
                logical_timestamp: *c,
            })
            .collect(),
    })
}

/// A wire clock as a map (absent clock = empty map), for comparisons that
/// ignore entry order.
pub fn clock_map(c: &Option<pb::VectorClock>) -> ClockMap {
    c.as_ref()
        .map(|c| {
            c.entries
                .iter()
                .map(|e| (e.coordinator_node_id.clone(), e.logical_timestamp))
                .collect()
        })
        .unwrap_or_default()
}

/// A map literal for [`clock_map`] comparisons.
pub fn cmap(entries: &[(&str, i64)]) -> ClockMap {
    entries.iter().map(|(n, c)| (n.to_string(), *c)).collect()
}

/// A clock as the tests' models keep it: node id -> counter, no zero entries.
pub type ClockMap = BTreeMap<String, i64>;

/// `c` as the node's own clock type, whose rules (descend, merge) the tests'
/// models use rather than a copy of their own; panics on a clock the node
/// would refuse (a negative counter, an empty node id).
pub fn model_clock(c: &ClockMap) -> VectorClock {
    VectorClock::from_entries(c.iter().map(|(n, t)| (n.clone(), *t)), usize::MAX)
        .unwrap_or_else(|e| panic!("{c:?} is not a valid clock: {e}"))
}

/// The node's clock type as a map (zero counters are never stored).
pub fn map_of(c: &VectorClock) -> ClockMap {
    c.entries()
        .iter()
        .map(|(n, t)| {
            (
                n.to_string(),
                i64::try_from(*t).expect("counter fits the wire"),
            )
        })
        .collect()
}

/// `a` descends `b`: every entry of `b` is <= the same entry of `a`.
pub fn descends(a: &ClockMap, b: &ClockMap) -> bool {
    model_clock(a).descends(&model_clock(b))
}

/// The entry-wise maximum of `clocks` (none: the empty clock).
pub fn merge_maps<'a>(clocks: impl IntoIterator<Item = &'a ClockMap>) -> ClockMap {
    let clocks: Vec<VectorClock> = clocks.into_iter().map(model_clock).collect();
    map_of(&VectorClock::merge_all(clocks.iter()))
}
