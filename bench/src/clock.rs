//! Vector clocks as the reference server keeps them: a sorted map from
//! coordinator node id to logical timestamp, with the descends / merge rules
//! of the wire contract (/work/shared/CONTRACT.md) and conversion to and
//! from the protobuf `VectorClock`.

use std::collections::BTreeMap;

use crate::proto::{VectorClock, VectorClockEntry};

/// A vector clock: coordinator node id -> logical timestamp. A missing entry
/// counts as 0.
pub type Clock = BTreeMap<String, i64>;

/// Converts a wire clock; duplicate ids collapse to their maximum.
pub fn from_proto(vc: Option<&VectorClock>) -> Clock {
    let mut clock = Clock::new();
    if let Some(vc) = vc {
        for e in &vc.entries {
            let slot = clock.entry(e.coordinator_node_id.clone()).or_insert(0);
            *slot = (*slot).max(e.logical_timestamp);
        }
    }
    clock
}

/// Converts to the wire form, entries sorted by node id.
pub fn to_proto(clock: &Clock) -> VectorClock {
    VectorClock {
        entries: clock
            .iter()
            .map(|(id, ts)| VectorClockEntry {
                coordinator_node_id: id.clone(),
                logical_timestamp: *ts,
            })
            .collect(),
    }
}

fn get(clock: &Clock, id: &str) -> i64 {
    clock.get(id).copied().unwrap_or(0)
}

/// True when `a` descends `b`: every entry of `b` is <= the same entry of `a`.
/// Equal clocks descend each other.
pub fn descends(a: &Clock, b: &Clock) -> bool {
    b.iter().all(|(id, ts)| *ts <= get(a, id))
}

/// Entry-wise maximum of `into` and `other`, stored in `into`.
pub fn merge_into(into: &mut Clock, other: &Clock) {
    for (id, ts) in other {
        let slot = into.entry(id.clone()).or_insert(0);
        *slot = (*slot).max(*ts);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(entries: &[(&str, i64)]) -> Clock {
        entries.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn descends_rules() {
        assert!(descends(&c(&[("a", 2)]), &c(&[("a", 1)])));
        assert!(descends(&c(&[("a", 1)]), &c(&[("a", 1)])));
        assert!(descends(&c(&[("a", 1)]), &c(&[])));
        assert!(!descends(&c(&[]), &c(&[("a", 1)])));
        assert!(!descends(&c(&[("a", 2)]), &c(&[("b", 1)])));
        assert!(descends(&c(&[("a", 2), ("b", 1)]), &c(&[("b", 1)])));
    }

    #[test]
    fn merge_is_entrywise_max() {
        let mut a = c(&[("a", 2), ("b", 1)]);
        merge_into(&mut a, &c(&[("b", 3), ("c", 1)]));
        assert_eq!(a, c(&[("a", 2), ("b", 3), ("c", 1)]));
    }

    #[test]
    fn proto_roundtrip_collapses_duplicates() {
        let vc = VectorClock {
            entries: vec![
                VectorClockEntry {
                    coordinator_node_id: "x".into(),
                    logical_timestamp: 1,
                },
                VectorClockEntry {
                    coordinator_node_id: "x".into(),
                    logical_timestamp: 4,
                },
            ],
        };
        let clock = from_proto(Some(&vc));
        assert_eq!(clock, c(&[("x", 4)]));
        assert_eq!(to_proto(&clock).entries.len(), 1);
    }
}
