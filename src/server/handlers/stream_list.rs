//! The admin service's ListStreams: every stream this node sends, over all
//! its shards.
//!
//! Owns the listing's answer. Nothing here changes state. Invariants: one
//! entry per stream (source, target), its figures summed over the shards
//! that have it; its state is "failed" when any shard's part failed,
//! "completed" when every shard's part completed, else "copying" (as
//! GetStreamStatus answers).

use super::CoreContext;
use crate::cluster::streams::spec::StreamId;
use crate::cluster::streams::status::{Phase, ShardStatus};
use crate::cluster::streams::{StreamsOp, StreamsReply};
use crate::proto;
use crate::storage::streams_file::StreamRecord;
use std::collections::BTreeMap;

pub(super) async fn list(
    core: &CoreContext,
    _req: proto::ListStreamsRequest,
) -> proto::ListStreamsResponse {
    let mut by_stream: BTreeMap<StreamId, (StreamRecord, Vec<ShardStatus>)> = BTreeMap::new();
    for reply in core.router.broadcast_streams(StreamsOp::Details).await {
        if let StreamsReply::Details(parts) = reply {
            for (record, status) in parts {
                by_stream
                    .entry(StreamId::of(&record))
                    .or_insert_with(|| (record, Vec::new()))
                    .1
                    .push(status);
            }
        }
    }
    let shards = u32::try_from(core.router.shards()).unwrap_or(u32::MAX);
    proto::ListStreamsResponse {
        streams: by_stream
            .into_values()
            .map(|(record, parts)| info(record, &parts, shards))
            .collect(),
    }
}

fn info(record: StreamRecord, parts: &[ShardStatus], shards: u32) -> proto::StreamInfo {
    let completed = parts.iter().filter(|s| s.phase == Phase::Completed).count();
    let failed = parts.iter().any(|s| matches!(s.phase, Phase::Failed(_)));
    let state = if failed {
        "failed"
    } else if completed == parts.len() && parts.len() as u64 == u64::from(shards) {
        "completed"
    } else {
        "copying"
    };
    let sum = |f: fn(&ShardStatus) -> u64| parts.iter().map(f).fold(0u64, u64::wrapping_add);
    let signed = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    proto::StreamInfo {
        source_node_id: record.source_node_id,
        target_node_id: record.target_node_id,
        target_addr: record.target_addr,
        role: "source".into(),
        key_ranges: record
            .ranges
            .iter()
            .map(|&(start_hash, end_hash)| proto::StreamKeyRange {
                start_hash,
                end_hash,
            })
            .collect(),
        state: state.into(),
        keys_copied: signed(sum(|s| s.keys_copied)),
        bytes_copied: signed(sum(|s| s.bytes_copied)),
        keys_streamed: signed(sum(|s| s.keys_streamed)),
        bytes_streamed: signed(sum(|s| s.bytes_streamed)),
        shards_completed: u32::try_from(completed).unwrap_or(u32::MAX),
        shards,
        passes: sum(|s| s.passes),
        backlog_bytes: sum(|s| s.backlog_bytes),
        started_unix_ms: record.started_unix_ms,
    }
}
