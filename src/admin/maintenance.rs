//! The node-wide commands: status, flush, compact, drain, undrain, streams,
//! digest, cleanup.
//!
//! Owns turning each answer into a [`Report`]. Invariants: an answer with
//! `success = false` is a failed report naming the node, the error code
//! and the message; nothing here retries a call.

use super::call::{self, NodeCalls};
use super::error::AdminError;
use super::output::{bytes, table, Report};
use super::ranges::{show_range, RangeArg};
use super::status::status_report;
use crate::proto;
use serde_json::{json, Value};

pub async fn status(calls: &NodeCalls) -> Result<Report, AdminError> {
    let h: proto::HealthResponse = calls
        .unary(call::HEALTH_CHECK, &proto::HealthCheckRequest {})
        .await?;
    let report = status_report(calls.node(), h.healthy, &h.status, &h.metrics);
    if h.healthy {
        Ok(report)
    } else {
        let cause = format!(
            "{} is not healthy ({}): {}",
            calls.node(),
            h.status,
            h.metrics
                .get("error")
                .map_or("no reason given", String::as_str)
        );
        Ok(Report::failed(report.text, report.json, cause))
    }
}

fn tables_rows(shards: &[&proto::ShardTables]) -> Vec<Vec<String>> {
    shards
        .iter()
        .map(|t| {
            vec![
                t.shard.to_string(),
                bytes(t.memtable_bytes),
                t.immutable_memtables.to_string(),
                t.sstables.to_string(),
                bytes(t.sstable_bytes),
                t.level_tables
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join("/"),
            ]
        })
        .collect()
}

const TABLES_HEADERS: [&str; 6] = [
    "shard",
    "memtable",
    "immutable",
    "sstables",
    "sst_bytes",
    "levels (tables L0/L1/..)",
];

fn tables_json(t: &proto::ShardTables) -> Value {
    json!({
        "shard": t.shard,
        "memtable_bytes": t.memtable_bytes,
        "immutable_memtables": t.immutable_memtables,
        "sstables": t.sstables,
        "sstable_bytes": t.sstable_bytes,
        "level_tables": t.level_tables,
    })
}

pub async fn flush(calls: &NodeCalls) -> Result<Report, AdminError> {
    let r: proto::FlushResponse = calls.unary(call::FLUSH, &proto::FlushRequest {}).await?;
    let shards: Vec<&proto::ShardTables> = r.shards.iter().collect();
    let mut text = if r.success {
        format!(
            "{}: every memtable is flushed into SSTables\n",
            calls.node()
        )
    } else {
        String::new()
    };
    text.push_str(&table(&TABLES_HEADERS, &tables_rows(&shards)));
    let json = json!({
        "ok": r.success,
        "node": calls.node(),
        "shards": r.shards.iter().map(tables_json).collect::<Vec<_>>(),
    });
    Ok(if r.success {
        Report::ok(text, json)
    } else {
        Report::failed(text, json, calls.body_error(r.error_code, &r.error_message))
    })
}

pub async fn compact(calls: &NodeCalls, level: Option<u32>) -> Result<Report, AdminError> {
    let r: proto::CompactResponse = calls
        .unary(call::COMPACT, &proto::CompactRequest { level })
        .await?;
    let merged: u64 = r.shards.iter().map(|s| s.merges + s.trivial_moves).sum();
    let what = level.map_or("every level".to_string(), |l| format!("level {l}"));
    let mut text = match (r.success, merged) {
        (false, _) => String::new(),
        (true, 0) => format!("{}: {what}: nothing needed compacting\n", calls.node()),
        (true, _) => format!("{}: {what} compacted\n", calls.node()),
    };
    let rows: Vec<Vec<String>> = r
        .shards
        .iter()
        .map(|s| {
            let levels = s.tables.as_ref().map_or("-".into(), |t| {
                t.level_tables
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join("/")
            });
            vec![
                s.shard.to_string(),
                s.merges.to_string(),
                s.trivial_moves.to_string(),
                bytes(s.bytes_read),
                bytes(s.bytes_written),
                s.keys_purged.to_string(),
                levels,
            ]
        })
        .collect();
    text.push_str(&table(
        &[
            "shard",
            "merges",
            "moves",
            "read",
            "written",
            "purged",
            "levels (tables L0/L1/..)",
        ],
        &rows,
    ));
    let json = json!({
        "ok": r.success,
        "node": calls.node(),
        "level": level,
        "nothing_to_do": r.success && merged == 0,
        "shards": r.shards.iter().map(|s| json!({
            "shard": s.shard,
            "merges": s.merges,
            "trivial_moves": s.trivial_moves,
            "bytes_read": s.bytes_read,
            "bytes_written": s.bytes_written,
            "keys_purged": s.keys_purged,
            "tables": s.tables.as_ref().map(tables_json),
        })).collect::<Vec<_>>(),
    });
    Ok(if r.success {
        Report::ok(text, json)
    } else {
        Report::failed(text, json, calls.body_error(r.error_code, &r.error_message))
    })
}

fn drain_report(calls: &NodeCalls, r: &proto::DrainResponse) -> Report {
    let text = format!("{}: {}\n", calls.node(), r.status);
    let json = json!({"ok": r.success, "node": calls.node(), "state": r.status});
    if r.success {
        Report::ok(text, json)
    } else {
        Report::failed(text, json, calls.body_error(r.error_code, &r.error_message))
    }
}

pub async fn drain(calls: &NodeCalls, wait_s: u32, no_wait: bool) -> Result<Report, AdminError> {
    let req = proto::DrainRequest {
        graceful: !no_wait,
        timeout_seconds: i32::try_from(wait_s).unwrap_or(i32::MAX),
    };
    let r: proto::DrainResponse = calls.unary(call::DRAIN, &req).await?;
    Ok(drain_report(calls, &r))
}

pub async fn undrain(calls: &NodeCalls) -> Result<Report, AdminError> {
    let r: proto::DrainResponse = calls
        .unary(call::UNDRAIN, &proto::UndrainRequest {})
        .await?;
    Ok(drain_report(calls, &r))
}

pub async fn streams(calls: &NodeCalls) -> Result<Report, AdminError> {
    let r: proto::ListStreamsResponse = calls
        .unary(call::LIST_STREAMS, &proto::ListStreamsRequest {})
        .await?;
    let ranges = |s: &proto::StreamInfo| -> Vec<String> {
        s.key_ranges
            .iter()
            .map(|k| show_range(k.start_hash, k.end_hash))
            .collect()
    };
    let mut text = format!("{}: {} streams\n", calls.node(), r.streams.len());
    if !r.streams.is_empty() {
        let rows: Vec<Vec<String>> = r
            .streams
            .iter()
            .map(|s| {
                let shown = ranges(s);
                let first = shown.first().cloned().unwrap_or_default();
                vec![
                    format!("{}->{}", s.source_node_id, s.target_node_id),
                    s.role.clone(),
                    s.target_addr.clone(),
                    s.state.clone(),
                    format!("{}/{}", s.shards_completed, s.shards),
                    s.keys_copied.to_string(),
                    bytes(u64::try_from(s.bytes_copied).unwrap_or(0)),
                    s.keys_streamed.to_string(),
                    if shown.len() > 1 {
                        format!("{first} (+{} more)", shown.len() - 1)
                    } else {
                        first
                    },
                ]
            })
            .collect();
        text.push_str(&table(
            &[
                "stream",
                "role",
                "target",
                "state",
                "shards_done",
                "keys_copied",
                "copied",
                "keys_streamed",
                "ranges",
            ],
            &rows,
        ));
    }
    let json = json!({
        "ok": true,
        "node": calls.node(),
        "streams": r.streams.iter().map(|s| json!({
            "source_node_id": s.source_node_id,
            "target_node_id": s.target_node_id,
            "target_addr": s.target_addr,
            "role": s.role,
            "ranges": ranges(s),
            "state": s.state,
            "keys_copied": s.keys_copied,
            "bytes_copied": s.bytes_copied,
            "keys_streamed": s.keys_streamed,
            "bytes_streamed": s.bytes_streamed,
            "shards_completed": s.shards_completed,
            "shards": s.shards,
            "passes": s.passes,
            "backlog_bytes": s.backlog_bytes,
            "started_unix_ms": s.started_unix_ms,
        })).collect::<Vec<_>>(),
    });
    Ok(Report::ok(text, json))
}

fn wire_ranges(ranges: &[RangeArg]) -> Vec<proto::StreamKeyRange> {
    ranges
        .iter()
        .map(|r| proto::StreamKeyRange {
            start_hash: r.start,
            end_hash: r.end,
        })
        .collect()
}

fn shown_ranges(ranges: &[RangeArg]) -> Vec<String> {
    ranges.iter().map(|r| show_range(r.start, r.end)).collect()
}

pub async fn digest(calls: &NodeCalls, ranges: &[RangeArg]) -> Result<Report, AdminError> {
    let req = proto::RangeDigestRequest {
        key_ranges: wire_ranges(ranges),
    };
    let r: proto::RangeDigestResponse = calls.unary(call::RANGE_DIGEST, &req).await?;
    let json = json!({
        "ok": r.success,
        "node": calls.node(),
        "ranges": shown_ranges(ranges),
        "keys": r.keys,
        "versions": r.versions,
        "digest": r.digest,
    });
    if !r.success {
        return Ok(Report::failed(
            String::new(),
            json,
            calls.body_error(r.error_code, &r.error_message),
        ));
    }
    let text = format!(
        "{}: {} keys, {} versions, digest {}\n",
        calls.node(),
        r.keys,
        r.versions,
        r.digest
    );
    Ok(Report::ok(text, json))
}

pub async fn cleanup(calls: &NodeCalls, ranges: &[RangeArg]) -> Result<Report, AdminError> {
    let req = proto::CleanupRequest {
        key_ranges: wire_ranges(ranges),
    };
    let r: proto::CleanupResponse = calls.unary(call::CLEANUP, &req).await?;
    let json = json!({
        "ok": r.success,
        "node": calls.node(),
        "ranges": shown_ranges(ranges),
        "keys_removed": r.keys_removed,
        "versions_removed": r.versions_removed,
    });
    if !r.success {
        return Ok(Report::failed(
            String::new(),
            json,
            calls.body_error(r.error_code, &r.error_message),
        ));
    }
    let text = format!(
        "{}: removed {} keys ({} versions)\n",
        calls.node(),
        r.keys_removed,
        r.versions_removed
    );
    Ok(Report::ok(text, json))
}
