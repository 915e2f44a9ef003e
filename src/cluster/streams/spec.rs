//! What a stream is: its identity, its ranges and where it sends, and the
//! checks a StartStreaming request must pass before a stream exists.
//!
//! Pure. Owns [`StreamId`] (a stream is identified by its source and
//! target node ids, as the coordinator polls it) and [`validate_start`].
//! Invariant: a stream only ever sends to an address the node vouches for
//! (a live gossip member's advertised address, or one the operator allowed
//! in `cluster.stream_targets_allowed`), never to whatever a request names.

use crate::model::{TokenRange, TokenRanges};
use crate::proto;
use crate::storage::streams_file::StreamRecord;

/// At most this many ranges per stream (the coordinator sends one per
/// vnode: 150 with its defaults).
pub(crate) const RANGES_PER_STREAM_MAX: usize = 65_536;
/// Longest node id or address a stream may carry.
pub(crate) const NAME_BYTES_MAX: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct StreamId {
    pub source: String,
    pub target: String,
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} -> {}", self.source, self.target)
    }
}

impl StreamId {
    pub(crate) fn of(record: &StreamRecord) -> Self {
        Self {
            source: record.source_node_id.clone(),
            target: record.target_node_id.clone(),
        }
    }
}

/// The token ranges of a persisted stream.
pub(crate) fn ranges_of(record: &StreamRecord) -> TokenRanges {
    TokenRanges::new(
        record
            .ranges
            .iter()
            .map(|(a, b)| TokenRange::new(*a, *b))
            .collect(),
    )
}

/// Where a target may be reached, as the node knows it.
pub(crate) struct TargetCheck<'a> {
    /// The advertised gRPC address of `node_id` if it is a live member.
    pub live_member_addr: &'a dyn Fn(&str) -> Option<String>,
    /// `cluster.stream_targets_allowed` ("host:port" entries).
    pub allowed: &'a [String],
}

/// The stream a StartStreaming request asks for, or why it is refused (a
/// message for `StartStreamingResponse.message`).
pub(crate) fn validate_start(
    req: &proto::StartStreamingRequest,
    own_node_id: &str,
    targets: &TargetCheck<'_>,
    now_unix_ms: i64,
) -> Result<StreamRecord, String> {
    if req.source_node_id != own_node_id {
        return Err(format!(
            "source_node_id {:?} is not this node ({own_node_id:?}): send StartStreaming to the source node",
            req.source_node_id
        ));
    }
    if req.target_node_id.is_empty() {
        return Err("target_node_id must not be empty".into());
    }
    if req.target_node_id == own_node_id {
        return Err("target_node_id is this node: a stream goes to another node".into());
    }
    if req.target_node_id.len() > NAME_BYTES_MAX || req.target_host.len() > NAME_BYTES_MAX {
        return Err(format!(
            "target_node_id and target_host: at most {NAME_BYTES_MAX} bytes"
        ));
    }
    if req.key_ranges.is_empty() {
        return Err("key_ranges must hold at least one range".into());
    }
    if req.key_ranges.len() > RANGES_PER_STREAM_MAX {
        return Err(format!(
            "key_ranges: {} ranges, at most {RANGES_PER_STREAM_MAX}",
            req.key_ranges.len()
        ));
    }
    if req.target_host.is_empty() {
        return Err("target_host must not be empty".into());
    }
    if !(1..=65_535).contains(&req.target_port) {
        return Err(format!(
            "target_port {} is not a TCP port (1..=65535)",
            req.target_port
        ));
    }
    let named = join_host_port(&req.target_host, req.target_port);
    let target_addr = if targets.allowed.contains(&named) {
        named
    } else {
        match (targets.live_member_addr)(&req.target_node_id) {
            Some(addr) => addr,
            None => {
                return Err(format!(
                    "target {:?} ({named}) is not a live member of this node's cluster and not \
                     listed in cluster.stream_targets_allowed: refusing to send data to it",
                    req.target_node_id
                ))
            }
        }
    };
    Ok(StreamRecord {
        source_node_id: req.source_node_id.clone(),
        target_node_id: req.target_node_id.clone(),
        target_addr,
        started_unix_ms: now_unix_ms,
        ranges: req
            .key_ranges
            .iter()
            .map(|r| (r.start_hash, r.end_hash))
            .collect(),
    })
}

/// "host:port", bracketing an IPv6 literal.
pub(crate) fn join_host_port(host: &str, port: i32) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> proto::StartStreamingRequest {
        proto::StartStreamingRequest {
            source_node_id: "a".into(),
            target_node_id: "b".into(),
            target_host: "127.0.0.1".into(),
            target_port: 6000,
            key_ranges: vec![proto::StreamKeyRange {
                start_hash: 1,
                end_hash: 2,
            }],
        }
    }

    fn check(
        req: &proto::StartStreamingRequest,
        allowed: &[String],
    ) -> Result<StreamRecord, String> {
        let live = |id: &str| (id == "b").then(|| "10.0.0.2:6000".to_string());
        validate_start(
            req,
            "a",
            &TargetCheck {
                live_member_addr: &live,
                allowed,
            },
            5,
        )
    }

    #[test]
    fn a_live_member_is_reached_at_its_advertised_address() {
        let r = check(&req(), &[]).unwrap();
        assert_eq!(r.target_addr, "10.0.0.2:6000");
        assert_eq!(r.ranges, vec![(1, 2)]);
        assert_eq!(r.started_unix_ms, 5);
    }

    #[test]
    fn an_allowed_address_is_used_as_named() {
        let mut q = req();
        q.target_node_id = "c".into();
        let r = check(&q, &["127.0.0.1:6000".to_string()]).unwrap();
        assert_eq!(r.target_addr, "127.0.0.1:6000");
    }

    #[test]
    fn every_refusal_names_the_field() {
        type Change = Box<dyn Fn(&mut proto::StartStreamingRequest)>;
        let cases: Vec<(Change, &str)> = vec![
            (
                Box::new(|q| q.source_node_id = "x".into()),
                "source_node_id",
            ),
            (Box::new(|q| q.target_node_id.clear()), "target_node_id"),
            (
                Box::new(|q| q.target_node_id = "a".into()),
                "target_node_id",
            ),
            (Box::new(|q| q.key_ranges.clear()), "key_ranges"),
            (Box::new(|q| q.target_host.clear()), "target_host"),
            (Box::new(|q| q.target_port = 0), "target_port"),
            (Box::new(|q| q.target_port = 70_000), "target_port"),
            (
                Box::new(|q| q.target_node_id = "stranger".into()),
                "not a live member",
            ),
        ];
        for (change, word) in cases {
            let mut q = req();
            change(&mut q);
            let e = check(&q, &[]).unwrap_err();
            assert!(e.contains(word), "{e}");
        }
    }

    #[test]
    fn ipv6_hosts_are_bracketed() {
        assert_eq!(join_host_port("::1", 5), "[::1]:5");
        assert_eq!(join_host_port("[::1]", 5), "[::1]:5");
        assert_eq!(join_host_port("h", 5), "h:5");
    }
}
