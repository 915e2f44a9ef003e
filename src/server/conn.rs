//! One client connection: HTTP/2 on a glommio socket, one task per stream.
//!
//! Owns the connection's lifecycle: handshake, the accept loop that keeps the
//! h2 connection polled (streams run as detached tasks so a slow call never
//! stalls the others), graceful shutdown (GOAWAY, then in-flight streams
//! finish) and each stream's unary gRPC exchange: admission, body read with
//! size limits and flow-control release, deadline, dispatch, flow-controlled
//! response. Invariants: no request body grows past `message_bytes_max` (plus
//! the 5-byte prefix) and the core's in-flight budgets; every stream gets an
//! answer, a gRPC status, an HTTP refusal (405 for a method other than POST,
//! 415 for a content type other than `application/grpc`) or a reset; no
//! unary call holds its admission slot longer than
//! `limits.request_body_timeout_ms` waiting for its body, nor longer than
//! `limits.request_timeout_ms` (or the client's shorter `grpc-timeout`) in
//! all, sending its answer included (a client that does not take it gets
//! RST_STREAM(CANCEL)), whether or not the client set a deadline. A call's
//! request bytes and its answer's count against the core's
//! `inflight_bytes_max_per_core` until it ends; a connection still in its
//! handshake can be evicted like an idle one.

use super::conn_io;
use super::context::{Admission, ConnState, CoreContext};
use super::handlers::{self, Answer};
use super::metrics::{Outcome, RpcMetrics};
use crate::config::LimitsConfig;
use crate::proto::grpc::{self, Code, Frame, Status, PREFIX_BYTES};
use bytes::{Bytes, BytesMut};
use futures_lite::future;
use glommio::net::TcpStream;
use h2::server::SendResponse;
use h2::RecvStream;
use http::{HeaderMap, HeaderValue, Request, Response};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How long a new connection may take to send the HTTP/2 preface.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection evicted during its handshake may still take to
/// finish it (and then be told GOAWAY) before it is closed.
const EVICTED_HANDSHAKE_GRACE: Duration = Duration::from_millis(100);
/// How long an answered stream waits for the rest of its request body, and
/// how many bytes of it it takes, before dropping it (see [`discard_rest`]).
const DISCARD_WAIT: Duration = Duration::from_millis(100);
const DISCARD_BYTES_MAX: usize = 1 << 20;
/// How often a draining connection checks whether it has streams left.
const DRAIN_TICK: Duration = Duration::from_millis(50);

/// Serves one accepted connection until the client leaves or shutdown ends it.
pub(crate) async fn serve(stream: TcpStream, core: Rc<CoreContext>, state: Rc<ConnState>) {
    let peer = stream.peer_addr().ok();
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(?peer, error = %e, "set_nodelay failed");
    }
    let limits = &core.config.limits;
    let builder = server_builder(limits);
    let (io, sender) = conn_io::split(stream);
    let handshake = sender.flushed(async {
        match builder.handshake::<_, Bytes>(io).await {
            Ok(c) => Some(c),
            Err(e) => {
                log_conn_error(peer, &e, "handshake");
                None
            }
        }
    });
    // A connection still in its handshake is idle: eviction closes it too,
    // so half-open connections cannot hold every slot for the timeout. An
    // evicted one whose preface is on its way gets a short grace to finish
    // it, so that a client speaking HTTP/2 is told with GOAWAY (the loop
    // below sees the eviction at once).
    let mut handshake = std::pin::pin!(handshake);
    let evicted = async {
        state.wait_evicted().await;
        Err(true)
    };
    let stopped = async {
        future::or(
            glommio::timer::sleep(HANDSHAKE_TIMEOUT),
            core.wait_shutdown(),
        )
        .await;
        Err(false)
    };
    let first = future::or(
        async { Ok(handshake.as_mut().await) },
        future::or(evicted, stopped),
    )
    .await;
    let bounded = match first {
        Ok(conn) => conn,
        Err(true) => {
            future::or(handshake.as_mut(), async {
                glommio::timer::sleep(EVICTED_HANDSHAKE_GRACE).await;
                None
            })
            .await
        }
        Err(false) => None,
    };
    if bounded.is_none() {
        tracing::debug!(
            ?peer,
            "no HTTP/2 preface in time (or evicted, or shutting down): closing"
        );
    }
    let Some(mut conn) = bounded else {
        return;
    };
    loop {
        let next = future::or(sender.flushed(async { Some(conn.accept().await) }), async {
            // Node shutdown, or evicted to make room for a new client.
            future::or(core.wait_shutdown(), state.wait_evicted()).await;
            None
        })
        .await;
        match next {
            Some(Some(Ok((req, respond)))) => spawn_stream(req, respond, &core, &state),
            Some(Some(Err(e))) => {
                log_conn_error(peer, &e, "connection");
                return;
            }
            Some(None) => return,
            None => break,
        }
    }
    // Shutdown: GOAWAY, then keep the connection polled so in-flight streams
    // can answer; leave once none is left or the drain time is up.
    conn.graceful_shutdown();
    let deadline = Instant::now() + Duration::from_millis(limits.drain_timeout_ms);
    loop {
        let tick = DRAIN_TICK.min(deadline.saturating_duration_since(Instant::now()));
        let next = future::or(sender.flushed(async { Some(conn.accept().await) }), async {
            glommio::timer::sleep(tick).await;
            None
        })
        .await;
        match next {
            // Opened before the client saw GOAWAY: still served.
            Some(Some(Ok((req, respond)))) => spawn_stream(req, respond, &core, &state),
            Some(Some(Err(e))) => {
                log_conn_error(peer, &e, "connection");
                return;
            }
            Some(None) => return,
            None if !conn.has_streams() => return,
            None if Instant::now() >= deadline => {
                tracing::warn!(
                    ?peer,
                    "drain timeout: closing a connection with requests in flight"
                );
                return;
            }
            None => {}
        }
    }
}

/// The HTTP/2 settings of every server connection.
pub(crate) fn server_builder(limits: &LimitsConfig) -> h2::server::Builder {
    let mut builder = h2::server::Builder::new();
    builder
        .max_concurrent_streams(limits.h2_streams_max_per_connection)
        .initial_window_size(1 << 20)
        .initial_connection_window_size(8 << 20)
        .max_header_list_size(64 << 10)
        .max_send_buffer_size(1 << 20)
        // Streams answered before their body ended are reset (NO_ERROR) and
        // remembered, so the client's late frames for them are ignored; h2's
        // default (10) forgets them under load, and each late frame for a
        // forgotten stream counts toward h2's abuse limit (1024 per
        // connection, then GOAWAY ENHANCE_YOUR_CALM), which closed busy
        // connections of well-behaved clients after ~1000 refusals.
        .max_concurrent_reset_streams(reset_streams_remembered(
            limits.h2_streams_max_per_connection,
        ));
    builder
}

/// Reset streams each connection remembers (see [`server_builder`]): four
/// times the streams a client may have open, so a full connection's
/// refusals of several round trips are remembered at once.
fn reset_streams_remembered(streams_max: u32) -> usize {
    (streams_max as usize).saturating_mul(4).max(64)
}

/// Runs one stream as its own task, so the connection keeps being polled.
fn spawn_stream(
    req: Request<RecvStream>,
    respond: SendResponse<Bytes>,
    core: &Rc<CoreContext>,
    state: &Rc<ConnState>,
) {
    let core = Rc::clone(core);
    let open = state.stream_started();
    glommio::spawn_local(async move {
        let (parts, mut body) = req.into_parts();
        handle_stream(parts, &mut body, respond, &core).await;
        discard_rest(&mut body).await;
        drop(open);
    })
    .detach();
}

fn log_conn_error(peer: Option<std::net::SocketAddr>, e: &h2::Error, stage: &str) {
    // A client that goes away mid-connection is normal life, not an error.
    let benign = e.is_io() || e.is_go_away() || e.is_remote();
    if benign {
        tracing::debug!(?peer, error = %e, stage, "connection closed");
    } else {
        tracing::warn!(?peer, error = %e, stage, "connection error");
    }
}

/// After a stream is answered: waits briefly for the rest of a request body
/// the answer did not need (a refusal answers before reading it), taking and
/// releasing what comes, so the stream ends cleanly. A stream dropped with
/// its body still open is reset, and h2 counts every client frame that
/// arrives for a reset stream it no longer remembers toward its abuse
/// limit (then GOAWAY ENHANCE_YOUR_CALM for the whole connection), which a
/// flood of refusals on a busy connection otherwise reaches.
async fn discard_rest(body: &mut RecvStream) {
    if body.is_end_stream() {
        return;
    }
    let drain = async {
        let mut left = DISCARD_BYTES_MAX;
        while let Some(Ok(chunk)) = body.data().await {
            let _ = body.flow_control().release_capacity(chunk.len());
            left = left.saturating_sub(chunk.len());
            if left == 0 {
                break;
            }
        }
    };
    future::or(drain, glommio::timer::sleep(DISCARD_WAIT)).await;
}

async fn handle_stream(
    parts: http::request::Parts,
    body: &mut RecvStream,
    mut respond: SendResponse<Bytes>,
    core: &CoreContext,
) {
    let received = Instant::now();
    if let Err(refusal) = check_grpc_request(&parts) {
        send_http_refusal(&mut respond, refusal);
        return;
    }
    let method = parts.uri.path();
    let mut record = CallRecord {
        rpc: &core.router.rpc,
        slot: core.router.rpc.method_slot(method),
        received,
        outcome: Outcome::OK,
    };
    let Some(_admitted) = core.admit_request() else {
        let msg = format!(
            "too many requests in flight on this core (limit {}); retry with backoff",
            core.config.limits.inflight_requests_max_per_core
        );
        record.failed(&mut respond, &Status::new(Code::Unavailable, msg));
        return;
    };
    let timeout = match parts
        .headers
        .get("grpc-timeout")
        .map(|v| v.to_str().ok().and_then(grpc::parse_timeout))
    {
        None => None,
        Some(Some(t)) => Some(t),
        Some(None) => {
            record.failed(
                &mut respond,
                &Status::new(Code::InvalidArgument, "malformed grpc-timeout header"),
            );
            return;
        }
    };
    // The server's own bounds hold even when the client sets no deadline,
    // so a stalled body or call cannot keep its admission slot for ever.
    let limits = &core.config.limits;
    let server_limit = Duration::from_millis(limits.request_timeout_ms);
    // Which deadline applies: the client's, or the server's own (the
    // status is built only if it expires).
    let (limit, client_deadline) = match timeout {
        Some(t) if t <= server_limit => (t, true),
        _ => (server_limit, false),
    };
    let limit_status = || {
        if client_deadline {
            deadline_status()
        } else {
            Status::new(
                Code::DeadlineExceeded,
                format!(
                    "the request did not complete within limits.request_timeout_ms ({} ms)",
                    limits.request_timeout_ms
                ),
            )
        }
    };
    // Watch and reflection outlive one message: served apart.
    if let Some(call) = handlers::long_call(method) {
        let deadline = client_deadline.then(|| received + limit);
        let end = super::streaming::serve(call, body, &mut respond, core, deadline).await;
        record.outcome = Outcome::status(end);
        return;
    }
    let body_limit = Duration::from_millis(limits.request_body_timeout_ms);
    // The request's bytes (and then its answer's) stay counted against the
    // core's budget until the call ends, not only while the body arrives.
    let mut budget = None;
    let work = async {
        // A unary body usually arrives with its headers: read it without
        // arming a timer, and race one only if the body is still coming.
        let mut reading = std::pin::pin!(read_message(body, core, &mut budget));
        let message = match future::poll_once(&mut reading).await {
            Some(done) => done,
            None => {
                future::or(reading, async {
                    glommio::timer::sleep(body_limit.saturating_sub(received.elapsed())).await;
                    Err(Status::new(
                        Code::DeadlineExceeded,
                        format!(
                            "the request body did not arrive within \
                             limits.request_body_timeout_ms ({} ms)",
                            limits.request_body_timeout_ms
                        ),
                    ))
                })
                .await
            }
        }?;
        // The body may have taken the whole deadline to arrive.
        if received.elapsed() >= limit {
            return Err(limit_status());
        }
        handlers::dispatch(core, method, message).await
    };
    let outcome = future::or(work, async {
        glommio::timer::sleep(limit.saturating_sub(received.elapsed())).await;
        Err(limit_status())
    })
    .await;
    let outcome = match outcome {
        Ok(Answer::Unary(frame, _)) if !core.admit_answer(&mut budget, frame.len()) => {
            Err(Status::new(
                Code::Unavailable,
                "this core holds too many answer bytes its clients have not taken yet; \
                 retry with backoff",
            ))
        }
        other => other,
    };
    match outcome {
        Ok(Answer::Unary(frame, error)) => {
            record.outcome.error_code = error;
            // Bounded like the call: a client that never takes its answer
            // (receive window or socket never read) gives back the
            // admission slot and the answer's bytes at the deadline.
            let sent = future::or(
                async { Some(send_message(&mut respond, frame).await) },
                async {
                    glommio::timer::sleep(limit.saturating_sub(received.elapsed())).await;
                    None
                },
            )
            .await;
            match sent {
                Some(Ok(())) => {}
                Some(Err(e)) => {
                    record.outcome = Outcome::status(Code::Cancelled);
                    tracing::debug!(error = %e, method, "response not delivered");
                }
                None => {
                    record.outcome = Outcome::status(Code::DeadlineExceeded);
                    respond.send_reset(h2::Reason::CANCEL);
                    tracing::debug!(method, "the client did not take the answer in time: reset");
                }
            }
        }
        Ok(Answer::Stream(stream)) => {
            // A stream may run long: only the client's deadline bounds it
            // in all; the server's own limit bounds each batch's wait for
            // the client to take it (h2 flow control).
            let sending = send_stream(&mut respond, stream, server_limit);
            let outcome = if client_deadline {
                future::or(async { Some(sending.await) }, async {
                    glommio::timer::sleep(limit.saturating_sub(received.elapsed())).await;
                    None
                })
                .await
            } else {
                Some(sending.await)
            };
            record.outcome = match outcome {
                Some(Ok(end)) => Outcome::status(end),
                Some(Err(e)) => {
                    tracing::debug!(error = %e, method, "stream not delivered");
                    Outcome::status(Code::Cancelled)
                }
                None => {
                    tracing::debug!(method, "stream cut at the client's deadline");
                    Outcome::status(Code::DeadlineExceeded)
                }
            };
        }
        Err(status) => record.failed(&mut respond, &status),
    }
}

/// Counts a call in its core's request metrics when dropped (however the
/// call ends), with the outcome set last and the time since its headers.
struct CallRecord<'a> {
    rpc: &'a RpcMetrics,
    slot: usize,
    received: Instant,
    outcome: Outcome,
}

impl CallRecord<'_> {
    /// Answers `status` and records it as the outcome.
    fn failed(&mut self, respond: &mut SendResponse<Bytes>, status: &Status) {
        self.outcome = Outcome::status(status.code);
        send_status(respond, status);
    }
}

impl Drop for CallRecord<'_> {
    fn drop(&mut self) {
        self.rpc
            .record(self.slot, self.outcome, self.received.elapsed());
    }
}

/// Headers, then each batch of framed messages under flow control, then
/// the trailers: OK at the end of the stream, or the status that ended it
/// (answered). A batch the client does not take within `stall_max` ends the
/// stream with DEADLINE_EXCEEDED.
async fn send_stream(
    respond: &mut SendResponse<Bytes>,
    mut stream: handlers::KeyStream,
    stall_max: Duration,
) -> Result<Code, h2::Error> {
    let mut send = respond.send_response(grpc_headers(None), false)?;
    let mut end = Status::new(Code::Ok, "");
    while let Some(batch) = stream.next_batch().await {
        let frame = match batch {
            Ok(f) => f,
            Err(status) => {
                end = status;
                break;
            }
        };
        let mut left = frame.len();
        let sent = future::or(
            async {
                match frame {
                    Frame::One(chunk) => send_chunk(&mut send, chunk, &mut left).await.map(Some),
                    Frame::Chunks { chunks, .. } => {
                        for chunk in chunks {
                            send_chunk(&mut send, chunk, &mut left).await?;
                        }
                        Ok(Some(()))
                    }
                }
            },
            async {
                glommio::timer::sleep(stall_max).await;
                Ok(None)
            },
        )
        .await?;
        if sent.is_none() {
            end = Status::new(
                Code::DeadlineExceeded,
                format!(
                    "the client took no stream data for {} ms (limits.request_timeout_ms)",
                    stall_max.as_millis()
                ),
            );
            break;
        }
    }
    let mut trailers = HeaderMap::new();
    insert_status(&mut trailers, end.code, &end.message);
    send.send_trailers(trailers)?;
    Ok(end.code)
}

/// Why a request is not a gRPC call this server answers: the HTTP status
/// and a plain-text reason.
pub(crate) struct HttpRefusal {
    status: http::StatusCode,
    reason: &'static str,
    /// A HEAD request: the answer carries no body.
    head: bool,
}

/// gRPC calls are POSTs with a `application/grpc[+proto]` content type; the
/// gRPC over HTTP/2 spec answers anything else with a plain HTTP status, so a
/// non-gRPC client never reads a refusal as a success.
pub(crate) fn check_grpc_request(req: &http::request::Parts) -> Result<(), HttpRefusal> {
    if req.method != http::Method::POST {
        return Err(HttpRefusal {
            status: http::StatusCode::METHOD_NOT_ALLOWED,
            reason: "gRPC calls use POST",
            head: req.method == http::Method::HEAD,
        });
    }
    let grpc = req
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(is_grpc_protobuf);
    if !grpc {
        return Err(HttpRefusal {
            status: http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            reason: "content-type must be application/grpc or application/grpc+proto",
            head: false,
        });
    }
    Ok(())
}

/// `application/grpc` or `application/grpc+proto` (media types compare
/// case-insensitively; parameters after `;` are ignored). Other codecs
/// (`+json`) are refused: this server speaks protobuf only.
fn is_grpc_protobuf(content_type: &str) -> bool {
    let media = content_type.split(';').next().unwrap_or("").trim();
    media.eq_ignore_ascii_case("application/grpc")
        || media.eq_ignore_ascii_case("application/grpc+proto")
}

pub(crate) fn send_http_refusal(respond: &mut SendResponse<Bytes>, refusal: HttpRefusal) {
    let mut resp = Response::new(());
    *resp.status_mut() = refusal.status;
    let h = resp.headers_mut();
    if refusal.status == http::StatusCode::METHOD_NOT_ALLOWED {
        h.insert(http::header::ALLOW, HeaderValue::from_static("POST"));
    }
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if refusal.head {
        if let Err(e) = respond.send_response(resp, true) {
            tracing::debug!(error = %e, "refusal not delivered");
        }
        return;
    }
    match respond.send_response(resp, false) {
        Ok(mut send) => {
            let body = Bytes::from(format!("{}\n", refusal.reason));
            if let Err(e) = send.send_data(body, true) {
                tracing::debug!(error = %e, "refusal not delivered");
            }
        }
        Err(e) => tracing::debug!(error = %e, "refusal not delivered"),
    }
}

/// Sends `chunk` as capacity is granted; `left` counts the frame's bytes
/// not sent yet (the capacity to ask for).
pub(super) async fn send_chunk(
    send: &mut h2::SendStream<Bytes>,
    mut chunk: Bytes,
    left: &mut usize,
) -> Result<(), h2::Error> {
    while !chunk.is_empty() {
        send.reserve_capacity(*left);
        // Capacity left over from an earlier grant is used first:
        // poll_capacity only wakes when capacity grows.
        let mut granted = send.capacity();
        if granted == 0 {
            granted = match future::poll_fn(|cx| send.poll_capacity(cx)).await {
                Some(granted) => granted?,
                None => return Err(h2::Error::from(h2::Reason::CANCEL)),
            };
            if granted == 0 {
                continue;
            }
        }
        let part = chunk.split_to(granted.min(chunk.len()));
        *left -= part.len();
        send.send_data(part, false)?;
    }
    Ok(())
}

fn deadline_status() -> Status {
    Status::new(
        Code::DeadlineExceeded,
        "deadline exceeded before the request completed",
    )
}

/// Reads one unary request message within the size and in-flight budgets;
/// its bytes are counted in `budget`, which the caller holds until the call
/// ends.
async fn read_message<'a>(
    body: &mut RecvStream,
    core: &'a CoreContext,
    budget: &mut Option<Admission<'a>>,
) -> Result<Bytes, Status> {
    read_message_within(body, core.config.limits.message_bytes_max, |n| {
        core.admit_bytes(budget, n)
    })
    .await
}

/// Reads one unary request message of at most `max` bytes; `admit` is
/// asked for each chunk's bytes before it is buffered (the core's in-flight
/// budget) and refuses the request by answering false.
pub(crate) async fn read_message_within(
    body: &mut RecvStream,
    max: usize,
    mut admit: impl FnMut(usize) -> bool,
) -> Result<Bytes, Status> {
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut have = 0usize;
    let mut announced: Option<usize> = None;
    while let Some(chunk) = body.data().await {
        let chunk = chunk
            .map_err(|e| Status::new(Code::Cancelled, format!("request body not received: {e}")))?;
        let _ = body.flow_control().release_capacity(chunk.len());
        have += chunk.len();
        if have > max + PREFIX_BYTES {
            return Err(grpc::FrameError::TooLarge {
                len: have - PREFIX_BYTES,
                max,
            }
            .into());
        }
        if !admit(chunk.len()) {
            return Err(Status::new(
                Code::Unavailable,
                "this core is buffering too many request bytes; retry with backoff",
            ));
        }
        chunks.push(chunk);
        if announced.is_none() && have >= PREFIX_BYTES {
            let mut prefix = [0u8; PREFIX_BYTES];
            copy_prefix(&chunks, &mut prefix);
            announced = Some(grpc::parse_prefix(&prefix, max)?);
        }
    }
    let body = match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.pop().unwrap_or_default(),
        _ => {
            let mut all = BytesMut::with_capacity(have);
            for c in &chunks {
                all.extend_from_slice(c);
            }
            all.freeze()
        }
    };
    let message_len = grpc::decode_unary(&body, max)?.len();
    Ok(body.slice(PREFIX_BYTES..PREFIX_BYTES + message_len))
}

fn copy_prefix(chunks: &[Bytes], out: &mut [u8; PREFIX_BYTES]) {
    let bytes = chunks.iter().flat_map(|c| c.iter());
    for (slot, b) in out.iter_mut().zip(bytes) {
        *slot = *b;
    }
}

pub(super) fn grpc_headers(extra: Option<&Status>) -> Response<()> {
    let mut resp = Response::new(());
    let h = resp.headers_mut();
    h.insert("content-type", HeaderValue::from_static("application/grpc"));
    if let Some(status) = extra {
        insert_status(h, status.code, &status.message);
    }
    resp
}

pub(super) fn insert_status(h: &mut HeaderMap, code: Code, message: &str) {
    h.insert("grpc-status", HeaderValue::from(code as u8 as u16));
    if !message.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&grpc::percent_encode(message)) {
            h.insert("grpc-message", v);
        }
    }
}

/// A trailers-only response carrying a non-OK status.
pub(crate) fn send_status(respond: &mut SendResponse<Bytes>, status: &Status) {
    if let Err(e) = respond.send_response(grpc_headers(Some(status)), true) {
        tracing::debug!(error = %e, "status not delivered");
    }
}

/// Headers, the framed message's chunks in order under flow control, then
/// OK trailers.
async fn send_message(respond: &mut SendResponse<Bytes>, frame: Frame) -> Result<(), h2::Error> {
    let mut send = respond.send_response(grpc_headers(None), false)?;
    let mut left = frame.len();
    match frame {
        Frame::One(chunk) => send_chunk(&mut send, chunk, &mut left).await?,
        Frame::Chunks { chunks, .. } => {
            for chunk in chunks {
                send_chunk(&mut send, chunk, &mut left).await?;
            }
        }
    }
    let mut trailers = HeaderMap::new();
    insert_status(&mut trailers, Code::Ok, "");
    send.send_trailers(trailers)
}

#[cfg(test)]
mod tests {
    use super::{is_grpc_protobuf, reset_streams_remembered};

    #[test]
    fn reset_streams_are_remembered_for_several_full_connections_worth() {
        // h2's own default (10) is far below one connection's streams.
        assert_eq!(reset_streams_remembered(1024), 4096);
        assert_eq!(reset_streams_remembered(32), 128);
        assert_eq!(reset_streams_remembered(1), 64);
        assert_eq!(reset_streams_remembered(u32::MAX), u32::MAX as usize * 4);
    }

    #[test]
    fn only_protobuf_grpc_content_types_are_grpc() {
        for ok in [
            "application/grpc",
            "application/grpc+proto",
            "Application/GRPC",
            "application/grpc; charset=utf-8",
        ] {
            assert!(is_grpc_protobuf(ok), "{ok}");
        }
        for refused in [
            "application/grpc+json",
            "application/grpc-web",
            "application/json",
            "text/plain",
            "",
        ] {
            assert!(!is_grpc_protobuf(refused), "{refused}");
        }
    }
}
