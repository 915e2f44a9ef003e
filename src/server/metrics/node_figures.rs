//! The node-wide samples: identity and state, membership, streams, the data
//! volume, and the request counters and latency histograms merged over
//! every core.
//!
//! Owns the mapping from a [`NodeFigures`] (gathered from every core at
//! scrape time) to metric names. Pure: no I/O, so the whole exposition can
//! be built and checked in unit tests.

use super::families::Families;
use super::rpc::{method_labels, RpcSnapshot};
use crate::cluster::streams::spec::StreamId;
use crate::cluster::streams::status::{overall_phase, ShardStatus};
use crate::cluster::Members;
use crate::engine::ShardStats;

/// What one scrape gathered from the node.
pub(crate) struct NodeFigures<'a> {
    pub node_id: &'a str,
    pub shards: usize,
    pub uptime_s: f64,
    /// The node's serving state (`serving`, `draining`, ...).
    pub node_state: &'a str,
    pub members: &'a Members,
    /// Each stream this node sends, with its part on every shard.
    pub streams: &'a [(StreamId, Vec<ShardStatus>)],
    /// (total, free) bytes of the data volume, when it could be read.
    pub volume: Option<(u64, u64)>,
    pub stats: &'a [ShardStats],
    /// Request metrics merged over every core.
    pub rpc: &'a RpcSnapshot,
}

/// Adds the node-wide samples.
pub(crate) fn add(f: &mut Families, n: &NodeFigures<'_>) {
    f.info(
        "pairdb_node_info",
        "The node's id and the software version it runs.",
        &[
            ("node_id", n.node_id),
            ("version", env!("CARGO_PKG_VERSION")),
        ],
    );
    f.info(
        "pairdb_node_state_info",
        "The node's serving state: serving, draining or drained.",
        &[("state", n.node_state)],
    );
    f.gauge(
        "pairdb_shards",
        "Shards (one per core).",
        &[],
        n.shards as f64,
    );
    f.gauge(
        "pairdb_uptime_seconds",
        "Time since the node started.",
        &[],
        n.uptime_s,
    );
    let disk_full = n
        .stats
        .iter()
        .any(|s| s.write_state == "disk_full" || s.flush_disk_full || s.compaction_disk_full);
    f.gauge(
        "pairdb_disk_full",
        "1 while any shard refuses writes, or waits to flush or compact, for lack of disk space.",
        &[],
        f64::from(u8::from(disk_full)),
    );
    if let Some((total, free)) = n.volume {
        f.gauge(
            "pairdb_data_volume_bytes",
            "Size of the data directory's file system (root-reserved blocks excluded).",
            &[],
            total as f64,
        );
        f.gauge(
            "pairdb_data_volume_free_bytes",
            "Bytes the node may still allocate on the data directory's file system.",
            &[],
            free as f64,
        );
    }
    add_members(f, n.members);
    add_streams(f, n.streams);
    add_requests(f, n.rpc);
}

fn add_members(f: &mut Families, members: &Members) {
    f.gauge(
        "pairdb_cluster_members_alive",
        "Members gossip sees alive, this node included.",
        &[],
        members.alive_count() as f64,
    );
    for m in members.iter() {
        f.info(
            "pairdb_cluster_member_info",
            "Each member gossip knows, with its gRPC address and state.",
            &[
                ("node_id", &m.node_id),
                ("address", &m.grpc),
                ("state", m.state.as_str()),
            ],
        );
    }
}

fn add_streams(f: &mut Families, streams: &[(StreamId, Vec<ShardStatus>)]) {
    f.gauge(
        "pairdb_streams",
        "Range streams this node sends.",
        &[],
        streams.len() as f64,
    );
    type Part = fn(&ShardStatus) -> u64;
    const COUNTERS: [(&str, &str, Part); 8] = [
        (
            "pairdb_stream_copied_keys_total",
            "Keys the stream's copy passes sent (acknowledged).",
            |s| s.keys_copied,
        ),
        (
            "pairdb_stream_copied_bytes_total",
            "Wire bytes the stream's copy passes sent (acknowledged).",
            |s| s.bytes_copied,
        ),
        (
            "pairdb_stream_forwarded_versions_total",
            "Versions the stream forwarded live (acknowledged).",
            |s| s.keys_streamed,
        ),
        (
            "pairdb_stream_forwarded_bytes_total",
            "Wire bytes the stream forwarded live (acknowledged).",
            |s| s.bytes_streamed,
        ),
        (
            "pairdb_stream_passes_total",
            "Copy passes the stream started.",
            |s| s.passes,
        ),
        (
            "pairdb_stream_forwards_dropped_total",
            "Forwards dropped for a full backlog (each made good by another copy pass).",
            |s| s.forwards_dropped,
        ),
        (
            "pairdb_stream_send_retries_total",
            "Stream sends that failed and were retried.",
            |s| s.send_retries,
        ),
        ("pairdb_stream_backlog_bytes", "Forwards queued now.", |s| {
            s.backlog_bytes
        }),
    ];
    for (id, parts) in streams {
        let labels: &[(&str, &str)] = &[("source", &id.source), ("target", &id.target)];
        for (name, help, get) in COUNTERS {
            let sum: u64 = parts.iter().map(get).sum();
            if name.ends_with("_total") {
                f.counter(name, help, labels, sum as f64);
            } else {
                f.gauge(name, help, labels, sum as f64);
            }
        }
        f.info(
            "pairdb_stream_state_info",
            "Each stream's phase: copying, completed or failed.",
            &[
                ("source", &id.source),
                ("target", &id.target),
                ("state", overall_phase(parts).name()),
            ],
        );
    }
}

fn add_requests(f: &mut Families, rpc: &RpcSnapshot) {
    for c in &rpc.calls {
        let (service, method) = c.method();
        f.counter(
            "pairdb_requests_total",
            "gRPC calls answered, by method, gRPC status and the error_code of the response body.",
            &[
                ("service", service),
                ("method", method),
                ("grpc_code", c.code()),
                ("error_code", c.error_code()),
            ],
            c.calls as f64,
        );
    }
    for (slot, durations) in rpc.latency.iter().enumerate() {
        if durations.count() == 0 {
            continue;
        }
        let (service, method) = method_labels(slot);
        f.histogram(
            "pairdb_request_duration_seconds",
            "gRPC call latency on the node, from the request's headers to its answer handed to the connection.",
            &[("service", service), ("method", method)],
            durations,
        );
    }
}
