//! The node side of the crash test: starting a node on the test's data
//! directory (keeping its port when it can), and the figures the test reads
//! from HealthCheck (compaction in progress, tables below L0, WAL records
//! replayed).

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::SHARDS;

/// Starts a node on `data_dir`, on `port` if it can still be had, else on a
/// fresh port (another process may have taken it meanwhile).
pub(crate) async fn start_on(opts: &NodeOptions, data_dir: &Path, port: u16, what: &str) -> Node {
    let mut port = port;
    let mut last = String::new();
    for attempt in 0..3 {
        let started = Instant::now();
        let mut node = Node::spawn_on_data_dir(opts, port, data_dir);
        match node.wait_ready().await {
            Ok(()) => {
                println!("{what}: ready on port {port} after {:?}", started.elapsed());
                return node;
            }
            Err(e) => {
                let stderr = node.stderr();
                last = format!("{e}\n--- node stderr ---\n{stderr}");
                if !stderr.contains("already serves") {
                    break;
                }
                println!("{what}: port {port} busy (attempt {attempt}), trying a fresh port");
                port = free_port();
            }
        }
    }
    panic!(
        "{what}: node did not become ready on {}: {last}",
        data_dir.display()
    );
}

/// Whether any shard reports a compaction in progress (a health check with
/// a short timeout; `false` if the node does not answer in time).
pub(crate) async fn compaction_running(node: &Node) -> bool {
    let probe = async {
        let mut c = node.client().await;
        let m = metrics(&mut c).await;
        (0..SHARDS).any(|s| {
            m.get(&format!("shard.{s}.compaction_running"))
                .is_some_and(|v| v == "true")
        })
    };
    tokio::time::timeout(Duration::from_secs(2), probe)
        .await
        .unwrap_or(false)
}

/// Tables below L0, over every shard.
pub(crate) async fn tables_below_l0(node: &Node) -> u64 {
    let mut c = node.client().await;
    let m = metrics(&mut c).await;
    (0..SHARDS)
        .flat_map(|s| (1..5).map(move |l| format!("shard.{s}.level.{l}.tables")))
        .map(|k| metric_u64(&m, &k))
        .sum()
}

/// Sum of `shard.N.wal_replayed_records` over the shards.
pub(crate) async fn replayed_records(node: &Node) -> u64 {
    let mut c = node.client().await;
    let m = metrics(&mut c).await;
    (0..SHARDS)
        .map(|s| metric_u64(&m, &format!("shard.{s}.wal_replayed_records")))
        .sum()
}
