//! Conversion and validation between wire messages and engine types.
//!
//! Owns the request checks the contract asks for (non-empty tenant_id and
//! key, size limits, well-formed clocks), each failing with a message that
//! names the field, and the mapping of engine errors to wire error codes.

use crate::config::LimitsConfig;
use crate::engine::EngineError;
use crate::model::{KeyRef, VectorClock};
use crate::proto;
pub(crate) use crate::proto::wire::clock_to_wire;
#[cfg(test)]
pub(crate) use crate::proto::wire::version_to_wire;

/// A request field that failed validation; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invalid(pub String);

/// Checks tenant_id and key against the limits and encodes their identity.
pub(crate) fn key_ref(
    tenant_id: &str,
    key: &str,
    limits: &LimitsConfig,
) -> Result<KeyRef, Invalid> {
    if tenant_id.is_empty() {
        return Err(Invalid("tenant_id: must not be empty".into()));
    }
    if tenant_id.len() > limits.tenant_id_bytes_max {
        return Err(Invalid(format!(
            "tenant_id: {} bytes, at most {} allowed",
            tenant_id.len(),
            limits.tenant_id_bytes_max
        )));
    }
    if key.is_empty() {
        return Err(Invalid("key: must not be empty".into()));
    }
    if key.len() > limits.key_bytes_max {
        return Err(Invalid(format!(
            "key: {} bytes, at most {} allowed",
            key.len(),
            limits.key_bytes_max
        )));
    }
    Ok(KeyRef::new(tenant_id, key))
}

/// Checks a value's size.
pub(crate) fn check_value(value: &[u8], limits: &LimitsConfig) -> Result<(), Invalid> {
    if value.len() > limits.value_bytes_max {
        return Err(Invalid(format!(
            "value: {} bytes, at most {} allowed",
            value.len(),
            limits.value_bytes_max
        )));
    }
    Ok(())
}

/// A wire clock (absent = empty) as a validated [`VectorClock`].
pub(crate) fn clock_from_wire(
    clock: Option<proto::VectorClock>,
    limits: &LimitsConfig,
) -> Result<VectorClock, Invalid> {
    let entries = clock.map(|c| c.entries).unwrap_or_default();
    VectorClock::from_entries(
        entries
            .into_iter()
            .map(|e| (e.coordinator_node_id, e.logical_timestamp)),
        limits.clock_entries_max,
    )
    .map_err(|e| Invalid(e.to_string()))
}

/// The ReadResponse for the stored `versions` of (`tenant_id`, `key`): the
/// visible sibling's value and timestamp, the merged clock of every version,
/// and every version in `versions` unless a lone live version already says
/// it all. Its encoded size never exceeds
/// [`crate::model::read_answer_bytes`]. The node sends the same bytes
/// through `read_answer::encode`; this builds the wire struct they must equal.
#[cfg(test)]
pub(crate) fn read_response(
    tenant_id: &str,
    key: &str,
    set: &crate::model::VersionSet,
) -> proto::ReadResponse {
    let visible = set.visible();
    // A lone live version is already fully in value/vector_clock/timestamp;
    // repeating it in `versions` would send the value twice.
    let versions: Vec<_> = if set.len() > 1 || visible.is_none() {
        set.versions()
            .iter()
            .map(|v| version_to_wire(tenant_id, key, v))
            .collect()
    } else {
        Vec::new()
    };
    let vector_clock = (!set.is_empty()).then(|| clock_to_wire(&set.merged_clock()));
    match visible {
        Some(v) => proto::ReadResponse {
            success: true,
            value: v.value.clone().unwrap_or_default(),
            vector_clock,
            error_message: String::new(),
            error_code: proto::ErrorCode::Unknown as i32,
            versions,
            timestamp: v.timestamp_ms,
        },
        None => proto::ReadResponse {
            success: false,
            value: bytes::Bytes::new(),
            vector_clock,
            error_message: "key not found".into(),
            error_code: proto::ErrorCode::KeyNotFound as i32,
            versions,
            timestamp: 0,
        },
    }
}

/// The wire error code for an engine error.
pub(crate) fn error_code(e: &EngineError) -> proto::ErrorCode {
    match e {
        EngineError::Corrupted { .. } => proto::ErrorCode::CorruptedData,
        EngineError::DiskFull { .. } => proto::ErrorCode::DiskFull,
        EngineError::Overloaded { .. } => proto::ErrorCode::MemoryPressure,
        EngineError::Invalid { .. } => proto::ErrorCode::InvalidRequest,
        EngineError::Internal { .. } => proto::ErrorCode::InternalError,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Version, VersionSet};

    #[test]
    fn validation_names_the_field() {
        let l = LimitsConfig::default();
        assert!(key_ref("", "k", &l).unwrap_err().0.starts_with("tenant_id"));
        assert!(key_ref("t", "", &l).unwrap_err().0.starts_with("key"));
        let long = "k".repeat(l.key_bytes_max + 1);
        assert!(key_ref("t", &long, &l).unwrap_err().0.starts_with("key"));
        let big = vec![0u8; l.value_bytes_max + 1];
        assert!(check_value(&big, &l).unwrap_err().0.starts_with("value"));
        let dup = proto::VectorClock {
            entries: vec![
                proto::VectorClockEntry {
                    coordinator_node_id: "a".into(),
                    logical_timestamp: 1,
                },
                proto::VectorClockEntry {
                    coordinator_node_id: "a".into(),
                    logical_timestamp: 2,
                },
            ],
        };
        assert!(clock_from_wire(Some(dup), &l)
            .unwrap_err()
            .0
            .starts_with("vector_clock"));
    }

    #[test]
    fn clock_round_trips() {
        let l = LimitsConfig::default();
        let wire = proto::VectorClock {
            entries: vec![
                proto::VectorClockEntry {
                    coordinator_node_id: "b".into(),
                    logical_timestamp: 2,
                },
                proto::VectorClockEntry {
                    coordinator_node_id: "a".into(),
                    logical_timestamp: 1,
                },
            ],
        };
        let clock = clock_from_wire(Some(wire), &l).unwrap();
        let back = clock_to_wire(&clock);
        assert_eq!(back.entries[0].coordinator_node_id, "a");
        assert_eq!(clock_from_wire(Some(back), &l).unwrap(), clock);
    }

    fn arb_version() -> impl proptest::strategy::Strategy<Value = Version> {
        use proptest::prelude::*;
        (
            proptest::collection::btree_map("[a-z]{1,256}", 1i64..i64::MAX, 0..8),
            any::<i64>(),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
        )
            .prop_map(|(m, ts, v)| Version {
                clock: VectorClock::from_entries(m, 64).unwrap(),
                timestamp_ms: ts,
                value: v.map(bytes::Bytes::from),
            })
    }

    proptest::proptest! {
        /// The size the per-key bound checks is never below what Read
        /// really sends, and not far above it.
        #[test]
        fn read_answer_bytes_bounds_the_encoded_answer(
            versions in proptest::collection::vec(arb_version(), 0..6),
            tenant in "[a-z]{1,200}",
            key in "[a-z]{1,200}",
        ) {
            use prost::Message;
            let set = VersionSet::from_versions(versions);
            let answer = read_response(&tenant, &key, &set);
            let encoded = answer.encoded_len();
            let estimate = crate::model::read_answer_bytes(
                &set,
                &set.merged_clock(),
                tenant.len() + key.len(),
            );
            proptest::prop_assert!(estimate >= encoded, "estimate {estimate} < encoded {encoded}");
            let slack = 96 + 32 * set.len() + 12 * (set.merged_clock().entries().len()
                + set.versions().iter().map(|v| v.clock.entries().len()).sum::<usize>());
            proptest::prop_assert!(estimate <= encoded + slack, "estimate {estimate}, encoded {encoded}");
        }
    }
}
