//! Thread-per-core routing: with several shards every key is served
//! correctly whichever core's connection carries the request (requests are
//! forwarded to the owning core, as the per-shard HealthCheck counters show),
//! and many concurrent clients over few connections all succeed, including
//! concurrent writes to one hot key.

mod common;

use common::*;
use std::collections::BTreeSet;

/// Opens connections until both cores hold at least one (the kernel spreads
/// SO_REUSEPORT connections by hash), at least `min` and at most 64.
async fn connections_on_every_core(node: &Node, min: usize) -> Vec<Client> {
    let mut clients = Vec::new();
    let mut cores = BTreeSet::new();
    while clients.len() < 64 {
        let mut c = node.client().await;
        let m = metrics(&mut c).await;
        let served_by = m.get("served_by_shard").cloned();
        clients.push(c);
        match served_by {
            Some(s) => {
                cores.insert(s);
            }
            // Without the metric, rely on numbers: 16 connections all
            // hashed to one of two cores has odds of 2^-15.
            None if clients.len() >= min.max(16) => break,
            None => continue,
        }
        if clients.len() >= min && cores.len() >= node.shards {
            break;
        }
    }
    clients
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_forwarded_to_the_owning_core_and_answered_correctly() {
    let node = Node::start(2).await;
    let clients = connections_on_every_core(&node, 8).await;
    let n = clients.len();
    const KEYS: usize = 200;

    let mut tasks = Vec::new();
    for i in 0..n {
        let mut writer = clients[i].clone();
        // Read back through the next connection, which may sit on another core.
        let mut reader = clients[(i + 1) % n].clone();
        tasks.push(tokio::spawn(async move {
            for k in 0..KEYS {
                let key = format!("fwd-{i}-{k}");
                let value = format!("value-{i}-{k}");
                let w = write(&mut writer, "fwd", &key, value.as_bytes(), None).await;
                assert!(w.success, "{key}: {w:?}");
            }
            for k in 0..KEYS {
                let key = format!("fwd-{i}-{k}");
                let r = read(&mut reader, "fwd", &key).await;
                assert!(r.success, "{key}: {r:?}");
                assert_eq!(r.value, format!("value-{i}-{k}").as_bytes(), "{key}");
                let r = read(&mut writer, "fwd", &key).await;
                assert_eq!(r.value, format!("value-{i}-{k}").as_bytes(), "{key}");
            }
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }

    let mut c = node.client().await;
    let m = metrics(&mut c).await;
    assert_eq!(metric_u64(&m, "shards"), 2, "{m:?}");
    assert_eq!(metric_u64(&m, "keys"), (n * KEYS) as u64, "{m:?}");
    let (mut out, mut inn) = (0, 0);
    for s in 0..2 {
        let p = format!("shard.{s}.");
        assert!(metric_u64(&m, &format!("{p}keys")) > 0, "{m:?}");
        assert!(
            metric_u64(&m, &format!("{p}requests_local")) > 0,
            "shard {s} never served a request from its own core: {m:?}"
        );
        assert!(
            metric_u64(&m, &format!("{p}requests_forwarded_in")) > 0,
            "shard {s} never received a forwarded request: {m:?}"
        );
        assert!(
            metric_u64(&m, &format!("{p}requests_forwarded_out")) > 0,
            "core {s} never forwarded a request: {m:?}"
        );
        out += metric_u64(&m, &format!("{p}requests_forwarded_out"));
        inn += metric_u64(&m, &format!("{p}requests_forwarded_in"));
    }
    assert_eq!(out, inn, "every forwarded request arrives: {m:?}");
    let total: u64 = (0..2)
        .map(|s| {
            metric_u64(&m, &format!("shard.{s}.requests_local"))
                + metric_u64(&m, &format!("shard.{s}.requests_forwarded_out"))
        })
        .sum();
    assert_eq!(
        total,
        (n * KEYS * 3) as u64,
        "every Write/Read is counted once where it was received: {m:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_concurrent_clients_all_succeed() {
    let node = Node::start(2).await;
    let mut conns = Vec::new();
    for _ in 0..4 {
        conns.push(node.client().await);
    }
    const TASKS: usize = 64;
    const ROUNDS: usize = 25;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let mut c = conns[t % conns.len()].clone();
        tasks.push(tokio::spawn(async move {
            for r in 0..ROUNDS {
                let key = format!("conc-{t}-{r}");
                let value = format!("{t}/{r}").repeat(1 + r);
                let w = write(&mut c, "conc", &key, value.as_bytes(), None).await;
                assert!(w.success, "{key}: {w:?}");
                let got = read(&mut c, "conc", &key).await;
                assert!(got.success, "{key}: {got:?}");
                assert_eq!(got.value, value.as_bytes(), "{key}");
                assert_eq!(read_versions(&got).len(), 1, "{key}: {got:?}");
            }
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }
    let m = metrics(&mut conns[0]).await;
    assert_eq!(metric_u64(&m, "keys"), (TASKS * ROUNDS) as u64, "{m:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_to_one_hot_key_lose_nothing() {
    let node = Node::start(2).await;
    let mut conns = Vec::new();
    for _ in 0..4 {
        conns.push(node.client().await);
    }

    // Concurrent coordinators, each with its own clock entry: all siblings.
    const WRITERS: usize = 32;
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let mut c = conns[w % conns.len()].clone();
        tasks.push(tokio::spawn(async move {
            let coordinator = format!("coord-{w:02}");
            let resp = write(
                &mut c,
                "hot",
                "siblings",
                coordinator.as_bytes(),
                clock(&[(&coordinator, 1)]),
            )
            .await;
            assert!(resp.success, "{resp:?}");
        }));
    }
    for t in tasks {
        t.await.expect("writer task");
    }
    let r = read(&mut conns[0], "hot", "siblings").await;
    assert!(r.success, "{r:?}");
    assert_eq!(
        read_versions(&r).len(),
        WRITERS,
        "every concurrent write is a sibling"
    );
    let merged = clock_map(&r.vector_clock);
    assert_eq!(merged.len(), WRITERS, "{merged:?}");
    assert!(merged.values().all(|c| *c == 1), "{merged:?}");

    // Concurrent blind writes: each is stamped on top of the previous one,
    // so the node's counter counts them all and one version remains.
    const BLIND: usize = 48;
    let mut tasks = Vec::new();
    for w in 0..BLIND {
        let mut c = conns[w % conns.len()].clone();
        tasks.push(tokio::spawn(async move {
            let value = format!("blind-{w}");
            let resp = write(&mut c, "hot", "blind", value.as_bytes(), None).await;
            assert!(resp.success, "{resp:?}");
        }));
    }
    for t in tasks {
        t.await.expect("blind writer task");
    }
    let r = read(&mut conns[1], "hot", "blind").await;
    assert!(r.success, "{r:?}");
    assert_eq!(read_versions(&r).len(), 1, "{r:?}");
    assert_eq!(
        clock_map(&r.vector_clock),
        cmap(&[(&node.node_id, BLIND as i64)])
    );
}
