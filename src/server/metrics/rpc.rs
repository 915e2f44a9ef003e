//! Request metrics of one core: how many calls each method answered, by
//! gRPC status and by the `error_code` its response body carried, and how
//! long each method's calls took.
//!
//! Owns [`RpcMetrics`], recorded by the connection code of this core only
//! (plain `Cell`s: no lock, no atomic, no allocation per call) and read as
//! an owned [`RpcSnapshot`] that crosses cores when metrics are scraped.
//! Invariants: the counters are a flat table indexed by (method, status,
//! body error) with every index in range by construction; a path the node
//! does not serve counts as the method `other`, so an unknown path cannot
//! grow the table; snapshots list only non-zero counters.

use crate::histogram::{DurationHistogram, DurationSnapshot};
use crate::proto::grpc::Code;
use crate::server::handlers::grpc_health::HEALTH_SERVICE;
use crate::server::handlers::reflection::{REFLECTION_V1, REFLECTION_V1ALPHA};
use crate::server::handlers::{ADMIN_SERVICE, PEER_SERVICE, STORAGE_SERVICE};
use std::cell::Cell;
use std::collections::HashMap;
use std::time::Duration;

/// Every method the node answers, as (service, method), in label order.
pub(crate) const METHODS: &[(&str, &str)] = &[
    (STORAGE_SERVICE, "Write"),
    (STORAGE_SERVICE, "Read"),
    (STORAGE_SERVICE, "Delete"),
    (STORAGE_SERVICE, "Repair"),
    (STORAGE_SERVICE, "ReplicateData"),
    (STORAGE_SERVICE, "StreamKeys"),
    (STORAGE_SERVICE, "GetKeyRange"),
    (STORAGE_SERVICE, "DrainNode"),
    (STORAGE_SERVICE, "StartStreaming"),
    (STORAGE_SERVICE, "StopStreaming"),
    (STORAGE_SERVICE, "GetStreamStatus"),
    (STORAGE_SERVICE, "NotifyStreamingComplete"),
    (STORAGE_SERVICE, "HealthCheck"),
    (STORAGE_SERVICE, "GetShardMap"),
    (PEER_SERVICE, "ApplyVersions"),
    (ADMIN_SERVICE, "RangeDigest"),
    (ADMIN_SERVICE, "Cleanup"),
    (ADMIN_SERVICE, "Undrain"),
    (ADMIN_SERVICE, "Flush"),
    (ADMIN_SERVICE, "Compact"),
    (ADMIN_SERVICE, "ListStreams"),
    (HEALTH_SERVICE, "Check"),
    (HEALTH_SERVICE, "Watch"),
    (HEALTH_SERVICE, "List"),
    (REFLECTION_V1, "ServerReflectionInfo"),
    (REFLECTION_V1ALPHA, "ServerReflectionInfo"),
];

/// Method slots: each listed method, then `other`.
const METHOD_SLOTS: usize = METHODS.len() + 1;
/// The label of a path no listed method matches.
const OTHER: (&str, &str) = ("other", "other");

/// The 17 gRPC status codes by number, as their canonical names.
const CODE_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// Body error slots: `none` (the body reports success, or the method's
/// answer carries no error code), then each `ErrorCode` by number.
const ERROR_NAMES: [&str; 10] = [
    "none",
    "UNKNOWN",
    "INVALID_REQUEST",
    "TENANT_NOT_FOUND",
    "KEY_NOT_FOUND",
    "INTERNAL_ERROR",
    "DISK_FULL",
    "MEMORY_PRESSURE",
    "NODE_DRAINING",
    "CORRUPTED_DATA",
];

/// The slot of a body's error code (`None`: success).
fn error_slot(error_code: Option<i32>) -> usize {
    match error_code {
        None => 0,
        // An error code this build does not know counts as UNKNOWN.
        Some(c) => usize::try_from(c)
            .ok()
            .filter(|&c| c + 1 < ERROR_NAMES.len())
            .map_or(1, |c| c + 1),
    }
}

/// How one call ended, as the metrics label it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub code: Code,
    /// The response body's `error_code` when the body reports a failure.
    pub error_code: Option<i32>,
}

impl Outcome {
    pub(crate) const OK: Outcome = Outcome {
        code: Code::Ok,
        error_code: None,
    };

    pub(crate) fn status(code: Code) -> Outcome {
        Outcome {
            code,
            error_code: None,
        }
    }
}

/// One core's request metrics.
#[derive(Debug)]
pub(crate) struct RpcMetrics {
    /// `/<service>/<method>` to its slot.
    slots: HashMap<String, usize, ahash::RandomState>,
    /// Calls by (method, status, body error), flattened.
    calls: Box<[Cell<u64>]>,
    /// Call durations by method, from the request's headers to its last
    /// frame handed to the connection.
    latency: Box<[DurationHistogram]>,
}

impl Default for RpcMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl RpcMetrics {
    pub(crate) fn new() -> Self {
        let slots = METHODS
            .iter()
            .enumerate()
            .map(|(i, (service, method))| (format!("/{service}/{method}"), i))
            .collect();
        Self {
            slots,
            calls: (0..METHOD_SLOTS * CODE_NAMES.len() * ERROR_NAMES.len())
                .map(|_| Cell::new(0))
                .collect(),
            latency: (0..METHOD_SLOTS)
                .map(|_| DurationHistogram::default())
                .collect(),
        }
    }

    /// The slot of a request path (`other` for any path not served).
    pub(crate) fn method_slot(&self, path: &str) -> usize {
        self.slots.get(path).copied().unwrap_or(METHODS.len())
    }

    /// Counts one call of the method in `slot` that ended with `outcome`
    /// after `took`.
    pub(crate) fn record(&self, slot: usize, outcome: Outcome, took: Duration) {
        let slot = slot.min(METHOD_SLOTS - 1);
        let code = (outcome.code as usize).min(CODE_NAMES.len() - 1);
        let index =
            (slot * CODE_NAMES.len() + code) * ERROR_NAMES.len() + error_slot(outcome.error_code);
        if let Some(c) = self.calls.get(index) {
            c.set(c.get().wrapping_add(1));
        }
        if let Some(h) = self.latency.get(slot) {
            h.record(took);
        }
    }

    /// The non-zero counters and every method's durations, now.
    pub(crate) fn snapshot(&self) -> RpcSnapshot {
        let per_method = CODE_NAMES.len() * ERROR_NAMES.len();
        let calls = self
            .calls
            .iter()
            .enumerate()
            .filter(|(_, c)| c.get() > 0)
            .map(|(i, c)| CallCount {
                method: i / per_method,
                code: (i % per_method) / ERROR_NAMES.len(),
                error: i % ERROR_NAMES.len(),
                calls: c.get(),
            })
            .collect();
        RpcSnapshot {
            calls,
            latency: self.latency.iter().map(|h| h.snapshot()).collect(),
        }
    }
}

/// Calls of one (method, status, body error) combination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CallCount {
    method: usize,
    code: usize,
    error: usize,
    pub calls: u64,
}

impl CallCount {
    /// (service, method) labels.
    pub(crate) fn method(&self) -> (&'static str, &'static str) {
        method_labels(self.method)
    }

    pub(crate) fn code(&self) -> &'static str {
        CODE_NAMES[self.code.min(CODE_NAMES.len() - 1)]
    }

    pub(crate) fn error_code(&self) -> &'static str {
        ERROR_NAMES[self.error.min(ERROR_NAMES.len() - 1)]
    }
}

/// (service, method) labels of a method slot.
pub(crate) fn method_labels(slot: usize) -> (&'static str, &'static str) {
    METHODS.get(slot).copied().unwrap_or(OTHER)
}

/// One core's request metrics at one moment (owned: crosses cores).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RpcSnapshot {
    pub calls: Vec<CallCount>,
    /// Durations per method slot.
    pub latency: Vec<DurationSnapshot>,
}

impl RpcSnapshot {
    /// Adds `other`'s calls and durations to these.
    pub(crate) fn merge(&mut self, other: &RpcSnapshot) {
        for c in &other.calls {
            let same =
                |m: &&mut CallCount| m.method == c.method && m.code == c.code && m.error == c.error;
            match self.calls.iter_mut().find(same) {
                Some(m) => m.calls = m.calls.wrapping_add(c.calls),
                None => self.calls.push(*c),
            }
        }
        if self.latency.len() < other.latency.len() {
            self.latency
                .resize(other.latency.len(), DurationSnapshot::default());
        }
        for (a, b) in self.latency.iter_mut().zip(&other.latency) {
            a.merge(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_method_has_its_own_slot() {
        use prost::Message;
        let set = prost_types::FileDescriptorSet::decode(crate::proto::FILE_DESCRIPTOR_SET)
            .expect("the embedded descriptor set");
        let m = RpcMetrics::new();
        let mut served = 0;
        for file in &set.file {
            for service in &file.service {
                for method in &service.method {
                    let path = format!("/{}.{}/{}", file.package(), service.name(), method.name());
                    assert!(
                        m.method_slot(&path) < METHODS.len(),
                        "{path} counts as other"
                    );
                    served += 1;
                }
            }
        }
        assert_eq!(
            served,
            METHODS.len(),
            "METHODS lists a method no .proto declares"
        );
    }

    #[test]
    fn code_names_sit_at_their_numbers() {
        for code in [
            Code::Ok,
            Code::Cancelled,
            Code::InvalidArgument,
            Code::DeadlineExceeded,
            Code::ResourceExhausted,
            Code::Unimplemented,
            Code::Internal,
            Code::Unavailable,
            Code::DataLoss,
        ] {
            let name = CODE_NAMES[code as usize];
            assert_eq!(
                name.replace('_', "").to_lowercase(),
                format!("{code:?}").to_lowercase(),
                "{code:?}"
            );
        }
    }

    #[test]
    fn error_names_follow_the_contract_enum() {
        use crate::proto::ErrorCode;
        for (slot, name) in ERROR_NAMES.iter().enumerate().skip(1) {
            let code = ErrorCode::try_from(slot as i32 - 1).expect("a contract error code");
            assert_eq!(*name, code.as_str_name());
            assert_eq!(error_slot(Some(slot as i32 - 1)), slot);
        }
        assert_eq!(error_slot(None), 0);
        assert_eq!(error_slot(Some(99)), 1, "unknown codes count as UNKNOWN");
        assert_eq!(error_slot(Some(-1)), 1);
    }

    #[test]
    fn calls_count_by_method_status_and_body_error() {
        let m = RpcMetrics::new();
        let write = m.method_slot("/storage.StorageNodeService/Write");
        let unknown = m.method_slot("/no.Such/Thing");
        assert_eq!(method_labels(write), (STORAGE_SERVICE, "Write"));
        assert_eq!(method_labels(unknown), OTHER);
        let ms = Duration::from_millis(1);
        m.record(write, Outcome::OK, ms);
        m.record(write, Outcome::OK, ms);
        let disk_full = Outcome {
            code: Code::Ok,
            error_code: Some(crate::proto::ErrorCode::DiskFull as i32),
        };
        m.record(write, disk_full, ms);
        m.record(unknown, Outcome::status(Code::Unimplemented), ms);
        let s = m.snapshot();
        let find = |method: &str, code: &str, error: &str| {
            s.calls
                .iter()
                .find(|c| c.method().1 == method && c.code() == code && c.error_code() == error)
                .map(|c| c.calls)
        };
        assert_eq!(find("Write", "OK", "none"), Some(2));
        assert_eq!(find("Write", "OK", "DISK_FULL"), Some(1));
        assert_eq!(find("other", "UNIMPLEMENTED", "none"), Some(1));
        assert_eq!(s.calls.len(), 3, "only non-zero counters: {s:?}");
        assert_eq!(s.latency[write].count(), 3);
        assert_eq!(s.latency[unknown].count(), 1);
    }

    #[test]
    fn merged_snapshots_add_up() {
        let (a, b) = (RpcMetrics::new(), RpcMetrics::new());
        let read = a.method_slot("/storage.StorageNodeService/Read");
        let ms = Duration::from_millis(1);
        a.record(read, Outcome::OK, ms);
        b.record(read, Outcome::OK, ms);
        b.record(read, Outcome::status(Code::Unavailable), ms);
        let mut merged = a.snapshot();
        merged.merge(&b.snapshot());
        assert_eq!(merged.calls.len(), 2);
        let total: u64 = merged.calls.iter().map(|c| c.calls).sum();
        assert_eq!(total, 3);
        assert_eq!(merged.latency[read].count(), 3);
    }
}
