//! Fuzz target of the HTTP/2 server fed raw bytes: the server's own h2
//! settings (`conn::server_builder`) over an in-memory connection, then per
//! request what a connection does before it needs a shard: the gRPC
//! request checks (method, content type), the `grpc-timeout` header, the
//! body read within the message limit (`conn::read_message_within`), the
//! frame, and the method's decoding and validation. Every stream is then
//! answered with a status, as the server would answer a refusal.
//!
//! Not covered here: the handlers' work on a shard (the target runs no
//! node, no glommio executor and no storage), admission counters and
//! timers. The first input byte sets the read size (0: all at once, n: n
//! bytes per read), the rest is what the client sends.

use super::grpc::config;
use super::io::{poll_bounded, FuzzIo, POLLS};
use crate::config::Config;
use crate::proto::grpc::{self, Code, Status};
use crate::server::conn;
use crate::server::handlers::checks::check_request;
use bytes::Bytes;
use h2::server::SendResponse;
use h2::RecvStream;
use http::Request;
use std::cell::Cell;
use std::pin::pin;
use std::rc::Rc;

/// Streams served per input at most (the server's own limit is higher;
/// this bounds a fuzz execution's time).
const STREAMS_MAX: usize = 64;

/// Serves one connection whose client sends `data`.
pub fn h2_server(data: &[u8]) {
    let _ = serve_input(data);
}

/// [`h2_server`], returning how many requests reached the method checks.
pub(super) fn serve_input(data: &[u8]) -> usize {
    let Some((&mode, input)) = data.split_first() else {
        return 0;
    };
    let chunk = if mode == 0 {
        usize::MAX
    } else {
        usize::from(mode)
    };
    let config = config();
    let eof = Rc::new(Cell::new(false));
    let io = FuzzIo::new(input, chunk, Rc::clone(&eof));
    let builder = conn::server_builder(&config.limits);
    let mut handshake = pin!(builder.handshake::<_, Bytes>(io));
    let Some(Ok(mut connection)) = poll_bounded(handshake.as_mut(), POLLS) else {
        return 0;
    };
    let mut checked = 0;
    for _ in 0..STREAMS_MAX {
        let next = {
            let mut accept = pin!(connection.accept());
            poll_bounded(accept.as_mut(), POLLS)
        };
        match next {
            Some(Some(Ok((req, respond)))) => checked += handle(req, respond, config),
            _ => break,
        }
    }
    // Send the answers, then let the connection see the client leave.
    eof.set(true);
    let mut closed = pin!(std::future::poll_fn(|cx| connection.poll_closed(cx)));
    let _ = poll_bounded(closed.as_mut(), POLLS);
    checked
}

/// Answers one stream; 1 if its message reached the method checks.
fn handle(req: Request<RecvStream>, mut respond: SendResponse<Bytes>, config: &Config) -> usize {
    let (parts, mut body) = req.into_parts();
    if let Err(refusal) = conn::check_grpc_request(&parts) {
        conn::send_http_refusal(&mut respond, refusal);
        return 0;
    }
    let timeout = parts.headers.get("grpc-timeout");
    if timeout.is_some_and(|v| v.to_str().ok().and_then(grpc::parse_timeout).is_none()) {
        let status = Status::new(Code::InvalidArgument, "malformed grpc-timeout header");
        conn::send_status(&mut respond, &status);
        return 0;
    }
    let max = config.limits.message_bytes_max;
    let mut reading = pin!(conn::read_message_within(&mut body, max, |_| true));
    let (status, checked) = match poll_bounded(reading.as_mut(), POLLS) {
        None => (
            Status::new(Code::DeadlineExceeded, "request body incomplete"),
            0,
        ),
        Some(Err(status)) => (status, 0),
        Some(Ok(message)) => {
            assert!(message.len() <= max, "message over the limit");
            let status = match check_request(parts.uri.path(), message, config) {
                Ok(()) => Status::new(Code::Unavailable, "no shard behind the fuzz target"),
                Err(status) => status,
            };
            (status, 1)
        }
    };
    conn::send_status(&mut respond, &status);
    checked
}
