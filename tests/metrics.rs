//! The Prometheus endpoint: `GET /metrics` answers the text exposition
//! format that `promtool check metrics` accepts; request counters move by
//! method, gRPC status and body error code; the latency histograms count
//! every call; a bad request gets its HTTP status; an address already taken
//! stops start-up naming it. With `PAIRDB_REQUIRE_PROMTOOL=1` (CI) a
//! missing promtool fails the test instead of skipping the check.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A node with 2 shards whose metrics listen on a free port.
async fn node_with_metrics() -> (Node, SocketAddr) {
    let port = free_port();
    let node = Node::start_with(NodeOptions {
        config: Some(format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n")),
        ..NodeOptions::default()
    })
    .await;
    (node, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// Sends `request` as is and answers (status, headers, body).
fn http(addr: SocketAddr, request: &[u8]) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the metrics port");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(request).expect("send the request");
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read the answer to its end");
    let text = String::from_utf8(out).expect("the answer is UTF-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, head.to_string(), body.to_string())
}

fn scrape(addr: SocketAddr) -> String {
    let (status, head, body) = http(
        addr,
        b"GET /metrics HTTP/1.1\r\nHost: pairdb\r\nAccept: text/plain\r\n\r\n",
    );
    assert_eq!(status, 200, "{head}\n{body}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    body
}

/// The value of the sample written exactly `series` (name and labels).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        (name == series).then(|| value.parse().expect("a number"))
    })
}

fn requests(text: &str, method: &str, code: &str, error: &str) -> f64 {
    let series = format!(
        "pairdb_requests_total{{service=\"storage.StorageNodeService\",method=\"{method}\",\
         grpc_code=\"{code}\",error_code=\"{error}\"}}"
    );
    sample(text, &series).unwrap_or(0.0)
}

/// `promtool check metrics` on `text`: `None` when promtool is not
/// installed, else its verdict and output.
fn promtool(text: &str) -> Option<(bool, String)> {
    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("promtool: {e}"),
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("feed promtool");
    let out = child.wait_with_output().expect("promtool output");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success(), said))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_valid_and_counters_move_with_requests() {
    let (node, addr) = node_with_metrics().await;
    let mut c = node.client().await;
    let before = scrape(addr);

    const WRITES: usize = 20;
    for i in 0..WRITES {
        let w = write(&mut c, "acme", &format!("k{i}"), b"v", None).await;
        assert!(w.success, "{w:?}");
    }
    let r = read(&mut c, "acme", "k0").await;
    assert!(r.success, "{r:?}");
    let missing = read(&mut c, "acme", "no-such-key").await;
    assert!(!missing.success, "{missing:?}");
    let bad = write(&mut c, "", "k", b"v", None).await;
    assert!(!bad.success, "an empty tenant is refused: {bad:?}");

    let after = scrape(addr);
    let moved = |method: &str, code: &str, error: &str| {
        requests(&after, method, code, error) - requests(&before, method, code, error)
    };
    assert_eq!(moved("Write", "OK", "none"), WRITES as f64, "{after}");
    assert_eq!(moved("Write", "OK", "INVALID_REQUEST"), 1.0, "{after}");
    assert_eq!(moved("Read", "OK", "none"), 1.0, "{after}");
    assert_eq!(moved("Read", "OK", "KEY_NOT_FOUND"), 1.0, "{after}");
    // Every Write is in the latency histogram.
    let writes_timed = sample(
        &after,
        "pairdb_request_duration_seconds_count{service=\"storage.StorageNodeService\",method=\"Write\"}",
    )
    .expect("a Write latency histogram");
    assert!(writes_timed >= (WRITES + 1) as f64, "{writes_timed}");
    // Shard figures: the writes reached the WALs of both shards in all.
    let wal_records: f64 = (0..2)
        .filter_map(|s| {
            sample(
                &after,
                &format!("pairdb_wal_records_total{{shard=\"{s}\"}}"),
            )
        })
        .sum();
    assert!(wal_records >= WRITES as f64, "{wal_records}\n{after}");
    for family in [
        "# TYPE pairdb_wal_fsync_duration_seconds histogram",
        "# TYPE pairdb_cache_hits_total counter",
        "# TYPE pairdb_keys gauge",
        "pairdb_node_state_info{state=\"serving\"} 1",
        "pairdb_write_state_info{shard=\"1\",state=\"writing\"} 1",
        "# TYPE process_resident_memory_bytes gauge",
        "# TYPE process_open_fds gauge",
    ] {
        assert!(after.contains(family), "missing {family:?} in\n{after}");
    }

    match promtool(&after) {
        Some((ok, said)) => assert!(ok, "promtool check metrics refused:\n{said}\n{after}"),
        None if std::env::var("PAIRDB_REQUIRE_PROMTOOL").as_deref() == Ok("1") => {
            panic!("promtool is required (PAIRDB_REQUIRE_PROMTOOL=1) but not installed")
        }
        None => eprintln!("promtool not installed: output format not checked by it"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_requests_get_their_http_status() {
    let (_node, addr) = node_with_metrics().await;
    let (status, head, body) = http(addr, b"HEAD /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(status, 200, "{head}");
    assert!(body.is_empty(), "HEAD has no body: {body:?}");
    assert_eq!(http(addr, b"GET / HTTP/1.1\r\n\r\n").0, 404);
    let (status, head, _) = http(addr, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(status, 405);
    assert!(head.contains("Allow: GET, HEAD"), "{head}");
    assert_eq!(http(addr, b"garbage\r\n\r\n").0, 400);
    let huge = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(10_000));
    assert_eq!(http(addr, huge.as_bytes()).0, 431);
    // The node still serves after all that.
    scrape(addr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_address_in_use_stops_start_up_naming_it() {
    let (_first, addr) = node_with_metrics().await;
    let opts = NodeOptions {
        config: Some(format!("[metrics]\nlisten = \"{addr}\"\n")),
        ..NodeOptions::default()
    };
    let mut second = Node::spawn(&opts, free_port());
    let status = second
        .wait_exit_async(Duration::from_secs(20))
        .await
        .expect("the second node exits");
    assert!(!status.success());
    let stderr = second.stderr();
    assert!(stderr.contains(&addr.to_string()), "{stderr}");
}
