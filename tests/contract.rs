//! Contract semantics of Write, Read, Delete and Repair as coordinators see
//! them over gRPC: blind writes and node-id stamping, siblings and their
//! resolution, stale and repeated writes, tombstones, read repair, tenant
//! isolation, and request validation (errors in the body, gRPC status OK).

mod common;

use common::*;

const T: &str = "tenant-1";

#[tokio::test]
async fn blind_write_is_stamped_with_node_id_and_a_second_blind_write_overwrites() {
    let node = Node::start(2).await;
    let mut c = node.client().await;

    let w = write(&mut c, T, "blind", b"first", None).await;
    assert!(w.success, "{w:?}");
    assert_eq!(w.error_code, 0, "{w:?}");
    assert_eq!(
        clock_map(&w.updated_vector_clock),
        cmap(&[(&node.node_id, 1)])
    );

    let r = read(&mut c, T, "blind").await;
    assert!(r.success, "{r:?}");
    assert_eq!(r.value, b"first");
    assert_eq!(clock_map(&r.vector_clock), cmap(&[(&node.node_id, 1)]));
    assert_eq!(read_versions(&r).len(), 1, "{r:?}");
    assert!(r.timestamp > 0, "read timestamp must be set: {r:?}");

    // An explicitly empty clock is blind too.
    let w = write(
        &mut c,
        T,
        "blind",
        b"second",
        Some(pb::VectorClock { entries: vec![] }),
    )
    .await;
    assert!(w.success, "{w:?}");
    assert_eq!(
        clock_map(&w.updated_vector_clock),
        cmap(&[(&node.node_id, 2)])
    );

    let r = read(&mut c, T, "blind").await;
    assert!(r.success, "{r:?}");
    assert_eq!(r.value, b"second");
    assert_eq!(clock_map(&r.vector_clock), cmap(&[(&node.node_id, 2)]));
    assert_eq!(
        read_versions(&r).len(),
        1,
        "blind write must overwrite: {r:?}"
    );
    let v = &read_versions(&r)[0];
    assert_eq!(v.value, b"second");
    assert!(!v.is_tombstone);
    assert_eq!(v.timestamp, r.timestamp);
}

#[tokio::test]
async fn missing_key_reads_key_not_found() {
    let node = Node::start(2).await;
    let mut c = node.client().await;
    let r = read(&mut c, T, "never-written").await;
    assert!(!r.success, "{r:?}");
    assert_eq!(r.error_code, KEY_NOT_FOUND, "{r:?}");
    assert!(r.value.is_empty(), "{r:?}");
    assert!(r.versions.is_empty(), "{r:?}");
}

#[tokio::test]
async fn concurrent_writes_are_kept_as_siblings_and_a_descending_write_resolves_them() {
    let node = Node::start(2).await;
    let mut c = node.client().await;

    let w = write(&mut c, T, "sib", b"v1-from-a", clock(&[("a", 1)])).await;
    assert!(w.success, "{w:?}");
    assert_eq!(clock_map(&w.updated_vector_clock), cmap(&[("a", 1)]));
    // The second sibling is written later and has the larger value, so it is
    // the one a plain read answers whatever the timestamp resolution.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let w = write(&mut c, T, "sib", b"v2-from-b", clock(&[("b", 1)])).await;
    assert!(w.success, "{w:?}");
    assert_eq!(
        clock_map(&w.updated_vector_clock),
        cmap(&[("a", 1), ("b", 1)]),
        "updated_vector_clock is the merge of the kept versions"
    );

    let r = read(&mut c, T, "sib").await;
    assert!(r.success, "{r:?}");
    assert_eq!(read_versions(&r).len(), 2, "two concurrent versions: {r:?}");
    let mut values: Vec<_> = r.versions.iter().map(|v| v.value.clone()).collect();
    values.sort();
    assert_eq!(values, vec![b"v1-from-a".to_vec(), b"v2-from-b".to_vec()]);
    for v in &r.versions {
        let expect = if v.value == b"v1-from-a" {
            cmap(&[("a", 1)])
        } else {
            cmap(&[("b", 1)])
        };
        assert_eq!(clock_map(&v.vector_clock), expect, "{v:?}");
        assert!(!v.is_tombstone);
    }
    assert_eq!(r.value, b"v2-from-b", "the later sibling is answered");
    let latest = r.versions.iter().map(|v| v.timestamp).max().unwrap();
    assert_eq!(r.timestamp, latest, "{r:?}");
    assert_eq!(clock_map(&r.vector_clock), cmap(&[("a", 1), ("b", 1)]));

    // A coordinator writes back with a clock that descends both siblings.
    let w = write(&mut c, T, "sib", b"resolved", clock(&[("a", 2), ("b", 1)])).await;
    assert!(w.success, "{w:?}");
    assert_eq!(
        clock_map(&w.updated_vector_clock),
        cmap(&[("a", 2), ("b", 1)])
    );
    let r = read(&mut c, T, "sib").await;
    assert!(r.success, "{r:?}");
    assert_eq!(read_versions(&r).len(), 1, "resolved to one version: {r:?}");
    assert_eq!(r.value, b"resolved");
    assert_eq!(clock_map(&r.vector_clock), cmap(&[("a", 2), ("b", 1)]));
}

#[tokio::test]
async fn writing_back_the_read_clock_resolves_siblings() {
    let node = Node::start(2).await;
    let mut c = node.client().await;
    write(&mut c, T, "rmw", b"x", clock(&[("a", 3)])).await;
    write(&mut c, T, "rmw", b"y", clock(&[("b", 7)])).await;
    write(&mut c, T, "rmw", b"z", clock(&[("c", 1)])).await;
    let r = read(&mut c, T, "rmw").await;
    assert_eq!(read_versions(&r).len(), 3, "{r:?}");
    assert_eq!(
        clock_map(&r.vector_clock),
        cmap(&[("a", 3), ("b", 7), ("c", 1)])
    );

    // The coordinator's usual move: the read clock plus its own increment.
    let mut next = r.vector_clock.clone().unwrap();
    for e in &mut next.entries {
        if e.coordinator_node_id == "a" {
            e.logical_timestamp += 1;
        }
    }
    let w = write(&mut c, T, "rmw", b"merged", Some(next)).await;
    assert!(w.success, "{w:?}");
    let r = read(&mut c, T, "rmw").await;
    assert_eq!(read_versions(&r).len(), 1, "{r:?}");
    assert_eq!(r.value, b"merged");
    assert_eq!(
        clock_map(&r.vector_clock),
        cmap(&[("a", 4), ("b", 7), ("c", 1)])
    );

    // A blind write on a key with siblings overwrites them all too.
    write(&mut c, T, "rmw2", b"p", clock(&[("a", 1)])).await;
    write(&mut c, T, "rmw2", b"q", clock(&[("b", 1)])).await;
    let w = write(&mut c, T, "rmw2", b"blind", None).await;
    assert_eq!(
        clock_map(&w.updated_vector_clock),
        cmap(&[("a", 1), ("b", 1), (&node.node_id, 1)])
    );
    let r = read(&mut c, T, "rmw2").await;
    assert_eq!(read_versions(&r).len(), 1, "{r:?}");
    assert_eq!(r.value, b"blind");
}

#[tokio::test]
async fn stale_and_repeated_writes_change_nothing() {
    let node = Node::start(2).await;
    let mut c = node.client().await;

    let w = write(&mut c, T, "stale", b"current", clock(&[("a", 2)])).await;
    assert!(w.success, "{w:?}");

    // Older clock: succeeds, answers the current clock, stores nothing.
    let w = write(&mut c, T, "stale", b"older", clock(&[("a", 1)])).await;
    assert!(w.success, "a stale write still succeeds: {w:?}");
    assert_eq!(w.error_code, 0);
    assert_eq!(clock_map(&w.updated_vector_clock), cmap(&[("a", 2)]));
    let r = read(&mut c, T, "stale").await;
    assert_eq!(r.value, b"current");
    assert_eq!(read_versions(&r).len(), 1, "{r:?}");

    // Same clock again with another value: a repeat, also ignored.
    let w = write(&mut c, T, "stale", b"repeat", clock(&[("a", 2)])).await;
    assert!(w.success, "{w:?}");
    assert_eq!(clock_map(&w.updated_vector_clock), cmap(&[("a", 2)]));
    let r = read(&mut c, T, "stale").await;
    assert_eq!(r.value, b"current");
    assert_eq!(read_versions(&r).len(), 1, "{r:?}");
    assert_eq!(clock_map(&r.vector_clock), cmap(&[("a", 2)]));

    // A zero entry is the same as a missing one: {a:2, b:0} equals {a:2}.
    let w = write(&mut c, T, "stale", b"zero", clock(&[("a", 2), ("b", 0)])).await;
    assert!(w.success, "{w:?}");
    let r = read(&mut c, T, "stale").await;
    assert_eq!(r.value, b"current");
    assert_eq!(read_versions(&r).len(), 1, "{r:?}");
}

#[tokio::test]
async fn blind_delete_reads_as_not_found_but_keeps_its_clock() {
    let node = Node::start(2).await;
    let mut c = node.client().await;

    write(&mut c, T, "del", b"alive", None).await;
    let d = delete(&mut c, T, "del", None).await;
    assert!(d.success, "{d:?}");
    assert_eq!(
        clock_map(&d.updated_vector_clock),
        cmap(&[(&node.node_id, 2)])
    );

    let r = read(&mut c, T, "del").await;
    assert!(!r.success, "{r:?}");
    assert_eq!(r.error_code, KEY_NOT_FOUND, "{r:?}");
    assert!(r.value.is_empty(), "{r:?}");
    assert_eq!(
        clock_map(&r.vector_clock),
        cmap(&[(&node.node_id, 2)]),
        "a deleted key still answers its clock"
    );
    assert_eq!(read_versions(&r).len(), 1, "{r:?}");
    assert!(r.versions[0].is_tombstone, "{r:?}");
    assert!(r.versions[0].value.is_empty(), "{r:?}");

    // Writing back with the tombstone's clock (plus one) resurrects the key.
    let w = write(&mut c, T, "del", b"again", clock(&[(&node.node_id, 3)])).await;
    assert!(w.success, "{w:?}");
    let r = read(&mut c, T, "del").await;
    assert!(r.success, "{r:?}");
    assert_eq!(r.value, b"again");
    assert_eq!(read_versions(&r).len(), 1, "{r:?}");

    // Deleting a key that never existed leaves a tombstone with a stamped clock.
    let d = delete(&mut c, T, "never", None).await;
    assert!(d.success, "{d:?}");
    let r = read(&mut c, T, "never").await;
    assert!(!r.success);
    assert_eq!(r.error_code, KEY_NOT_FOUND);
    assert_eq!(clock_map(&r.vector_clock), cmap(&[(&node.node_id, 1)]));
}

#[tokio::test]
async fn delete_with_a_concurrent_clock_keeps_the_live_sibling() {
    let node = Node::start(2).await;
    let mut c = node.client().await;

    write(&mut c, T, "half", b"live", clock(&[("a", 1)])).await;
    let d = delete(&mut c, T, "half", clock(&[("b", 1)])).await;
    assert!(d.success, "{d:?}");
    assert_eq!(
        clock_map(&d.updated_vector_clock),
        cmap(&[("a", 1), ("b", 1)])
    );

    let r = read(&mut c, T, "half").await;
    assert!(r.success, "a live sibling keeps the key readable: {r:?}");
    assert_eq!(r.value, b"live");
    assert_eq!(read_versions(&r).len(), 2, "{r:?}");
    assert_eq!(r.versions.iter().filter(|v| v.is_tombstone).count(), 1);
    assert_eq!(clock_map(&r.vector_clock), cmap(&[("a", 1), ("b", 1)]));

    // A delete that descends both leaves only a tombstone.
    let d = delete(&mut c, T, "half", clock(&[("a", 1), ("b", 2)])).await;
    assert!(d.success, "{d:?}");
    let r = read(&mut c, T, "half").await;
    assert!(!r.success, "{r:?}");
    assert_eq!(r.error_code, KEY_NOT_FOUND);
    assert_eq!(read_versions(&r).len(), 1, "{r:?}");
    assert!(r.versions[0].is_tombstone);
    assert_eq!(clock_map(&r.vector_clock), cmap(&[("a", 1), ("b", 2)]));

    // A stale delete changes nothing.
    write(&mut c, T, "kept", b"v", clock(&[("a", 5)])).await;
    let d = delete(&mut c, T, "kept", clock(&[("a", 4)])).await;
    assert!(d.success, "{d:?}");
    assert_eq!(clock_map(&d.updated_vector_clock), cmap(&[("a", 5)]));
    let r = read(&mut c, T, "kept").await;
    assert!(r.success, "{r:?}");
    assert_eq!(r.value, b"v");
}

#[tokio::test]
async fn repair_applies_by_dominance_and_is_never_stamped() {
    let node = Node::start(2).await;
    let mut c = node.client().await;

    // Repair of a missing key stores exactly the given version.
    let rp = repair(&mut c, T, "rep", b"from-peer", clock(&[("x", 4), ("y", 1)])).await;
    assert!(rp.success, "{rp:?}");
    let r = read(&mut c, T, "rep").await;
    assert!(r.success, "{r:?}");
    assert_eq!(r.value, b"from-peer");
    assert_eq!(
        clock_map(&r.vector_clock),
        cmap(&[("x", 4), ("y", 1)]),
        "a repair is never stamped with the node id"
    );

    // A repair whose clock descends the stored one replaces it.
    let rp = repair(&mut c, T, "rep", b"newer", clock(&[("x", 5), ("y", 1)])).await;
    assert!(rp.success, "{rp:?}");
    let r = read(&mut c, T, "rep").await;
    assert_eq!(r.value, b"newer");
    assert_eq!(read_versions(&r).len(), 1, "{r:?}");
    assert_eq!(clock_map(&r.vector_clock), cmap(&[("x", 5), ("y", 1)]));

    // A stale repair succeeds and changes nothing.
    let rp = repair(&mut c, T, "rep", b"older", clock(&[("x", 4), ("y", 1)])).await;
    assert!(rp.success, "{rp:?}");
    let r = read(&mut c, T, "rep").await;
    assert_eq!(r.value, b"newer");
    assert_eq!(read_versions(&r).len(), 1, "{r:?}");

    // A concurrent repair adds a sibling.
    let rp = repair(&mut c, T, "rep", b"other", clock(&[("z", 1)])).await;
    assert!(rp.success, "{rp:?}");
    let r = read(&mut c, T, "rep").await;
    assert_eq!(read_versions(&r).len(), 2, "{r:?}");
    assert_eq!(
        clock_map(&r.vector_clock),
        cmap(&[("x", 5), ("y", 1), ("z", 1)])
    );

    // A repair over a blind write: exactly the repaired clock, no stamp added.
    write(&mut c, T, "rep2", b"local", None).await;
    let rp = repair(
        &mut c,
        T,
        "rep2",
        b"fixed",
        clock(&[(&node.node_id, 1), ("c", 2)]),
    )
    .await;
    assert!(rp.success, "{rp:?}");
    let r = read(&mut c, T, "rep2").await;
    assert_eq!(r.value, b"fixed");
    assert_eq!(read_versions(&r).len(), 1, "{r:?}");
    assert_eq!(
        clock_map(&r.vector_clock),
        cmap(&[(&node.node_id, 1), ("c", 2)])
    );
}

#[tokio::test]
async fn repair_without_a_clock_is_an_invalid_request() {
    let node = Node::start(2).await;
    let mut c = node.client().await;
    for vc in [None, Some(pb::VectorClock { entries: vec![] })] {
        let rp = repair(&mut c, T, "norep", b"v", vc).await;
        assert!(!rp.success, "{rp:?}");
        assert_eq!(rp.error_code, INVALID_REQUEST, "{rp:?}");
        assert!(rp.error_message.contains("vector_clock"), "{rp:?}");
    }
    let r = read(&mut c, T, "norep").await;
    assert_eq!(r.error_code, KEY_NOT_FOUND, "nothing was stored: {r:?}");
}

#[tokio::test]
async fn tenant_and_key_pairs_never_collide() {
    let node = Node::start(2).await;
    let mut c = node.client().await;

    write(&mut c, "t:a", "b", b"tenant t:a, key b", None).await;
    write(&mut c, "t", "a:b", b"tenant t, key a:b", None).await;
    write(&mut c, "t:a:b", "c", b"tenant t:a:b", None).await;

    let r = read(&mut c, "t:a", "b").await;
    assert_eq!(r.value, b"tenant t:a, key b");
    assert_eq!(read_versions(&r).len(), 1, "{r:?}");
    let r = read(&mut c, "t", "a:b").await;
    assert_eq!(r.value, b"tenant t, key a:b");
    assert_eq!(read_versions(&r).len(), 1, "{r:?}");

    // With siblings every version is listed, naming its own tenant and key.
    for (tenant, key) in [("t:a", "b"), ("t", "a:b")] {
        write(&mut c, tenant, key, b"sibling", clock(&[("z", 1)])).await;
    }
    for (tenant, key, value) in [
        ("t:a", "b", &b"tenant t:a, key b"[..]),
        ("t", "a:b", &b"tenant t, key a:b"[..]),
    ] {
        let r = read(&mut c, tenant, key).await;
        assert_eq!(r.versions.len(), 2, "{tenant}/{key}: {r:?}");
        for v in &r.versions {
            assert_eq!(v.tenant_id, tenant, "{v:?}");
            assert_eq!(v.key, key, "{v:?}");
        }
        let mut values: Vec<_> = r.versions.iter().map(|v| v.value.clone()).collect();
        values.sort();
        assert_eq!(values, vec![b"sibling".to_vec(), value.to_vec()]);
    }
    let r = read(&mut c, "t:a", "b:c").await;
    assert_eq!(r.error_code, KEY_NOT_FOUND, "{r:?}");

    // The same key in another tenant is another key.
    write(&mut c, "tenant-x", "shared", b"x", None).await;
    let r = read(&mut c, "tenant-y", "shared").await;
    assert!(!r.success);
    assert_eq!(r.error_code, KEY_NOT_FOUND, "{r:?}");
    delete(&mut c, "tenant-y", "shared", None).await;
    let r = read(&mut c, "tenant-x", "shared").await;
    assert!(
        r.success,
        "delete in another tenant must not touch it: {r:?}"
    );
    assert_eq!(r.value, b"x");

    // Non-ASCII identifiers round-trip unchanged.
    write(
        &mut c,
        "ténant-ü",
        "ключ/🔑",
        b"unicode",
        clock(&[("a", 1)]),
    )
    .await;
    let r = read(&mut c, "ténant-ü", "ключ/🔑").await;
    assert_eq!(r.value, b"unicode");
    write(
        &mut c,
        "ténant-ü",
        "ключ/🔑",
        b"unicode-2",
        clock(&[("b", 1)]),
    )
    .await;
    let r = read(&mut c, "ténant-ü", "ключ/🔑").await;
    assert_eq!(r.versions.len(), 2, "{r:?}");
    for v in &r.versions {
        assert_eq!(v.tenant_id, "ténant-ü");
        assert_eq!(v.key, "ключ/🔑");
    }
}

fn entry(node: &str, counter: i64) -> pb::VectorClockEntry {
    pb::VectorClockEntry {
        coordinator_node_id: node.into(),
        logical_timestamp: counter,
    }
}

/// Asserts an INVALID_REQUEST answer whose message names `field`.
fn assert_invalid(what: &str, success: bool, code: i32, message: &str, field: &str) {
    assert!(!success, "{what}: must fail");
    assert_eq!(code, INVALID_REQUEST, "{what}: error_code ({message})");
    assert!(
        message.contains(field),
        "{what}: error_message {message:?} must name {field}"
    );
}

#[tokio::test]
async fn invalid_writes_answer_invalid_request_naming_the_field() {
    let node = Node::start(2).await;
    let mut c = node.client().await;
    let long_key = "k".repeat(8193);
    let long_tenant = "t".repeat(257);
    let many: Vec<_> = (0..65).map(|i| entry(&format!("n{i}"), 1)).collect();
    let cases: Vec<(&str, pb::WriteRequest, &str)> = vec![
        (
            "empty tenant_id",
            write_req("", "k", b"v", None),
            "tenant_id",
        ),
        (
            "tenant_id over 256 bytes",
            write_req(&long_tenant, "k", b"v", None),
            "tenant_id",
        ),
        ("empty key", write_req(T, "", b"v", None), "key"),
        (
            "key over 8192 bytes",
            write_req(T, &long_key, b"v", None),
            "key",
        ),
        (
            "duplicate clock node id",
            write_req(
                T,
                "k",
                b"v",
                Some(pb::VectorClock {
                    entries: vec![entry("a", 1), entry("a", 2)],
                }),
            ),
            "vector_clock",
        ),
        (
            "negative logical_timestamp",
            write_req(T, "k", b"v", clock(&[("a", -1)])),
            "vector_clock",
        ),
        (
            "empty coordinator_node_id",
            write_req(T, "k", b"v", clock(&[("", 1)])),
            "vector_clock",
        ),
        (
            "more than 64 clock entries",
            write_req(T, "k", b"v", Some(pb::VectorClock { entries: many })),
            "vector_clock",
        ),
    ];
    for (what, req, field) in cases {
        let w = c
            .write(req)
            .await
            .unwrap_or_else(|s| panic!("{what}: expected gRPC OK, got {s:?}"))
            .into_inner();
        assert_invalid(what, w.success, w.error_code, &w.error_message, field);
    }
    // Nothing of the above was stored.
    let r = read(&mut c, T, "k").await;
    assert_eq!(r.error_code, KEY_NOT_FOUND, "{r:?}");

    // Exactly at the limits is fine.
    let max_key = "k".repeat(8192);
    let max_tenant = "t".repeat(256);
    let w = write(&mut c, &max_tenant, &max_key, b"edge", None).await;
    assert!(w.success, "{w:?}");
    let r = read(&mut c, &max_tenant, &max_key).await;
    assert_eq!(r.value, b"edge");
}

#[tokio::test]
async fn invalid_reads_deletes_and_repairs_answer_invalid_request() {
    let node = Node::start(2).await;
    let mut c = node.client().await;
    let long_key = "k".repeat(8193);

    for (what, tenant, key, field) in [
        ("read: empty tenant_id", "", "k", "tenant_id"),
        ("read: empty key", T, "", "key"),
        ("read: key too long", T, long_key.as_str(), "key"),
    ] {
        let r = read(&mut c, tenant, key).await;
        assert_invalid(what, r.success, r.error_code, &r.error_message, field);
    }

    for (what, tenant, key, vc, field) in [
        ("delete: empty tenant_id", "", "k", None, "tenant_id"),
        ("delete: empty key", T, "", None, "key"),
        (
            "delete: negative counter",
            T,
            "k",
            clock(&[("a", -5)]),
            "vector_clock",
        ),
    ] {
        let d = delete(&mut c, tenant, key, vc).await;
        assert_invalid(what, d.success, d.error_code, &d.error_message, field);
    }

    for (what, tenant, key, vc, field) in [
        (
            "repair: empty tenant_id",
            "",
            "k",
            clock(&[("a", 1)]),
            "tenant_id",
        ),
        ("repair: empty key", T, "", clock(&[("a", 1)]), "key"),
        (
            "repair: duplicate node id",
            T,
            "k",
            clock(&[("a", 1), ("a", 1)]),
            "vector_clock",
        ),
    ] {
        let rp = repair(&mut c, tenant, key, b"v", vc).await;
        assert_invalid(what, rp.success, rp.error_code, &rp.error_message, field);
    }
}

#[tokio::test]
async fn health_check_reports_node_identity_and_key_counts() {
    let node = Node::start(2).await;
    let mut c = node.client().await;
    for i in 0..20 {
        write(&mut c, T, &format!("count-{i}"), b"v", None).await;
    }
    // Overwrites and siblings do not add keys.
    write(&mut c, T, "count-0", b"v2", None).await;
    write(&mut c, T, "count-1", b"sib", clock(&[("zz", 1)])).await;

    let m = metrics(&mut c).await;
    assert_eq!(m.get("node_id"), Some(&node.node_id), "{m:?}");
    assert_eq!(metric_u64(&m, "shards"), 2, "{m:?}");
    metric_u64(&m, "uptime_s");
    assert_eq!(metric_u64(&m, "keys"), 20, "{m:?}");
    let per_shard: u64 = (0..2)
        .map(|s| metric_u64(&m, &format!("shard.{s}.keys")))
        .sum();
    assert_eq!(per_shard, 20, "{m:?}");
    for s in 0..2 {
        metric_u64(&m, &format!("shard.{s}.memtable_bytes"));
    }
}
