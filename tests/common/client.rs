//! The tonic client (one HTTP/2 connection each) and the request helpers the
//! tests share: Write, Read, Delete and Repair that expect gRPC OK,
//! HealthCheck metrics, the versions a read reports and the error codes the
//! tests compare against.

use std::collections::BTreeMap;
use tonic::transport::Channel;

use super::pb;

pub use pb::storage_admin_service_client::StorageAdminServiceClient;
pub use pb::storage_node_service_client::StorageNodeServiceClient;
pub use pb::storage_peer_service_client::StoragePeerServiceClient;

/// A client over one HTTP/2 connection.
pub type Client = StorageNodeServiceClient<Channel>;
/// A client of the admin service (RangeDigest, Cleanup, Undrain).
pub type AdminClient = StorageAdminServiceClient<Channel>;
/// A client of the peer service (ApplyVersions).
pub type PeerClient = StoragePeerServiceClient<Channel>;

/// A storage service client on `channel`, without message size limits of
/// its own (the node's limits are what the tests exercise).
pub fn client_on(channel: Channel) -> Client {
    StorageNodeServiceClient::new(channel)
        .max_encoding_message_size(usize::MAX)
        .max_decoding_message_size(usize::MAX)
}

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

/// Writes every `(key, value)` blind, `parallel` requests at a time over
/// `c`'s connection; expects gRPC OK and answers the responses in `items`'
/// order.
pub async fn write_many(
    c: &Client,
    tenant: &str,
    items: &[(String, Vec<u8>)],
    parallel: usize,
) -> Vec<pb::WriteResponse> {
    let mut tasks = tokio::task::JoinSet::new();
    let chunk = items.len().div_ceil(parallel.max(1)).max(1);
    for (n, part) in items.chunks(chunk).enumerate() {
        let mut c = c.clone();
        let tenant = tenant.to_string();
        let part = part.to_vec();
        tasks.spawn(async move {
            let mut out = Vec::with_capacity(part.len());
            for (k, v) in &part {
                out.push(write(&mut c, &tenant, k, v, None).await);
            }
            (n, out)
        });
    }
    let mut parts: Vec<_> = tasks.join_all().await;
    parts.sort_by_key(|(n, _)| *n);
    parts.into_iter().flat_map(|(_, out)| out).collect()
}

/// Every message of a StreamKeys call in arrival order, or the status that
/// ended it (the status may come before the first message or after some).
pub async fn stream_keys(
    c: &mut Client,
    req: pb::StreamKeysRequest,
) -> Result<Vec<pb::KeyValueEntry>, tonic::Status> {
    let mut stream = c.stream_keys(req).await?.into_inner();
    let mut out = Vec::new();
    while let Some(m) = stream.message().await? {
        out.push(m);
    }
    Ok(out)
}

pub fn stream_keys_req(tenant: &str, start: &str, end: &str, batch: i32) -> pb::StreamKeysRequest {
    pb::StreamKeysRequest {
        tenant_id: tenant.into(),
        key_range_start: start.into(),
        key_range_end: end.into(),
        batch_size: batch,
    }
}

pub fn key_range_req(tenant: &str, start: &str, end: &str, max_keys: i32) -> pb::KeyRangeRequest {
    pb::KeyRangeRequest {
        tenant_id: tenant.into(),
        key_range_start: start.into(),
        key_range_end: end.into(),
        max_keys,
    }
}

/// The token range `(start, end]` (wrapping; `start == end`: the whole ring).
pub fn token_range(start: u64, end: u64) -> pb::StreamKeyRange {
    pb::StreamKeyRange {
        start_hash: start,
        end_hash: end,
    }
}

/// RangeDigest of `ranges`; expects gRPC OK and `success`.
pub async fn range_digest(a: &mut AdminClient, ranges: &[(u64, u64)]) -> pb::RangeDigestResponse {
    let r = a
        .range_digest(pb::RangeDigestRequest {
            key_ranges: ranges.iter().map(|&(s, e)| token_range(s, e)).collect(),
        })
        .await
        .unwrap_or_else(|s| panic!("RangeDigest {ranges:?}: gRPC status {s:?}"))
        .into_inner();
    assert!(r.success, "RangeDigest {ranges:?}: {r:?}");
    r
}

pub const INVALID_REQUEST: i32 = pb::ErrorCode::InvalidRequest as i32;
pub const KEY_NOT_FOUND: i32 = pb::ErrorCode::KeyNotFound as i32;
pub const MEMORY_PRESSURE: i32 = pb::ErrorCode::MemoryPressure as i32;
pub const NODE_DRAINING: i32 = pb::ErrorCode::NodeDraining as i32;
