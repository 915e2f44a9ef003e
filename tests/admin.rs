//! Operator and peer operations over gRPC: DrainNode (writes refused with
//! NODE_DRAINING, reads and streams go on, writes in flight at the drain
//! finish or are refused, never lost) and Undrain; RangeDigest (counts and
//! an order-independent digest two nodes with the same versions agree on,
//! additive over complementary ranges); Cleanup of a token range, also
//! across a restart; ApplyVersions' checks and its keeping of timestamps;
//! Flush (every memtable into tables), Compact (levels under their targets
//! taken down on request, the last level refused) and ListStreams.

mod common;

use common::*;
use pairdb_storage::model::{ring_token, TokenRange};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const T: &str = "t";

fn drain_req(graceful: bool, timeout_seconds: i32) -> pb::DrainRequest {
    pb::DrainRequest {
        graceful,
        timeout_seconds,
    }
}

async fn drain(c: &mut Client, graceful: bool, timeout_seconds: i32) -> pb::DrainResponse {
    c.drain_node(drain_req(graceful, timeout_seconds))
        .await
        .expect("DrainNode")
        .into_inner()
}

async fn undrain(node: &Node) -> pb::DrainResponse {
    node.admin()
        .await
        .undrain(pb::UndrainRequest {})
        .await
        .expect("Undrain")
        .into_inner()
}

async fn node_state(c: &mut Client) -> String {
    metrics(c)
        .await
        .get("node.state")
        .cloned()
        .unwrap_or_default()
}

/// Asserts Write, Delete and Repair are refused with NODE_DRAINING and
/// change nothing (`key` holds `value` before and after).
async fn assert_writes_refused(c: &mut Client, key: &str, value: &[u8]) {
    let w = write(c, T, key, b"refused", None).await;
    assert!(!w.success, "Write while draining: {w:?}");
    assert_eq!(w.error_code, NODE_DRAINING, "{w:?}");
    assert!(!w.error_message.is_empty(), "{w:?}");
    let w = write(c, T, "new-key", b"refused", clock(&[("c", 9)])).await;
    assert_eq!(w.error_code, NODE_DRAINING, "Write with a clock: {w:?}");
    let d = delete(c, T, key, None).await;
    assert!(!d.success, "Delete while draining: {d:?}");
    assert_eq!(d.error_code, NODE_DRAINING, "{d:?}");
    let r = repair(c, T, key, b"refused", clock(&[("c", 9)])).await;
    assert!(!r.success, "Repair while draining: {r:?}");
    assert_eq!(r.error_code, NODE_DRAINING, "{r:?}");
    let r = read(c, T, key).await;
    assert!(r.success, "{r:?}");
    assert_eq!(r.value, value, "a refused write changed {key}");
    assert_eq!(read_versions(&r).len(), 1, "{r:?}");
    let r = read(c, T, "new-key").await;
    assert_eq!(r.error_code, KEY_NOT_FOUND, "a refused write stored: {r:?}");
}

#[tokio::test]
async fn a_graceful_drain_refuses_writes_keeps_reads_and_undrain_ends_it() {
    let node = Node::start(2).await;
    let mut c = node.client().await;
    let items: Vec<(String, Vec<u8>)> = (0..50)
        .map(|i| (format!("k{i:02}"), format!("v{i}").into_bytes()))
        .collect();
    for w in write_many(&c, T, &items, 8).await {
        assert!(w.success, "{w:?}");
    }
    assert_eq!(node_state(&mut c).await, "serving");

    let started = Instant::now();
    let d = drain(&mut c, true, 10).await;
    println!("graceful drain answered in {:?}", started.elapsed());
    assert!(d.success, "{d:?}");
    assert_eq!(d.status, "drained", "{d:?}");
    assert_eq!(node_state(&mut c).await, "drained");

    assert_writes_refused(&mut c, "k07", b"v7").await;
    // Another connection (possibly another core) refuses too.
    let mut other = node.client().await;
    assert_writes_refused(&mut other, "k08", b"v8").await;

    // Reads and streams go on, now from flushed tables.
    for (k, v) in &items {
        let r = read(&mut c, T, k).await;
        assert_eq!(&r.value, v, "{k}: {r:?}");
    }
    let got = stream_keys(&mut c, stream_keys_req(T, "", "", 0))
        .await
        .expect("StreamKeys while drained");
    let got: Vec<(String, Vec<u8>)> = got.into_iter().map(|e| (e.key, e.value)).collect();
    assert_eq!(got, items);
    let page = c
        .get_key_range(key_range_req(T, "", "", 0))
        .await
        .expect("GetKeyRange while drained")
        .into_inner();
    assert_eq!(page.keys.len(), items.len());

    // A second drain answers at once.
    let d = drain(&mut c, true, 10).await;
    assert_eq!((d.success, d.status.as_str()), (true, "drained"), "{d:?}");

    let u = undrain(&node).await;
    assert!(u.success, "{u:?}");
    assert_eq!(u.status, "serving", "{u:?}");
    assert_eq!(node_state(&mut c).await, "serving");
    for client in [&mut c, &mut other] {
        let w = write(client, T, "k07", b"after", None).await;
        assert!(w.success, "{w:?}");
        let d = delete(client, T, "k08", None).await;
        assert!(d.success, "{d:?}");
        let r = repair(client, T, "k09", b"repaired", clock(&[("peer", 100)])).await;
        assert!(r.success, "{r:?}");
    }
    let r = read(&mut c, T, "k07").await;
    assert_eq!(r.value, b"after");
    let r = read(&mut c, T, "k08").await;
    assert_eq!(r.error_code, KEY_NOT_FOUND, "{r:?}");
}

#[tokio::test]
async fn a_drain_that_does_not_wait_refuses_writes_at_once() {
    let node = Node::start(2).await;
    let mut c = node.client().await;
    let w = write(&mut c, T, "k", b"v", None).await;
    assert!(w.success, "{w:?}");

    let started = Instant::now();
    let d = drain(&mut c, false, 0).await;
    let took = started.elapsed();
    assert!(d.success, "{d:?}");
    assert!(
        d.status == "draining" || d.status == "drained",
        "status {:?}",
        d.status
    );
    assert!(took < Duration::from_secs(2), "answered after {took:?}");
    assert_writes_refused(&mut c, "k", b"v").await;

    // The drain finishes in the background.
    let deadline = Instant::now() + Duration::from_secs(10);
    while node_state(&mut c).await != "drained" {
        assert!(Instant::now() < deadline, "not drained after 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let d = drain(&mut c, false, 0).await;
    assert_eq!((d.success, d.status.as_str()), (true, "drained"), "{d:?}");
    assert_writes_refused(&mut c, "k", b"v").await;

    let u = undrain(&node).await;
    assert_eq!((u.success, u.status.as_str()), (true, "serving"), "{u:?}");
    let w = write(&mut c, T, "k", b"v2", None).await;
    assert!(w.success, "{w:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_in_flight_at_a_drain_either_succeed_or_are_refused_and_none_is_lost() {
    const WRITES: usize = 200;
    let node = Node::start(2).await;
    let conns = [
        node.client().await,
        node.client().await,
        node.client().await,
        node.client().await,
    ];
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..WRITES {
        let mut c = conns[i % conns.len()].clone();
        tasks.spawn(async move {
            // Spread over ~50 ms, so the drain lands among them.
            tokio::time::sleep(Duration::from_micros(250 * i as u64)).await;
            let key = format!("w{i:03}");
            let w = write(&mut c, T, &key, key.as_bytes(), None).await;
            (key, w)
        });
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut c = node.client().await;
    let d = drain(&mut c, true, 10).await;
    assert_eq!((d.success, d.status.as_str()), (true, "drained"), "{d:?}");
    let answers = tasks.join_all().await;

    let mut acked = Vec::new();
    let mut refused = Vec::new();
    for (key, w) in answers {
        if w.success {
            acked.push(key);
        } else {
            assert_eq!(w.error_code, NODE_DRAINING, "{key}: {w:?}");
            refused.push(key);
        }
    }
    println!(
        "{} writes acknowledged, {} refused by the drain",
        acked.len(),
        refused.len()
    );
    let u = undrain(&node).await;
    assert!(u.success, "{u:?}");
    for key in &acked {
        let r = read(&mut c, T, key).await;
        assert_eq!(r.value, key.as_bytes(), "acknowledged {key} lost: {r:?}");
    }
    for key in &refused {
        let r = read(&mut c, T, key).await;
        assert_eq!(r.error_code, KEY_NOT_FOUND, "refused {key} stored: {r:?}");
    }
}

/// A version as ApplyVersions carries it.
fn version(key: &str, value: &[u8], vc: &[(&str, i64)], timestamp: i64) -> pb::KeyValueEntry {
    pb::KeyValueEntry {
        tenant_id: T.into(),
        key: key.into(),
        value: value.to_vec(),
        vector_clock: clock(vc),
        timestamp,
        is_tombstone: false,
    }
}

fn tombstone(key: &str, vc: &[(&str, i64)], timestamp: i64) -> pb::KeyValueEntry {
    pb::KeyValueEntry {
        is_tombstone: true,
        ..version(key, b"", vc, timestamp)
    }
}

async fn apply(node: &Node, versions: Vec<pb::KeyValueEntry>) -> pb::ApplyVersionsResponse {
    apply_to(node, &node.node_id, versions).await
}

async fn apply_to(
    node: &Node,
    target: &str,
    versions: Vec<pb::KeyValueEntry>,
) -> pb::ApplyVersionsResponse {
    node.peer()
        .await
        .apply_versions(pb::ApplyVersionsRequest {
            source_node_id: "node-src".into(),
            target_node_id: target.into(),
            versions,
        })
        .await
        .expect("ApplyVersions")
        .into_inner()
}

const TS: i64 = 1_700_000_000_000;

/// 60 keys with one version each, a key with two siblings, a tombstone
/// and a key of another tenant: 63 keys, 64 versions.
fn digest_data() -> Vec<pb::KeyValueEntry> {
    let mut v: Vec<pb::KeyValueEntry> = (0..60)
        .map(|i| {
            version(
                &format!("d{i:02}"),
                format!("value {i}").as_bytes(),
                &[("node-src", i + 1)],
                TS + i,
            )
        })
        .collect();
    v.push(version("sib", b"left", &[("x", 1)], TS));
    v.push(version("sib", b"right", &[("y", 1)], TS + 1));
    v.push(tombstone("gone", &[("node-src", 7)], TS + 2));
    v.push(pb::KeyValueEntry {
        tenant_id: "other".into(),
        ..version("d00", b"other tenant", &[("node-src", 1)], TS)
    });
    v
}

fn digest_value(r: &pb::RangeDigestResponse) -> u128 {
    assert_eq!(r.digest.len(), 32, "digest {:?}", r.digest);
    u128::from_str_radix(&r.digest, 16).unwrap_or_else(|e| panic!("digest {:?}: {e}", r.digest))
}

#[tokio::test]
async fn range_digests_agree_on_identical_data_and_add_up_over_complementary_ranges() {
    let a = Node::start_with(NodeOptions {
        shards: 2,
        node_id: "node-a".into(),
        config: None,
    })
    .await;
    let b = Node::start_with(NodeOptions {
        shards: 1,
        node_id: "node-b".into(),
        config: None,
    })
    .await;
    let mut admin_a = a.admin().await;
    let mut admin_b = b.admin().await;

    let empty = range_digest(&mut admin_a, &[(0, 0)]).await;
    assert_eq!((empty.keys, empty.versions), (0, 0), "{empty:?}");
    assert_eq!(digest_value(&empty), 0, "{empty:?}");

    let data = digest_data();
    let r = apply(&a, data.clone()).await;
    assert!(r.success, "{r:?}");
    assert_eq!(
        (r.versions_applied, r.versions_stale),
        (data.len() as i64, 0),
        "{r:?}"
    );
    // The other node gets them in another order, in two batches.
    let mut reversed = data.clone();
    reversed.reverse();
    let (first, second) = reversed.split_at(20);
    for batch in [first, second] {
        let r = apply(&b, batch.to_vec()).await;
        assert!(r.success, "{r:?}");
    }

    let whole_a = range_digest(&mut admin_a, &[(0, 0)]).await;
    let whole_b = range_digest(&mut admin_b, &[(0, 0)]).await;
    assert_eq!((whole_a.keys, whole_a.versions), (63, 64), "{whole_a:?}");
    assert_eq!(whole_a.digest, whole_b.digest, "{whole_a:?} {whole_b:?}");
    assert_eq!(
        (whole_a.keys, whole_a.versions),
        (whole_b.keys, whole_b.versions)
    );
    // Any start == end is the whole ring.
    let again = range_digest(&mut admin_a, &[(12345, 12345)]).await;
    assert_eq!(again, whole_a);

    // (x, y] plus (y, x] is the whole ring; x and y are tokens of stored
    // keys, so the bounds' inclusion matters.
    let tokens: BTreeMap<u64, (String, String)> = data
        .iter()
        .map(|e| {
            (
                ring_token(&e.tenant_id, &e.key),
                (e.tenant_id.clone(), e.key.clone()),
            )
        })
        .collect();
    let sorted: Vec<u64> = tokens.keys().copied().collect();
    let (x, y) = (sorted[10], sorted[40]);
    let count = |r: TokenRange| {
        let keys = tokens.keys().filter(|t| r.contains(**t)).count() as i64;
        let versions = data
            .iter()
            .filter(|e| r.contains(ring_token(&e.tenant_id, &e.key)))
            .count() as i64;
        (keys, versions)
    };
    let inside = range_digest(&mut admin_a, &[(x, y)]).await;
    let outside = range_digest(&mut admin_a, &[(y, x)]).await;
    assert_eq!((inside.keys, inside.versions), count(TokenRange::new(x, y)));
    assert_eq!(
        (outside.keys, outside.versions),
        count(TokenRange::new(y, x))
    );
    assert_eq!(
        inside.keys, 30,
        "(x, y] holds the 30 tokens after x up to y"
    );
    assert_eq!(inside.keys + outside.keys, whole_a.keys);
    assert_eq!(inside.versions + outside.versions, whole_a.versions);
    assert_eq!(
        digest_value(&inside).wrapping_add(digest_value(&outside)),
        digest_value(&whole_a),
        "the digest is a sum over versions"
    );
    let both = range_digest(&mut admin_a, &[(x, y), (y, x)]).await;
    assert_eq!(both, whole_a, "two complementary ranges in one request");
    let inside_b = range_digest(&mut admin_b, &[(x, y)]).await;
    assert_eq!(inside_b, inside, "the other node agrees on a part");

    // One extra version on one node: another digest and count.
    let r = apply(&b, vec![version("extra", b"e", &[("node-src", 1)], TS)]).await;
    assert_eq!(r.versions_applied, 1, "{r:?}");
    let whole_b = range_digest(&mut admin_b, &[(0, 0)]).await;
    assert_ne!(whole_b.digest, whole_a.digest);
    assert_eq!((whole_b.keys, whole_b.versions), (64, 65), "{whole_b:?}");
    // A sibling more on an existing key: same keys, one version more.
    let r = apply(&a, vec![version("d05", b"z", &[("zz", 1)], TS)]).await;
    assert_eq!(r.versions_applied, 1, "{r:?}");
    let after = range_digest(&mut admin_a, &[(0, 0)]).await;
    assert_eq!((after.keys, after.versions), (63, 65), "{after:?}");
    assert_ne!(after.digest, whole_a.digest);
    // Only the timestamp differs: another digest.
    let c = Node::start_with(NodeOptions {
        shards: 1,
        node_id: "node-c".into(),
        config: None,
    })
    .await;
    let mut shifted = digest_data();
    shifted[0].timestamp += 1;
    assert!(apply(&c, shifted).await.success);
    let whole_c = range_digest(&mut c.admin().await, &[(0, 0)]).await;
    assert_eq!((whole_c.keys, whole_c.versions), (63, 64));
    assert_ne!(whole_c.digest, whole_a.digest, "a timestamp is hashed");

    // Validation.
    let r = admin_a
        .range_digest(pb::RangeDigestRequest { key_ranges: vec![] })
        .await
        .expect("RangeDigest")
        .into_inner();
    assert!(!r.success, "{r:?}");
    assert_eq!(r.error_code, INVALID_REQUEST, "{r:?}");
    assert!(!r.error_message.is_empty(), "{r:?}");
}

/// What a cleanup test node holds: key -> its value (None: deleted).
type Held = BTreeMap<String, Option<Vec<u8>>>;

/// Asserts every key outside `(lo, hi]` reads as held and every key inside
/// reads as not found (no version at all), by Read, StreamKeys and
/// RangeDigest.
async fn assert_cleaned(node: &Node, held: &Held, lo: u64, hi: u64) {
    let range = TokenRange::new(lo, hi);
    let mut c = node.client().await;
    let mut live_outside = Vec::new();
    for (k, v) in held {
        let r = read(&mut c, T, k).await;
        if range.contains(ring_token(T, k)) {
            assert_eq!(r.error_code, KEY_NOT_FOUND, "{k} cleaned up: {r:?}");
            assert!(r.versions.is_empty(), "{k} cleaned up: {r:?}");
        } else if let Some(v) = v {
            assert!(r.success, "{k}: {r:?}");
            assert_eq!(&r.value, v, "{k}");
            live_outside.push((k.clone(), v.clone()));
        } else {
            assert_eq!(r.error_code, KEY_NOT_FOUND, "{k} deleted: {r:?}");
            assert_eq!(read_versions(&r).len(), 1, "{k}'s tombstone: {r:?}");
            assert!(read_versions(&r)[0].is_tombstone, "{r:?}");
        }
    }
    let got = stream_keys(&mut c, stream_keys_req(T, "", "", 0))
        .await
        .expect("StreamKeys");
    let got: Vec<(String, Vec<u8>)> = got.into_iter().map(|e| (e.key, e.value)).collect();
    assert!(got == live_outside, "StreamKeys after the cleanup");
    let mut admin = node.admin().await;
    let inside = range_digest(&mut admin, &[(lo, hi)]).await;
    assert_eq!((inside.keys, inside.versions), (0, 0), "{inside:?}");
    assert_eq!(digest_value(&inside), 0, "{inside:?}");
    let outside_keys = held
        .keys()
        .filter(|k| !range.contains(ring_token(T, k)))
        .count() as i64;
    let whole = range_digest(&mut admin, &[(0, 0)]).await;
    assert_eq!(whole.keys, outside_keys, "{whole:?}");
}

#[tokio::test]
async fn cleanup_drops_a_range_and_nothing_else_also_after_a_restart() {
    let data = tempfile::tempdir().expect("tempdir");
    let opts = NodeOptions::default();
    let port = free_port();
    let mut node = Node::spawn_on_data_dir(&opts, port, data.path());
    if let Err(e) = node.wait_ready().await {
        panic!("start: {e}\n{}", node.stderr());
    }
    let mut c = node.client().await;
    let mut held = Held::new();
    // Half the keys go to tables on disk (a drain flushes), half stay in
    // memtables; some of each are deleted, some overwritten later.
    let first: Vec<(String, Vec<u8>)> = (0..200)
        .map(|i| (format!("c{i:03}"), format!("old {i}").into_bytes()))
        .collect();
    for w in write_many(&c, T, &first, 8).await {
        assert!(w.success, "{w:?}");
    }
    held.extend(first.iter().map(|(k, v)| (k.clone(), Some(v.clone()))));
    let d = drain(&mut c, true, 10).await;
    assert_eq!(d.status, "drained", "{d:?}");
    assert!(undrain(&node).await.success);
    let second: Vec<(String, Vec<u8>)> = (100..300)
        .map(|i| (format!("c{i:03}"), format!("new {i}").into_bytes()))
        .collect();
    for w in write_many(&c, T, &second, 8).await {
        assert!(w.success, "{w:?}");
    }
    held.extend(second.iter().map(|(k, v)| (k.clone(), Some(v.clone()))));
    for i in (0..300).step_by(13) {
        let k = format!("c{i:03}");
        let d = delete(&mut c, T, &k, None).await;
        assert!(d.success, "{d:?}");
        held.insert(k, None);
    }

    // (lo, hi]: a quarter of the ring.
    let (lo, hi) = (u64::MAX / 4, u64::MAX / 2);
    let range = TokenRange::new(lo, hi);
    let inside = held
        .keys()
        .filter(|k| range.contains(ring_token(T, k)))
        .count();
    assert!(
        inside > 30 && inside < held.len() - 30,
        "{inside} keys inside"
    );
    let mut admin = node.admin().await;
    let before = range_digest(&mut admin, &[(lo, hi)]).await;
    assert_eq!(before.keys, inside as i64, "{before:?}");
    let outside_before = range_digest(&mut admin, &[(hi, lo)]).await;

    let r = admin
        .cleanup(pb::CleanupRequest {
            key_ranges: vec![token_range(lo, hi)],
        })
        .await
        .expect("Cleanup")
        .into_inner();
    assert!(r.success, "{r:?}");
    assert_eq!(r.keys_removed, inside as i64, "{r:?}");
    assert_eq!(r.versions_removed, before.versions, "{r:?}");
    println!(
        "cleanup removed {} keys, {} versions",
        r.keys_removed, r.versions_removed
    );
    assert_cleaned(&node, &held, lo, hi).await;
    let outside_after = range_digest(&mut admin, &[(hi, lo)]).await;
    assert_eq!(outside_after, outside_before, "the rest is untouched");
    // A second cleanup finds nothing.
    let r = admin
        .cleanup(pb::CleanupRequest {
            key_ranges: vec![token_range(lo, hi)],
        })
        .await
        .expect("Cleanup")
        .into_inner();
    assert_eq!((r.success, r.keys_removed), (true, 0), "{r:?}");

    // The same after a restart on the same data.
    drop((c, admin));
    node.signal(libc::SIGTERM);
    let status = node
        .wait_exit_async(Duration::from_secs(20))
        .await
        .expect("exit after SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", node.stderr());
    let mut node = Node::spawn_on_data_dir(&opts, port, data.path());
    if let Err(e) = node.wait_ready().await {
        panic!("restart: {e}\n{}", node.stderr());
    }
    assert_cleaned(&node, &held, lo, hi).await;
    let outside_restarted = range_digest(&mut node.admin().await, &[(hi, lo)]).await;
    assert_eq!(outside_restarted, outside_before);
}

#[tokio::test]
async fn cleanup_without_ranges_is_an_invalid_request() {
    let node = Node::start(2).await;
    let mut c = node.client().await;
    let w = write(&mut c, T, "k", b"v", None).await;
    assert!(w.success, "{w:?}");
    let r = node
        .admin()
        .await
        .cleanup(pb::CleanupRequest { key_ranges: vec![] })
        .await
        .expect("Cleanup")
        .into_inner();
    assert!(!r.success, "{r:?}");
    assert_eq!(r.error_code, INVALID_REQUEST, "{r:?}");
    assert!(!r.error_message.is_empty(), "{r:?}");
    assert_eq!((r.keys_removed, r.versions_removed), (0, 0), "{r:?}");
    assert_eq!(read(&mut c, T, "k").await.value, b"v");
}

#[tokio::test]
async fn apply_versions_checks_the_batch_and_keeps_timestamps() {
    let node = Node::start(2).await;
    let mut c = node.client().await;
    let not_stored = |r: &pb::ReadResponse| r.error_code == KEY_NOT_FOUND && r.versions.is_empty();

    // Addressed to another node: refused, nothing stored.
    for target in ["node-other", ""] {
        let r = apply_to(&node, target, vec![version("a", b"v", &[("s", 1)], TS)]).await;
        assert!(!r.success, "{r:?}");
        assert_eq!(r.error_code, INVALID_REQUEST, "{r:?}");
        assert_eq!((r.versions_applied, r.versions_stale), (0, 0), "{r:?}");
        assert!(not_stored(&read(&mut c, T, "a").await), "target {target:?}");
    }
    // One invalid entry refuses the whole batch.
    let no_clock = pb::KeyValueEntry {
        vector_clock: None,
        ..version("b", b"v", &[], TS)
    };
    let empty_clock = version("b", b"v", &[], TS);
    let valued_tombstone = pb::KeyValueEntry {
        is_tombstone: true,
        ..version("b", b"v", &[("s", 1)], TS)
    };
    let no_tenant = pb::KeyValueEntry {
        tenant_id: String::new(),
        ..version("b", b"v", &[("s", 1)], TS)
    };
    for bad in [no_clock, empty_clock, valued_tombstone, no_tenant] {
        let batch = vec![
            version("a", b"v", &[("s", 1)], TS),
            bad.clone(),
            version("c", b"v", &[("s", 1)], TS),
        ];
        let r = apply(&node, batch).await;
        assert!(!r.success, "{bad:?}: {r:?}");
        assert_eq!(r.error_code, INVALID_REQUEST, "{bad:?}: {r:?}");
        assert!(r.error_message.contains("versions[1]"), "{r:?}");
        for k in ["a", "b", "c"] {
            assert!(not_stored(&read(&mut c, T, k).await), "{k} after {bad:?}");
        }
    }

    // A valid batch: each version keeps its own timestamp.
    let batch = vec![
        version("a", b"va", &[("s", 2)], TS + 123),
        version("b", b"vb", &[("s", 1), ("r", 4)], 42),
        tombstone("c", &[("s", 5)], TS + 5),
        version("d", b"vd-left", &[("x", 1)], TS + 7),
        version("d", b"vd-right", &[("y", 1)], TS + 8),
    ];
    let r = apply(&node, batch).await;
    assert!(r.success, "{r:?}");
    assert_eq!((r.versions_applied, r.versions_stale), (5, 0), "{r:?}");
    let a = read(&mut c, T, "a").await;
    assert_eq!(
        (a.value.as_slice(), a.timestamp),
        (&b"va"[..], TS + 123),
        "{a:?}"
    );
    assert_eq!(clock_map(&a.vector_clock), cmap(&[("s", 2)]));
    let b = read(&mut c, T, "b").await;
    assert_eq!((b.value.as_slice(), b.timestamp), (&b"vb"[..], 42), "{b:?}");
    let tomb = read(&mut c, T, "c").await;
    assert_eq!(tomb.error_code, KEY_NOT_FOUND, "{tomb:?}");
    assert_eq!(tomb.versions.len(), 1, "{tomb:?}");
    assert!(tomb.versions[0].is_tombstone, "{tomb:?}");
    assert_eq!(tomb.versions[0].timestamp, TS + 5, "{tomb:?}");
    assert_eq!(clock_map(&tomb.versions[0].vector_clock), cmap(&[("s", 5)]));
    let d = read(&mut c, T, "d").await;
    let mut stamps: Vec<(Vec<u8>, i64)> = read_versions(&d)
        .iter()
        .map(|v| (v.value.clone(), v.timestamp))
        .collect();
    stamps.sort();
    assert_eq!(
        stamps,
        [
            (b"vd-left".to_vec(), TS + 7),
            (b"vd-right".to_vec(), TS + 8)
        ]
    );

    // Versions a stored one descends (or equals) are stale and change
    // nothing; a newer one replaces.
    let r = apply(
        &node,
        vec![
            version("a", b"older", &[("s", 1)], TS + 999),
            version("a", b"va", &[("s", 2)], TS + 123),
            tombstone("c", &[("s", 4)], TS),
            version("b", b"vb2", &[("s", 2), ("r", 4)], TS + 50),
        ],
    )
    .await;
    assert!(r.success, "{r:?}");
    assert_eq!((r.versions_applied, r.versions_stale), (1, 3), "{r:?}");
    let a2 = read(&mut c, T, "a").await;
    assert_eq!(a2, a, "a stale version changed the key");
    let b = read(&mut c, T, "b").await;
    assert_eq!(
        (b.value.as_slice(), b.timestamp),
        (&b"vb2"[..], TS + 50),
        "{b:?}"
    );
    assert_eq!(read_versions(&b).len(), 1, "{b:?}");
}

async fn write_round(c: &mut Client, n: usize, value: &[u8]) {
    let items: Vec<(String, Vec<u8>)> = (0..n)
        .map(|i| (format!("k{i:03}"), value.to_vec()))
        .collect();
    for w in write_many(c, T, &items, 8).await {
        assert!(w.success, "{w:?}");
    }
}

#[tokio::test]
async fn flush_makes_every_memtable_a_table_and_answers_per_shard_figures() {
    let node = Node::start(2).await;
    let mut c = node.client().await;
    write_round(&mut c, 40, b"v").await;
    let m = metrics(&mut c).await;
    let in_memtables: u64 = (0..2)
        .map(|i| metric_u64(&m, &format!("shard.{i}.memtable_bytes")))
        .sum();
    assert!(in_memtables > 0, "{m:?}");

    let r = node
        .admin()
        .await
        .flush(pb::FlushRequest {})
        .await
        .expect("Flush")
        .into_inner();
    assert!(r.success, "{r:?}");
    assert_eq!(r.shards.len(), 2, "{r:?}");
    for (i, s) in r.shards.iter().enumerate() {
        assert_eq!(s.shard as usize, i, "{r:?}");
        assert_eq!((s.memtable_bytes, s.immutable_memtables), (0, 0), "{r:?}");
        assert_eq!(s.level_tables.len(), 5, "{r:?}");
        assert_eq!(s.level_tables.iter().sum::<u64>(), s.sstables, "{r:?}");
    }
    assert!(
        r.shards.iter().map(|s| s.sstables).sum::<u64>() >= 2,
        "{r:?}"
    );
    let m = metrics(&mut c).await;
    for i in 0..2 {
        assert_eq!(metric_u64(&m, &format!("shard.{i}.memtable_bytes")), 0);
    }
    assert_eq!(read(&mut c, T, "k007").await.value, b"v");
    // Nothing left to flush: still success.
    let again = node.admin().await.flush(pb::FlushRequest {}).await;
    assert!(again.expect("Flush").into_inner().success);
}

async fn compact(node: &Node, level: Option<u32>) -> pb::CompactResponse {
    node.admin()
        .await
        .compact(pb::CompactRequest { level })
        .await
        .expect("Compact")
        .into_inner()
}

#[tokio::test]
async fn compact_takes_the_levels_asked_down_and_refuses_the_last() {
    let node = Node::start(2).await;
    let mut c = node.client().await;
    let admin_flush = || async {
        let r = node
            .admin()
            .await
            .flush(pb::FlushRequest {})
            .await
            .expect("Flush")
            .into_inner();
        assert!(r.success, "{r:?}");
    };
    write_round(&mut c, 60, b"old").await;
    admin_flush().await;
    write_round(&mut c, 60, b"new").await;
    admin_flush().await;

    // Two L0 tables per shard, under the trigger: level 0 merges anyway.
    let r = compact(&node, Some(0)).await;
    assert!(r.success, "{r:?}");
    assert_eq!(r.shards.len(), 2, "{r:?}");
    for s in &r.shards {
        assert_eq!(s.merges, 1, "{r:?}");
        assert!(s.bytes_read > 0 && s.bytes_written > 0, "{r:?}");
        let tables = s.tables.as_ref().expect("tables");
        assert_eq!(tables.level_tables[0], 0, "{r:?}");
        assert_eq!(tables.level_tables[1], 1, "{r:?}");
    }
    // Level 0 is empty now: nothing to do.
    let r = compact(&node, Some(0)).await;
    assert!(r.success, "{r:?}");
    assert!(
        r.shards.iter().all(|s| s.merges + s.trivial_moves == 0),
        "{r:?}"
    );
    // Every level: everything ends in the last one.
    let r = compact(&node, None).await;
    assert!(r.success, "{r:?}");
    for s in &r.shards {
        let tables = &s.tables.as_ref().expect("tables").level_tables;
        assert_eq!(tables.as_slice(), &[0, 0, 0, 0, 1], "{r:?}");
    }
    let read_back = read(&mut c, T, "k042").await;
    assert_eq!(read_back.value, b"new", "{read_back:?}");
    assert_eq!(read_versions(&read_back).len(), 1);

    for level in [4, 5, u32::MAX] {
        let r = compact(&node, Some(level)).await;
        assert!(!r.success, "level {level}: {r:?}");
        assert_eq!(r.error_code, INVALID_REQUEST, "{r:?}");
        assert!(r.error_message.contains("level"), "{r:?}");
    }
}

#[tokio::test]
async fn list_streams_is_empty_without_streams() {
    let node = Node::start(2).await;
    let r = node
        .admin()
        .await
        .list_streams(pb::ListStreamsRequest {})
        .await
        .expect("ListStreams")
        .into_inner();
    assert!(r.streams.is_empty(), "{r:?}");
}
