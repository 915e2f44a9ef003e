//! The whole exposition built from figures of every kind: it encodes, every
//! name follows the conventions, and docs/operations.md lists every family.

use super::families::Families;
use super::node_figures::{self, NodeFigures};
use super::rpc::{Outcome, RpcMetrics};
use super::shard_figures;
use crate::cluster::streams::spec::StreamId;
use crate::cluster::streams::status::ShardStatus;
use crate::cluster::{Member, MemberState, Members};
use crate::engine::ShardStats;
use crate::proto::grpc::Code;
use std::time::Duration;

const OPERATIONS_MD: &str = include_str!("../../../docs/operations.md");

fn full_exposition() -> Families {
    let rpc = RpcMetrics::new();
    let write = rpc.method_slot("/storage.StorageNodeService/Write");
    rpc.record(write, Outcome::OK, Duration::from_micros(300));
    rpc.record(
        write,
        Outcome::status(Code::Unavailable),
        Duration::from_micros(3),
    );
    let members = Members::new(
        [Member {
            node_id: "a".into(),
            grpc: "127.0.0.1:1".into(),
            gossip: "127.0.0.1:1".parse().expect("address"),
            state: MemberState::Alive,
            incarnation: 0,
            started_us: 1,
        }],
        None,
    );
    let streams = vec![(
        StreamId {
            source: "a".into(),
            target: "b".into(),
        },
        vec![ShardStatus::new()],
    )];
    let mut stats = ShardStats {
        write_state: "writing",
        levels: vec![Default::default(); 2],
        ..Default::default()
    };
    stats.wal.fsync_latency.counts[3] = 1;
    let mut f = Families::default();
    node_figures::add(
        &mut f,
        &NodeFigures {
            node_id: "node-a",
            shards: 1,
            uptime_s: 1.5,
            node_state: "serving",
            members: &members,
            streams: &streams,
            volume: Some((100, 50)),
            stats: std::slice::from_ref(&stats),
            rpc: &rpc.snapshot(),
        },
    );
    shard_figures::add(&mut f, &stats);
    f
}

#[test]
fn the_exposition_encodes_and_names_follow_the_conventions() {
    let f = full_exposition();
    let text = f.encode().expect("encodes");
    assert!(text.contains("pairdb_requests_total{service=\"storage.StorageNodeService\",method=\"Write\",grpc_code=\"UNAVAILABLE\",error_code=\"none\"} 1"), "{text}");
    assert!(
        text.contains("pairdb_wal_fsync_duration_seconds_bucket{shard=\"0\",le=\"0.0001\"} 1"),
        "{text}"
    );
    for name in f.names() {
        assert!(name.starts_with("pairdb_"), "{name}");
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{name}"
        );
        assert!(
            !name.ends_with("_count") && !name.ends_with("_sum"),
            "{name}"
        );
        for unit in ["_us", "_ms", "_micros", "_millis"] {
            assert!(!name.contains(unit), "{name}: base units only");
        }
    }
}

#[test]
fn operations_md_lists_every_metric() {
    let families = full_exposition();
    let missing: Vec<&str> = families
        .names()
        .into_iter()
        .filter(|name| !OPERATIONS_MD.contains(&format!("`{name}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/operations.md does not list: {missing:?}"
    );
}
