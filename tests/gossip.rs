//! Gossip membership across real nodes on 127.0.0.1: three nodes seeded to
//! each other see each other alive; a killed node is down on the others
//! within 10 s; restarted on its data directory it is alive again at once; a
//! node stopped with SIGTERM is listed as left; a node started with a live
//! member's node id is not taken for that member; a wildcard listen address
//! without an advertised one is refused. All through HealthCheck metrics
//! (`cluster.members_alive`, `cluster.member.<node_id>`) and the logs.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// Longest a killed node may take to be listed down on the others.
const DOWN_WITHIN: Duration = Duration::from_secs(10);

/// Polling interval of the metrics.
const POLL: Duration = Duration::from_millis(100);

fn opts(node_id: &str) -> NodeOptions {
    NodeOptions {
        shards: 2,
        node_id: node_id.into(),
        config: None,
    }
}

/// Spawns a node on `port` with its data in `data_dir`, seeded with
/// `seeds`, and waits until it answers HealthCheck.
async fn start(node_id: &str, port: u16, data_dir: &Path, seeds: &str) -> Node {
    let mut node =
        Node::spawn_on_data_dir_with(&opts(node_id), port, data_dir, &["--seeds", seeds]);
    if let Err(e) = node.wait_ready().await {
        panic!("{node_id} not ready: {e}\n{}", node.stderr());
    }
    node
}

async fn cluster_metrics(node: &Node) -> BTreeMap<String, String> {
    let mut c = node.client().await;
    metrics(&mut c)
        .await
        .into_iter()
        .filter(|(k, _)| k.starts_with("cluster."))
        .collect()
}

/// Polls `node`'s cluster metrics until `ok` holds; returns how long it
/// took, or panics after `timeout` showing the last metrics.
async fn wait_until(
    node: &Node,
    what: &str,
    timeout: Duration,
    ok: impl Fn(&BTreeMap<String, String>) -> bool,
) -> Duration {
    let started = Instant::now();
    loop {
        let m = cluster_metrics(node).await;
        if ok(&m) {
            return started.elapsed();
        }
        if started.elapsed() > timeout {
            panic!(
                "{} ({}): {what} not seen within {timeout:?}; metrics: {m:?}\n--- stderr ---\n{}",
                node.node_id,
                node.addr,
                node.stderr()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

fn member_is(m: &BTreeMap<String, String>, node_id: &str, want: &str) -> bool {
    m.get(&format!("cluster.member.{node_id}"))
        .is_some_and(|v| v == want)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_detect_failure_restart_leave_and_duplicate_ids() {
    let ports = [free_port(), free_port(), free_port()];
    let addr = |p: u16| format!("127.0.0.1:{p}");
    let seeds = ports.map(addr).join(",");
    let dirs: Vec<_> = (0..3)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let ids = ["g1", "g2", "g3"];

    let mut nodes = Vec::new();
    for i in 0..3 {
        nodes.push(start(ids[i], ports[i], dirs[i].path(), &seeds).await);
    }
    for n in &nodes {
        let took = wait_until(n, "3 members alive", Duration::from_secs(10), |m| {
            m.get("cluster.members_alive").map(String::as_str) == Some("3")
        })
        .await;
        let m = cluster_metrics(n).await;
        for i in 0..3 {
            assert!(
                member_is(&m, ids[i], &format!("alive {}", addr(ports[i]))),
                "{m:?}"
            );
        }
        println!("{}: 3 members alive after {took:?}", n.node_id);
    }

    // kill -9 of g3: down on both others within 10 s.
    nodes[2].kill_and_reap();
    let killed = Instant::now();
    let down = format!("down {}", addr(ports[2]));
    for n in &nodes[..2] {
        wait_until(n, "g3 down", DOWN_WITHIN, |m| member_is(m, "g3", &down)).await;
        let m = cluster_metrics(n).await;
        assert_eq!(m["cluster.members_alive"], "2", "{m:?}");
    }
    let detection = killed.elapsed();
    println!("failure detection: g3 down on g1 and g2 {detection:?} after kill -9");
    assert!(detection <= DOWN_WITHIN, "{detection:?}");

    // Restarted on the same data directory and port: alive again at once.
    let restarted = Instant::now();
    nodes[2] = start("g3", ports[2], dirs[2].path(), &seeds).await;
    let ready = restarted.elapsed();
    let alive = format!("alive {}", addr(ports[2]));
    for n in &nodes[..2] {
        wait_until(n, "g3 alive again", Duration::from_secs(10), |m| {
            member_is(m, "g3", &alive)
        })
        .await;
    }
    let rejoin = restarted.elapsed();
    println!("rejoin: g3 alive on g1 and g2 {rejoin:?} after its restart began ({ready:?} to answer HealthCheck)");
    assert!(
        rejoin < ready + Duration::from_secs(3),
        "rejoin {rejoin:?}, ready {ready:?}"
    );

    // A second node claiming g1's id is not taken for g1.
    let dup_dir = tempfile::tempdir().expect("tempdir");
    let dup_port = free_port();
    let dup = start("g1", dup_port, dup_dir.path(), &seeds).await;
    let taken = format!("node's id is taken by a live member at {}", addr(ports[0]));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !dup.stderr().contains(&taken) {
        assert!(
            Instant::now() < deadline,
            "the duplicate did not log {taken:?}:\n{}",
            dup.stderr()
        );
        tokio::time::sleep(POLL).await;
    }
    for n in &nodes[1..] {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !n.stderr().contains("duplicate node id") {
            assert!(
                Instant::now() < deadline,
                "{} did not log the duplicate:\n{}",
                n.node_id,
                n.stderr()
            );
            tokio::time::sleep(POLL).await;
        }
        let m = cluster_metrics(n).await;
        assert!(
            member_is(&m, "g1", &format!("alive {}", addr(ports[0]))),
            "{}: {m:?}",
            n.node_id
        );
        assert_eq!(m["cluster.members_alive"], "3", "{m:?}");
        assert!(n.stderr().contains(&addr(dup_port)), "names the newcomer");
    }
    let m = cluster_metrics(&dup).await;
    assert_eq!(
        m.get("cluster.node_id_taken_by"),
        Some(&addr(ports[0])),
        "{m:?}"
    );
    assert!(
        member_is(&m, "g1", &format!("alive {}", addr(ports[0]))),
        "{m:?}"
    );
    drop(dup);

    // SIGTERM of g2: left (not down) on the others, and a clean exit.
    nodes[1].signal(libc::SIGTERM);
    let stopping = Instant::now();
    let left = format!("left {}", addr(ports[1]));
    for i in [0, 2] {
        wait_until(&nodes[i], "g2 left", Duration::from_secs(5), |m| {
            member_is(m, "g2", &left)
        })
        .await;
    }
    println!(
        "leave: g2 left on g1 and g3 {:?} after SIGTERM",
        stopping.elapsed()
    );
    let status = nodes[1]
        .wait_exit_async(Duration::from_secs(15))
        .await
        .expect("g2 exits after SIGTERM");
    assert!(status.success(), "{status}");
}

#[test]
fn a_wildcard_listen_without_advertise_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stderr_path = dir.path().join("stderr.log");
    let mut child = command(&stderr_path)
        .arg("--listen")
        .arg(format!("0.0.0.0:{}", free_port()))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--shards")
        .arg("1")
        .spawn()
        .expect("spawn");
    let status = wait_exit(&mut child, Duration::from_secs(10)).expect("exits");
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("cluster.advertise") && stderr.contains("node.listen"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("data").exists(),
        "refused before touching data"
    );
}
