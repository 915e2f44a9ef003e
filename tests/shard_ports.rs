//! Shard-aware ports: with `node.shard_port_base`, shard i also listens on
//! base + i; GetShardMap names the shard count, the key-to-shard rule and
//! the ports. A request sent to its owner's port is executed on that core
//! with no forwarding; one sent to another shard's port is still served
//! (forwarded); without the setting the map has no ports; a base whose
//! range covers the listen port is refused at start-up.

mod common;

use common::*;
use std::net::TcpListener;
use std::time::Duration;

const SHARDS: usize = 2;

/// A base port with `SHARDS` consecutive free ports (all held while
/// choosing, then released).
fn free_port_run() -> u16 {
    for _ in 0..50 {
        let base = free_port();
        // Held until the check is done, so no port is counted twice.
        let mut held = Vec::new();
        for i in 0..SHARDS as u16 {
            match base
                .checked_add(i)
                .and_then(|p| TcpListener::bind(("127.0.0.1", p)).ok())
            {
                Some(listener) => held.push(listener),
                None => break,
            }
        }
        if held.len() == SHARDS {
            return base;
        }
    }
    panic!("no run of {SHARDS} free ports");
}

fn options(base: u16) -> NodeOptions {
    NodeOptions {
        shards: SHARDS,
        config: Some(format!("[node]\nshard_port_base = {base}\n")),
        ..NodeOptions::default()
    }
}

/// The shard owning `tenant`/`key`, computed as a client would from the
/// map's rule ("token_range" over the ring token).
fn owner(tenant: &str, key: &str, shards: usize) -> usize {
    let token = token_of(&format!("{tenant}:{key}"));
    ((token as u128 * shards as u128) >> 64) as usize
}

async fn client_on_port(port: u32) -> Client {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(5));
    client_on(endpoint.connect().await.expect("connect to a shard port"))
}

/// GetShardMap; checks the parts every node answers alike.
async fn shard_map(c: &mut Client) -> pb::ShardMapResponse {
    let map = c
        .get_shard_map(pb::ShardMapRequest {})
        .await
        .expect("GetShardMap")
        .into_inner();
    assert_eq!(map.shards, SHARDS as u32);
    assert_eq!(map.partitioning, "token_range");
    map
}

fn sum(m: &std::collections::BTreeMap<String, String>, suffix: &str) -> u64 {
    (0..SHARDS)
        .map(|i| metric_u64(m, &format!("shard.{i}.{suffix}")))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_key_goes_straight_to_its_shard_port() {
    let base = free_port_run();
    let node = Node::start_with(options(base)).await;
    let mut c = node.client().await;
    let map = shard_map(&mut c).await;
    assert_eq!(map.shard_ports, vec![base as u32, base as u32 + 1]);
    assert_eq!(map.node_id, node.node_id);

    let mut by_shard = Vec::new();
    for port in &map.shard_ports {
        by_shard.push(client_on_port(*port).await);
    }
    let before = metrics(&mut c).await;
    let keys: Vec<String> = (0..40).map(|i| format!("key-{i}")).collect();
    let mut owners = [0usize; SHARDS];
    for key in &keys {
        let shard = owner("t", key, SHARDS);
        owners[shard] += 1;
        let w = write(&mut by_shard[shard], "t", key, key.as_bytes(), None).await;
        assert!(w.success, "{w:?}");
        let r = read(&mut by_shard[shard], "t", key).await;
        assert_eq!(r.value, key.as_bytes());
    }
    assert!(
        owners.iter().all(|n| *n > 0),
        "keys on both shards: {owners:?}"
    );
    let after = metrics(&mut c).await;
    assert_eq!(
        sum(&after, "requests_forwarded_out") - sum(&before, "requests_forwarded_out"),
        0,
        "a request on its owner's port is never forwarded"
    );
    assert_eq!(
        sum(&after, "requests_local") - sum(&before, "requests_local"),
        2 * keys.len() as u64
    );

    // The wrong shard's port still serves the key (one hop).
    let key = "elsewhere";
    let wrong = 1 - owner("t", key, SHARDS);
    let w = write(&mut by_shard[wrong], "t", key, b"v", None).await;
    assert!(w.success, "{w:?}");
    let later = metrics(&mut c).await;
    assert_eq!(
        sum(&later, "requests_forwarded_out") - sum(&after, "requests_forwarded_out"),
        1
    );
    assert_eq!(read(&mut c, "t", key).await.value, b"v");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_base_the_map_has_no_ports() {
    let node = Node::start(SHARDS).await;
    let mut c = node.client().await;
    let map = shard_map(&mut c).await;
    assert!(map.shard_ports.is_empty(), "{map:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shard_ports_over_the_listen_port_are_refused() {
    let port = free_port();
    let mut node = Node::spawn(&options(port), port);
    let status = node.wait_exit_async(Duration::from_secs(20)).await;
    let stderr = node.stderr();
    assert_eq!(status.and_then(|s| s.code()), Some(2), "{stderr}");
    assert!(stderr.contains("include the listen port"), "{stderr}");
}
