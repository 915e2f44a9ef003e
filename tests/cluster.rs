//! Range moves driven the way the coordinator drives them, against real
//! nodes seeded into one gossip cluster: a node added and a node removed
//! with writers running (every moved key reads the same on its old and new
//! owner, and range digests agree); a source killed mid-copy resumes its
//! stream after a restart; a target down mid-copy makes the stream wait,
//! not fail; a target that is not a live member is refused, and a member is
//! reached at its advertised address whatever the request names; starting
//! twice and stopping twice are idempotent, and Cleanup waits for the stop.

mod common;

use common::*;
use pairdb_storage::model::ring_token;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TENANTS: [&str; 2] = ["tenant-a", "tenant-b"];
/// How long a move may take until every source answers "completed".
const MOVE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the last forwards may take to land once the writers stopped.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(10);
/// A copy rate low enough that copying 20 MB takes about ten seconds.
const SLOW_STREAMS: &str = "[cluster]\nstream_rate_mb_s = 2\n";
/// Copies of about 1 MB take about a second, paced in small batches, so
/// writers run while a copy is under way.
const PACED_STREAMS: &str = "[cluster]\nstream_rate_mb_s = 1\nstream_batch_bytes = 65536\n";
/// Bytes of each value [`load`] writes.
const LOAD_VALUE_BYTES: usize = 2048;

/// (tenant, key).
type Key = (String, String);

fn opts(node_id: &str, shards: usize) -> NodeOptions {
    NodeOptions {
        shards,
        node_id: node_id.into(),
        config: None,
    }
}

fn with_config(node_id: &str, shards: usize, config: &str) -> NodeOptions {
    NodeOptions {
        config: Some(config.into()),
        ..opts(node_id, shards)
    }
}

fn slow(node_id: &str, shards: usize) -> NodeOptions {
    with_config(node_id, shards, SLOW_STREAMS)
}

/// A client per node id.
async fn clients_of(members: &[Member]) -> BTreeMap<String, Client> {
    let mut out = BTreeMap::new();
    for m in members {
        out.insert(m.id().to_string(), m.node.client().await);
    }
    out
}

fn wire_clock(c: &ClockMap) -> Option<pb::VectorClock> {
    let entries: Vec<(&str, i64)> = c.iter().map(|(n, t)| (n.as_str(), *t)).collect();
    clock(&entries)
}

/// Writes `n` keys over [`TENANTS`], each to its owner in `ring`. Every
/// tenth key gets two concurrent versions (two explicit clocks written at
/// once); of the others every seventh is deleted blind, and every tenth
/// plus five gets a concurrent tombstone beside its value.
async fn load(ring: &Ring, clients: &BTreeMap<String, Client>, n: usize) -> Vec<Key> {
    let keys: Vec<Key> = (0..n)
        .map(|i| (TENANTS[i % 2].to_string(), format!("key-{i:05}")))
        .collect();
    let mut tasks = tokio::task::JoinSet::new();
    let size = n.div_ceil(16);
    for (part, chunk) in keys.chunks(size).enumerate() {
        let chunk = chunk.to_vec();
        let ring = ring.clone();
        let clients = clients.clone();
        tasks.spawn(async move {
            for (j, (t, k)) in chunk.iter().enumerate() {
                let i = part * size + j;
                let c = &clients[ring.owner(t, k)];
                let mut value = format!("value of {k} ").repeat(LOAD_VALUE_BYTES / 10);
                value.truncate(LOAD_VALUE_BYTES);
                if i.is_multiple_of(10) {
                    let (mut c1, mut c2) = (c.clone(), c.clone());
                    let (w1, w2) = tokio::join!(
                        write(&mut c1, t, k, b"left", clock(&[("x", 1)])),
                        write(&mut c2, t, k, value.as_bytes(), clock(&[("y", 1)])),
                    );
                    assert!(w1.success && w2.success, "{w1:?} {w2:?}");
                    continue;
                }
                let w = write(&mut c.clone(), t, k, value.as_bytes(), None).await;
                assert!(w.success, "{t}/{k}: {w:?}");
                let d = if i.is_multiple_of(7) {
                    delete(&mut c.clone(), t, k, None).await
                } else if i % 10 == 5 {
                    delete(&mut c.clone(), t, k, clock(&[("z", 1)])).await
                } else {
                    continue;
                };
                assert!(d.success, "delete {t}/{k}: {d:?}");
            }
        });
    }
    tasks.join_all().await;
    keys
}

/// A task writing through a ring until stopped: blind writes, blind
/// deletes, writes with a concurrent explicit clock (siblings) and
/// read-modify-writes that resolve siblings, on known and new keys.
struct Writer {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(u64, BTreeSet<Key>)>,
}

impl Writer {
    fn spawn(
        ring: Ring,
        clients: BTreeMap<String, Client>,
        keys: Vec<Key>,
        tag: &'static str,
        seed: u64,
    ) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(seed);
            let mut touched = BTreeSet::new();
            let mut n: i64 = 0;
            while !stopped.load(Ordering::Relaxed) {
                n += 1;
                let (t, k) = if rng.u8(..100) < 80 {
                    keys[rng.usize(..keys.len())].clone()
                } else {
                    (
                        TENANTS[rng.usize(..2)].to_string(),
                        format!("{tag}-new-{n}"),
                    )
                };
                let mut c = clients[ring.owner(&t, &k)].clone();
                match rng.u8(..100) {
                    0..45 => {
                        let v = format!("{tag} write {n}");
                        let w = write(&mut c, &t, &k, v.as_bytes(), None).await;
                        assert!(w.success, "{t}/{k}: {w:?}");
                    }
                    45..65 => {
                        let d = delete(&mut c, &t, &k, None).await;
                        assert!(d.success || d.error_code == KEY_NOT_FOUND, "{d:?}");
                    }
                    65..80 => {
                        let v = format!("{tag} sibling {n}");
                        let id = format!("{tag}-x");
                        let vc = clock(&[(id.as_str(), n)]);
                        let w = write(&mut c, &t, &k, v.as_bytes(), vc).await;
                        assert!(w.success, "{t}/{k}: {w:?}");
                    }
                    _ => {
                        let r = read(&mut c, &t, &k).await;
                        let mut clocks = vec![clock_map(&r.vector_clock)];
                        clocks.extend(r.versions.iter().map(|v| clock_map(&v.vector_clock)));
                        let mut vc = merge_maps(&clocks);
                        vc.insert(format!("{tag}-rmw"), n);
                        let v = format!("{tag} resolved {n}");
                        let w = write(&mut c, &t, &k, v.as_bytes(), wire_clock(&vc)).await;
                        assert!(w.success, "{t}/{k}: {w:?}");
                    }
                }
                touched.insert((t, k));
            }
            (n as u64, touched)
        });
        Writer { stop, task }
    }

    /// Stops the writer; answers its operation count and the keys it touched.
    async fn stop(self) -> (u64, BTreeSet<Key>) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("writer task")
    }
}

/// A Read answer in a form two nodes can be compared by: every field, the
/// versions in a canonical order.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    success: bool,
    error_code: i32,
    value: Vec<u8>,
    clock: ClockMap,
    timestamp: i64,
    /// (tombstone, value, clock, timestamp), sorted.
    versions: Vec<(bool, Vec<u8>, ClockMap, i64)>,
}

async fn answer(c: &mut Client, (t, k): &Key) -> Answer {
    let r = read(c, t, k).await;
    let mut versions: Vec<_> = read_versions(&r)
        .into_iter()
        .map(|v| {
            (
                v.is_tombstone,
                v.value,
                clock_map(&v.vector_clock),
                v.timestamp,
            )
        })
        .collect();
    versions.sort();
    Answer {
        success: r.success,
        error_code: r.error_code,
        value: r.value,
        clock: clock_map(&r.vector_clock),
        timestamp: r.timestamp,
        versions,
    }
}

/// Reads every key on both nodes named with it and asserts the answers are
/// equal. Answers (keys with several versions, keys with a tombstone).
async fn assert_same_reads(
    checks: Vec<(Key, String, String)>,
    clients: &BTreeMap<String, Client>,
) -> (usize, usize) {
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in checks.chunks(checks.len().div_ceil(8).max(1)) {
        let chunk = chunk.to_vec();
        let clients = clients.clone();
        tasks.spawn(async move {
            let (mut multi, mut tombs, mut diffs) = (0, 0, Vec::new());
            for (key, old, new) in chunk {
                let was = answer(&mut clients[&old].clone(), &key).await;
                let is = answer(&mut clients[&new].clone(), &key).await;
                multi += usize::from(was.versions.len() > 1);
                tombs += usize::from(was.versions.iter().any(|v| v.0));
                if was != is {
                    diffs.push(format!("{key:?}: on {old} {was:?}, on {new} {is:?}"));
                }
            }
            (multi, tombs, diffs)
        });
    }
    let (mut multi, mut tombs, mut diffs) = (0, 0, Vec::new());
    for (m, t, d) in tasks.join_all().await {
        multi += m;
        tombs += t;
        diffs.extend(d);
    }
    assert!(
        diffs.is_empty(),
        "{} of {} moved keys read differently, e.g.:\n{}",
        diffs.len(),
        checks.len(),
        diffs[..diffs.len().min(5)].join("\n")
    );
    (multi, tombs)
}

/// RangeDigest of `ranges` on `a` and `b`; asserts they agree.
async fn assert_same_digest(a: &Node, b: &Node, ranges: &[Range]) -> pb::RangeDigestResponse {
    let da = range_digest(&mut a.admin().await, ranges).await;
    let db = range_digest(&mut b.admin().await, ranges).await;
    assert_eq!(
        da,
        db,
        "RangeDigest of {} ranges: {} vs {}",
        ranges.len(),
        a.node_id,
        b.node_id
    );
    da
}

/// Waits until RangeDigest of `ranges` agrees on `a` and `b`; answers how
/// long it took.
async fn wait_same_digest(a: &Node, b: &Node, ranges: &[Range]) -> Duration {
    let started = Instant::now();
    loop {
        let da = range_digest(&mut a.admin().await, ranges).await;
        let db = range_digest(&mut b.admin().await, ranges).await;
        if da == db {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < CONVERGE_TIMEOUT,
            "RangeDigest {} {da:?} and {} {db:?} still differ after {CONVERGE_TIMEOUT:?}",
            a.node_id,
            b.node_id
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn keys_copied(statuses: &[pb::StreamStatusResponse]) -> Vec<i64> {
    statuses.iter().map(|s| s.keys_copied).collect()
}

#[test]
fn the_ring_gives_every_token_to_the_node_whose_vnode_ranges_hold_it() {
    let ring = Ring::new(&["r-a", "r-b", "r-c"]);
    let ranges: BTreeMap<&str, Vec<Range>> = ["r-a", "r-b", "r-c"]
        .into_iter()
        .map(|n| (n, ring.ranges_of(n)))
        .collect();
    assert!(ranges.values().all(|r| r.len() == VNODES));
    let mut rng = fastrand::Rng::with_seed(7);
    let vnode = vnode_token("r-b", 17);
    let edges = [0, u64::MAX, vnode, vnode + 1, vnode - 1];
    for t in (0..10_000).map(|_| rng.u64(..)).chain(edges) {
        let holders: Vec<&str> = ranges
            .iter()
            .filter(|(_, r)| in_ranges(r, t))
            .map(|(n, _)| *n)
            .collect();
        assert_eq!(holders, [ring.owner_of_token(t)], "token {t:#x}");
    }
    assert_eq!(
        ring.owner_of_token(vnode),
        "r-b",
        "a vnode owns its own token"
    );
    // Removing a node gives each of its ranges to the owner of its end
    // without it, which then owns every token of the range.
    let rest = ring.without("r-c");
    for (heir, moved) in ring.removal_moves("r-c") {
        for (p, h) in moved {
            for t in [p.wrapping_add(1), h] {
                assert_eq!(rest.owner_of_token(t), heir);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_addition_and_removal_move_every_key_with_writers_running() {
    let members = start_cluster(vec![
        with_config("move-a", 2, PACED_STREAMS),
        with_config("move-b", 1, PACED_STREAMS),
        with_config("move-c", 2, PACED_STREAMS),
    ])
    .await;
    let nodes: BTreeMap<&str, &Node> = members.iter().map(|m| (m.id(), &m.node)).collect();
    let (a, c) = (&members[0].node, &members[2].node);
    let clients = clients_of(&members).await;
    let old = Ring::new(&["move-a", "move-b"]);
    let full = Ring::new(&["move-a", "move-b", "move-c"]);
    let started = Instant::now();
    let keys = load(&old, &clients, 3000).await;
    println!("3000 keys written in {:?}", started.elapsed());

    // Adding C: each old owner streams C's ranges it holds.
    let moves = old.addition_moves("move-c");
    assert_eq!(moves.values().map(Vec::len).sum::<usize>(), VNODES);
    assert_eq!(moves.len(), 2, "both old nodes give ranges to C");
    for (t, k) in &keys {
        let token = ring_token(t, k);
        let (was, is) = (old.owner_of_token(token), full.owner_of_token(token));
        assert!(is == was || is == "move-c", "{t}/{k}: {was} -> {is}");
        let moving = moves.iter().any(|(_, r)| in_ranges(r, token));
        assert_eq!(moving, is == "move-c", "{t}/{k}");
        assert!(
            !moving || in_ranges(&moves[was], token),
            "{t}/{k}: not from {was}"
        );
    }
    let writer = Writer::spawn(old.clone(), clients.clone(), keys.clone(), "w1", 1);
    for (source, ranges) in &moves {
        start_stream_to(nodes[source.as_str()], c, ranges).await;
    }
    let streams: Vec<(&Node, &str)> = moves
        .keys()
        .map(|s| (nodes[s.as_str()], "move-c"))
        .collect();
    let (copy_time, statuses) = wait_completed(&streams, MOVE_TIMEOUT).await;
    let (ops, touched) = writer.stop().await;
    let mut converge = Duration::ZERO;
    for (source, ranges) in &moves {
        converge = converge.max(wait_same_digest(nodes[source.as_str()], c, ranges).await);
    }
    println!(
        "adding C: {} ranges from {:?} completed in {copy_time:?} (start to last \
         \"completed\"), keys copied {:?}, keys streamed {:?}; the writer made {ops} \
         operations; digests agreed {converge:?} after it stopped",
        VNODES,
        moves.keys().collect::<Vec<_>>(),
        keys_copied(&statuses),
        statuses.iter().map(|s| s.keys_streamed).collect::<Vec<_>>(),
    );
    assert!(
        ops > 100,
        "the writer ran during the move: {ops} operations"
    );
    for source in moves.keys() {
        let r = stop_streaming(nodes[source.as_str()], "move-c").await;
        assert!(r.success, "StopStreaming on {source}: {r:?}");
    }
    let all_keys: BTreeSet<Key> = keys.iter().cloned().chain(touched).collect();
    let checks: Vec<(Key, String, String)> = all_keys
        .iter()
        .filter(|(t, k)| full.owner(t, k) == "move-c")
        .map(|key| {
            (
                key.clone(),
                old.owner(&key.0, &key.1).to_string(),
                "move-c".into(),
            )
        })
        .collect();
    let (multi, tombs) = assert_same_reads(checks.clone(), &clients).await;
    for (source, ranges) in &moves {
        let d = assert_same_digest(nodes[source.as_str()], c, ranges).await;
        println!(
            "  {source} -> move-c: {} keys, {} versions",
            d.keys, d.versions
        );
    }
    println!(
        "  {} of {} keys moved to C read the same on both owners ({multi} with several \
         versions, {tombs} with a tombstone)",
        checks.len(),
        all_keys.len()
    );
    assert!(checks.len() > 500 && multi > 20 && tombs > 20);

    // Removing A: A streams each of its ranges to whoever inherits it.
    let rest = full.without("move-a");
    let moves = full.removal_moves("move-a");
    assert_eq!(moves.values().map(Vec::len).sum::<usize>(), VNODES);
    assert_eq!(moves.len(), 2, "B and C both inherit from A");
    let known: Vec<Key> = all_keys.iter().cloned().collect();
    let writer = Writer::spawn(full.clone(), clients.clone(), known, "w2", 2);
    let started = Instant::now();
    for (heir, ranges) in &moves {
        start_stream_to(a, nodes[heir.as_str()], ranges).await;
    }
    let streams: Vec<(&Node, &str)> = moves.keys().map(|h| (a, h.as_str())).collect();
    let (copy_time, statuses) = wait_completed(&streams, MOVE_TIMEOUT).await;
    let (ops, touched) = writer.stop().await;
    let mut converge = Duration::ZERO;
    for (heir, ranges) in &moves {
        converge = converge.max(wait_same_digest(a, nodes[heir.as_str()], ranges).await);
    }
    println!(
        "removing A: streams to {:?} completed in {copy_time:?} ({:?} since the first \
         start), keys copied {:?}; the writer made {ops} operations; digests agreed \
         {converge:?} after it stopped",
        moves.keys().collect::<Vec<_>>(),
        started.elapsed(),
        keys_copied(&statuses),
    );
    assert!(
        ops > 100,
        "the writer ran during the move: {ops} operations"
    );
    for heir in moves.keys() {
        let r = stop_streaming(a, heir).await;
        assert!(r.success, "StopStreaming to {heir}: {r:?}");
    }
    let all_keys: BTreeSet<Key> = all_keys.into_iter().chain(touched).collect();
    let checks: Vec<(Key, String, String)> = all_keys
        .iter()
        .filter(|(t, k)| full.owner(t, k) == "move-a")
        .map(|key| {
            let heir = rest.owner(&key.0, &key.1).to_string();
            (key.clone(), "move-a".to_string(), heir)
        })
        .collect();
    let (multi, tombs) = assert_same_reads(checks.clone(), &clients).await;
    for (heir, ranges) in &moves {
        let d = assert_same_digest(a, nodes[heir.as_str()], ranges).await;
        println!(
            "  move-a -> {heir}: {} keys, {} versions",
            d.keys, d.versions
        );
    }
    println!(
        "  {} keys A owned read the same on their inheritor ({multi} with several versions, \
         {tombs} with a tombstone)",
        checks.len()
    );
    assert!(checks.len() > 500 && multi > 20 && tombs > 20);
}

/// `n` keys of about 1 KiB each.
fn kib_items(n: usize) -> Vec<(String, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let mut v = format!("{i:06}|").repeat(147).into_bytes();
            v.truncate(1024);
            (format!("big-{i:06}"), v)
        })
        .collect()
}

async fn write_all(node: &Node, tenant: &str, items: &[(String, Vec<u8>)]) {
    let c = node.client().await;
    for w in write_many(&c, tenant, items, 32).await {
        assert!(w.success, "{w:?}");
    }
}

/// Polls the stream until it has copied some keys; panics if it completes
/// first.
async fn wait_mid_copy(source: &Node, target_id: &str) -> pb::StreamStatusResponse {
    let deadline = Instant::now() + MOVE_TIMEOUT;
    loop {
        let s = stream_status(source, target_id).await;
        assert_eq!(s.state, "copying", "expected a copy in progress: {s:?}");
        if s.keys_copied > 0 {
            return s;
        }
        assert!(Instant::now() < deadline, "nothing copied: {s:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const WHOLE_RING: [Range; 1] = [(0x5eed, 0x5eed)];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_killed_mid_copy_resumes_and_completes() {
    let mut members = start_cluster(vec![slow("kill-src", 2), opts("kill-dst", 1)])
        .await
        .into_iter();
    let (mut src, dst) = (members.next().unwrap(), members.next().unwrap());
    let items = kib_items(20_000);
    let started = Instant::now();
    write_all(&src.node, "t", &items).await;
    println!("20000 keys of 1 KiB written in {:?}", started.elapsed());

    let started = Instant::now();
    start_stream_to(&src.node, &dst.node, &WHOLE_RING).await;
    let s = wait_mid_copy(&src.node, dst.id()).await;
    println!(
        "killing the source after {:?}, {} keys copied",
        started.elapsed(),
        s.keys_copied
    );
    src.kill();
    src.restart().await;
    let s = stream_status(&src.node, dst.id()).await;
    assert!(
        s.state != "not_found" && s.active,
        "the restarted source lost its stream: {s:?}\n{}",
        src.node.stderr()
    );
    let (took, statuses) = wait_completed(&[(&src.node, dst.id())], MOVE_TIMEOUT).await;
    println!(
        "after the restart the stream completed in {took:?} ({:?} since the start), keys \
         copied {:?}",
        started.elapsed(),
        keys_copied(&statuses)
    );
    let d = assert_same_digest(&src.node, &dst.node, &WHOLE_RING).await;
    assert_eq!(d.keys, 20_000, "{d:?}");

    // Forwarding goes on after the restart.
    let mut c = src.node.client().await;
    let fresh: Vec<String> = (0..5).map(|i| format!("after-restart-{i}")).collect();
    for k in &fresh {
        let w = write(&mut c, "t", k, k.as_bytes(), None).await;
        assert!(w.success, "{w:?}");
    }
    let mut d = dst.node.client().await;
    let deadline = Instant::now() + CONVERGE_TIMEOUT;
    for k in &fresh {
        loop {
            let r = read(&mut d, "t", k).await;
            if r.success {
                assert_eq!(r.value, k.as_bytes());
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{k} written on the source did not reach the target: {r:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let d = assert_same_digest(&src.node, &dst.node, &WHOLE_RING).await;
    assert_eq!(d.keys, 20_005, "{d:?}");
    let r = stop_streaming(&src.node, dst.id()).await;
    assert!(r.success, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_down_mid_copy_makes_the_stream_wait_then_complete() {
    let mut members = start_cluster(vec![slow("down-src", 2), opts("down-dst", 1)])
        .await
        .into_iter();
    let (src, mut dst) = (members.next().unwrap(), members.next().unwrap());
    let items = kib_items(20_000);
    write_all(&src.node, "t", &items).await;

    let started = Instant::now();
    start_stream_to(&src.node, &dst.node, &WHOLE_RING).await;
    let s = wait_mid_copy(&src.node, dst.id()).await;
    dst.kill();
    println!(
        "target killed after {:?}, {} keys copied",
        started.elapsed(),
        s.keys_copied
    );
    let down = Instant::now();
    while down.elapsed() < Duration::from_secs(4) {
        let s = stream_status(&src.node, dst.id()).await;
        assert!(
            s.state == "copying" && s.active,
            "while the target is down the stream waits: {s:?}\n{}",
            src.node.stderr()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    dst.restart().await;
    let was_down = down.elapsed();
    let (took, statuses) = wait_completed(&[(&src.node, dst.id())], MOVE_TIMEOUT).await;
    println!(
        "target back after {was_down:?} down; the stream completed {took:?} later, keys \
         copied {:?}",
        keys_copied(&statuses)
    );
    let d = assert_same_digest(&src.node, &dst.node, &WHOLE_RING).await;
    assert_eq!(d.keys, 20_000, "{d:?}");
    let r = stop_streaming(&src.node, dst.id()).await;
    assert!(r.success, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_to_a_non_member_is_refused() {
    let members = start_cluster(vec![opts("nm-a", 2), opts("nm-b", 1)]).await;
    let (a, b) = (&members[0], &members[1]);
    write_all(&a.node, "t", &kib_items(300)).await;

    // An id no member has, even at a member's address.
    let r = start_streaming(
        &a.node,
        start_req("nm-a", "nm-ghost", "127.0.0.1", b.port, &WHOLE_RING),
    )
    .await;
    assert!(!r.success, "{r:?}");
    assert!(!r.message.is_empty(), "{r:?}");
    println!("refused: {}", r.message);
    let s = stream_status(&a.node, "nm-ghost").await;
    assert_eq!((s.state.as_str(), s.active), ("not_found", false), "{s:?}");

    // A member's id with another address: the data goes to the member's
    // advertised address, never to the one named.
    let decoy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    decoy.set_nonblocking(true).expect("nonblocking");
    let decoy_port = decoy.local_addr().unwrap().port();
    let r = start_streaming(
        &a.node,
        start_req("nm-a", "nm-b", "127.0.0.1", decoy_port, &WHOLE_RING),
    )
    .await;
    assert!(r.success, "{r:?}");
    wait_completed(&[(&a.node, "nm-b")], MOVE_TIMEOUT).await;
    let d = assert_same_digest(&a.node, &b.node, &WHOLE_RING).await;
    assert_eq!(d.keys, 300, "{d:?}");
    match decoy.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the node connected to the address the request named: {other:?}"),
    }
    assert!(stop_streaming(&a.node, "nm-b").await.success);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_twice_is_idempotent_and_stop_is_idempotent() {
    let members = start_cluster(vec![slow("idem-a", 2), opts("idem-c", 1)]).await;
    let (a, c) = (&members[0].node, &members[1].node);
    write_all(a, "t", &kib_items(3000)).await;
    let ranges = Ring::new(&["idem-a"]).addition_moves("idem-c")["idem-a"].clone();
    let kept = Ring::new(&["idem-a", "idem-c"]).ranges_of("idem-a");
    let moving = range_digest(&mut a.admin().await, &ranges).await;
    let staying = range_digest(&mut a.admin().await, &kept).await;
    assert!(
        moving.keys > 1000 && staying.keys > 1000,
        "{moving:?} {staying:?}"
    );

    let first = start_stream_to(a, c, &ranges).await;
    let again = start_stream_to(a, c, &ranges).await;
    let s = stream_status(a, "idem-c").await;
    println!(
        "first: {:?}; second: {:?}; state then: {s:?}",
        first.message, again.message
    );
    assert!(again.message.contains("already running"), "{again:?}");
    assert_ne!(first.message, again.message);

    let cleanup = |ranges: Vec<Range>| async move {
        a.admin()
            .await
            .cleanup(pb::CleanupRequest {
                key_ranges: ranges.iter().map(|&(s, e)| token_range(s, e)).collect(),
            })
            .await
            .expect("Cleanup")
            .into_inner()
    };
    // Refused while the stream runs, and after it completed until it is
    // stopped; the data stays.
    let r = cleanup(ranges.clone()).await;
    assert!(!r.success && r.error_code == INVALID_REQUEST, "{r:?}");
    assert!(r.error_message.contains("StopStreaming"), "{r:?}");
    let (took, statuses) = wait_completed(&[(a, "idem-c")], MOVE_TIMEOUT).await;
    println!("completed after {took:?}: {statuses:?}");
    let r = cleanup(ranges[..3].to_vec()).await;
    assert!(!r.success, "{r:?}");
    assert_eq!(range_digest(&mut a.admin().await, &ranges).await, moving);
    assert_eq!(assert_same_digest(a, c, &ranges).await, moving);

    let s1 = stop_streaming(a, "idem-c").await;
    let s2 = stop_streaming(a, "idem-c").await;
    assert!(s1.success && s2.success, "{s1:?} {s2:?}");
    println!("stop: {:?}; again: {:?}", s1.message, s2.message);
    let s = stream_status(a, "idem-c").await;
    assert_eq!((s.state.as_str(), s.active), ("not_found", false), "{s:?}");

    let r = cleanup(ranges.clone()).await;
    assert!(r.success, "{r:?}");
    assert_eq!(
        (r.keys_removed, r.versions_removed),
        (moving.keys, moving.versions)
    );
    let gone = range_digest(&mut a.admin().await, &ranges).await;
    assert_eq!((gone.keys, gone.versions), (0, 0), "{gone:?}");
    assert_eq!(u128::from_str_radix(&gone.digest, 16), Ok(0), "{gone:?}");
    assert_eq!(range_digest(&mut c.admin().await, &ranges).await, moving);
    assert_eq!(range_digest(&mut a.admin().await, &kept).await, staying);
}
