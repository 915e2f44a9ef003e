//! Nodes that form one gossip cluster: each started with `--seeds` naming
//! every node's gossip address (UDP on its gRPC port), on a data directory
//! the [`Member`] keeps, so a killed node restarts with the same id, port
//! and data; and waiting until every node sees the others alive.

use std::time::{Duration, Instant};
use tempfile::TempDir;

use super::client::metrics;
use super::node::{free_port, Node, NodeOptions};

/// How long a cluster may take until every node sees every other alive.
pub const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(30);

/// A node of a seeded cluster.
pub struct Member {
    pub node: Node,
    pub opts: NodeOptions,
    pub port: u16,
    seeds: String,
    data: TempDir,
}

impl Member {
    /// Starts a node on `port` seeded with `seeds` and waits until it
    /// answers HealthCheck.
    pub async fn start(opts: NodeOptions, port: u16, seeds: &str) -> Member {
        let data = tempfile::tempdir().expect("tempdir");
        let node = spawn_ready(&opts, port, data.path(), seeds).await;
        Member {
            node,
            opts,
            port,
            seeds: seeds.to_string(),
            data,
        }
    }

    pub fn id(&self) -> &str {
        &self.opts.node_id
    }

    /// SIGKILL, reaped at once.
    pub fn kill(&mut self) {
        self.node.kill_and_reap();
    }

    /// Starts the node again (after [`Member::kill`]) with the same id,
    /// port, seeds and data, and waits until it answers HealthCheck.
    pub async fn restart(&mut self) {
        self.node = spawn_ready(&self.opts, self.port, self.data.path(), &self.seeds).await;
    }
}

async fn spawn_ready(
    opts: &NodeOptions,
    port: u16,
    data_dir: &std::path::Path,
    seeds: &str,
) -> Node {
    let mut node = Node::spawn_on_data_dir_with(opts, port, data_dir, &["--seeds", seeds]);
    if let Err(e) = node.wait_ready().await {
        panic!(
            "{} on port {port} did not start: {e}\n--- stderr ---\n{}",
            opts.node_id,
            node.stderr()
        );
    }
    node
}

/// `n` distinct free ports.
pub fn free_ports(n: usize) -> Vec<u16> {
    let mut ports: Vec<u16> = Vec::with_capacity(n);
    while ports.len() < n {
        let p = free_port();
        if !ports.contains(&p) {
            ports.push(p);
        }
    }
    ports
}

/// Starts one node per option set, each seeded with every node's address,
/// and waits until each sees all of them alive.
pub async fn start_cluster(opts: Vec<NodeOptions>) -> Vec<Member> {
    let ports = free_ports(opts.len());
    let seeds = ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut members = Vec::with_capacity(opts.len());
    for (o, port) in opts.into_iter().zip(&ports) {
        members.push(Member::start(o, *port, &seeds).await);
    }
    let n = members.len();
    wait_members_alive(&members.iter().collect::<Vec<_>>(), n).await;
    members
}

/// Waits until every one of `members` reports `n` live members
/// (`cluster.members_alive`, itself included).
pub async fn wait_members_alive(members: &[&Member], n: usize) {
    let started = Instant::now();
    for m in members {
        let mut c = m.node.client().await;
        loop {
            let alive = metrics(&mut c)
                .await
                .get("cluster.members_alive")
                .cloned()
                .unwrap_or_default();
            if alive == n.to_string() {
                break;
            }
            assert!(
                started.elapsed() < MEMBERSHIP_TIMEOUT,
                "{} sees {alive:?} live members, not {n}, after {MEMBERSHIP_TIMEOUT:?}\n{}",
                m.id(),
                m.node.stderr()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
