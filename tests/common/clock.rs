//! Vector clocks in the tests: wire clocks from literals, and wire clocks as
//! maps (node id -> counter) for comparisons that ignore entry order.

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
pub fn clock_map(c: &Option<pb::VectorClock>) -> BTreeMap<String, i64> {
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
pub fn cmap(entries: &[(&str, i64)]) -> BTreeMap<String, i64> {
    entries.iter().map(|(n, c)| (n.to_string(), *c)).collect()
}
