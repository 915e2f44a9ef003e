//! Per-key bounds and request lifetimes against the real binary, replaying
//! what a hostile or buggy client tried: clock-id storms that once poisoned a
//! shard's WAL, merged clocks the node would not accept back, unbounded
//! siblings, Read answers over the message limit, stalled request bodies
//! holding admission slots, and requests that are not gRPC at all.

mod common;

use common::*;
use std::time::{Duration, Instant};

const T: &str = "bounds";

/// A clock of `n` fresh ids `prefix-0..n`, each at counter 1.
fn fresh_ids(prefix: &str, n: usize) -> Vec<(String, i64)> {
    (0..n).map(|i| (format!("{prefix}-{i}"), 1)).collect()
}

fn wire(entries: &[(String, i64)]) -> Option<pb::VectorClock> {
    let pairs: Vec<(&str, i64)> = entries.iter().map(|(n, c)| (n.as_str(), *c)).collect();
    clock(&pairs)
}

fn to_pairs(c: &Option<pb::VectorClock>) -> Vec<(String, i64)> {
    clock_map(c).into_iter().collect()
}

#[tokio::test]
async fn a_clock_id_storm_is_refused_and_the_shard_keeps_writing() {
    let mut node = Node::start(2).await;
    let mut c = node.client().await;
    // The attack: rounds of 8 concurrent writes with 64 fresh ids each,
    // then a blind write stamping the merge of everything stored. Once it
    // grew a 65,537-entry clock that poisoned the shard's WAL.
    for round in 0..16 {
        for w in 0..8 {
            let ids = fresh_ids(&format!("r{round}w{w}"), 64);
            let r = write(&mut c, T, "storm", b"x", wire(&ids)).await;
            assert!(!r.success && r.error_code == INVALID_REQUEST, "{r:?}");
            // On the empty key: 64 new ids at once; beside the blind
            // version: 65 ids over two siblings.
            let figure = if round == 0 { "64" } else { "65" };
            assert!(
                r.error_message.contains("limits.key_clock_ids_max (62)")
                    && r.error_message.contains(figure),
                "the refusal names the bound and the figure: {r:?}"
            );
        }
        let blind = write(&mut c, T, "storm", b"blind", None).await;
        assert!(blind.success, "{blind:?}");
        assert_eq!(
            clock_map(&blind.updated_vector_clock),
            cmap(&[(&node.node_id, round + 1)])
        );
    }
    let r = read(&mut c, T, "storm").await;
    assert_eq!(r.value, b"blind", "no refused value is visible");
    assert_eq!(read_versions(&r).len(), 1);
    // Every key of every shard still takes writes.
    for i in 0..50 {
        let w = write(&mut c, T, &format!("other-{i}"), b"v", None).await;
        assert!(w.success, "{w:?}");
    }
    // SIGTERM completes (no flush retrying for ever), and a restart serves
    // the key as acknowledged.
    node.signal(libc::SIGTERM);
    let status = node
        .wait_exit(Duration::from_secs(30))
        .expect("exits on SIGTERM");
    assert!(status.success(), "{status:?}\n{}", node.stderr());
    let data = node.dir().join("data");
    let mut again = Node::spawn_on_data_dir(&NodeOptions::default(), node.addr.port(), &data);
    again.wait_ready().await.expect("restarts");
    let mut c = again.client().await;
    assert_eq!(read(&mut c, T, "storm").await.value, b"blind");
    let w = write(&mut c, T, "storm", b"x", wire(&fresh_ids("after", 64))).await;
    assert!(!w.success, "the bound holds after a restart too: {w:?}");
}

#[tokio::test]
async fn every_clock_a_read_answers_is_accepted_back() {
    let node = Node::start(2).await;
    let mut c = node.client().await;
    // One write naming a crowd of new ids (past key_clock_ids_max, more
    // than one beyond what the key holds) is refused: it would answer a
    // clock no other coordinator could write back.
    for n in [64, 63] {
        let w = write(&mut c, T, "crowd", b"x", wire(&fresh_ids("n", n))).await;
        assert!(!w.success && w.error_code == INVALID_REQUEST, "{w:?}");
        assert!(
            w.error_message
                .contains(&format!("names {n} coordinator ids")),
            "{w:?}"
        );
    }
    let w = write(&mut c, T, "crowd", b"x", wire(&fresh_ids("n", 62))).await;
    assert!(w.success, "{w:?}");
    // Write-backs by two new coordinators in turn: each adds its id.
    for (i, coordinator) in ["cx", "cy"].iter().enumerate() {
        let r = read(&mut c, T, "crowd").await;
        assert_eq!(clock_map(&r.vector_clock).len(), 62 + i);
        let mut back = to_pairs(&r.vector_clock);
        back.push((coordinator.to_string(), 1));
        let w = write(&mut c, T, "crowd", b"back", wire(&back)).await;
        assert!(w.success, "a write-back is accepted: {w:?}");
    }
    // At 64 ids the wire limit is reached: a write-back adding a 65th id,
    // or a blind stamp adding this node's, cannot be carried; advancing an
    // entry the clock has still resolves the key.
    let r = read(&mut c, T, "crowd").await;
    let mut back = to_pairs(&r.vector_clock);
    back.push(("cz".into(), 1));
    let w = write(&mut c, T, "crowd", b"back", wire(&back)).await;
    assert!(w.error_message.contains("65 entries"), "{w:?}");
    let w = write(&mut c, T, "crowd", b"blind", None).await;
    assert!(
        w.error_message.contains("advancing one of its entries"),
        "{w:?}"
    );
    let mut next = to_pairs(&r.vector_clock);
    next[0].1 += 1;
    let w = write(&mut c, T, "crowd", b"next", wire(&next)).await;
    assert!(w.success, "{w:?}");

    // Two siblings of 31 ids each: 62 distinct ids, at the bound.
    for s in ["a", "b"] {
        let w = write(&mut c, T, "wide", s.as_bytes(), wire(&fresh_ids(s, 31))).await;
        assert!(w.success, "{w:?}");
    }
    let r = read(&mut c, T, "wide").await;
    assert_eq!(clock_map(&r.vector_clock).len(), 62);
    // A third id would pass the bound: refused before anything changes.
    let w = write(&mut c, T, "wide", b"c", wire(&fresh_ids("c", 1))).await;
    assert!(!w.success && w.error_code == INVALID_REQUEST, "{w:?}");
    assert!(w.error_message.contains("63"), "{w:?}");
    let again = read(&mut c, T, "wide").await;
    assert_eq!(read_versions(&again).len(), 2, "nothing changed");
    // The coordinator's write-back: the merged clock plus its own tick.
    let mut back = to_pairs(&r.vector_clock);
    back.push(("coordinator-x".into(), 1));
    let w = write(&mut c, T, "wide", b"resolved", wire(&back)).await;
    assert!(w.success, "a write-back of a read clock is accepted: {w:?}");
    // And a blind write on top (this node's stamp as the 64th id).
    let w = write(&mut c, T, "wide", b"blind", None).await;
    assert!(w.success, "{w:?}");
    assert_eq!(clock_map(&w.updated_vector_clock).len(), 64);
    // A blind delete ticks this node's own entry: still 64.
    let w = delete(&mut c, T, "wide", None).await;
    assert!(w.success, "{w:?}");
    assert_eq!(clock_map(&w.updated_vector_clock).len(), 64);
    let r = read(&mut c, T, "wide").await;
    assert_eq!(r.error_code, KEY_NOT_FOUND);
    assert_eq!(clock_map(&r.vector_clock).len(), 64);
}

#[tokio::test]
async fn siblings_stop_at_versions_per_key_max_and_repair_is_counted_not_refused() {
    let node = Node::start_with(NodeOptions {
        config: Some(
            "[limits]\nversions_per_key_max = 10\nversions_per_key_hard_max = 12\n".into(),
        ),
        ..NodeOptions::default()
    })
    .await;
    let mut c = node.client().await;
    for i in 0..10 {
        let w = write(&mut c, T, "sib", b"v", clock(&[(&format!("c{i}"), 1)])).await;
        assert!(w.success, "{w:?}");
    }
    let w = write(&mut c, T, "sib", b"v", clock(&[("c10", 1)])).await;
    assert!(!w.success && w.error_code == INVALID_REQUEST, "{w:?}");
    assert!(
        w.error_message.contains("11 versions")
            && w.error_message.contains("versions_per_key_max (10)"),
        "{w:?}"
    );
    // A Repair carries what another replica accepted: stored, and counted.
    let r = repair(&mut c, T, "sib", b"r", clock(&[("c10", 1)])).await;
    assert!(r.success, "{r:?}");
    let r = repair(&mut c, T, "sib", b"r", clock(&[("c11", 1)])).await;
    assert!(r.success, "{r:?}");
    let m = metrics(&mut c).await;
    let past: u64 = (0..2)
        .map(|s| metric_u64(&m, &format!("shard.{s}.replica_puts_past_bounds")))
        .sum();
    assert_eq!(past, 2, "{m:?}");
    let refused: u64 = (0..2)
        .map(|s| metric_u64(&m, &format!("shard.{s}.puts_refused_by_bounds")))
        .sum();
    assert_eq!(refused, 1);
    // The hard ceiling holds for Repair too.
    let r = repair(&mut c, T, "sib", b"r", clock(&[("c12", 1)])).await;
    assert!(!r.success && r.error_code == INVALID_REQUEST, "{r:?}");
    assert!(
        r.error_message.contains("versions_per_key_hard_max (12)"),
        "{r:?}"
    );
    assert_eq!(read_versions(&read(&mut c, T, "sib").await).len(), 12);
    // A write whose clock descends every sibling resolves them.
    let r = read(&mut c, T, "sib").await;
    let w = write(&mut c, T, "sib", b"one", r.vector_clock.clone()).await;
    assert!(w.success, "{w:?}");
    assert_eq!(read_versions(&read(&mut c, T, "sib").await).len(), 1);
}

#[tokio::test]
async fn a_read_answer_fits_the_message_limit_or_says_why() {
    let node = Node::start(1).await;
    let mut c = node
        .client()
        .await
        .max_decoding_message_size(16 << 20)
        .max_encoding_message_size(32 << 20);
    let six_mib = vec![7u8; 6 << 20];
    let w = write(&mut c, T, "big", &six_mib, clock(&[("a", 1)])).await;
    assert!(w.success, "{w:?}");
    // A concurrent sibling would make a Read answer ~18.9 MB (the visible
    // value twice plus the other): refused, naming the message limit.
    let w = write(&mut c, T, "big", &six_mib, clock(&[("b", 1)])).await;
    assert!(!w.success && w.error_code == INVALID_REQUEST, "{w:?}");
    assert!(w.error_message.contains("message_bytes_max"), "{w:?}");
    // A small sibling fits, and the answer decodes under a 16 MiB limit.
    let w = write(&mut c, T, "big", b"small", clock(&[("b", 1)])).await;
    assert!(w.success, "{w:?}");
    let r = read(&mut c, T, "big").await;
    assert_eq!(read_versions(&r).len(), 2);
    // Only a Repair (never refused by the soft bounds) can push a key past
    // it; its Read then answers RESOURCE_EXHAUSTED naming the limit instead
    // of an answer no client could receive.
    let r = repair(&mut c, T, "big", &six_mib, clock(&[("c", 1)])).await;
    assert!(r.success, "{r:?}");
    let status = c
        .read(pb::ReadRequest {
            tenant_id: T.into(),
            key: "big".into(),
        })
        .await
        .expect_err("an answer over the limit is not sent");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("message_bytes_max"), "{status:?}");
}

#[tokio::test]
async fn stalled_request_bodies_free_their_admission_slots() {
    let node = Node::start_with(NodeOptions {
        shards: 1,
        config: Some(
            "[limits]\ninflight_requests_max_per_core = 64\nrequest_body_timeout_ms = 400\n".into(),
        ),
        ..NodeOptions::default()
    })
    .await;
    // 64 streams that send 6 bytes of a 100-byte message and stall, with
    // no grpc-timeout: they take every slot of the core.
    let conn = RawConn::open(node.addr).await;
    let mut stalled = Vec::new();
    for _ in 0..64 {
        let (response, mut stream) = conn.start(&method_path("Write"), &[]).await;
        let mut frame = grpc_frame(&[0u8; 100]).to_vec();
        frame.truncate(6);
        stream.send_data(frame.into(), false).expect("send");
        stalled.push((response, stream));
    }
    let started = Instant::now();
    let mut c = node.client().await;
    // Until the body timeout frees them, others may be refused; after it,
    // every stalled stream has its answer and a new call is admitted.
    let mut answered = Vec::new();
    for (response, stream) in stalled {
        let resp = tokio::time::timeout(Duration::from_secs(10), collect(response))
            .await
            .expect("a stalled body is answered without a client deadline");
        drop(stream);
        answered.push(resp);
    }
    for resp in &answered {
        assert_eq!(resp.grpc_status(), Some(4), "DEADLINE_EXCEEDED: {resp:?}");
        let msg = resp.grpc_message().unwrap_or_default();
        assert!(msg.contains("request_body_timeout_ms"), "{msg}");
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    let w = write(&mut c, T, "after-stall", b"v", None).await;
    assert!(w.success, "{w:?}");
}

#[tokio::test]
async fn requests_that_are_not_grpc_get_http_refusals() {
    let node = Node::start(1).await;
    let tcp = tokio::net::TcpStream::connect(node.addr).await.unwrap();
    let (send, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let cases = [
        ("GET", "application/grpc", 405u16),
        ("PUT", "application/grpc", 405),
        ("POST", "application/json", 415),
        ("POST", "text/plain", 415),
        ("POST", "application/grpc+json", 415),
    ];
    for (method, content_type, want) in cases {
        let mut send = send.clone().ready().await.unwrap();
        let req = http::Request::builder()
            .method(method)
            .uri(format!("http://{}{}", node.addr, method_path("Read")))
            .header("content-type", content_type)
            .body(())
            .unwrap();
        let (response, mut stream) = send.send_request(req, false).unwrap();
        stream.send_data(grpc_frame(b""), true).unwrap();
        let resp = collect(response).await;
        assert_eq!(resp.http_status, want, "{method} {content_type}: {resp:?}");
        assert_eq!(resp.grpc_status(), None, "not a gRPC answer: {resp:?}");
        if want == 405 {
            assert_eq!(
                resp.headers.get("allow").map(|v| v.as_bytes()),
                Some(&b"POST"[..])
            );
        }
    }
    // HEAD: the refusal carries no body.
    let mut head = send.clone().ready().await.unwrap();
    let req = http::Request::builder()
        .method("HEAD")
        .uri(format!("http://{}{}", node.addr, method_path("Read")))
        .header("content-type", "application/grpc")
        .body(())
        .unwrap();
    let (response, _) = head.send_request(req, true).unwrap();
    let resp = collect(response).await;
    assert_eq!(resp.http_status, 405, "{resp:?}");
    assert!(resp.body.is_empty(), "{resp:?}");
    // application/grpc+proto is gRPC.
    let mut send = send.clone().ready().await.unwrap();
    let req = http::Request::builder()
        .method("POST")
        .uri(format!(
            "http://{}{}",
            node.addr,
            method_path("HealthCheck")
        ))
        .header("content-type", "application/grpc+proto")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let (response, mut stream) = send.send_request(req, false).unwrap();
    stream.send_data(grpc_frame(b""), true).unwrap();
    let resp = collect(response).await;
    assert_eq!(resp.http_status, 200);
    assert_eq!(resp.grpc_status(), Some(0), "{resp:?}");
}

#[tokio::test]
async fn idle_connections_cannot_lock_new_clients_out() {
    let node = Node::start_with(NodeOptions {
        shards: 1,
        config: Some("[limits]\nconnections_max_per_core = 4\n".into()),
        ..NodeOptions::default()
    })
    .await;
    // Every slot taken by connections that did the HTTP/2 handshake and then
    // nothing: a new client still gets in (the longest-idle one is closed).
    let idle: Vec<RawConn> = futures_join(4, || RawConn::open(node.addr)).await;
    for round in 0..3 {
        let mut c = node.client().await;
        let h = c.health_check(pb::HealthCheckRequest {}).await;
        assert!(h.is_ok(), "round {round}: a new client is served: {h:?}");
    }
    drop(idle);

    // Connections with a call in flight are never evicted: with every slot
    // busy, a new connection is refused until one finishes.
    let busy: Vec<RawConn> = futures_join(4, || RawConn::open(node.addr)).await;
    let mut held = Vec::new();
    for conn in &busy {
        let (response, mut stream) = conn.start(&method_path("Write"), &[]).await;
        stream
            .send_data(grpc_frame(&[0u8; 100]).slice(..6), false)
            .expect("send");
        held.push((response, stream));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let refused = tokio::time::timeout(Duration::from_secs(5), async {
        match node.try_client().await {
            Ok(mut c) => c.health_check(pb::HealthCheckRequest {}).await.is_err(),
            Err(_) => true,
        }
    })
    .await
    .unwrap_or(true);
    assert!(refused, "no busy connection was closed for a new client");
    drop((held, busy));
    let mut served = false;
    for _ in 0..50 {
        if let Ok(mut c) = node.try_client().await {
            if c.health_check(pb::HealthCheckRequest {}).await.is_ok() {
                served = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served, "served again once the busy connections left");
}

/// `n` results of `open`, one after another.
async fn futures_join<F, Fut, T>(n: usize, open: F) -> Vec<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(open().await);
    }
    out
}
