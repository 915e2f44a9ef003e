//! StartStreaming, GetStreamStatus, StopStreaming, NotifyStreamingComplete:
//! the source side of a range move, as coordinators drive it.
//!
//! Owns the contract's answers: validation failures are `success = false`
//! with a message (the coordinator only logs them); an accepted stream is
//! answered at once and copied in the background on every core
//! ([`crate::cluster::streams`]); a start that some core could not persist
//! is undone on every core before it answers. Invariants: StartStreaming
//! for a running stream is idempotent; StopStreaming is idempotent; an
//! unknown or stopped stream's status is `active = false, state =
//! "not_found"`.

use super::CoreContext;
use crate::cluster::streams::spec::{validate_start, StreamId, TargetCheck};
use crate::cluster::streams::status::aggregate;
use crate::cluster::streams::{Started, StreamsOp, StreamsReply};
use crate::proto;

fn id(source: String, target: String) -> StreamId {
    StreamId { source, target }
}

pub(super) async fn start(
    core: &CoreContext,
    req: proto::StartStreamingRequest,
) -> proto::StartStreamingResponse {
    let refuse = |message: String| proto::StartStreamingResponse {
        success: false,
        message,
    };
    let live = |node_id: &str| core.live_member_addr(node_id);
    let check = TargetCheck {
        live_member_addr: &live,
        allowed: core.stream_targets_allowed(),
    };
    let record = match validate_start(
        &req,
        &core.config.node.node_id,
        &check,
        crate::engine::shard::now_unix_ms(),
    ) {
        Ok(r) => r,
        Err(m) => return refuse(m),
    };
    let stream = StreamId::of(&record);
    let replies = core
        .router
        .broadcast_streams(StreamsOp::Start(record.clone()))
        .await;
    let mut new = false;
    let mut errors = Vec::new();
    for (core_id, r) in replies.into_iter().enumerate() {
        match r {
            StreamsReply::Started(Ok(Started::New)) => new = true,
            StreamsReply::Started(Ok(Started::Existing)) => {}
            StreamsReply::Started(Err(e)) | StreamsReply::Unavailable(e) => {
                errors.push(format!("core {core_id}: {e}"));
            }
            other => errors.push(format!("core {core_id}: unexpected reply {other:?}")),
        }
    }
    if !errors.is_empty() {
        // Undo: a stream some core does not run would never complete.
        core.router
            .broadcast_streams(StreamsOp::Stop(stream.clone()))
            .await;
        tracing::error!(stream = %stream, errors = ?errors, "StartStreaming failed on some cores: undone");
        return refuse(format!(
            "the stream could not be started: {}",
            errors.join("; ")
        ));
    }
    if new {
        tracing::info!(stream = %stream, target = %record.target_addr, ranges = record.ranges.len(), "stream accepted");
    }
    proto::StartStreamingResponse {
        success: true,
        message: if new {
            format!(
                "stream {stream} started: copying {} ranges to {}",
                record.ranges.len(),
                record.target_addr
            )
        } else {
            format!("stream {stream} is already running")
        },
    }
}

pub(super) async fn status(
    core: &CoreContext,
    req: proto::StreamStatusRequest,
) -> proto::StreamStatusResponse {
    let stream = id(req.source_node_id, req.target_node_id);
    let replies = core
        .router
        .broadcast_streams(StreamsOp::Status(stream))
        .await;
    let mut parts = Vec::with_capacity(replies.len());
    for r in replies {
        match r {
            StreamsReply::Status(s) => parts.push(s),
            // A core that cannot answer: the stream is not known complete.
            _ => {
                return proto::StreamStatusResponse {
                    active: true,
                    state: "unknown".into(),
                    ..Default::default()
                }
            }
        }
    }
    aggregate(&parts)
}

pub(super) async fn stop(
    core: &CoreContext,
    req: proto::StopStreamingRequest,
) -> proto::StopStreamingResponse {
    let stream = id(req.source_node_id, req.target_node_id);
    let replies = core
        .router
        .broadcast_streams(StreamsOp::Stop(stream.clone()))
        .await;
    let mut existed = false;
    let mut errors = Vec::new();
    for (core_id, r) in replies.into_iter().enumerate() {
        match r {
            StreamsReply::Stopped(Ok(found)) => existed |= found,
            StreamsReply::Stopped(Err(e)) | StreamsReply::Unavailable(e) => {
                errors.push(format!("core {core_id}: {e}"));
            }
            other => errors.push(format!("core {core_id}: unexpected reply {other:?}")),
        }
    }
    if !errors.is_empty() {
        return proto::StopStreamingResponse {
            success: false,
            message: format!(
                "the stream could not be stopped everywhere: {}",
                errors.join("; ")
            ),
        };
    }
    proto::StopStreamingResponse {
        success: true,
        message: if existed {
            format!("stream {stream} stopped")
        } else {
            format!("no stream {stream}: nothing to stop")
        },
    }
}

/// Says whether the stream has completed (its copy and the forwards before
/// its end acknowledged). Forwarding goes on until StopStreaming.
pub(super) async fn notify_complete(
    core: &CoreContext,
    req: proto::StreamingCompleteRequest,
) -> proto::StreamingCompleteResponse {
    let status = status(
        core,
        proto::StreamStatusRequest {
            source_node_id: req.source_node_id.clone(),
            target_node_id: req.target_node_id.clone(),
        },
    )
    .await;
    let stream = id(req.source_node_id, req.target_node_id);
    let (success, message) = match status.state.as_str() {
        "completed" => (
            true,
            format!(
                "stream {stream} completed: {} keys copied; forwarding goes on until StopStreaming",
                status.keys_copied
            ),
        ),
        "not_found" => (false, format!("no stream {stream}")),
        other => (false, format!("stream {stream} is not complete: {other}")),
    };
    proto::StreamingCompleteResponse { success, message }
}
