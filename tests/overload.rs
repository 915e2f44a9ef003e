//! Overload and abuse against the real binary: far more concurrent streams
//! than the node admits, idle and half-open connections past the connection
//! limit, clients that never read their answers, messages at
//! `limits.message_bytes_max` from many streams at once, and a flood of tiny
//! requests.
//!
//! Every scenario runs on its own node (2 shards, the admission limits of
//! [`config`], scaled down so 10x the limits fits a 2-core test machine) and
//! asserts the same four things:
//!
//! - the process stays up and a fresh client is served afterwards (and,
//!   where the scenario holds resources, while they are still held);
//! - its RSS, sampled every 10 ms during the scenario, stays under
//!   [`rss_bound`], the formula docs/operations.md states ("Memory under
//!   overload");
//! - whatever is refused is refused explicitly: gRPC UNAVAILABLE with the
//!   node's reason, h2 REFUSED_STREAM, MEMORY_PRESSURE in the body, a GOAWAY
//!   on an HTTP/2 connection it closes, or RST_STREAM(CANCEL) on an answer
//!   the client did not take within `limits.request_timeout_ms`; a call that
//!   gets no answer within that time plus a margin fails the test as a hang;
//! - every write that was acknowledged is read back intact afterwards.
//!
//! The scenarios run one at a time (a process-wide lock), so each node's
//! RSS and latency are its own. Heavier runs: `PAIRDB_OVERLOAD_SCALE=N`
//! multiplies the connection, stream and request counts, and
//! `PAIRDB_OVERLOAD_FLOOD_S` sets the flood's seconds (default 4).

mod common;

use bytes::Bytes;
use common::*;
use prost::Message;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::Code;

const MIB: u64 = 1024 * 1024;
const SHARDS: u64 = 2;
/// The limits each node runs with (see [`config`]).
const INFLIGHT_REQUESTS: u64 = 16;
const INFLIGHT_BYTES: u64 = 64 * MIB;
const CONNECTIONS: u64 = 16;
const STREAMS: u64 = 32;
const REQUEST_TIMEOUT: Duration = Duration::from_millis(4000);
const MEMTABLE: u64 = 8 * MIB;
const IMMUTABLE_MEMTABLES: u64 = 2;
const WAL_PENDING: u64 = 16 * MIB;
const CACHE_TOTAL: u64 = 4 * MIB;
const IO_MEMORY: u64 = 2 * MIB;
/// `limits.message_bytes_max` (the default, 16 MiB) and `value_bytes_max`.
const MESSAGE_MAX: usize = 16 * MIB as usize;
const VALUE_MAX: usize = 8 * MIB as usize;
/// How long the server waits for an HTTP/2 preface (conn.rs).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A call unanswered this long is a hang.
const HANG: Duration = Duration::from_secs(15);

/// The node's configuration: the shipped defaults with the admission limits
/// and memory budgets scaled down.
fn config() -> String {
    format!(
        "[limits]\n\
         inflight_requests_max_per_core = {INFLIGHT_REQUESTS}\n\
         inflight_bytes_max_per_core = {INFLIGHT_BYTES}\n\
         connections_max_per_core = {CONNECTIONS}\n\
         h2_streams_max_per_connection = {STREAMS}\n\
         request_timeout_ms = {}\n\
         request_body_timeout_ms = 2000\n\
         [storage]\n\
         memtable_bytes_max = {MEMTABLE}\n\
         immutable_memtables_max = {IMMUTABLE_MEMTABLES}\n\
         wal_pending_bytes_max = {WAL_PENDING}\n\
         [storage.cache]\n\
         capacity_bytes_total = {CACHE_TOTAL}\n\
         [runtime]\n\
         io_memory_bytes = {IO_MEMORY}\n",
        REQUEST_TIMEOUT.as_millis()
    )
}

/// The RSS bound of docs/operations.md ("Memory under overload") for
/// [`config`]:
///
/// ```text
/// 64 MiB + cache.capacity_bytes_total
///   + shards x ( inflight_bytes_max_per_core
///              + inflight_requests_max_per_core x 64 KiB
///              + connections_max_per_core x 9 MiB
///              + (immutable_memtables_max + 2) x memtable_bytes_max
///              + wal_pending_bytes_max + io_memory_bytes )
/// ```
fn rss_bound() -> u64 {
    let per_core = INFLIGHT_BYTES
        + INFLIGHT_REQUESTS * 64 * 1024
        + CONNECTIONS * 9 * MIB
        + (IMMUTABLE_MEMTABLES + 2) * MEMTABLE
        + WAL_PENDING
        + IO_MEMORY;
    64 * MIB + CACHE_TOTAL + SHARDS * per_core
}

/// One scenario at a time (see the module doc). An async lock, held across
/// the scenario's awaits (each test has its own runtime; the lock works
/// across them).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.trim()
                .parse()
                .unwrap_or_else(|e| panic!("{name}={v:?}: {e}"))
        })
        .unwrap_or(default)
}

fn scale() -> u64 {
    env_u64("PAIRDB_OVERLOAD_SCALE", 1).max(1)
}

/// Deterministic bytes of `len` from `seed`.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut bytes = vec![0; len];
    fastrand::Rng::with_seed(seed).fill(&mut bytes);
    bytes
}

/// A write the node acknowledged: its key and how to rebuild its value.
#[derive(Debug, Clone)]
struct Acked {
    key: String,
    len: usize,
    seed: u64,
}

/// How one call ended, when it ended acceptably.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Ok,
    /// gRPC UNAVAILABLE with the node's reason, or h2 REFUSED_STREAM.
    Unavailable,
    MemoryPressure,
    /// DEADLINE_EXCEEDED naming the node's own limit
    /// (`limits.request_body_timeout_ms` or `request_timeout_ms`): the
    /// upload or the call took longer under load.
    Deadline,
    /// RST_STREAM(CANCEL): the node stopped waiting for the client to take
    /// its answer.
    Reset,
}

/// Refusals and acknowledgements of a scenario.
#[derive(Debug, Default)]
struct Tally {
    ok: u64,
    unavailable: u64,
    memory_pressure: u64,
    reset: u64,
    deadline: u64,
}

impl Tally {
    fn add(&mut self, v: Verdict) {
        match v {
            Verdict::Ok => self.ok += 1,
            Verdict::Unavailable => self.unavailable += 1,
            Verdict::MemoryPressure => self.memory_pressure += 1,
            Verdict::Reset => self.reset += 1,
            Verdict::Deadline => self.deadline += 1,
        }
    }

    fn refused(&self) -> u64 {
        self.unavailable + self.memory_pressure + self.deadline
    }
}

/// An UNAVAILABLE the node chose (its admission messages end with "retry
/// with backoff"), or an h2 REFUSED_STREAM; a transport failure is not one.
fn explicit_unavailable(s: &tonic::Status) -> bool {
    s.code() == Code::Unavailable
        && (s.message().contains("retry with backoff")
            || s.message().to_ascii_lowercase().contains("refused"))
}

/// Judges a Write's outcome: acknowledged, refused explicitly, or a failure
/// (the `Err` names it).
fn judge_write(
    r: Result<
        Result<tonic::Response<pb::WriteResponse>, tonic::Status>,
        tokio::time::error::Elapsed,
    >,
) -> Result<Verdict, String> {
    match r {
        Err(_) => Err(format!("no answer within {HANG:?}: a hang")),
        Ok(Ok(resp)) => {
            let w = resp.into_inner();
            if w.success {
                Ok(Verdict::Ok)
            } else if w.error_code == MEMORY_PRESSURE {
                Ok(Verdict::MemoryPressure)
            } else {
                Err(format!("write failed: {w:?}"))
            }
        }
        Ok(Err(s)) if explicit_unavailable(&s) => Ok(Verdict::Unavailable),
        Ok(Err(s))
            if s.code() == Code::DeadlineExceeded && s.message().contains("limits.request") =>
        {
            Ok(Verdict::Deadline)
        }
        Ok(Err(s)) => Err(format!("not an explicit refusal: {s:?}")),
    }
}

/// Writes `value` under `key` once and judges the outcome.
async fn try_write(
    c: &mut Client,
    tenant: &str,
    key: &str,
    value: Vec<u8>,
) -> Result<Verdict, String> {
    let req = pb::WriteRequest {
        tenant_id: tenant.into(),
        key: key.into(),
        value,
        vector_clock: None,
        idempotency_key: String::new(),
    };
    judge_write(tokio::time::timeout(HANG, c.write(req)).await)
}

/// The node's log lines about connections and overload, for a failure
/// message.
fn log_tail(node: &Node) -> String {
    let log = node.stderr();
    let lines: Vec<&str> = log.lines().filter(|l| !l.contains(" INFO ")).collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// A node with [`config`] and an RSS sampler on it.
async fn start_node() -> (Node, RssSampler) {
    let node = Node::start_with(NodeOptions {
        shards: SHARDS as usize,
        node_id: "node-overload".into(),
        config: Some(config()),
    })
    .await;
    let idle = rss_bytes(node.pid()).expect("node RSS");
    assert!(
        idle < 64 * MIB,
        "the idle node already takes {} MiB, over the 64 MiB the bound assumes",
        idle / MIB
    );
    let rss = RssSampler::start(node.pid(), Duration::from_millis(10));
    (node, rss)
}

/// The closing checks every scenario shares: the process is up, a fresh
/// client writes and reads, every acknowledged write reads back intact, and
/// the peak RSS stayed under the bound.
async fn assert_survived(
    node: &mut Node,
    rss: &RssSampler,
    tenant: &str,
    acked: &[Acked],
    what: &str,
) {
    assert!(
        node.try_wait().is_none(),
        "{what}: the node exited\n{}",
        node.stderr()
    );
    let mut fresh = node.client().await;
    let m = metrics(&mut fresh).await;
    assert_eq!(m.get("node_id").map(String::as_str), Some("node-overload"));
    let w = write(&mut fresh, tenant, "fresh-after", b"still serving", None).await;
    assert!(w.success, "{what}: {w:?}");
    assert_eq!(
        read(&mut fresh, tenant, "fresh-after").await.value,
        b"still serving"
    );
    // Every acknowledged write, read back over a few connections at once.
    let mut tasks = tokio::task::JoinSet::new();
    for part in acked.chunks(acked.len().div_ceil(8).max(1)) {
        let part = part.to_vec();
        let mut c = node.client().await;
        let tenant = tenant.to_string();
        tasks.spawn(async move {
            for a in part {
                let r = read(&mut c, &tenant, &a.key).await;
                assert!(r.success, "acknowledged {} is gone: {r:?}", a.key);
                assert!(
                    r.value == pattern(a.len, a.seed),
                    "acknowledged {} reads back {} bytes, not the {} written",
                    a.key,
                    r.value.len(),
                    a.len
                );
            }
        });
    }
    tasks.join_all().await;
    let peak = rss.peak();
    println!(
        "{what}: peak RSS {} MiB (bound {} MiB); {} acknowledged writes read back",
        peak / MIB,
        rss_bound() / MIB,
        acked.len()
    );
    assert!(
        peak < rss_bound(),
        "{what}: peak RSS {} MiB over the bound {} MiB",
        peak / MIB,
        rss_bound() / MIB
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_times_the_admitted_streams() {
    let _serial = SERIAL.lock().await;
    let (mut node, rss) = start_node().await;
    // 10x the requests the node admits at once (inflight x shards), as
    // full connections of h2_streams_max_per_connection streams each.
    let conns = 10 * INFLIGHT_REQUESTS * SHARDS * scale() / STREAMS;
    let rounds = 3;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..conns {
        let client = node.client().await;
        for s in 0..STREAMS {
            let mut client = client.clone();
            tasks.spawn(async move {
                let mut out = Vec::new();
                for r in 0..rounds {
                    let key = format!("c{c}-s{s}-r{r}");
                    let seed = c << 32 | s << 16 | r;
                    let v = try_write(&mut client, "streams", &key, pattern(4096, seed)).await;
                    out.push((
                        v,
                        Acked {
                            key,
                            len: 4096,
                            seed,
                        },
                    ));
                }
                out
            });
        }
    }
    let mut tally = Tally::default();
    let mut acked = Vec::new();
    for (v, a) in tasks.join_all().await.into_iter().flatten() {
        let v = v.unwrap_or_else(|e| panic!("{}: {e}", a.key));
        tally.add(v);
        if v == Verdict::Ok {
            acked.push(a);
        }
    }
    println!(
        "{} concurrent streams on {conns} connections, {rounds} writes each, in {:?}: {tally:?}",
        conns * STREAMS,
        started.elapsed()
    );
    assert!(tally.ok > 0, "nothing was admitted: {tally:?}");
    assert!(
        tally.refused() > 0,
        "10x the admission limit was never refused: {tally:?}"
    );
    assert_survived(&mut node, &rss, "streams", &acked, "10x streams").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_half_open_connections_cannot_lock_clients_out() {
    let _serial = SERIAL.lock().await;
    let (mut node, rss) = start_node().await;
    let kinds = [
        HalfOpen::Silent,
        HalfOpen::PartialPreface,
        HalfOpen::PartialFrame,
        HalfOpen::IdleH2,
    ];
    // Three times the node's connection limit, the kinds interleaved.
    let total = 3 * CONNECTIONS * SHARDS * scale();
    let opened = Instant::now();
    let mut held = Vec::new();
    for i in 0..total {
        let kind = kinds[i as usize % kinds.len()];
        held.push((kind, open_half(node.addr, kind).await));
    }
    // New connections arriving at the limit in one burst are closed when
    // every open one is already being evicted for an earlier newcomer; a
    // client arriving after the burst evicts an idle connection.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Fresh clients are served while all of that is held, long before the
    // handshake timeout would have closed the half-open connections.
    let mut acked = Vec::new();
    for i in 0..8u64 {
        let t = Instant::now();
        let mut c = tokio::time::timeout(Duration::from_secs(5), node.try_client())
            .await
            .unwrap_or_else(|_| panic!("fresh client {i}: no connection within 5 s"))
            .unwrap_or_else(|e| panic!("fresh client {i} locked out: {e}"));
        let key = format!("fresh-{i}");
        let v = try_write(&mut c, "idle", &key, pattern(100, i)).await;
        assert_eq!(v, Ok(Verdict::Ok), "fresh client {i}\n{}", log_tail(&node));
        acked.push(Acked {
            key,
            len: 100,
            seed: i,
        });
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "fresh client {i} took {:?}",
            t.elapsed()
        );
    }
    assert!(
        opened.elapsed() < HANDSHAKE_TIMEOUT,
        "the fresh clients must have been served while the half-open connections were held"
    );
    // How the node ended each held connection: watched until the handshake
    // timeout has passed for every one of them.
    let watch = (HANDSHAKE_TIMEOUT + Duration::from_secs(3)).saturating_sub(opened.elapsed());
    let mut watches = tokio::task::JoinSet::new();
    for (kind, mut tcp) in held {
        watches.spawn(async move { (kind, watch_ending(&mut tcp, watch).await, tcp) });
    }
    let endings = watches.join_all().await;
    let mut open_h2 = 0;
    let mut goaways = 0;
    let mut refused_at_admission = 0;
    for (kind, ending, _tcp) in &endings {
        if kind.speaks_h2() {
            if ending.closed && ending.frames.is_empty() {
                // Closed at admission, before the node spoke HTTP/2 on it: a
                // newcomer of the burst that found every connection busy.
                refused_at_admission += 1;
            } else if ending.closed {
                assert_eq!(
                    ending.goaway,
                    Some(0),
                    "{kind:?}: a connection the node spoke HTTP/2 on is closed with \
                     GOAWAY(NO_ERROR): {ending:?}"
                );
                goaways += 1;
            } else {
                open_h2 += 1;
            }
        } else {
            assert!(
                ending.closed,
                "{kind:?}: a connection without a preface is closed by the handshake timeout: \
                 {ending:?}"
            );
        }
    }
    println!(
        "{total} held connections: {goaways} HTTP/2 ones closed with GOAWAY, \
         {refused_at_admission} closed at admission, {open_h2} still open"
    );
    assert!(
        open_h2 as u64 <= CONNECTIONS * SHARDS,
        "{open_h2} idle connections open, over the limit"
    );
    assert!(goaways > 0, "no idle HTTP/2 connection was evicted");
    drop(endings);
    assert_survived(
        &mut node,
        &rss,
        "idle",
        &acked,
        "idle and half-open connections",
    )
    .await;
}

/// A Read request framed for the wire.
fn read_frame(tenant: &str, key: &str) -> Bytes {
    grpc_frame(
        &pb::ReadRequest {
            tenant_id: tenant.into(),
            key: key.into(),
        }
        .encode_to_vec(),
    )
}

/// Opens `streams` Read calls on an h2 connection to `addr` built by
/// `builder` over `io`; the connection is driven until the returned task is
/// aborted.
async fn open_reads<T>(
    addr: std::net::SocketAddr,
    io: T,
    builder: &h2::client::Builder,
    streams: u64,
    keys: u64,
) -> (Vec<h2::client::ResponseFuture>, tokio::task::JoinHandle<()>)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (send, conn) = builder.handshake(io).await.expect("h2 handshake");
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut responses = Vec::new();
    for s in 0..streams {
        let mut send = send.clone().ready().await.expect("h2 ready");
        let req = http::Request::builder()
            .method("POST")
            .uri(format!("http://{addr}{}", method_path("Read")))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .expect("request");
        let (response, mut body) = send.send_request(req, false).expect("send_request");
        body.send_data(read_frame("stall", &format!("big-{}", s % keys)), true)
            .expect("send body");
        responses.push(response);
    }
    (responses, driver)
}

/// How a stalled Read ended: refused at once (trailers-only UNAVAILABLE) or
/// reset with CANCEL once the node stopped waiting for the client.
async fn judge_stalled(response: h2::client::ResponseFuture) -> Result<Verdict, String> {
    let within = REQUEST_TIMEOUT + Duration::from_secs(5);
    let outcome = tokio::time::timeout(within, async {
        let resp = match response.await {
            Ok(r) => r,
            Err(e) if e.reason() == Some(h2::Reason::CANCEL) => return Ok(None),
            Err(e) => return Err(format!("stream failed without a reason: {e}")),
        };
        if let Some(status) = resp.headers().get("grpc-status") {
            return match status.to_str() {
                Ok("14") => Ok(Some(Verdict::Unavailable)),
                other => Err(format!("trailers-only answer {other:?}: {resp:?}")),
            };
        }
        let mut body = resp.into_body();
        // The receive window is 0: no data can come, only the reset.
        match body.data().await {
            Some(Err(e)) if e.reason() == Some(h2::Reason::CANCEL) => Ok(None),
            other => Err(format!("expected RST_STREAM(CANCEL), got {other:?}")),
        }
    })
    .await;
    match outcome {
        Err(_) => Err(format!("no answer nor reset within {within:?}: a hang")),
        Ok(Err(e)) => Err(e),
        Ok(Ok(Some(v))) => Ok(v),
        Ok(Ok(None)) => Ok(Verdict::Reset),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_never_read_their_answers_cannot_hold_the_node() {
    let _serial = SERIAL.lock().await;
    let (mut node, rss) = start_node().await;
    // Large values to read: 8 keys of 2 MiB.
    let keys = 8;
    let mut acked = Vec::new();
    let mut c = node.client().await;
    for k in 0..keys {
        let key = format!("big-{k}");
        let v = try_write(&mut c, "stall", &key, pattern(2 * MIB as usize, k)).await;
        assert_eq!(v, Ok(Verdict::Ok));
        acked.push(Acked {
            key,
            len: 2 * MIB as usize,
            seed: k,
        });
    }
    let stalled_at = Instant::now();
    // Clients whose receive window is never opened (0), full connections.
    let mut zero_window = h2::client::Builder::new();
    zero_window.initial_window_size(0);
    let mut stalled = Vec::new();
    let mut drivers = Vec::new();
    for _ in 0..4 * scale() {
        let tcp = tokio::net::TcpStream::connect(node.addr)
            .await
            .expect("connect");
        let (responses, driver) = open_reads(node.addr, tcp, &zero_window, STREAMS, keys).await;
        stalled.extend(responses);
        drivers.push(driver);
    }
    // Clients that stop reading their socket at all, with windows wide
    // enough that the node would push whole answers.
    let mut wide = h2::client::Builder::new();
    wide.initial_window_size(16 << 20)
        .initial_connection_window_size(64 << 20);
    let mut deaf = Vec::new();
    for _ in 0..2 * scale() {
        let stop = Arc::new(AtomicBool::new(false));
        let tcp = tokio::net::TcpStream::connect(node.addr)
            .await
            .expect("connect");
        let io = StopReading::new(tcp, Arc::clone(&stop));
        let (send, conn) = wide.handshake(io).await.expect("h2 handshake");
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        // Let the client read the node's SETTINGS, then go deaf.
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.store(true, Ordering::Relaxed);
        for s in 0..STREAMS {
            let mut send = send.clone().ready().await.expect("h2 ready");
            let req = http::Request::builder()
                .method("POST")
                .uri(format!("http://{}{}", node.addr, method_path("Read")))
                .header("content-type", "application/grpc")
                .header("te", "trailers")
                .body(())
                .expect("request");
            let (response, mut body) = send.send_request(req, false).expect("send_request");
            body.send_data(read_frame("stall", &format!("big-{}", s % keys)), true)
                .expect("send body");
            deaf.push((response, body));
        }
        drivers.push(driver);
    }
    // While all of that is held, a fresh client is served within the
    // request timeout (the stalled answers give back their slots then).
    let served_within = REQUEST_TIMEOUT + Duration::from_secs(4);
    let mut fresh_refusals = 0;
    loop {
        let mut c = node.client().await;
        let r = tokio::time::timeout(
            HANG,
            c.read(pb::ReadRequest {
                tenant_id: "stall".into(),
                key: "big-0".into(),
            }),
        )
        .await
        .expect("a fresh Read hangs");
        match r {
            Ok(r) => {
                assert_eq!(r.into_inner().value, pattern(2 * MIB as usize, 0));
                break;
            }
            Err(s) if explicit_unavailable(&s) => fresh_refusals += 1,
            Err(s) => panic!("a fresh Read failed: {s:?}"),
        }
        assert!(
            stalled_at.elapsed() < served_within,
            "no fresh client served within {served_within:?} of the stall ({fresh_refusals} refused)"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let fresh_after = stalled_at.elapsed();
    let mut tally = Tally::default();
    for r in stalled {
        tally.add(judge_stalled(r).await.unwrap_or_else(|e| panic!("{e}")));
    }
    println!(
        "never-read answers: a fresh client served {fresh_after:?} after the stall \
         ({fresh_refusals} refusals before); zero-window streams: {} refused UNAVAILABLE, \
         {} reset with CANCEL",
        tally.unavailable, tally.reset
    );
    // Every stalled call is past its deadline now; the deaf connections
    // are still open and the node serves everyone else.
    tokio::time::sleep(
        (REQUEST_TIMEOUT + Duration::from_secs(1)).saturating_sub(stalled_at.elapsed()),
    )
    .await;
    assert_eq!(tally.ok, 0);
    assert!(
        tally.reset > 0,
        "no stalled answer was admitted and then reset: {tally:?}"
    );
    assert_survived(&mut node, &rss, "stall", &acked, "never-read answers").await;
    drop(deaf);
    for d in drivers {
        d.abort();
    }
}

/// A Write of `value` padded (in `idempotency_key`, which the node does not
/// read) to exactly `size` encoded bytes.
fn write_of_size(key: &str, value: Vec<u8>, size: usize) -> pb::WriteRequest {
    let mut req = pb::WriteRequest {
        tenant_id: "big".into(),
        key: key.into(),
        value,
        vector_clock: None,
        idempotency_key: String::new(),
    };
    let mut pad = size - req.encoded_len();
    loop {
        req.idempotency_key = "p".repeat(pad);
        let len = req.encoded_len();
        if len == size {
            return req;
        }
        pad -= len - size;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_at_the_size_limit_from_many_streams() {
    let _serial = SERIAL.lock().await;
    let (mut node, rss) = start_node().await;
    let conns = 4;
    let per_conn = 3 * scale();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..conns {
        let client = node.client().await;
        for s in 0..per_conn {
            let mut client = client.clone();
            tasks.spawn(async move {
                let key = format!("max-{c}-{s}");
                let seed = c * 100 + s;
                let req = write_of_size(&key, pattern(VALUE_MAX, seed), MESSAGE_MAX);
                assert_eq!(req.encoded_len(), MESSAGE_MAX);
                let v = judge_write(tokio::time::timeout(HANG, client.write(req)).await);
                (
                    v,
                    Acked {
                        key,
                        len: VALUE_MAX,
                        seed,
                    },
                )
            });
        }
    }
    let mut tally = Tally::default();
    let mut acked = Vec::new();
    for (v, a) in tasks.join_all().await {
        let v = v.unwrap_or_else(|e| panic!("{}: {e}", a.key));
        tally.add(v);
        if v == Verdict::Ok {
            acked.push(a);
        }
    }
    println!(
        "{} messages of exactly {MESSAGE_MAX} bytes at once in {:?}: {tally:?}",
        conns * per_conn,
        started.elapsed()
    );
    assert!(tally.ok > 0, "no full-size message was admitted: {tally:?}");
    // One byte more is refused by size, not by load.
    let mut c = node.client().await;
    let over = write_of_size("over", pattern(VALUE_MAX, 1), MESSAGE_MAX + 1);
    let s = c.write(over).await.expect_err("over the message limit");
    assert_eq!(s.code(), Code::ResourceExhausted, "{s:?}");
    assert_survived(&mut node, &rss, "big", &acked, "messages at the size limit").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_tiny_requests() {
    let _serial = SERIAL.lock().await;
    let (mut node, rss) = start_node().await;
    let flood = Duration::from_secs(env_u64("PAIRDB_OVERLOAD_FLOOD_S", 4));
    let conns = 8 * scale();
    let until = Instant::now() + flood;
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..conns {
        let client = node.client().await;
        for s in 0..STREAMS {
            let mut client = client.clone();
            tasks.spawn(async move {
                let mut tally = Tally::default();
                let mut reads = Tally::default();
                let mut acked = Vec::new();
                let mut n = 0u64;
                while Instant::now() < until {
                    let key = format!("t{c}-{s}-{n}");
                    let seed = c << 40 | s << 24 | n;
                    n += 1;
                    let v = try_write(&mut client, "flood", &key, pattern(8, seed))
                        .await
                        .map_err(|e| format!("{key}: {e}"))?;
                    tally.add(v);
                    if v == Verdict::Ok {
                        acked.push(Acked { key, len: 8, seed });
                    }
                    if let Some(a) = acked.last() {
                        let r = tokio::time::timeout(
                            HANG,
                            client.read(pb::ReadRequest {
                                tenant_id: "flood".into(),
                                key: a.key.clone(),
                            }),
                        )
                        .await
                        .expect("a Read hangs");
                        match r {
                            Ok(r) => {
                                assert_eq!(r.into_inner().value, pattern(8, a.seed));
                                reads.add(Verdict::Ok);
                            }
                            Err(s) if explicit_unavailable(&s) => reads.add(Verdict::Unavailable),
                            Err(s) => return Err(format!("Read {}: {s:?}", a.key)),
                        }
                    }
                }
                Ok((tally, reads, acked))
            });
        }
    }
    let mut writes = Tally::default();
    let mut reads = Tally::default();
    let mut acked = Vec::new();
    for outcome in tasks.join_all().await {
        let (w, r, a) = outcome.unwrap_or_else(|e| panic!("{e}\n{}", log_tail(&node)));
        writes.ok += w.ok;
        writes.unavailable += w.unavailable;
        writes.memory_pressure += w.memory_pressure;
        writes.deadline += w.deadline;
        reads.ok += r.ok;
        reads.unavailable += r.unavailable;
        acked.extend(a);
    }
    println!(
        "flood of {} callers for {flood:?}: writes {writes:?}, reads {reads:?}",
        conns * STREAMS
    );
    assert!(writes.ok > 0 && reads.ok > 0);
    assert_survived(&mut node, &rss, "flood", &acked, "tiny-request flood").await;
}
