//! StreamKeys and GetKeyRange over a node with several shards: every live
//! version of a tenant's range in key order (siblings as separate entries
//! with their clocks, deleted keys left out, neighbouring tenants never
//! included) at every batch size, a slow reader that still gets everything,
//! GetKeyRange paging with has_more/next_key, the node's cap on max_keys,
//! and the range checks (gRPC INVALID_ARGUMENT).

mod common;

use common::*;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tonic::Code;

const T: &str = "t";
/// Keys of T written blind (some deleted, some given siblings).
const KEYS: usize = 3000;

/// One live version as StreamKeys should send it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Live {
    key: String,
    value: Vec<u8>,
    clock: ClockMap,
}

/// What a tenant holds: key -> its live versions (empty: deleted).
type Model = BTreeMap<String, Vec<Live>>;

fn key(i: usize) -> String {
    format!("k{i:05}")
}

/// The live versions of `model` in `[start, end)` (empty end: to the last
/// key) in key order, siblings of a key ordered by value.
fn expected(model: &Model, start: &str, end: &str) -> Vec<Live> {
    model
        .iter()
        .filter(|(k, _)| k.as_str() >= start && (end.is_empty() || k.as_str() < end))
        .flat_map(|(_, vs)| {
            let mut vs = vs.clone();
            vs.sort();
            vs
        })
        .collect()
}

/// The live keys of `model` in `[start, end)`.
fn expected_keys(model: &Model, start: &str, end: &str) -> Vec<String> {
    model
        .iter()
        .filter(|(k, vs)| {
            !vs.is_empty() && k.as_str() >= start && (end.is_empty() || k.as_str() < end)
        })
        .map(|(k, _)| k.clone())
        .collect()
}

/// StreamKeys' answer as [`Live`] entries, after checking each entry's
/// tenant, tombstone flag and timestamp; siblings of a key (adjacent in
/// the answer) are ordered by value, as in [`expected`].
fn received(tenant: &str, entries: &[pb::KeyValueEntry]) -> Vec<Live> {
    let mut out: Vec<Live> = entries
        .iter()
        .map(|e| {
            assert_eq!(e.tenant_id, tenant, "another tenant's entry: {e:?}");
            assert!(!e.is_tombstone, "a tombstone was streamed: {e:?}");
            assert!(e.timestamp > 0, "no timestamp: {e:?}");
            Live {
                key: e.key.clone(),
                value: e.value.clone(),
                clock: clock_map(&e.vector_clock),
            }
        })
        .collect();
    // Key order is the node's to keep: only siblings (equal keys) are sorted.
    out.chunk_by_mut(|a, b| a.key == b.key)
        .for_each(|siblings| siblings.sort());
    out
}

/// Asserts `got` equals `want`, naming the first difference.
fn assert_same(what: &str, got: &[Live], want: &[Live]) {
    if got == want {
        return;
    }
    let at = got
        .iter()
        .zip(want)
        .position(|(g, w)| g != w)
        .unwrap_or(got.len().min(want.len()));
    panic!(
        "{what}: {} entries, {} expected; first difference at {at}: got {:?}, expected {:?}",
        got.len(),
        want.len(),
        got.get(at),
        want.get(at)
    );
}

/// Writes the tenant T (3000 keys, 40 with siblings, 100 deleted, 10 with
/// a live version beside a tombstone) and its neighbours "s", "u" and "tt";
/// answers T's model.
async fn load(c: &mut Client) -> Model {
    let items: Vec<(String, Vec<u8>)> = (0..KEYS)
        .map(|i| (key(i), format!("v{i}").into_bytes()))
        .collect();
    let mut model = Model::new();
    for ((k, v), w) in items.iter().zip(write_many(c, T, &items, 16).await) {
        assert!(w.success, "{k}: {w:?}");
        let clock = clock_map(&w.updated_vector_clock);
        model.insert(
            k.clone(),
            vec![Live {
                key: k.clone(),
                value: v.clone(),
                clock,
            }],
        );
    }
    // Keys outside the k00000.. pattern, at both ends of the tenant and
    // in between (multi-byte UTF-8 sorts by bytes).
    for k in [
        "!",
        "a",
        "k",
        "k0",
        "k00000a",
        "z",
        "zz\u{e9}",
        "\u{10ffff}",
    ] {
        let w = write(c, T, k, k.as_bytes(), None).await;
        assert!(w.success, "{k}: {w:?}");
        let clock = clock_map(&w.updated_vector_clock);
        model.insert(
            k.to_string(),
            vec![Live {
                key: k.into(),
                value: k.as_bytes().to_vec(),
                clock,
            }],
        );
    }
    // Siblings: two concurrent explicit clocks on fresh keys.
    for i in (0..KEYS).step_by(75) {
        let k = format!("{}-sib", key(i));
        let mut versions = Vec::new();
        for (node, value) in [("c1", "left"), ("c2", "right")] {
            let vc = clock(&[(node, 1)]);
            let w = write(c, T, &k, value.as_bytes(), vc).await;
            assert!(w.success, "{k}: {w:?}");
            versions.push(Live {
                key: k.clone(),
                value: value.as_bytes().to_vec(),
                clock: cmap(&[(node, 1)]),
            });
        }
        model.insert(k, versions);
    }
    // Deleted keys: a blind delete descends every version.
    for i in (7..KEYS).step_by(30) {
        let d = delete(c, T, &key(i), None).await;
        assert!(d.success, "{}: {d:?}", key(i));
        model.insert(key(i), Vec::new());
    }
    // One sibling deleted, the other left: a tombstone beside a live
    // version; the live one is streamed.
    for i in (11..KEYS).step_by(300) {
        let k = format!("{}-half", key(i));
        for node in ["c1", "c2"] {
            let w = write(c, T, &k, node.as_bytes(), clock(&[(node, 1)])).await;
            assert!(w.success, "{k}: {w:?}");
        }
        let d = delete(c, T, &k, clock(&[("c1", 2)])).await;
        assert!(d.success, "{k}: {d:?}");
        let r = read(c, T, &k).await;
        assert_eq!(
            read_versions(&r).len(),
            2,
            "a tombstone and a sibling: {r:?}"
        );
        model.insert(
            k.clone(),
            vec![Live {
                key: k,
                value: b"c2".to_vec(),
                clock: cmap(&[("c2", 1)]),
            }],
        );
    }
    // Neighbouring tenants: before and after T, and one T is a prefix of.
    for tenant in ["s", "u", "tt"] {
        let items: Vec<(String, Vec<u8>)> =
            ["!", "k", "k00000", "k01000", "k02999", "z", "\u{10ffff}"]
                .iter()
                .map(|k| (k.to_string(), format!("{tenant}-{k}").into_bytes()))
                .collect();
        for w in write_many(c, tenant, &items, 4).await {
            assert!(w.success, "{tenant}: {w:?}");
        }
    }
    model
}

#[tokio::test]
async fn stream_keys_and_get_key_range_answer_every_live_key_in_order_across_shards() {
    let node = Node::start(2).await;
    let mut c = node.client().await;
    let started = Instant::now();
    let model = load(&mut c).await;
    println!("loaded {} keys in {:?}", model.len(), started.elapsed());

    let ranges = [
        ("", ""),
        ("k00500", "k02000"),
        ("k01000", ""),
        ("", "k00100"),
        // Bounds that are no key; a range holding none.
        ("k00000a", "k00001-"),
        ("k03", "k04"),
        ("zz", "zz\u{e9}"),
    ];
    for batch in [0, 1, 7, 1000] {
        for (start, end) in ranges {
            let started = Instant::now();
            let got = stream_keys(&mut c, stream_keys_req(T, start, end, batch))
                .await
                .unwrap_or_else(|s| panic!("StreamKeys [{start:?}, {end:?}) batch {batch}: {s:?}"));
            let got = received(T, &got);
            assert_same(
                &format!("StreamKeys [{start:?}, {end:?}) batch {batch}"),
                &got,
                &expected(&model, start, end),
            );
            if start.is_empty() && end.is_empty() {
                println!(
                    "StreamKeys of the tenant, batch {batch}: {} entries in {:?}",
                    got.len(),
                    started.elapsed()
                );
            }
        }
    }

    for max_keys in [1, 10, 0] {
        let started = Instant::now();
        let (keys, calls) = page_keys(&mut c, T, "", "", max_keys).await;
        assert_eq!(
            keys,
            expected_keys(&model, "", ""),
            "GetKeyRange max_keys {max_keys}"
        );
        let per_call = if max_keys == 0 {
            1000
        } else {
            max_keys as usize
        };
        assert_eq!(calls, keys.len().div_ceil(per_call), "max_keys {max_keys}");
        println!(
            "GetKeyRange of the tenant, max_keys {max_keys}: {calls} calls in {:?}",
            started.elapsed()
        );
    }
    for (start, end) in ranges {
        let (keys, _) = page_keys(&mut c, T, start, end, 97).await;
        assert_eq!(
            keys,
            expected_keys(&model, start, end),
            "GetKeyRange [{start:?}, {end:?})"
        );
    }
}

/// Pages through `[start, end)` with GetKeyRange; answers the keys and the
/// number of calls. Checks each page: at most `max_keys` keys (1000 for
/// 0), has_more exactly when next_key is set, next_key after the page.
async fn page_keys(
    c: &mut Client,
    tenant: &str,
    start: &str,
    end: &str,
    max_keys: i32,
) -> (Vec<String>, usize) {
    let cap = if max_keys <= 0 {
        1000
    } else {
        max_keys as usize
    };
    let mut keys: Vec<String> = Vec::new();
    let mut from = start.to_string();
    let mut calls = 0;
    loop {
        let page = c
            .get_key_range(key_range_req(tenant, &from, end, max_keys))
            .await
            .unwrap_or_else(|s| panic!("GetKeyRange from {from:?}: {s:?}"))
            .into_inner();
        calls += 1;
        assert!(page.keys.len() <= cap, "page from {from:?}: {page:?}");
        assert_eq!(
            page.has_more,
            !page.next_key.is_empty(),
            "from {from:?}: has_more {} next_key {:?}",
            page.has_more,
            page.next_key
        );
        if let Some(last) = page.keys.last() {
            assert!(
                !page.has_more || page.next_key > *last,
                "next_key {:?} not after the page's last key {last:?}",
                page.next_key
            );
        }
        if page.has_more {
            assert_eq!(page.keys.len(), cap, "a short page with more to come");
        }
        keys.extend(page.keys);
        if !page.has_more {
            return (keys, calls);
        }
        from = page.next_key;
        assert!(calls <= 10 * KEYS, "GetKeyRange does not end");
    }
}

#[tokio::test]
async fn a_slow_reader_gets_every_entry_and_the_node_serves_others_meanwhile() {
    let node = Node::start(2).await;
    let mut c = node.client().await;
    // 4 MiB of values, more than the stream's and the connection's windows
    // hold: the node must wait for the reader.
    let value = |i: usize| vec![b'a' + (i % 26) as u8; 64 * 1024];
    let items: Vec<(String, Vec<u8>)> = (0..64).map(|i| (key(i), value(i))).collect();
    for w in write_many(&c, T, &items, 8).await {
        assert!(w.success, "{w:?}");
    }
    let channel = node
        .endpoint()
        .initial_stream_window_size(64 * 1024)
        .initial_connection_window_size(64 * 1024)
        .connect()
        .await
        .expect("connect");
    let mut slow = client_on(channel);
    let mut stream = slow
        .stream_keys(stream_keys_req(T, "", "", 1))
        .await
        .expect("StreamKeys")
        .into_inner();
    let mut got = Vec::new();
    while let Some(e) = stream.message().await.expect("StreamKeys message") {
        got.push((e.key, e.value));
        tokio::time::sleep(Duration::from_millis(20)).await;
        if got.len() == 10 {
            // The node still answers other clients while it waits.
            let started = Instant::now();
            let w = write(&mut c, "other", "k", b"v", None).await;
            assert!(w.success, "{w:?}");
            let r = read(&mut c, T, &key(63)).await;
            assert_eq!(r.value, value(63));
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "a write and a read took {:?} while a stream waits",
                started.elapsed()
            );
        }
    }
    let want: Vec<(String, Vec<u8>)> = items;
    assert_eq!(got.len(), want.len());
    assert!(got == want, "the slow reader's entries differ");
}

#[tokio::test]
async fn get_key_range_caps_max_keys_at_the_configured_limit() {
    let node = Node::start_with(NodeOptions {
        config: Some("[limits]\nkey_range_keys_max = 50\n".into()),
        ..NodeOptions::default()
    })
    .await;
    let mut c = node.client().await;
    let items: Vec<(String, Vec<u8>)> = (0..120).map(|i| (key(i), b"v".to_vec())).collect();
    for w in write_many(&c, T, &items, 8).await {
        assert!(w.success, "{w:?}");
    }
    for max_keys in [0, 51, 1000, i32::MAX] {
        let page = c
            .get_key_range(key_range_req(T, "", "", max_keys))
            .await
            .expect("GetKeyRange")
            .into_inner();
        let want: Vec<String> = (0..50).map(key).collect();
        assert_eq!(page.keys, want, "max_keys {max_keys}");
        assert!(page.has_more, "max_keys {max_keys}: {page:?}");
        assert_eq!(page.next_key, key(50), "max_keys {max_keys}");
    }
    let page = c
        .get_key_range(key_range_req(T, "", "", 50))
        .await
        .expect("GetKeyRange")
        .into_inner();
    assert_eq!(page.keys.len(), 50);
    let (keys, calls) = page_keys(&mut c, T, "", "", 50).await;
    assert_eq!(keys, (0..120).map(key).collect::<Vec<_>>());
    assert_eq!(calls, 3);
    // A page that ends exactly at the last key says nothing more is left.
    let page = c
        .get_key_range(key_range_req(T, &key(70), "", 1000))
        .await
        .expect("GetKeyRange")
        .into_inner();
    assert_eq!(page.keys, (70..120).map(key).collect::<Vec<_>>());
    assert!(!page.has_more, "{page:?}");
    assert_eq!(page.next_key, "");
}

#[tokio::test]
async fn bad_ranges_are_invalid_argument_for_both_methods() {
    let node = Node::start(2).await;
    let mut c = node.client().await;
    let w = write(&mut c, T, "k", b"v", None).await;
    assert!(w.success, "{w:?}");

    let long_key = "k".repeat(8 * 1024 + 1);
    let long_tenant = "t".repeat(257);
    let cases: [(&str, &str, &str, &str); 8] = [
        ("empty tenant_id", "", "a", "b"),
        ("empty tenant_id, open range", "", "", ""),
        ("tenant_id over the limit", &long_tenant, "", ""),
        ("end == start", T, "k", "k"),
        ("end before start", T, "z", "a"),
        ("start over key_bytes_max", T, &long_key, ""),
        ("end over key_bytes_max", T, "", &long_key),
        (
            "both over key_bytes_max",
            T,
            &long_key,
            &format!("{long_key}z"),
        ),
    ];
    for (what, tenant, start, end) in cases {
        let s = c
            .get_key_range(key_range_req(tenant, start, end, 10))
            .await
            .expect_err(what);
        assert_eq!(
            s.code(),
            Code::InvalidArgument,
            "GetKeyRange, {what}: {s:?}"
        );
        assert!(!s.message().is_empty(), "GetKeyRange, {what}: {s:?}");
        for batch in [0, 1] {
            match stream_keys(&mut c, stream_keys_req(tenant, start, end, batch)).await {
                Err(s) => {
                    assert_eq!(s.code(), Code::InvalidArgument, "StreamKeys, {what}: {s:?}");
                    assert!(!s.message().is_empty(), "StreamKeys, {what}: {s:?}");
                }
                Ok(m) => panic!("StreamKeys, {what}: answered {} messages", m.len()),
            }
        }
    }
    // Bounds exactly at key_bytes_max are fine.
    let at_limit = "k".repeat(8 * 1024);
    let got = stream_keys(&mut c, stream_keys_req(T, "", &at_limit, 0))
        .await
        .expect("StreamKeys with an end of key_bytes_max bytes");
    assert_eq!(got.len(), 1, "{got:?}");
    // The connection is still good.
    let r = read(&mut c, T, "k").await;
    assert_eq!(r.value, b"v");
}
