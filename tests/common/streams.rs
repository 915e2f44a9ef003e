//! Range-move calls as a coordinator makes them: StartStreaming on the
//! source naming the target's id and address, GetStreamStatus polled until
//! every source answers "completed", StopStreaming.

use std::time::{Duration, Instant};

use super::client::token_range;
use super::node::Node;
use super::pb;

/// How often [`wait_completed`] polls.
pub const STATUS_POLL: Duration = Duration::from_millis(200);

pub fn start_req(
    source_id: &str,
    target_id: &str,
    target_host: &str,
    target_port: u16,
    ranges: &[(u64, u64)],
) -> pb::StartStreamingRequest {
    pb::StartStreamingRequest {
        source_node_id: source_id.into(),
        target_node_id: target_id.into(),
        target_host: target_host.into(),
        target_port: target_port.into(),
        key_ranges: ranges.iter().map(|&(s, e)| token_range(s, e)).collect(),
    }
}

/// StartStreaming on `source` with `req`; expects gRPC OK.
pub async fn start_streaming(
    source: &Node,
    req: pb::StartStreamingRequest,
) -> pb::StartStreamingResponse {
    source
        .client()
        .await
        .start_streaming(req.clone())
        .await
        .unwrap_or_else(|s| panic!("StartStreaming {req:?}: gRPC status {s:?}"))
        .into_inner()
}

/// StartStreaming of `ranges` from `source` to `target` at the target's
/// own address, as the coordinator sends it; expects it accepted.
pub async fn start_stream_to(
    source: &Node,
    target: &Node,
    ranges: &[(u64, u64)],
) -> pb::StartStreamingResponse {
    let req = start_req(
        &source.node_id,
        &target.node_id,
        &target.addr.ip().to_string(),
        target.addr.port(),
        ranges,
    );
    let r = start_streaming(source, req).await;
    assert!(
        r.success,
        "StartStreaming {} -> {}: {r:?}",
        source.node_id, target.node_id
    );
    r
}

/// GetStreamStatus of the stream `source -> target_id` on `source`.
pub async fn stream_status(source: &Node, target_id: &str) -> pb::StreamStatusResponse {
    source
        .client()
        .await
        .get_stream_status(pb::StreamStatusRequest {
            source_node_id: source.node_id.clone(),
            target_node_id: target_id.into(),
        })
        .await
        .unwrap_or_else(|s| panic!("GetStreamStatus: gRPC status {s:?}"))
        .into_inner()
}

/// StopStreaming of `source -> target_id` on `source`.
pub async fn stop_streaming(source: &Node, target_id: &str) -> pb::StopStreamingResponse {
    source
        .client()
        .await
        .stop_streaming(pb::StopStreamingRequest {
            source_node_id: source.node_id.clone(),
            target_node_id: target_id.into(),
        })
        .await
        .unwrap_or_else(|s| panic!("StopStreaming: gRPC status {s:?}"))
        .into_inner()
}

/// Polls GetStreamStatus of every `(source, target id)` every
/// [`STATUS_POLL`] until each answers "completed"; panics after `timeout`
/// (or on "failed"). Answers the time it took and each final status.
pub async fn wait_completed(
    streams: &[(&Node, &str)],
    timeout: Duration,
) -> (Duration, Vec<pb::StreamStatusResponse>) {
    let started = Instant::now();
    loop {
        let mut all = Vec::with_capacity(streams.len());
        for (source, target) in streams {
            let s = stream_status(source, target).await;
            assert_ne!(
                s.state,
                "failed",
                "stream {} -> {target} failed: {s:?}\n{}",
                source.node_id,
                source.stderr()
            );
            all.push(s);
        }
        if all.iter().all(|s| s.state == "completed") {
            return (started.elapsed(), all);
        }
        assert!(
            started.elapsed() < timeout,
            "streams not completed after {timeout:?}: {all:?}"
        );
        tokio::time::sleep(STATUS_POLL).await;
    }
}
