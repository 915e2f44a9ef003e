//! gRPC transport behaviour: which faults become gRPC status codes (bodies
//! that are not protobuf, malformed frames, unknown or unimplemented methods,
//! messages over the size limit, deadlines) and which stay application errors
//! in the body (values over the value limit); large values round-trip intact
//! and the node stays healthy after every fault. Hand-made requests go through
//! a raw h2 client, the rest through the tonic stubs.

mod common;

use common::*;
use prost::Message;
use std::time::Duration;
use tonic::Code;

const MIB: usize = 1024 * 1024;

/// Deterministic pseudo-random bytes, so corruption anywhere is visible.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut bytes = vec![0; len];
    fastrand::Rng::with_seed(seed).fill(&mut bytes);
    bytes
}

async fn assert_healthy(node: &Node) {
    let mut fresh = node.client().await;
    let m = metrics(&mut fresh).await;
    assert_eq!(m.get("node_id"), Some(&node.node_id));
}

fn encoded_write(key: &str, value: &[u8]) -> Vec<u8> {
    write_req("raw-tenant", key, value, None).encode_to_vec()
}

#[tokio::test]
async fn raw_h2_well_formed_call_answers_ok_in_trailers() {
    // Checks the raw client itself against a normal call, so the fault tests
    // below rest on a verified harness.
    let node = Node::start(2).await;
    let body = grpc_frame(&encoded_write("raw-key", b"raw-value"));
    let resp = raw_call(node.addr, &method_path("Write"), &[], body).await;
    assert_eq!(resp.http_status, 200);
    assert_eq!(
        resp.headers.get("content-type").map(|v| v.as_bytes()),
        Some(&b"application/grpc"[..])
    );
    assert_eq!(resp.grpc_status(), Some(0), "{resp:?}");
    assert!(
        resp.trailers.is_some(),
        "an OK status travels in trailers: {resp:?}"
    );
    assert!(resp.body.len() >= 5, "{resp:?}");
    assert_eq!(resp.body[0], 0, "uncompressed response frame");
    let len = u32::from_be_bytes(resp.body[1..5].try_into().unwrap()) as usize;
    assert_eq!(len, resp.body.len() - 5, "one complete response frame");
    let w = pb::WriteResponse::decode(&resp.body[5..]).expect("WriteResponse");
    assert!(w.success, "{w:?}");

    let mut c = node.client().await;
    let r = read(&mut c, "raw-tenant", "raw-key").await;
    assert_eq!(r.value, b"raw-value");
}

#[tokio::test]
async fn body_that_is_not_protobuf_is_invalid_argument() {
    let node = Node::start(2).await;
    for garbage in [vec![0xffu8; 8], vec![0x0f], vec![0x0a, 0x10, b'x']] {
        for method in ["Write", "Read", "Delete", "Repair"] {
            let resp = raw_call(node.addr, &method_path(method), &[], grpc_frame(&garbage)).await;
            assert_eq!(resp.http_status, 200, "{method}: {resp:?}");
            assert_eq!(
                resp.grpc_status(),
                Some(Code::InvalidArgument as i32),
                "{method} with body {garbage:02x?}: {resp:?}"
            );
            assert!(
                resp.grpc_message().is_some_and(|m| !m.is_empty()),
                "a fault status carries grpc-message: {resp:?}"
            );
        }
    }
    assert_healthy(&node).await;
}

#[tokio::test]
async fn malformed_grpc_frames_are_refused_with_a_status() {
    let node = Node::start(2).await;
    let path = method_path("Write");
    let msg = encoded_write("k", b"v");

    // Prefix announces more bytes than the body holds.
    let mut short = grpc_frame(&msg).to_vec();
    short.truncate(short.len() - 1);
    let resp = raw_call(node.addr, &path, &[], short.into()).await;
    assert_eq!(
        resp.grpc_status(),
        Some(Code::InvalidArgument as i32),
        "{resp:?}"
    );

    // Trailing bytes after the announced message.
    let mut long = grpc_frame(&msg).to_vec();
    long.extend_from_slice(&[0, 0]);
    let resp = raw_call(node.addr, &path, &[], long.into()).await;
    assert_eq!(
        resp.grpc_status(),
        Some(Code::InvalidArgument as i32),
        "{resp:?}"
    );

    // Less than a prefix.
    let resp = raw_call(node.addr, &path, &[], vec![0u8, 0].into()).await;
    assert_eq!(
        resp.grpc_status(),
        Some(Code::InvalidArgument as i32),
        "{resp:?}"
    );

    // Compressed flag without any negotiated encoding: refused, not misread.
    let mut compressed = grpc_frame(&msg).to_vec();
    compressed[0] = 1;
    let resp = raw_call(node.addr, &path, &[], compressed.into()).await;
    let status = resp.grpc_status();
    assert!(
        status.is_some_and(|s| s != 0),
        "compressed frame must fail: {resp:?}"
    );

    assert_healthy(&node).await;
}

#[tokio::test]
async fn unknown_methods_and_services_are_unimplemented() {
    let node = Node::start(2).await;
    let body = grpc_frame(&[]);
    for path in [
        "/storage.StorageNodeService/Nope",
        "/storage.StorageNodeService/write",
        "/storage.OtherService/Write",
        // The standard health service is served, but only its own methods.
        "/grpc.health.v1.Health/Nope",
        "/grpc.health.v2.Health/Check",
    ] {
        let resp = raw_call(node.addr, path, &[], body.clone()).await;
        assert_eq!(resp.http_status, 200, "{path}: {resp:?}");
        assert_eq!(
            resp.grpc_status(),
            Some(Code::Unimplemented as i32),
            "{path}: {resp:?}"
        );
    }
    assert_healthy(&node).await;
}

#[tokio::test]
async fn migration_methods_answer_bad_requests_in_the_body() {
    let node = Node::start(2).await;
    let mut c = node.client().await;

    let r = c
        .replicate_data(pb::ReplicateRequest::default())
        .await
        .expect("ReplicateData")
        .into_inner();
    assert!(!r.success, "ReplicateData with a default request: {r:?}");
    assert_eq!(r.error_code, pb::ErrorCode::InvalidRequest as i32, "{r:?}");
    assert!(r.error_message.contains("target_node_id"), "{r:?}");
    let r = c
        .replicate_data(pb::ReplicateRequest {
            tenant_id: "t".into(),
            target_node_id: "node-stranger".into(),
            ..Default::default()
        })
        .await
        .expect("ReplicateData")
        .into_inner();
    assert!(!r.success, "{r:?}");
    assert!(r.error_message.contains("not a live member"), "{r:?}");

    // The stream methods are built: a bad request is an answer in the
    // body, not a gRPC status.
    let r = c
        .start_streaming(pb::StartStreamingRequest::default())
        .await
        .expect("StartStreaming")
        .into_inner();
    assert!(!r.success, "StartStreaming with a default request: {r:?}");
    assert!(
        r.message.contains("source_node_id"),
        "the message names the missing field: {r:?}"
    );
    // The connection is still good for real work.
    let w = write(&mut c, "t", "after-unimplemented", b"v", None).await;
    assert!(w.success, "{w:?}");
}

#[tokio::test]
async fn unknown_streams_are_not_found_and_stopping_one_is_a_no_op() {
    let node = Node::start(2).await;
    let mut c = node.client().await;
    let unknown = ("node-nobody", "node-nowhere");
    let status = c
        .get_stream_status(pb::StreamStatusRequest {
            source_node_id: unknown.0.into(),
            target_node_id: unknown.1.into(),
        })
        .await
        .expect("GetStreamStatus")
        .into_inner();
    let stop = c
        .stop_streaming(pb::StopStreamingRequest {
            source_node_id: unknown.0.into(),
            target_node_id: unknown.1.into(),
        })
        .await
        .expect("StopStreaming")
        .into_inner();
    let complete = c
        .notify_streaming_complete(pb::StreamingCompleteRequest {
            source_node_id: unknown.0.into(),
            target_node_id: unknown.1.into(),
        })
        .await
        .expect("NotifyStreamingComplete")
        .into_inner();
    let answers = format!("{status:?}\n{stop:?}\n{complete:?}");
    assert!(!status.active, "{answers}");
    assert_eq!(status.state, "not_found", "{answers}");
    assert!(
        stop.success,
        "stopping an unknown stream is a no-op: {answers}"
    );
    assert!(
        !complete.success,
        "an unknown stream is not complete: {answers}"
    );
    assert!(!complete.message.is_empty(), "{answers}");
}

#[tokio::test]
async fn message_over_the_limit_is_resource_exhausted_and_value_over_the_limit_is_invalid() {
    let node = Node::start(2).await;
    let mut c = node.client().await;

    // 17 MiB value: the message is over message_bytes_max (16 MiB).
    let huge = vec![7u8; 17 * MIB];
    let s = c
        .write(write_req("t", "huge", &huge, None))
        .await
        .expect_err("a 17 MiB message must be refused");
    assert_eq!(s.code(), Code::ResourceExhausted, "{s:?}");
    assert!(!s.message().is_empty(), "{s:?}");
    drop(huge);

    // The same connection is still usable.
    let w = write(&mut c, "t", "small", b"ok", None).await;
    assert!(w.success, "{w:?}");

    // 9 MiB value: the message fits, the value is over value_bytes_max (8 MiB):
    // an application error in the body.
    let big = vec![9u8; 9 * MIB];
    let w = write(&mut c, "t", "big", &big, None).await;
    assert!(
        !w.success,
        "{:?}",
        (w.success, w.error_code, &w.error_message)
    );
    assert_eq!(w.error_code, INVALID_REQUEST, "{}", w.error_message);
    assert!(w.error_message.contains("value"), "{}", w.error_message);
    let rp = repair(&mut c, "t", "big", &big, clock(&[("a", 1)])).await;
    assert!(!rp.success);
    assert_eq!(rp.error_code, INVALID_REQUEST, "{}", rp.error_message);
    drop(big);
    let r = read(&mut c, "t", "big").await;
    assert_eq!(r.error_code, KEY_NOT_FOUND, "nothing stored");

    // A value of exactly value_bytes_max is accepted and read back intact.
    let edge = pattern(8 * MIB, 8);
    let w = write(&mut c, "t", "edge", &edge, None).await;
    assert!(w.success, "{:?}", (w.error_code, &w.error_message));
    let r = read(&mut c, "t", "edge").await;
    assert!(r.success);
    assert!(r.value == edge, "8 MiB value corrupted");

    assert_healthy(&node).await;
}

#[tokio::test]
async fn announced_length_over_the_limit_is_refused_before_the_body_arrives() {
    let node = Node::start(2).await;
    // Only the prefix (announcing 17 MiB) and a few bytes are sent.
    let mut body = vec![0u8];
    body.extend_from_slice(&(17 * MIB as u32).to_be_bytes());
    body.extend_from_slice(b"abc");
    let resp = raw_call(node.addr, &method_path("Write"), &[], body.into()).await;
    assert_eq!(
        resp.grpc_status(),
        Some(Code::ResourceExhausted as i32),
        "{resp:?}"
    );
    assert_healthy(&node).await;
}

#[tokio::test]
async fn one_mib_value_round_trips_intact() {
    let node = Node::start(2).await;
    let mut c = node.client().await;
    let value = pattern(MIB, 1);
    let w = write(&mut c, "t", "one-mib", &value, None).await;
    assert!(w.success, "{:?}", (w.error_code, &w.error_message));
    // Read through another connection (maybe another core) too.
    let mut other = node.client().await;
    for client in [&mut c, &mut other] {
        let r = read(client, "t", "one-mib").await;
        assert!(r.success);
        assert_eq!(r.value.len(), value.len());
        assert!(r.value == value, "1 MiB value corrupted");
        assert_eq!(read_versions(&r).len(), 1);
        assert!(
            read_versions(&r)[0].value == value,
            "listed version corrupted"
        );
    }
    // Every byte value round-trips too.
    let all: Vec<u8> = (0..=255u8).collect();
    write(&mut c, "t", "bytes", &all, None).await;
    assert_eq!(read(&mut c, "t", "bytes").await.value, all);
}

#[tokio::test]
async fn expired_deadline_answers_deadline_exceeded() {
    let node = Node::start(2).await;
    let mut c = node.client().await;

    // tonic's channel enforces grpc-timeout on the client side too (its
    // "Timeout expired" is a local Cancelled), so the server's answer is
    // observed through raw h2 with hand-written grpc-timeout headers.
    let body = grpc_frame(&encoded_write("deadline-raw", b"v"));
    for timeout in ["1n", "0m", "1u"] {
        let resp = raw_call(
            node.addr,
            &method_path("Write"),
            &[("grpc-timeout", timeout)],
            body.clone(),
        )
        .await;
        assert_eq!(
            resp.grpc_status(),
            Some(Code::DeadlineExceeded as i32),
            "grpc-timeout {timeout}: {resp:?}"
        );
    }

    // A deadline that expires while the server waits for the rest of the
    // body: the server's own timer answers, the client never finishes.
    let mut partial = grpc_frame(&encoded_write("deadline-stalled", b"value")).to_vec();
    partial.truncate(8);
    let resp = tokio::time::timeout(
        Duration::from_secs(15),
        raw_call_unfinished(
            node.addr,
            &method_path("Write"),
            &[("grpc-timeout", "300m")],
            partial.into(),
        ),
    )
    .await
    .expect("the server must answer a stalled request once its deadline passes");
    assert_eq!(
        resp.grpc_status(),
        Some(Code::DeadlineExceeded as i32),
        "{resp:?}"
    );

    // A generous deadline does not get in the way.
    let mut req = tonic::Request::new(write_req("t", "deadline-ok", b"v", None));
    req.set_timeout(Duration::from_secs(30));
    let w = c.write(req).await.expect("30 s deadline").into_inner();
    assert!(w.success, "{w:?}");
    let resp = raw_call(
        node.addr,
        &method_path("Write"),
        &[("grpc-timeout", "20S")],
        body.clone(),
    )
    .await;
    assert_eq!(resp.grpc_status(), Some(0), "{resp:?}");

    // A malformed grpc-timeout is a client fault.
    let resp = raw_call(
        node.addr,
        &method_path("Write"),
        &[("grpc-timeout", "soon")],
        body,
    )
    .await;
    assert_eq!(
        resp.grpc_status(),
        Some(Code::InvalidArgument as i32),
        "{resp:?}"
    );
    assert_healthy(&node).await;
}

/// Holds one request open on `conn` (headers and a partial body), so it
/// stays admitted on that connection's core until dropped.
async fn hold_request(
    conn: &RawConn,
    partial: &[u8],
) -> (h2::client::ResponseFuture, h2::SendStream<bytes::Bytes>) {
    let (response, mut stream) = conn.start(&method_path("Write"), &[]).await;
    stream
        .send_data(bytes::Bytes::copy_from_slice(partial), false)
        .expect("send partial body");
    // Not a timing assertion: only gives the node time to admit it first.
    tokio::time::sleep(Duration::from_millis(200)).await;
    (response, stream)
}

/// After the held request is cancelled, the same core serves again.
async fn assert_admits_again(conn: &RawConn, body: bytes::Bytes) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let resp = conn.call(&method_path("Write"), body.clone()).await;
        if resp.grpc_status() == Some(0) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "admission never released after the held request was reset: {resp:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn too_many_requests_in_flight_is_unavailable() {
    // The contract's transport faults map in order: not protobuf ->
    // INVALID_ARGUMENT, unknown method -> UNIMPLEMENTED, over the size limit ->
    // RESOURCE_EXHAUSTED, overload -> UNAVAILABLE.
    let node = Node::start_with(NodeOptions {
        config: Some("[limits]\ninflight_requests_max_per_core = 1\n".into()),
        ..NodeOptions::default()
    })
    .await;
    let conn = RawConn::open(node.addr).await;
    let full = grpc_frame(&encoded_write("overload", b"v"));
    let held = hold_request(&conn, &full[..3]).await;

    let resp = conn.call(&method_path("Write"), full.clone()).await;
    assert_eq!(resp.http_status, 200, "{resp:?}");
    assert_eq!(
        resp.grpc_status(),
        Some(Code::Unavailable as i32),
        "a request over inflight_requests_max_per_core is an overload: {resp:?}"
    );
    assert!(resp.grpc_message().is_some(), "{resp:?}");

    drop(held);
    assert_admits_again(&conn, full).await;
}

#[tokio::test]
async fn too_many_request_bytes_in_flight_is_unavailable() {
    let node = Node::start_with(NodeOptions {
        config: Some(
            "[limits]\nmessage_bytes_max = 4096\nvalue_bytes_max = 3072\n\
             inflight_bytes_max_per_core = 4096\n"
                .into(),
        ),
        ..NodeOptions::default()
    })
    .await;
    let conn = RawConn::open(node.addr).await;
    let held_frame = grpc_frame(&encoded_write("held", &[1u8; 3000]));
    let held = hold_request(&conn, &held_frame[..3000]).await;

    let second = grpc_frame(&encoded_write("second", &[2u8; 2000]));
    let resp = conn.call(&method_path("Write"), second.clone()).await;
    assert_eq!(
        resp.grpc_status(),
        Some(Code::Unavailable as i32),
        "request bytes over inflight_bytes_max_per_core are an overload: {resp:?}"
    );

    drop(held);
    assert_admits_again(&conn, second).await;
}
