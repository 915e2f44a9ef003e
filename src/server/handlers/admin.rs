//! DrainNode (the contract's) and the admin service: RangeDigest, Cleanup,
//! Undrain.
//!
//! Owns the operator operations that span every shard. Invariants: a
//! drain refuses writes on every core before it waits for anything; a
//! graceful drain answers "drained" only once no put is in flight and every
//! memtable is flushed, else "draining" (the drain goes on in the
//! background and a later call reports it); a cleanup is refused while an
//! active stream sends any of its ranges (the data may still be needed).

use super::CoreContext;
use crate::cluster::streams::{StreamsOp, StreamsReply};
use crate::engine::ops::ScanFilter;
use crate::engine::{ShardOp, ShardReply};
use crate::model::{RangeDigest, TokenRange, TokenRanges};
use crate::proto;
use crate::server::convert;
use crate::server::drain::{NodeMode, NodeOp};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// At most this many ranges per digest or cleanup request.
const RANGES_MAX: usize = 65_536;
/// How long a drain waits for the memtables to flush.
const DRAIN_FLUSH_MAX: Duration = Duration::from_secs(120);

/// The token ranges of a digest or cleanup request, or why they are refused.
pub(super) fn ranges_of(wire: &[proto::StreamKeyRange]) -> Result<TokenRanges, String> {
    if wire.is_empty() {
        return Err(
            "key_ranges must hold at least one range (start == end is the whole ring)".into(),
        );
    }
    if wire.len() > RANGES_MAX {
        return Err(format!(
            "key_ranges: {} ranges, at most {RANGES_MAX}",
            wire.len()
        ));
    }
    Ok(TokenRanges::new(
        wire.iter()
            .map(|r| TokenRange::new(r.start_hash, r.end_hash))
            .collect(),
    ))
}

pub(super) async fn range_digest(
    core: &CoreContext,
    req: proto::RangeDigestRequest,
) -> proto::RangeDigestResponse {
    let fail = |code: proto::ErrorCode, m: String| proto::RangeDigestResponse {
        success: false,
        error_message: m,
        error_code: code as i32,
        ..Default::default()
    };
    let ranges = match ranges_of(&req.key_ranges) {
        Ok(r) => Arc::new(r),
        Err(m) => return fail(proto::ErrorCode::InvalidRequest, m),
    };
    let replies = core
        .router
        .call_all(|_| ShardOp::Digest {
            filter: ScanFilter::Tokens(Arc::clone(&ranges)),
        })
        .await;
    let mut total = RangeDigest::default();
    for reply in replies {
        match reply {
            ShardReply::Digest(d) => total.merge(&d),
            ShardReply::Failed(e) => return fail(convert::error_code(&e), e.to_string()),
            other => {
                return fail(
                    proto::ErrorCode::InternalError,
                    format!("unexpected shard reply {other:?}"),
                )
            }
        }
    }
    proto::RangeDigestResponse {
        success: true,
        keys: total.keys as i64,
        versions: total.versions as i64,
        digest: total.hex(),
        ..Default::default()
    }
}

pub(super) async fn cleanup(
    core: &CoreContext,
    req: proto::CleanupRequest,
) -> proto::CleanupResponse {
    let fail = |code: proto::ErrorCode, m: String| proto::CleanupResponse {
        success: false,
        error_message: m,
        error_code: code as i32,
        ..Default::default()
    };
    let ranges = match ranges_of(&req.key_ranges) {
        Ok(r) => Arc::new(r),
        Err(m) => return fail(proto::ErrorCode::InvalidRequest, m),
    };
    let overlapping = core
        .router
        .broadcast_streams(StreamsOp::Overlapping(Arc::clone(&ranges)))
        .await;
    for r in overlapping {
        match r {
            StreamsReply::Overlapping(None) => {}
            StreamsReply::Overlapping(Some(stream)) => {
                return fail(
                    proto::ErrorCode::InvalidRequest,
                    format!(
                        "stream {stream} sends some of these ranges: stop it (StopStreaming) before cleaning them up"
                    ),
                )
            }
            other => {
                return fail(
                    proto::ErrorCode::InternalError,
                    format!("cannot check the streams: {other:?}"),
                )
            }
        }
    }
    let replies = core
        .router
        .call_all(|_| ShardOp::Cleanup {
            ranges: Arc::clone(&ranges),
        })
        .await;
    let mut answer = proto::CleanupResponse {
        success: true,
        ..Default::default()
    };
    for reply in replies {
        match reply {
            ShardReply::Cleaned(c) => {
                answer.keys_removed += c.keys as i64;
                answer.versions_removed += c.versions as i64;
            }
            ShardReply::Failed(e) => return fail(convert::error_code(&e), e.to_string()),
            other => {
                return fail(
                    proto::ErrorCode::InternalError,
                    format!("unexpected shard reply {other:?}"),
                )
            }
        }
    }
    tracing::info!(
        keys = answer.keys_removed,
        versions = answer.versions_removed,
        ranges = ranges.len(),
        "cleanup done"
    );
    answer
}

fn drain_answer(status: NodeMode) -> proto::DrainResponse {
    proto::DrainResponse {
        success: true,
        status: status.name().into(),
        ..Default::default()
    }
}

/// Finishes a drain: waits for the puts in flight, flushes every shard,
/// marks every core drained. Runs in the background of the core that took
/// the DrainNode call.
async fn finish_drain(router: Rc<crate::server::router::Router>) -> Result<(), String> {
    loop {
        if router.node.state() != NodeMode::Draining {
            // Undrained (or already drained) meanwhile.
            return Ok(());
        }
        if router.broadcast_node(NodeOp::Inflight).await? == 0 {
            break;
        }
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
    let replies = router
        .call_all(|_| ShardOp::Flush {
            max: DRAIN_FLUSH_MAX,
        })
        .await;
    for reply in replies {
        match reply {
            ShardReply::Flushed => {}
            ShardReply::Failed(e) => return Err(e.to_string()),
            other => return Err(format!("unexpected shard reply {other:?}")),
        }
    }
    router.broadcast_node(NodeOp::Drained).await?;
    tracing::info!("drained: writes refused, every memtable flushed");
    Ok(())
}

pub(super) async fn drain(core: &CoreContext, req: proto::DrainRequest) -> proto::DrainResponse {
    let fail = |m: String| proto::DrainResponse {
        success: false,
        status: core.router.node.state().name().into(),
        error_message: m,
        error_code: proto::ErrorCode::InternalError as i32,
    };
    let before = core.router.node.state();
    if before == NodeMode::Drained {
        return drain_answer(NodeMode::Drained);
    }
    if let Err(e) = core.router.broadcast_node(NodeOp::Drain).await {
        return fail(format!("cannot set every core draining: {e}"));
    }
    if before == NodeMode::Serving {
        tracing::warn!(
            graceful = req.graceful,
            "draining: writes are refused from now on"
        );
        let router = Rc::clone(&core.router);
        glommio::spawn_local(async move {
            if let Err(e) = finish_drain(router).await {
                tracing::error!(error = %e, "the drain could not finish; writes stay refused");
            }
        })
        .detach();
    }
    if !req.graceful {
        return drain_answer(core.router.node.state());
    }
    let wait = Duration::from_secs(req.timeout_seconds.max(0) as u64);
    let deadline = Instant::now() + wait;
    while core.router.node.state() == NodeMode::Draining && Instant::now() < deadline {
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
    drain_answer(core.router.node.state())
}

pub(super) async fn undrain(
    core: &CoreContext,
    _req: proto::UndrainRequest,
) -> proto::DrainResponse {
    match core.router.broadcast_node(NodeOp::Undrain).await {
        Ok(_) => {
            tracing::info!("undrained: writes are accepted again");
            drain_answer(NodeMode::Serving)
        }
        Err(e) => proto::DrainResponse {
            success: false,
            status: core.router.node.state().name().into(),
            error_message: format!("cannot undrain every core: {e}"),
            error_code: proto::ErrorCode::InternalError as i32,
        },
    }
}
