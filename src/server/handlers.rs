//! The StorageNodeService methods: decode, validate, route, answer.
//!
//! Owns the contract's request semantics at the edge: which shard a request
//! goes to (by ring token), which errors travel in the response body
//! (`success = false` + `error_code`, gRPC status 0) and which are transport
//! statuses (bad protobuf: INVALID_ARGUMENT; methods not built yet:
//! UNIMPLEMENTED). Decoding happens once, on the core that received the
//! request; the owning core gets typed [`ShardOp`]s.

use super::context::CoreContext;
use super::convert::{self, Invalid};
use super::grpc::{encode_frame, Code, Frame, Status, PREFIX_BYTES};
use super::read_answer;
use crate::engine::{PutClock, ShardOp, ShardReply, ShardStats};
use crate::model::{owner_shard, KeyRef, PutOrigin};
use crate::proto;
use bytes::Bytes;
use prost::Message;
use std::collections::HashMap;

/// Method paths are `/storage.StorageNodeService/<Method>`.
pub(crate) const SERVICE_PREFIX: &str = "/storage.StorageNodeService/";

/// Handles one unary call; `body` is the request message without its prefix.
/// Answers the framed response message, or a gRPC status.
pub(crate) async fn dispatch(
    core: &CoreContext,
    method: &str,
    body: Bytes,
) -> Result<Frame, Status> {
    match method {
        "Write" => Ok(encode_frame(&write(core, decode(body)?).await).into()),
        "Read" => fit_answer(core, read(core, decode(body)?).await),
        "Delete" => Ok(encode_frame(&delete(core, decode(body)?).await).into()),
        "Repair" => Ok(encode_frame(&repair(core, decode(body)?).await).into()),
        "HealthCheck" => {
            let _: proto::HealthCheckRequest = decode(body)?;
            Ok(encode_frame(&health(core).await).into())
        }
        "ReplicateData" | "StreamKeys" | "GetKeyRange" | "DrainNode" | "StartStreaming" | "StopStreaming"
        | "GetStreamStatus" | "NotifyStreamingComplete" => Err(Status::new(
            Code::Unimplemented,
            format!("{method} is not implemented on this node yet: data migration and streaming are planned"),
        )),
        other => Err(Status::new(Code::Unimplemented, format!("unknown method {other:?} of storage.StorageNodeService"))),
    }
}

/// A Read answer within `limits.message_bytes_max`, or RESOURCE_EXHAUSTED.
/// Only a key pushed past its per-key bounds by Repair can answer more:
/// client writes are refused before a Read answer could grow this big.
fn fit_answer(core: &CoreContext, frame: Frame) -> Result<Frame, Status> {
    let max = core.config.limits.message_bytes_max;
    let len = frame.len().saturating_sub(PREFIX_BYTES);
    if len > max {
        return Err(Status::new(
            Code::ResourceExhausted,
            format!(
                "the Read answer takes {len} bytes, over limits.message_bytes_max ({max}); \
                 resolve the key's siblings by writing with a clock that descends them"
            ),
        ));
    }
    Ok(frame)
}

fn decode<M: Message + Default>(body: Bytes) -> Result<M, Status> {
    M::decode(body).map_err(|e| {
        Status::new(
            Code::InvalidArgument,
            format!("request is not a valid protobuf message: {e}"),
        )
    })
}

fn owner(core: &CoreContext, key: &KeyRef) -> usize {
    owner_shard(key.token, core.router.shards())
}

/// Outcome of a put as the fields every put-like response shares.
struct PutAnswer {
    success: bool,
    clock: Option<proto::VectorClock>,
    error_message: String,
    error_code: proto::ErrorCode,
}

impl PutAnswer {
    fn invalid(e: Invalid) -> Self {
        Self {
            success: false,
            clock: None,
            error_message: e.0,
            error_code: proto::ErrorCode::InvalidRequest,
        }
    }
}

async fn put(
    core: &CoreContext,
    key: Result<KeyRef, Invalid>,
    value: Option<Bytes>,
    clock: PutClock,
    origin: PutOrigin,
) -> PutAnswer {
    let key = match key {
        Ok(k) => k,
        Err(e) => return PutAnswer::invalid(e),
    };
    let shard = owner(core, &key);
    match core
        .router
        .call(
            shard,
            ShardOp::Put {
                key,
                value,
                clock,
                origin,
            },
        )
        .await
    {
        ShardReply::Put { clock, .. } => PutAnswer {
            success: true,
            clock: Some(convert::clock_to_wire(&clock)),
            error_message: String::new(),
            error_code: proto::ErrorCode::Unknown,
        },
        ShardReply::Failed(e) => PutAnswer {
            success: false,
            clock: None,
            error_message: e.to_string(),
            error_code: convert::error_code(&e),
        },
        other => PutAnswer {
            success: false,
            clock: None,
            error_message: format!("internal error: unexpected shard reply {other:?}"),
            error_code: proto::ErrorCode::InternalError,
        },
    }
}

/// Validates a Write/Delete clock: empty means blind.
fn put_clock(clock: Option<proto::VectorClock>, core: &CoreContext) -> Result<PutClock, Invalid> {
    let clock = convert::clock_from_wire(clock, &core.config.limits)?;
    Ok(if clock.is_empty() {
        PutClock::Blind
    } else {
        PutClock::Given(clock)
    })
}

async fn write(core: &CoreContext, req: proto::WriteRequest) -> proto::WriteResponse {
    let limits = &core.config.limits;
    let checked = convert::key_ref(&req.tenant_id, &req.key, limits)
        .and_then(|k| convert::check_value(&req.value, limits).map(|_| k))
        .and_then(|k| put_clock(req.vector_clock, core).map(|c| (k, c)));
    let a = match checked {
        Ok((key, clock)) => put(core, Ok(key), Some(req.value), clock, PutOrigin::Client).await,
        Err(e) => PutAnswer::invalid(e),
    };
    proto::WriteResponse {
        success: a.success,
        updated_vector_clock: a.clock,
        error_message: a.error_message,
        error_code: a.error_code as i32,
    }
}

async fn delete(core: &CoreContext, req: proto::DeleteRequest) -> proto::DeleteResponse {
    let checked = convert::key_ref(&req.tenant_id, &req.key, &core.config.limits)
        .and_then(|k| put_clock(req.vector_clock, core).map(|c| (k, c)));
    let a = match checked {
        Ok((key, clock)) => put(core, Ok(key), None, clock, PutOrigin::Client).await,
        Err(e) => PutAnswer::invalid(e),
    };
    proto::DeleteResponse {
        success: a.success,
        updated_vector_clock: a.clock,
        error_message: a.error_message,
        error_code: a.error_code as i32,
    }
}

async fn repair(core: &CoreContext, req: proto::RepairRequest) -> proto::RepairResponse {
    let limits = &core.config.limits;
    let checked = convert::key_ref(&req.tenant_id, &req.key, limits)
        .and_then(|k| convert::check_value(&req.value, limits).map(|_| k))
        .and_then(|k| convert::clock_from_wire(req.vector_clock, limits).map(|c| (k, c)))
        .and_then(|(k, c)| {
            if c.is_empty() {
                Err(Invalid(
                    "vector_clock: a repair must carry the version's clock (it is never stamped)"
                        .into(),
                ))
            } else {
                Ok((k, c))
            }
        });
    let a = match checked {
        Ok((key, clock)) => {
            put(
                core,
                Ok(key),
                Some(req.value),
                PutClock::Given(clock),
                PutOrigin::Replica,
            )
            .await
        }
        Err(e) => PutAnswer::invalid(e),
    };
    proto::RepairResponse {
        success: a.success,
        error_message: a.error_message,
        error_code: a.error_code as i32,
    }
}

/// The framed Read answer: the key's versions encoded straight from the
/// shard's reply (see `read_answer`), or an error in the body.
async fn read(core: &CoreContext, req: proto::ReadRequest) -> Frame {
    let fail = |code: proto::ErrorCode, message: String| -> Frame {
        encode_frame(&proto::ReadResponse {
            success: false,
            error_message: message,
            error_code: code as i32,
            ..Default::default()
        })
        .into()
    };
    let key = match convert::key_ref(&req.tenant_id, &req.key, &core.config.limits) {
        Ok(k) => k,
        Err(e) => return fail(proto::ErrorCode::InvalidRequest, e.0),
    };
    let shard = owner(core, &key);
    let versions = match core.router.call(shard, ShardOp::Get { key }).await {
        ShardReply::Get { versions } => versions,
        ShardReply::Failed(e) => return fail(convert::error_code(&e), e.to_string()),
        other => {
            return fail(
                proto::ErrorCode::InternalError,
                format!("internal error: unexpected shard reply {other:?}"),
            )
        }
    };
    read_answer::encode(&req.tenant_id, &req.key, &versions)
}

async fn health(core: &CoreContext) -> proto::HealthResponse {
    let mut metrics = HashMap::new();
    metrics.insert("node_id".to_string(), core.config.node.node_id.clone());
    metrics.insert("shards".to_string(), core.router.shards().to_string());
    metrics.insert(
        "uptime_s".to_string(),
        core.started.elapsed().as_secs().to_string(),
    );
    metrics.insert(
        "served_by_shard".to_string(),
        core.router.local_shard().id().to_string(),
    );
    crate::cluster::insert_health_metrics(&core.members, &mut metrics);
    match core.router.all_stats().await {
        Ok(stats) => {
            let total_keys: u64 = stats.iter().map(|s| s.keys).sum();
            metrics.insert("keys".to_string(), total_keys.to_string());
            for s in stats {
                let p = format!("shard.{}.", s.shard);
                metrics.insert(format!("{p}keys"), s.keys.to_string());
                metrics.insert(format!("{p}memtable_bytes"), s.memtable_bytes.to_string());
                metrics.insert(format!("{p}requests_local"), s.requests_local.to_string());
                metrics.insert(
                    format!("{p}requests_forwarded_out"),
                    s.requests_forwarded_out.to_string(),
                );
                metrics.insert(
                    format!("{p}requests_forwarded_in"),
                    s.requests_forwarded_in.to_string(),
                );
                metrics.insert(
                    format!("{p}puts_refused_by_bounds"),
                    s.puts_refused_by_bounds.to_string(),
                );
                metrics.insert(
                    format!("{p}replica_puts_past_bounds"),
                    s.replica_puts_past_bounds.to_string(),
                );
                metrics.insert(
                    format!("{p}immutable_memtables"),
                    s.immutable_memtables.to_string(),
                );
                metrics.insert(format!("{p}immutable_bytes"), s.immutable_bytes.to_string());
                metrics.insert(format!("{p}sstables"), s.sstables.to_string());
                metrics.insert(format!("{p}sstable_bytes"), s.sstable_bytes.to_string());
                metrics.insert(
                    format!("{p}sstable_memory_bytes"),
                    s.sstable_memory_bytes.to_string(),
                );
                metrics.insert(format!("{p}flushes"), s.flushes.to_string());
                metrics.insert(format!("{p}flush_bytes"), s.flush_bytes.to_string());
                insert_engine_figures(&mut metrics, &p, &s);
                let w = &s.wal;
                metrics.insert(format!("{p}wal_bytes_written"), w.bytes_written.to_string());
                metrics.insert(format!("{p}wal_fsyncs"), w.fsyncs.to_string());
                metrics.insert(format!("{p}wal_records"), w.records.to_string());
                let per_fsync = if w.fsyncs > 0 {
                    w.records as f64 / w.fsyncs as f64
                } else {
                    0.0
                };
                metrics.insert(
                    format!("{p}wal_writes_per_fsync"),
                    format!("{per_fsync:.2}"),
                );
                let avg = w.fsync_micros_total.checked_div(w.fsyncs).unwrap_or(0);
                metrics.insert(format!("{p}wal_fsync_avg_us"), avg.to_string());
                metrics.insert(
                    format!("{p}wal_fsync_max_us"),
                    w.fsync_micros_max.to_string(),
                );
                metrics.insert(
                    format!("{p}wal_replayed_records"),
                    w.replayed_records.to_string(),
                );
                metrics.insert(
                    format!("{p}wal_replayed_bytes"),
                    w.replayed_bytes.to_string(),
                );
                metrics.insert(format!("{p}wal_replay_us"), w.replay_micros.to_string());
            }
            proto::HealthResponse {
                healthy: true,
                status: "SERVING".into(),
                metrics,
            }
        }
        Err(e) => {
            metrics.insert("error".to_string(), e.to_string());
            proto::HealthResponse {
                healthy: false,
                status: "DEGRADED".into(),
                metrics,
            }
        }
    }
}

/// Levels, compaction, flow control and cache figures of one shard, under
/// the prefix `p` (`shard.N.`).
fn insert_engine_figures(metrics: &mut HashMap<String, String>, p: &str, s: &ShardStats) {
    let mut put = |k: &str, v: String| {
        metrics.insert(format!("{p}{k}"), v);
    };
    for (i, l) in s.levels.iter().enumerate() {
        put(&format!("level.{i}.tables"), l.tables.to_string());
        put(&format!("level.{i}.bytes"), l.bytes.to_string());
        put(
            &format!("level.{i}.target_bytes"),
            l.target_bytes.to_string(),
        );
    }
    let c = &s.compaction;
    put("compactions", c.compactions.to_string());
    put("compaction_trivial_moves", c.trivial_moves.to_string());
    put("compaction_bytes_read", c.bytes_read.to_string());
    put("compaction_bytes_written", c.bytes_written.to_string());
    put("compaction_pending_bytes", c.pending_bytes.to_string());
    put("compaction_us", c.micros.to_string());
    put("compaction_throttled_us", c.throttled_micros.to_string());
    put("compaction_keys_purged", c.keys_purged.to_string());
    put("compaction_failures", c.failures.to_string());
    put("compaction_running", c.running.to_string());
    put("compaction_cpu_us", c.cpu_micros.to_string());
    put("flush_cpu_us", c.flush_cpu_micros.to_string());
    put("executor_cpu_us", c.executor_cpu_micros.to_string());
    let f = &s.flow;
    put("l0_slowdown_tables", f.l0_slowdown_tables.to_string());
    put("l0_stop_tables", f.l0_stop_tables.to_string());
    put(
        "immutable_memtables_max",
        f.immutable_memtables_max.to_string(),
    );
    put("write_slowdowns", f.write_slowdowns.to_string());
    put("write_slowdown_us", f.write_slowdown_micros.to_string());
    put("write_stalls", f.write_stalls.to_string());
    put("write_stall_us", f.write_stall_micros.to_string());
    let k = &s.cache;
    put("cache_capacity_bytes", k.capacity_bytes.to_string());
    put("cache_bytes", k.bytes.to_string());
    put("cache_entries", k.entries.to_string());
    put("cache_hits", k.hits.to_string());
    put("cache_misses", k.misses.to_string());
    put("cache_evictions", k.evictions.to_string());
    let lookups = k.hits + k.misses;
    let ratio = if lookups > 0 {
        k.hits as f64 / lookups as f64
    } else {
        0.0
    };
    put("cache_hit_ratio", format!("{ratio:.4}"));
}
