//! Process lifecycle of the `pairdb-storage` binary: graceful shutdown on
//! SIGTERM/SIGINT (exit 0, completed requests were answered OK, the port is
//! released), refusing a port another live process serves (exit 2 naming
//! that process, the running node unaffected), configuration errors (exit 2
//! with a message naming the file, key and reason) and a config file's
//! limits taking effect.

mod common;

use common::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a process may take to exit after a signal or a bad start.
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_traffic_drains_and_exits_zero() {
    let mut node = Node::start(2).await;
    let signalled = Arc::new(AtomicBool::new(false));
    let ok_before = Arc::new(AtomicUsize::new(0));
    let ok_after = Arc::new(AtomicUsize::new(0));

    let mut tasks = Vec::new();
    for t in 0..4 {
        let mut c = node.client().await;
        let signalled = Arc::clone(&signalled);
        let ok_before = Arc::clone(&ok_before);
        let ok_after = Arc::clone(&ok_after);
        tasks.push(tokio::spawn(async move {
            for i in 0..1_000_000u64 {
                let key = format!("drain-{t}-{i}");
                let sent_after_signal = signalled.load(Ordering::SeqCst);
                let outcome = c.write(write_req("drain", &key, b"in-flight", None)).await;
                match outcome {
                    Ok(resp) => {
                        let resp = resp.into_inner();
                        // A request the node answered was fully served.
                        assert!(resp.success, "{key}: {resp:?}");
                        if sent_after_signal {
                            ok_after.fetch_add(1, Ordering::SeqCst);
                        } else {
                            ok_before.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    Err(status) => {
                        assert!(
                            signalled.load(Ordering::SeqCst),
                            "{key}: failed before shutdown began: {status:?}"
                        );
                        return;
                    }
                }
            }
        }));
    }

    // Let traffic flow, then signal while requests are in flight.
    let deadline = Instant::now() + Duration::from_secs(20);
    while ok_before.load(Ordering::SeqCst) < 200 {
        assert!(Instant::now() < deadline, "no traffic got through");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    signalled.store(true, Ordering::SeqCst);
    node.signal(libc::SIGTERM);

    let status = node
        .wait_exit(EXIT_TIMEOUT)
        .unwrap_or_else(|| panic!("node still running {EXIT_TIMEOUT:?} after SIGTERM"));
    assert_eq!(
        status.code(),
        Some(0),
        "graceful shutdown exits 0: {status:?}\n{}",
        node.stderr()
    );

    for t in tasks {
        tokio::time::timeout(Duration::from_secs(30), t)
            .await
            .expect("client task ends once the node is gone")
            .expect("client task");
    }
    assert!(ok_before.load(Ordering::SeqCst) >= 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_restarts_on_its_port_right_after_a_graceful_shutdown() {
    // A client still connected when the node stops makes the node close that
    // connection first, leaving the node's end in FIN_WAIT2/TIME_WAIT on the
    // listen port for up to a minute. That is not "another process serving
    // the port": a restart must succeed at once.
    let opts = NodeOptions {
        config: Some("[limits]\ndrain_timeout_ms = 500\n".into()),
        ..NodeOptions::default()
    };
    let mut first = Node::start_with(opts.clone()).await;
    let mut idle = tokio::net::TcpStream::connect(first.addr)
        .await
        .expect("connect");
    // The server's SETTINGS frame proves the connection was accepted.
    let mut settings = [0u8; 9];
    tokio::time::timeout(
        Duration::from_secs(10),
        tokio::io::AsyncReadExt::read_exact(&mut idle, &mut settings),
    )
    .await
    .expect("server SETTINGS within 10 s")
    .expect("read server SETTINGS");
    assert_eq!(settings[3], 0x4, "first frame is SETTINGS: {settings:?}");

    first.signal(libc::SIGTERM);
    let status = first
        .wait_exit(EXIT_TIMEOUT)
        .unwrap_or_else(|| panic!("node still running {EXIT_TIMEOUT:?} after SIGTERM"));
    assert_eq!(status.code(), Some(0), "{status:?}\n{}", first.stderr());
    // Take everything the node sent (so closing is an orderly FIN, not a
    // reset that would wipe the node's end of the connection), then close.
    let mut rest = Vec::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        tokio::io::AsyncReadExt::read_to_end(&mut idle, &mut rest),
    )
    .await
    .expect("the node closed the connection")
    .expect("read until the node closed");
    drop(idle);

    let mut second = Node::spawn(&opts, first.addr.port());
    if let Err(e) = second.wait_ready().await {
        panic!(
            "restart on {} after a graceful shutdown failed: {e}\n--- stderr ---\n{}",
            first.addr,
            second.stderr()
        );
    }
    let mut c = second.client().await;
    let w = write(&mut c, "t", "after-restart", b"v", None).await;
    assert!(w.success, "{w:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_on_an_idle_node_exits_zero() {
    let mut node = Node::start(2).await;
    let mut c = node.client().await;
    write(&mut c, "t", "k", b"v", None).await;
    // The client stays connected (and its connection task keeps running on
    // the runtime's workers) so it can answer the node's GOAWAY.
    node.signal(libc::SIGINT);
    let status = node
        .wait_exit(EXIT_TIMEOUT)
        .unwrap_or_else(|| panic!("node still running {EXIT_TIMEOUT:?} after SIGINT"));
    assert_eq!(status.code(), Some(0), "{status:?}\n{}", node.stderr());
}

#[tokio::test]
async fn a_second_node_on_the_same_port_exits_two_and_the_first_keeps_serving() {
    let node = Node::start(2).await;
    let mut c = node.client().await;
    write(&mut c, "t", "before", b"1", None).await;

    let dir = tempfile::tempdir().unwrap();
    let stderr_path = dir.path().join("stderr.log");
    let mut second = command(&stderr_path)
        .arg("--listen")
        .arg(node.addr.to_string())
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--shards")
        .arg("1")
        .spawn()
        .expect("spawn second node");
    let status = wait_exit(&mut second, EXIT_TIMEOUT).unwrap_or_else(|| {
        let _ = second.kill();
        panic!("second node did not exit on a busy port")
    });
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    assert_eq!(status.code(), Some(2), "{status:?}\n{stderr}");
    assert!(stderr.contains("already serves"), "{stderr}");
    assert!(stderr.contains(&node.addr.to_string()), "{stderr}");
    assert!(
        stderr.contains(&format!("pid {}", node.pid())),
        "names the running node: {stderr}"
    );

    // The first node still owns the port and its data.
    for _ in 0..8 {
        let mut fresh = node.client().await;
        let r = read(&mut fresh, "t", "before").await;
        assert_eq!(r.value, b"1", "a connection reached another process?");
    }
    let m = metrics(&mut c).await;
    assert_eq!(m.get("node_id"), Some(&node.node_id));
}

#[tokio::test]
async fn a_port_held_by_any_listener_is_refused() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let stderr_path = dir.path().join("stderr.log");
    let mut child = command(&stderr_path)
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--shards")
        .arg("2")
        .spawn()
        .expect("spawn node");
    let status = wait_exit(&mut child, EXIT_TIMEOUT).unwrap_or_else(|| {
        let _ = child.kill();
        panic!("node did not exit on a busy port")
    });
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    assert_eq!(status.code(), Some(2), "{status:?}\n{stderr}");
    assert!(stderr.contains("already serves"), "{stderr}");
    assert!(
        stderr.contains(&format!("pid {}", std::process::id())),
        "names the test process holding the port: {stderr}"
    );
    drop(held);
}

/// Runs the binary with `--config <file holding text>` (or a missing file
/// when `text` is `None`) and returns its exit code, stderr and config path.
fn run_with_config(text: Option<&str>) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("node-config.toml");
    if let Some(text) = text {
        std::fs::write(&config, text).unwrap();
    }
    let stderr_path = dir.path().join("stderr.log");
    let mut child = command(&stderr_path)
        .arg("--config")
        .arg(&config)
        .arg("--listen")
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .spawn()
        .expect("spawn node");
    let status = wait_exit(&mut child, EXIT_TIMEOUT).unwrap_or_else(|| {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "node with config {text:?} did not exit: {}",
            std::fs::read_to_string(&stderr_path).unwrap_or_default()
        )
    });
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    (status.code(), stderr, config.display().to_string())
}

#[test]
fn unknown_config_key_exits_two_naming_file_and_key() {
    let (code, stderr, path) = run_with_config(Some("[limits]\nvalue_bytes_maxx = 5\n"));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("value_bytes_maxx"), "{stderr}");
    assert!(stderr.contains(&path), "{stderr}");

    let (code, stderr, _) = run_with_config(Some("[nodes]\nnode_id = \"x\"\n"));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("nodes"), "{stderr}");
}

#[test]
fn missing_config_file_exits_two_naming_the_path() {
    let (code, stderr, path) = run_with_config(None);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains(&path), "{stderr}");
}

#[test]
fn invalid_config_values_exit_two_naming_key_and_reason() {
    let (code, stderr, path) = run_with_config(Some(
        "[limits]\nmessage_bytes_max = 1048576\nvalue_bytes_max = 2097152\n",
    ));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("limits.value_bytes_max"), "{stderr}");
    assert!(stderr.contains(&path), "{stderr}");

    let (code, stderr, _) = run_with_config(Some("[logging]\nformat = \"xml\"\n"));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("xml"), "{stderr}");

    let (code, stderr, _) = run_with_config(Some("[limits]\nkey_bytes_max = \"big\"\n"));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("key_bytes_max"), "{stderr}");

    let (code, stderr, _) = run_with_config(Some("this is not toml ["));
    assert_eq!(code, Some(2), "{stderr}");
}

#[tokio::test]
async fn config_file_limits_apply_and_flags_override_the_node_section() {
    let node = Node::start_with(NodeOptions {
        shards: 1,
        node_id: "from-flag".into(),
        config: Some(
            "[node]\nnode_id = \"from-config\"\nshards = 2\n\n\
             [limits]\nkey_bytes_max = 16\ntenant_id_bytes_max = 4\nvalue_bytes_max = 1000\n"
                .into(),
        ),
    })
    .await;
    let mut c = node.client().await;
    let m = metrics(&mut c).await;
    assert_eq!(m.get("node_id").map(String::as_str), Some("from-flag"));
    assert_eq!(metric_u64(&m, "shards"), 1, "--shards overrides: {m:?}");
    assert!(node.dir().join("data").is_dir(), "data dir is created");

    let w = write(&mut c, "t", &"k".repeat(16), b"ok", None).await;
    assert!(w.success, "{w:?}");
    assert_eq!(
        clock_map(&w.updated_vector_clock),
        cmap(&[("from-flag", 1)]),
        "blind writes are stamped with the effective node id"
    );
    let w = write(&mut c, "t", &"k".repeat(17), b"no", None).await;
    assert!(!w.success);
    assert_eq!(w.error_code, INVALID_REQUEST);
    assert!(w.error_message.contains("key"), "{w:?}");
    let w = write(&mut c, "tenant", "k", b"no", None).await;
    assert_eq!(w.error_code, INVALID_REQUEST, "{w:?}");
    assert!(w.error_message.contains("tenant_id"), "{w:?}");
    let w = write(&mut c, "t", "k", &[0u8; 1001], None).await;
    assert_eq!(w.error_code, INVALID_REQUEST, "{w:?}");
    assert!(w.error_message.contains("value"), "{w:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_at_sigterm_is_completed_before_exit() {
    use prost::Message;
    let mut node = Node::start(2).await;
    let conn = RawConn::open(node.addr).await;
    let frame = grpc_frame(&write_req("drain", "in-flight", b"finished", None).encode_to_vec());
    let half = frame.len() / 2;

    // Headers and half the body before the signal, the rest after it.
    let (response, mut stream) = conn.start(&method_path("Write"), &[]).await;
    stream
        .send_data(frame.slice(..half), false)
        .expect("first half");
    tokio::time::sleep(Duration::from_millis(100)).await;
    node.signal(libc::SIGTERM);
    tokio::time::sleep(Duration::from_millis(300)).await;
    stream
        .send_data(frame.slice(half..), true)
        .expect("second half");

    let resp = tokio::time::timeout(Duration::from_secs(15), collect(response))
        .await
        .expect("the in-flight request is answered during the drain");
    assert_eq!(resp.grpc_status(), Some(0), "{resp:?}");
    let w = pb::WriteResponse::decode(&resp.body[5..]).expect("WriteResponse");
    assert!(w.success, "{w:?}");

    let status = node
        .wait_exit(EXIT_TIMEOUT)
        .unwrap_or_else(|| panic!("node still running {EXIT_TIMEOUT:?} after SIGTERM"));
    assert_eq!(status.code(), Some(0), "{status:?}\n{}", node.stderr());
}
