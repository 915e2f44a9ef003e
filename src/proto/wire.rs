//! Model values as wire messages: clocks and versions, the same bytes for
//! every answer and for what one node sends another.

use super::{KeyValueEntry, VectorClock as WireClock, VectorClockEntry};
use crate::model::{VectorClock, Version};

/// A clock for the wire. Counters past `i64::MAX` are clamped (they cannot
/// arise from wire input, which is never negative, plus increments).
pub(crate) fn clock_to_wire(clock: &VectorClock) -> WireClock {
    WireClock {
        entries: clock
            .entries()
            .iter()
            .map(|(node, counter)| VectorClockEntry {
                coordinator_node_id: node.to_string(),
                logical_timestamp: i64::try_from(*counter).unwrap_or(i64::MAX),
            })
            .collect(),
    }
}

/// One stored version as a wire entry (the reference `read_answer` is
/// tested against).
pub(crate) fn version_to_wire(tenant_id: &str, key: &str, v: &Version) -> KeyValueEntry {
    KeyValueEntry {
        tenant_id: tenant_id.to_string(),
        key: key.to_string(),
        value: v.value.clone().unwrap_or_default(),
        vector_clock: Some(clock_to_wire(&v.clock)),
        timestamp: v.timestamp_ms,
        is_tombstone: v.is_tombstone(),
    }
}
