//! Vector clocks as the reference server keeps them: the node's own
//! [`pairdb_storage::model::VectorClock`], so the descend / merge rules of
//! the wire contract (/work/shared/CONTRACT.md) have one implementation, and
//! the conversion to and from the protobuf `VectorClock`.

use pairdb_storage::model::ClockError;

use crate::proto::{VectorClock, VectorClockEntry};

/// A vector clock: coordinator node id -> logical timestamp, sorted by node
/// id, a missing entry counting as 0.
pub type Clock = pairdb_storage::model::VectorClock;

/// Converts a wire clock; duplicate ids collapse to their maximum. A clock
/// the node's model cannot hold (an empty node id, a negative counter) is
/// refused.
pub fn from_proto(vc: Option<&VectorClock>) -> Result<Clock, ClockError> {
    let Some(vc) = vc else {
        return Ok(Clock::new());
    };
    let mut entries: Vec<(String, i64)> = vc
        .entries
        .iter()
        .map(|e| (e.coordinator_node_id.clone(), e.logical_timestamp))
        .collect();
    // Highest counter first within an id, then keep the first of each id.
    entries.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    entries.dedup_by(|later, first| later.0 == first.0);
    Clock::from_entries(entries, usize::MAX)
}

/// Converts to the wire form, entries sorted by node id.
pub fn to_proto(clock: &Clock) -> VectorClock {
    VectorClock {
        entries: clock
            .entries()
            .iter()
            .map(|(id, ts)| VectorClockEntry {
                coordinator_node_id: id.to_string(),
                logical_timestamp: i64::try_from(*ts).unwrap_or(i64::MAX),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, ts: i64) -> VectorClockEntry {
        VectorClockEntry {
            coordinator_node_id: id.into(),
            logical_timestamp: ts,
        }
    }

    #[test]
    fn proto_roundtrip_collapses_duplicates() {
        let vc = VectorClock {
            entries: vec![entry("x", 1), entry("y", 2), entry("x", 4)],
        };
        let clock = from_proto(Some(&vc)).expect("valid clock");
        assert_eq!(clock.get("x"), 4);
        assert_eq!(clock.get("y"), 2);
        assert_eq!(to_proto(&clock).entries, vec![entry("x", 4), entry("y", 2)]);
    }

    #[test]
    fn absent_clock_is_empty_and_malformed_ones_are_refused() {
        assert!(from_proto(None).expect("empty").is_empty());
        let negative = VectorClock {
            entries: vec![entry("x", -1)],
        };
        assert!(from_proto(Some(&negative)).is_err());
        let unnamed = VectorClock {
            entries: vec![entry("", 1)],
        };
        assert!(from_proto(Some(&unnamed)).is_err());
    }
}
