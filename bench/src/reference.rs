//! The in-memory reference server: the `storage.StorageNodeService` contract
//! on plain tonic + tokio over a sharded `RwLock<HashMap>`, i.e. what a user
//! would reasonably build without a custom runtime. It implements Write
//! (blind-write stamping and clock dominance), Read, Delete (tombstones),
//! Repair and HealthCheck; every other RPC answers UNIMPLEMENTED through the
//! generated default stubs. It is the baseline the node is compared against.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tonic::{Request, Response, Status};

use crate::clock::{self, Clock};
use crate::proto::storage_node_service_server::{StorageNodeService, StorageNodeServiceServer};
use crate::proto::{
    DeleteRequest, DeleteResponse, ErrorCode, HealthCheckRequest, HealthResponse, KeyValueEntry,
    ReadRequest, ReadResponse, RepairRequest, RepairResponse, VectorClock, WriteRequest,
    WriteResponse,
};

/// Number of independently locked map shards.
const SHARDS: usize = 64;

/// Largest accepted request message (values up to a few MiB).
const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// One stored version of a key.
#[derive(Debug, Clone)]
struct Version {
    value: Bytes,
    clock: Clock,
    timestamp_ms: i64,
    tombstone: bool,
}

/// (tenant_id, key): kept as a pair so no two pairs can collide.
type Key = (String, String);
type Shard = HashMap<Key, Vec<Version>>;

/// The sharded in-memory store plus this node's id for stamping blind writes.
#[derive(Debug)]
pub struct ReferenceNode {
    node_id: String,
    hasher: RandomState,
    shards: Vec<RwLock<Shard>>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn poisoned() -> Status {
    Status::internal("reference store lock poisoned")
}

fn merged_clock(versions: &[Version]) -> Clock {
    Clock::merge_all(versions.iter().map(|v| &v.clock))
}

/// What a write-like request (Write, Repair, Delete) wants stored.
struct Incoming {
    key: Key,
    value: Bytes,
    clock: Clock,
    stamp_if_blind: bool,
    tombstone: bool,
}

impl ReferenceNode {
    /// An empty store whose blind writes are stamped with `node_id`.
    pub fn new(node_id: impl Into<String>) -> Self {
        ReferenceNode {
            node_id: node_id.into(),
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| RwLock::new(Shard::new())).collect(),
        }
    }

    fn shard_of(&self, key: &Key) -> &RwLock<Shard> {
        let h = self.hasher.hash_one(key);
        &self.shards[(h % SHARDS as u64) as usize]
    }

    fn write_shard(&self, key: &Key) -> Result<RwLockWriteGuard<'_, Shard>, Status> {
        self.shard_of(key).write().map_err(|_| poisoned())
    }

    fn read_shard(&self, key: &Key) -> Result<RwLockReadGuard<'_, Shard>, Status> {
        self.shard_of(key).read().map_err(|_| poisoned())
    }

    /// Applies one version under the contract's clock rules and answers the
    /// merged clock of the versions kept.
    fn apply(&self, inc: Incoming) -> Result<Clock, Status> {
        let mut shard = self.write_shard(&inc.key)?;
        let versions = shard.entry(inc.key).or_default();
        let mut clock = inc.clock;
        if inc.stamp_if_blind && clock.is_empty() {
            // Blind write: descend everything stored, then tick our entry.
            clock = merged_clock(versions);
            clock.increment(&self.node_id);
        }
        // A stored version that descends the incoming one makes it stale (or
        // a repeat): nothing changes, the current clock is answered.
        if !versions.iter().any(|v| v.clock.descends(&clock)) {
            versions.retain(|v| !clock.descends(&v.clock));
            versions.push(Version {
                value: inc.value,
                clock,
                timestamp_ms: now_ms(),
                tombstone: inc.tombstone,
            });
        }
        Ok(merged_clock(versions))
    }

    /// Number of stored keys (tombstoned ones included).
    fn key_count(&self) -> Result<usize, Status> {
        let mut n = 0;
        for s in &self.shards {
            n += s.read().map_err(|_| poisoned())?.len();
        }
        Ok(n)
    }
}

fn invalid(what: &str) -> (String, i32) {
    (
        format!("invalid request: {what}"),
        ErrorCode::InvalidRequest as i32,
    )
}

fn check_key(tenant: &str, key: &str) -> Result<(), (String, i32)> {
    if key.is_empty() {
        return Err(invalid("empty key"));
    }
    if tenant.is_empty() {
        return Err(invalid("empty tenant_id"));
    }
    Ok(())
}

/// [`check_key`], then the request's clock; a clock the model cannot hold
/// (an empty node id, a negative counter) is an invalid request.
fn check_write(tenant: &str, key: &str, vc: Option<&VectorClock>) -> Result<Clock, (String, i32)> {
    check_key(tenant, key)?;
    clock::from_proto(vc).map_err(|e| invalid(&e.to_string()))
}

fn entry_of(key: &Key, v: &Version) -> KeyValueEntry {
    KeyValueEntry {
        tenant_id: key.0.clone(),
        key: key.1.clone(),
        value: v.value.clone(),
        vector_clock: Some(clock::to_proto(&v.clock)),
        timestamp: v.timestamp_ms,
        is_tombstone: v.tombstone,
    }
}

#[tonic::async_trait]
impl StorageNodeService for ReferenceNode {
    async fn write(&self, req: Request<WriteRequest>) -> Result<Response<WriteResponse>, Status> {
        let r = req.into_inner();
        let clock = match check_write(&r.tenant_id, &r.key, r.vector_clock.as_ref()) {
            Ok(clock) => clock,
            Err((msg, code)) => {
                return Ok(Response::new(WriteResponse {
                    success: false,
                    updated_vector_clock: None,
                    error_message: msg,
                    error_code: code,
                }));
            }
        };
        let clock = self.apply(Incoming {
            key: (r.tenant_id, r.key),
            value: r.value,
            clock,
            stamp_if_blind: true,
            tombstone: false,
        })?;
        Ok(Response::new(WriteResponse {
            success: true,
            updated_vector_clock: Some(clock::to_proto(&clock)),
            error_message: String::new(),
            error_code: ErrorCode::Unknown as i32,
        }))
    }

    async fn read(&self, req: Request<ReadRequest>) -> Result<Response<ReadResponse>, Status> {
        let r = req.into_inner();
        let not_found = |clock: Option<VectorClock>, versions: Vec<KeyValueEntry>| ReadResponse {
            success: false,
            value: Bytes::new(),
            vector_clock: clock,
            error_message: "key not found".into(),
            error_code: ErrorCode::KeyNotFound as i32,
            versions,
            timestamp: 0,
        };
        if let Err((msg, code)) = check_key(&r.tenant_id, &r.key) {
            return Ok(Response::new(ReadResponse {
                error_message: msg,
                error_code: code,
                ..not_found(None, Vec::new())
            }));
        }
        let key: Key = (r.tenant_id, r.key);
        let shard = self.read_shard(&key)?;
        let versions = match shard.get(&key) {
            Some(v) if !v.is_empty() => v,
            _ => return Ok(Response::new(not_found(None, Vec::new()))),
        };
        let merged = clock::to_proto(&merged_clock(versions));
        let entries: Vec<KeyValueEntry> = versions.iter().map(|v| entry_of(&key, v)).collect();
        // The live sibling with the latest timestamp; ties broken by clock,
        // then by value, so every read answers the same one.
        let winner = versions.iter().filter(|v| !v.tombstone).max_by(|a, b| {
            a.timestamp_ms
                .cmp(&b.timestamp_ms)
                .then_with(|| a.clock.entries().cmp(b.clock.entries()))
                .then_with(|| a.value.cmp(&b.value))
        });
        let resp = match winner {
            None => not_found(Some(merged), entries),
            Some(w) => ReadResponse {
                success: true,
                value: w.value.clone(),
                vector_clock: Some(merged),
                error_message: String::new(),
                error_code: ErrorCode::Unknown as i32,
                versions: entries,
                timestamp: w.timestamp_ms,
            },
        };
        Ok(Response::new(resp))
    }

    async fn repair(
        &self,
        req: Request<RepairRequest>,
    ) -> Result<Response<RepairResponse>, Status> {
        let r = req.into_inner();
        let clock = match check_write(&r.tenant_id, &r.key, r.vector_clock.as_ref()) {
            Ok(clock) => clock,
            Err((msg, code)) => {
                return Ok(Response::new(RepairResponse {
                    success: false,
                    error_message: msg,
                    error_code: code,
                }));
            }
        };
        self.apply(Incoming {
            key: (r.tenant_id, r.key),
            value: r.value,
            clock,
            stamp_if_blind: false,
            tombstone: false,
        })?;
        Ok(Response::new(RepairResponse {
            success: true,
            error_message: String::new(),
            error_code: ErrorCode::Unknown as i32,
        }))
    }

    async fn delete(
        &self,
        req: Request<DeleteRequest>,
    ) -> Result<Response<DeleteResponse>, Status> {
        let r = req.into_inner();
        let clock = match check_write(&r.tenant_id, &r.key, r.vector_clock.as_ref()) {
            Ok(clock) => clock,
            Err((msg, code)) => {
                return Ok(Response::new(DeleteResponse {
                    success: false,
                    updated_vector_clock: None,
                    error_message: msg,
                    error_code: code,
                }));
            }
        };
        let clock = self.apply(Incoming {
            key: (r.tenant_id, r.key),
            value: Bytes::new(),
            clock,
            stamp_if_blind: true,
            tombstone: true,
        })?;
        Ok(Response::new(DeleteResponse {
            success: true,
            updated_vector_clock: Some(clock::to_proto(&clock)),
            error_message: String::new(),
            error_code: ErrorCode::Unknown as i32,
        }))
    }

    async fn health_check(
        &self,
        _req: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthResponse>, Status> {
        let mut metrics = HashMap::new();
        metrics.insert("server".to_string(), "reference".to_string());
        metrics.insert("node_id".to_string(), self.node_id.clone());
        metrics.insert("keys".to_string(), self.key_count()?.to_string());
        Ok(Response::new(HealthResponse {
            healthy: true,
            status: "SERVING".into(),
            metrics,
        }))
    }
}

/// Serves the reference node on `listen` until the process is stopped.
pub async fn serve(
    listen: SocketAddr,
    node_id: String,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let svc = StorageNodeServiceServer::new(ReferenceNode::new(node_id))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(svc)
        .serve(listen)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::VectorClockEntry;

    fn vc(entries: &[(&str, i64)]) -> Option<VectorClock> {
        Some(VectorClock {
            entries: entries
                .iter()
                .map(|(id, ts)| VectorClockEntry {
                    coordinator_node_id: id.to_string(),
                    logical_timestamp: *ts,
                })
                .collect(),
        })
    }

    fn write(key: &str, value: &str, clock: Option<VectorClock>) -> Request<WriteRequest> {
        Request::new(WriteRequest {
            tenant_id: "t".into(),
            key: key.into(),
            value: Bytes::from(value.to_string()),
            vector_clock: clock,
            idempotency_key: String::new(),
        })
    }

    fn read(key: &str) -> Request<ReadRequest> {
        Request::new(ReadRequest {
            tenant_id: "t".into(),
            key: key.into(),
        })
    }

    #[tokio::test]
    async fn blind_writes_overwrite() {
        let n = ReferenceNode::new("ref");
        n.write(write("k", "a", None)).await.expect("write");
        let w = n
            .write(write("k", "b", None))
            .await
            .expect("write")
            .into_inner();
        assert!(w.success);
        assert_eq!(w.updated_vector_clock, vc(&[("ref", 2)]));
        let r = n.read(read("k")).await.expect("read").into_inner();
        assert!(r.success);
        assert_eq!(&r.value[..], b"b");
        assert_eq!(r.versions.len(), 1);
    }

    #[tokio::test]
    async fn siblings_stale_and_resolution() {
        let n = ReferenceNode::new("ref");
        n.write(write("k", "a", vc(&[("c1", 1)]))).await.expect("w");
        n.write(write("k", "b", vc(&[("c2", 1)]))).await.expect("w");
        let r = n.read(read("k")).await.expect("r").into_inner();
        assert_eq!(r.versions.len(), 2);
        assert_eq!(r.vector_clock, vc(&[("c1", 1), ("c2", 1)]));
        // Stale: changes nothing, still succeeds with the current clock.
        let w = n
            .write(write("k", "old", vc(&[("c1", 1)])))
            .await
            .expect("w")
            .into_inner();
        assert!(w.success);
        assert_eq!(w.updated_vector_clock, vc(&[("c1", 1), ("c2", 1)]));
        // Writing back with the merged clock resolves the conflict.
        n.write(write("k", "c", vc(&[("c1", 2), ("c2", 1)])))
            .await
            .expect("w");
        let r = n.read(read("k")).await.expect("r").into_inner();
        assert_eq!(r.versions.len(), 1);
        assert_eq!(&r.value[..], b"c");
    }

    #[tokio::test]
    async fn delete_and_missing_keys() {
        let n = ReferenceNode::new("ref");
        let r = n.read(read("nope")).await.expect("r").into_inner();
        assert!(!r.success);
        assert_eq!(r.error_code, ErrorCode::KeyNotFound as i32);
        n.write(write("k", "a", None)).await.expect("w");
        let d = n
            .delete(Request::new(DeleteRequest {
                tenant_id: "t".into(),
                key: "k".into(),
                vector_clock: None,
                idempotency_key: String::new(),
            }))
            .await
            .expect("d")
            .into_inner();
        assert!(d.success);
        let r = n.read(read("k")).await.expect("r").into_inner();
        assert!(!r.success);
        assert_eq!(r.error_code, ErrorCode::KeyNotFound as i32);
        assert_eq!(r.vector_clock, vc(&[("ref", 2)]));
    }

    #[tokio::test]
    async fn a_clock_the_model_cannot_hold_is_an_invalid_request() {
        let n = ReferenceNode::new("ref");
        let w = n
            .write(write("k", "a", vc(&[("c1", -1)])))
            .await
            .expect("w")
            .into_inner();
        assert!(!w.success);
        assert_eq!(w.error_code, ErrorCode::InvalidRequest as i32);
        let r = n.read(read("k")).await.expect("r").into_inner();
        assert_eq!(r.error_code, ErrorCode::KeyNotFound as i32);
    }

    #[tokio::test]
    async fn tenants_do_not_collide() {
        let n = ReferenceNode::new("ref");
        let mut a = write("b:c", "x", None);
        a.get_mut().tenant_id = "a".into();
        let mut b = write("c", "y", None);
        b.get_mut().tenant_id = "a:b".into();
        n.write(a).await.expect("w");
        n.write(b).await.expect("w");
        let mut r = read("b:c");
        r.get_mut().tenant_id = "a".into();
        assert_eq!(&n.read(r).await.expect("r").into_inner().value[..], b"x");
    }
}
