//! The tonic client (one HTTP/2 connection each) and the request helpers the
//! tests share: Write, Read, Delete and Repair that expect gRPC OK,
//! HealthCheck metrics, the versions a read reports and the error codes the
//! tests compare against.

use std::collections::BTreeMap;
use tonic::transport::Channel;

use super::pb;

pub use pb::storage_node_service_client::StorageNodeServiceClient;

/// A client over one HTTP/2 connection.
pub type Client = StorageNodeServiceClient<Channel>;

pub fn write_req(
    tenant: &str,
    key: &str,
    value: &[u8],
    vc: Option<pb::VectorClock>,
) -> pb::WriteRequest {
    pb::WriteRequest {
        tenant_id: tenant.into(),
        key: key.into(),
        value: value.to_vec(),
        vector_clock: vc,
        idempotency_key: String::new(),
    }
}

/// Writes and expects gRPC OK; returns the response body.
pub async fn write(
    c: &mut Client,
    tenant: &str,
    key: &str,
    value: &[u8],
    vc: Option<pb::VectorClock>,
) -> pb::WriteResponse {
    c.write(write_req(tenant, key, value, vc))
        .await
        .unwrap_or_else(|s| panic!("Write {tenant}/{key}: gRPC status {s:?}"))
        .into_inner()
}

/// Reads and expects gRPC OK; returns the response body.
pub async fn read(c: &mut Client, tenant: &str, key: &str) -> pb::ReadResponse {
    c.read(pb::ReadRequest {
        tenant_id: tenant.into(),
        key: key.into(),
    })
    .await
    .unwrap_or_else(|s| panic!("Read {tenant}/{key}: gRPC status {s:?}"))
    .into_inner()
}

/// Deletes and expects gRPC OK; returns the response body.
pub async fn delete(
    c: &mut Client,
    tenant: &str,
    key: &str,
    vc: Option<pb::VectorClock>,
) -> pb::DeleteResponse {
    c.delete(pb::DeleteRequest {
        tenant_id: tenant.into(),
        key: key.into(),
        vector_clock: vc,
        idempotency_key: String::new(),
    })
    .await
    .unwrap_or_else(|s| panic!("Delete {tenant}/{key}: gRPC status {s:?}"))
    .into_inner()
}

/// Repairs and expects gRPC OK; returns the response body.
pub async fn repair(
    c: &mut Client,
    tenant: &str,
    key: &str,
    value: &[u8],
    vc: Option<pb::VectorClock>,
) -> pb::RepairResponse {
    c.repair(pb::RepairRequest {
        tenant_id: tenant.into(),
        key: key.into(),
        value: value.to_vec(),
        vector_clock: vc,
    })
    .await
    .unwrap_or_else(|s| panic!("Repair {tenant}/{key}: gRPC status {s:?}"))
    .into_inner()
}

/// HealthCheck metrics; panics on a gRPC error.
pub async fn metrics(c: &mut Client) -> BTreeMap<String, String> {
    let r = c
        .health_check(pb::HealthCheckRequest {})
        .await
        .expect("HealthCheck")
        .into_inner();
    assert!(r.healthy, "node unhealthy: {r:?}");
    r.metrics.into_iter().collect()
}

/// A numeric metric; panics if it is missing or not a number.
pub fn metric_u64(m: &BTreeMap<String, String>, key: &str) -> u64 {
    m.get(key)
        .unwrap_or_else(|| panic!("metric {key} missing from {m:?}"))
        .parse()
        .unwrap_or_else(|e| panic!("metric {key} is not a number: {e}; {m:?}"))
}

/// Every stored version a read reports. The node may leave `versions` empty
/// when the key has exactly one live version (it is then fully described by
/// `value`, `vector_clock` and `timestamp`); that version is rebuilt here, so
/// tests see the same list either way.
pub fn read_versions(r: &pb::ReadResponse) -> Vec<pb::KeyValueEntry> {
    if !r.versions.is_empty() || !r.success {
        return r.versions.clone();
    }
    vec![pb::KeyValueEntry {
        tenant_id: String::new(),
        key: String::new(),
        value: r.value.clone(),
        vector_clock: r.vector_clock.clone(),
        timestamp: r.timestamp,
        is_tombstone: false,
    }]
}

pub const INVALID_REQUEST: i32 = pb::ErrorCode::InvalidRequest as i32;
pub const KEY_NOT_FOUND: i32 = pb::ErrorCode::KeyNotFound as i32;
pub const MEMORY_PRESSURE: i32 = pb::ErrorCode::MemoryPressure as i32;
