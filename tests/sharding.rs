//! Thread-per-core routing: with several shards every key is served
//! correctly whichever core's connection carries the request (requests are
//! forwarded to the owning core, as the per-shard HealthCheck counters show),
//! and many concurrent clients over few connections all succeed, including
//! concurrent writes to one hot key. HealthCheck names a hot key on the
//! shard that owns it, unless `storage.hot_keys_tracked` is 0.

mod common;

use common::*;
use pairdb_storage::model::{owner_shard, ring_token};
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

/// `shard.N.hot_key.R` values of shard `s`, rank 1 first; checks that the
/// ranks run from 1 without a gap and stop at 10.
fn hot_keys_of(m: &std::collections::BTreeMap<String, String>, s: usize) -> Vec<(u64, String)> {
    let prefix = format!("shard.{s}.hot_key.");
    let listed = m.keys().filter(|k| k.starts_with(&prefix)).count();
    assert!(listed <= 10, "shard {s} lists {listed} hot keys: {m:?}");
    (1..=listed)
        .map(|rank| {
            let v = m
                .get(&format!("{prefix}{rank}"))
                .unwrap_or_else(|| panic!("{prefix}{rank} missing: {m:?}"));
            let (count, shown) = v
                .split_once(' ')
                .unwrap_or_else(|| panic!("{prefix}{rank} = {v:?} is not \"<count> <key>\""));
            let count = count
                .parse()
                .unwrap_or_else(|e| panic!("{prefix}{rank} = {v:?}: {e}"));
            (count, shown.to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_check_names_the_hot_key_on_the_shard_that_owns_it() {
    let node = Node::start(2).await;
    // Two connections: whichever cores they sit on, the owning shard counts.
    let mut clients = [node.client().await, node.client().await];
    const TENANT: &str = "tenant-h";
    const HOT: &str = "the hot/key";
    let w = write(&mut clients[0], TENANT, HOT, b"v", None).await;
    assert!(w.success, "{w:?}");
    for i in 0..200 {
        let r = read(&mut clients[i % 2], TENANT, HOT).await;
        assert!(r.success, "{r:?}");
    }
    for k in 0..30 {
        let key = format!("cool-{k}");
        let w = write(&mut clients[k % 2], TENANT, &key, b"v", None).await;
        assert!(w.success, "{w:?}");
        for _ in 0..3 {
            let r = read(&mut clients[k % 2], TENANT, &key).await;
            assert!(r.success, "{r:?}");
        }
    }

    let m = metrics(&mut clients[0]).await;
    let owner = owner_shard(ring_token(TENANT, HOT), 2);
    let hot = hot_keys_of(&m, owner);
    let Some((count, shown)) = hot.first() else {
        panic!("shard {owner} lists no hot key: {m:?}");
    };
    // Tenant length, tenant, key; the space is escaped.
    assert_eq!(shown, "8:tenant-hthe\\x20hot/key", "{m:?}");
    assert!(*count >= 200, "{count} requests counted: {m:?}");
    assert!(
        hot.windows(2).all(|w| w[0].0 >= w[1].0),
        "ranked by count: {hot:?}"
    );
    for s in 0..2 {
        for (count, shown) in hot_keys_of(&m, s) {
            if shown.starts_with("8:tenant-hcool-") {
                // One write and three reads each; a sketch never counts low.
                assert!(count >= 4, "shard {s}: {shown} counted {count}: {m:?}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_hot_key_is_reported_when_tracking_is_off() {
    let node = Node::start_with(NodeOptions {
        config: Some("[storage]\nhot_keys_tracked = 0\n".into()),
        ..NodeOptions::default()
    })
    .await;
    let mut c = node.client().await;
    for k in 0..8 {
        let key = format!("secret-{k}");
        let w = write(&mut c, "private", &key, b"v", None).await;
        assert!(w.success, "{w:?}");
        for _ in 0..10 {
            let r = read(&mut c, "private", &key).await;
            assert!(r.success, "{r:?}");
        }
    }
    let m = metrics(&mut c).await;
    assert!(m.contains_key("shard.0.requests_local"), "{m:?}");
    let named: Vec<_> = m.keys().filter(|k| k.contains("hot_key")).collect();
    assert!(named.is_empty(), "hot keys reported while off: {named:?}");
    assert!(
        !m.values().any(|v| v.contains("secret-")),
        "a key appears in HealthCheck: {m:?}"
    );
}
