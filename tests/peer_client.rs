//! The node's own gRPC client (`pairdb_storage::client`) against the real
//! node binary and against hand-made peers: unary Write, Read and
//! HealthCheck; UNIMPLEMENTED for an unknown method; a quick Connect error
//! for a closed port; a Timeout against a server that accepts but never
//! answers; reconnecting after the node is killed and restarted on the same
//! port; 64 concurrent calls over one connection; and server streaming
//! (messages split across and packed into DATA frames, a status after
//! messages, a truncated message, an oversize message) against an h2 server
//! written here. The client runs inside a glommio executor (io_uring).

mod common;

use bytes::Bytes;
use common::{free_port, Node, NodeOptions};
use futures_lite::future;
use pairdb_storage::client::{ClientConfig, ClientError, Code, PeerClient};
use pairdb_storage::proto;
use prost::Message;
use std::future::Future;
use std::time::{Duration, Instant};
use tokio_util::compat::FuturesAsyncReadCompatExt;

const WRITE: &str = "/storage.StorageNodeService/Write";
const READ: &str = "/storage.StorageNodeService/Read";
const HEALTH: &str = "/storage.StorageNodeService/HealthCheck";
const T: Duration = Duration::from_secs(10);

/// Runs `f` on a fresh glommio executor and waits for it.
fn on_glommio<F, Fut>(f: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(256 * 1024)
        .spawn(f)
        .expect("spawn executor")
        .join()
        .expect("executor thread");
}

/// Starts a node (the harness waits for it with a tonic client on tokio).
fn start_node() -> Node {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(Node::start(2))
}

fn write_req(key: &str, value: &[u8]) -> proto::WriteRequest {
    proto::WriteRequest {
        tenant_id: "peer-client".into(),
        key: key.into(),
        value: Bytes::copy_from_slice(value),
        vector_clock: None,
        idempotency_key: String::new(),
    }
}

fn read_req(key: &str) -> proto::ReadRequest {
    proto::ReadRequest {
        tenant_id: "peer-client".into(),
        key: key.into(),
    }
}

async fn write(c: &PeerClient, key: &str, value: &[u8]) -> Result<(), ClientError> {
    let resp: proto::WriteResponse = c.unary(WRITE, &write_req(key, value), T).await?;
    assert!(resp.success, "write {key}: {resp:?}");
    Ok(())
}

async fn read(c: &PeerClient, key: &str) -> Result<Bytes, ClientError> {
    let resp: proto::ReadResponse = c.unary(READ, &read_req(key), T).await?;
    assert!(resp.success, "read {key}: {resp:?}");
    Ok(resp.value)
}

async fn health(c: &PeerClient, timeout: Duration) -> Result<proto::HealthResponse, ClientError> {
    c.unary(HEALTH, &proto::HealthCheckRequest {}, timeout)
        .await
}

#[test]
fn write_read_health_and_unknown_method() {
    let node = start_node();
    let addr = node.addr.to_string();
    on_glommio(move || async move {
        let c = PeerClient::connect(&addr, ClientConfig::default())
            .await
            .expect("connect");
        write(&c, "k1", b"value one").await.expect("write");
        assert_eq!(read(&c, "k1").await.expect("read"), &b"value one"[..]);

        // A value spanning many DATA frames and flow-control windows.
        let big: Vec<u8> = (0..3 << 20).map(|i| (i % 251) as u8).collect();
        write(&c, "big", &big).await.expect("write big");
        assert_eq!(read(&c, "big").await.expect("read big"), big);

        let h = health(&c, T).await.expect("health");
        assert!(h.healthy, "{h:?}");

        let err = c
            .unary::<_, proto::HealthResponse>(
                "/storage.StorageNodeService/Nope",
                &proto::HealthCheckRequest {},
                T,
            )
            .await
            .expect_err("unknown method");
        match &err {
            ClientError::Status { code, message, .. } => {
                assert_eq!(*code, Code::Unimplemented, "{err}");
                assert!(message.contains("Nope"), "{err}");
            }
            other => panic!("expected UNIMPLEMENTED, got {other}"),
        }
        assert!(!err.is_retryable());
        assert!(err.to_string().contains(&addr), "{err}");

        // The same through the streaming entry point (a trailers-only answer).
        let err = c
            .server_stream::<_, proto::KeyValueEntry>(
                "/storage.StorageNodeService/Nope",
                &proto::StreamKeysRequest::default(),
                T,
            )
            .await
            .expect_err("unknown streaming method");
        assert_eq!(err.code(), Code::Unimplemented, "{err}");

        // A response larger than the client accepts.
        let small = PeerClient::new(
            &addr,
            ClientConfig {
                response_bytes_max: 1024,
                ..ClientConfig::default()
            },
        )
        .expect("client");
        match read(&small, "big").await {
            Err(ClientError::TooLarge {
                bytes, max: 1024, ..
            }) => assert!(bytes > big.len()),
            other => panic!("expected TooLarge, got {other:?}"),
        }
        // The connection survives a refused answer.
        assert_eq!(read(&small, "k1").await.expect("read"), &b"value one"[..]);
        assert_eq!(c.connections_opened(), 1);
        assert_eq!(small.connections_opened(), 1);
    });
    drop(node);
}

#[test]
fn closed_port_is_a_quick_connect_error() {
    let addr = format!("127.0.0.1:{}", free_port());
    on_glommio(move || async move {
        let c = PeerClient::new(&addr, ClientConfig::default()).expect("client");
        let started = Instant::now();
        let err = health(&c, T).await.expect_err("nobody listens");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        assert!(matches!(err, ClientError::Connect { .. }), "{err}");
        assert!(err.is_retryable());
        assert!(err.to_string().contains(&addr), "{err}");
        assert!(PeerClient::connect(&addr, ClientConfig::default())
            .await
            .is_err());
        assert!(PeerClient::new("no port here", ClientConfig::default()).is_err());
    });
}

#[test]
fn a_server_that_never_answers_times_out() {
    // The kernel completes TCP handshakes for the backlog: the client's
    // connect and HTTP/2 preface succeed, then nothing ever comes back.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = silent.local_addr().expect("addr").to_string();
    on_glommio(move || async move {
        let c = PeerClient::new(&addr, ClientConfig::default()).expect("client");
        let started = Instant::now();
        let err = health(&c, Duration::from_millis(300))
            .await
            .expect_err("no answer");
        let took = started.elapsed();
        match err {
            ClientError::Timeout { after_ms: 300, .. } => {}
            other => panic!("expected Timeout, got {other}"),
        }
        assert!(took >= Duration::from_millis(300), "{took:?}");
        assert!(took < Duration::from_secs(3), "{took:?}");
        assert!(ClientError::Timeout {
            addr: addr.clone(),
            after_ms: 1
        }
        .is_retryable());
    });
    drop(silent);
}

#[test]
fn reconnects_after_the_node_restarts() {
    let data = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let opts = NodeOptions::default();
    let mut node = Node::spawn_on_data_dir(&opts, port, data.path());
    let addr = node.addr.to_string();
    on_glommio(move || async move {
        let c = PeerClient::new(&addr, ClientConfig::default()).expect("client");
        until_ok(&c, &node).await;
        write(&c, "survivor", b"before restart")
            .await
            .expect("write");
        assert_eq!(c.connections_opened(), 1);

        node.kill_and_reap();
        let err = health(&c, Duration::from_secs(2))
            .await
            .expect_err("the node is gone");
        assert!(err.is_retryable(), "{err}");
        assert!(
            matches!(
                err,
                ClientError::Connect { .. } | ClientError::Unavailable { .. }
            ),
            "{err}"
        );

        let node = Node::spawn_on_data_dir(&opts, port, data.path());
        until_ok(&c, &node).await;
        assert_eq!(
            read(&c, "survivor").await.expect("read after restart"),
            &b"before restart"[..]
        );
        assert!(c.is_connected());
        assert!(c.connections_opened() >= 2);
        drop(node);
        drop(data);
    });
}

/// Calls HealthCheck until it answers; every failure on the way must be
/// one worth retrying.
async fn until_ok(c: &PeerClient, node: &Node) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match health(c, Duration::from_secs(2)).await {
            Ok(h) if h.healthy => return,
            Ok(h) => assert!(Instant::now() < deadline, "unhealthy: {h:?}"),
            Err(e) => {
                assert!(e.is_retryable(), "{e}");
                assert!(
                    Instant::now() < deadline,
                    "{e}\n--- node stderr ---\n{}",
                    node.stderr()
                );
            }
        }
        glommio::timer::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn sixty_four_concurrent_calls_share_one_connection() {
    let node = start_node();
    let addr = node.addr.to_string();
    on_glommio(move || async move {
        let c = PeerClient::new(&addr, ClientConfig::default()).expect("client");
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let c = c.clone();
                glommio::spawn_local(async move {
                    let key = format!("concurrent-{i}");
                    let value = format!("value-{i}").repeat(i + 1);
                    write(&c, &key, value.as_bytes()).await?;
                    let back = read(&c, &key).await?;
                    assert_eq!(back, value.as_bytes());
                    Ok::<_, ClientError>(())
                })
            })
            .collect();
        for (i, t) in tasks.into_iter().enumerate() {
            t.await.unwrap_or_else(|e| panic!("call {i}: {e}"));
        }
        assert_eq!(c.connections_opened(), 1);
    });
    drop(node);
}

/// Frames `m` with the 5-byte gRPC prefix.
fn framed(m: &impl Message) -> Vec<u8> {
    let body = m.encode_to_vec();
    let mut out = vec![0];
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

fn entry(key: &str, value_len: usize) -> proto::KeyValueEntry {
    proto::KeyValueEntry {
        tenant_id: "t".into(),
        key: key.into(),
        value: Bytes::from((0..value_len).map(|i| (i % 249) as u8).collect::<Vec<_>>()),
        timestamp: 7,
        ..Default::default()
    }
}

/// An h2 server on this executor answering every call by its path: "/ok"
/// streams `entries()` cut into odd chunks then OK; "/fail" one message
/// then UNAVAILABLE; "/truncated" a cut-off message then OK; "/hang" one
/// message, then nothing for 3 s; anything else one message and no
/// trailers. Returns its address.
fn fake_stream_server() -> String {
    let listener = glommio::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    glommio::spawn_local(async move {
        while let Ok(stream) = listener.accept().await {
            glommio::spawn_local(async move {
                let mut conn = h2::server::handshake(stream.compat())
                    .await
                    .expect("server handshake");
                while let Some(Ok((req, respond))) = conn.accept().await {
                    glommio::spawn_local(answer(req.uri().path().to_string(), respond)).detach();
                }
            })
            .detach();
        }
    })
    .detach();
    addr
}

fn entries() -> Vec<proto::KeyValueEntry> {
    vec![
        entry("a", 0),
        entry("b", 10),
        entry("c", 40_000),
        entry("d", 3),
        entry("e", 70_000),
    ]
}

async fn answer(path: String, mut respond: h2::server::SendResponse<Bytes>) {
    let head = http::Response::builder()
        .header("content-type", "application/grpc")
        .body(())
        .expect("head");
    let mut send = respond.send_response(head, false).expect("send head");
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    match path.as_str() {
        "/ok" => {
            let body: Vec<u8> = entries().iter().flat_map(framed).collect();
            // Cuts inside prefixes, inside messages, and chunks holding
            // several messages.
            let mut at = 0;
            for len in [1, 2, 3, 40, 16_000, 30_000, 7, 100_000]
                .into_iter()
                .cycle()
            {
                if at >= body.len() {
                    break;
                }
                let end = (at + len).min(body.len());
                send.send_data(Bytes::copy_from_slice(&body[at..end]), false)
                    .expect("data");
                at = end;
                glommio::yield_if_needed().await;
            }
            send.send_trailers(trailers).expect("trailers");
        }
        "/fail" => {
            send.send_data(framed(&entry("only", 5)).into(), false)
                .expect("data");
            trailers.insert("grpc-status", http::HeaderValue::from_static("14"));
            trailers.insert(
                "grpc-message",
                http::HeaderValue::from_static("going%20away"),
            );
            send.send_trailers(trailers).expect("trailers");
        }
        "/truncated" => {
            let mut body = framed(&entry("cut", 100));
            body.truncate(50);
            send.send_data(body.into(), false).expect("data");
            send.send_trailers(trailers).expect("trailers");
        }
        "/hang" => {
            send.send_data(framed(&entry("first", 1)).into(), false)
                .expect("data");
            glommio::timer::sleep(Duration::from_secs(3)).await;
        }
        _ => {
            send.send_data(framed(&entry("x", 1)).into(), true)
                .expect("data");
        }
    }
    // Keep the stream's handles until the client has read everything.
    glommio::timer::sleep(Duration::from_millis(500)).await;
}

#[test]
fn server_streaming_reassembles_messages_and_reports_the_status() {
    on_glommio(|| async {
        let addr = fake_stream_server();
        let c = PeerClient::new(&addr, ClientConfig::default()).expect("client");
        let req = proto::StreamKeysRequest::default();

        let mut s = c
            .server_stream::<_, proto::KeyValueEntry>("/ok", &req, T)
            .await
            .expect("stream");
        let mut got = Vec::new();
        while let Some(m) = s.next().await {
            got.push(m.expect("message"));
        }
        assert_eq!(got, entries());
        assert!(s.is_finished());
        assert!(s.next().await.is_none());

        let mut s = c
            .server_stream::<_, proto::KeyValueEntry>("/fail", &req, T)
            .await
            .expect("stream");
        assert_eq!(s.next().await.expect("one").expect("message").key, "only");
        match s.next().await {
            Some(Err(ClientError::Status { code, message, .. })) => {
                assert_eq!(code, Code::Unavailable);
                assert_eq!(message, "going away");
            }
            other => panic!("expected UNAVAILABLE, got {other:?}"),
        }
        assert!(s.next().await.is_none());

        let mut s = c
            .server_stream::<_, proto::KeyValueEntry>("/truncated", &req, T)
            .await
            .expect("stream");
        match s.next().await {
            Some(Err(ClientError::Protocol { reason, .. })) => {
                assert!(reason.contains("inside a message"), "{reason}");
            }
            other => panic!("expected a protocol error, got {other:?}"),
        }

        let mut s = c
            .server_stream::<_, proto::KeyValueEntry>("/no-status", &req, T)
            .await
            .expect("stream");
        assert!(s.next().await.expect("one").is_ok());
        assert!(matches!(
            s.next().await,
            Some(Err(ClientError::Protocol { .. }))
        ));

        // A unary call on a streaming answer: more than one message.
        let err = c
            .unary::<_, proto::KeyValueEntry>("/ok", &req, T)
            .await
            .expect_err("five messages");
        assert!(matches!(err, ClientError::Protocol { .. }), "{err}");

        // A stream that outlives its deadline.
        let started = Instant::now();
        let mut s = c
            .server_stream::<_, proto::KeyValueEntry>("/hang", &req, Duration::from_millis(300))
            .await
            .expect("stream");
        assert!(s.next().await.expect("one").is_ok());
        let next = future::or(async { s.next().await }, async {
            glommio::timer::sleep(Duration::from_secs(5)).await;
            None
        })
        .await;
        assert!(
            matches!(next, Some(Err(ClientError::Timeout { after_ms: 300, .. }))),
            "{next:?}"
        );
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(3),
            "{took:?}"
        );
        assert!(s.next().await.is_none());
        assert_eq!(c.connections_opened(), 1);
    });
}
