//! Calls that outlive one request message: the health Watch (server
//! streaming, one request then answers as the status changes) and server
//! reflection (bidirectional: each request is answered before the next is
//! read).
//!
//! Owns these calls' exchange on the stream; conn.rs has already checked the
//! request and admitted it, and hands the call here instead of reading one
//! message (the unary path is untouched). Invariants: each request message
//! is read within `limits.message_bytes_max` (refused from its prefix) and
//! counted against the core's in-flight bytes until it is answered; a
//! reflection stream answers at most
//! [`REQUESTS_MAX_PER_STREAM`](reflection::REQUESTS_MAX_PER_STREAM)
//! requests and waits at most `limits.request_timeout_ms` for each next one;
//! every answer the client does not take within `limits.request_timeout_ms`
//! ends the call; the client's `grpc-timeout` bounds the whole call; at
//! shutdown every call ends at once (a Watch first sends NOT_SERVING), so
//! none keeps the node from stopping.

use super::conn::{grpc_headers, insert_status, send_chunk};
use super::context::{Admission, CoreContext};
use super::handlers::{self, grpc_health, reflection, LongCall};
use crate::proto::frames::FrameReader;
use crate::proto::grpc::{encode_frame, Code, Status};
use crate::proto::health_v1::health_check_response::ServingStatus;
use crate::proto::health_v1::{HealthCheckRequest, HealthCheckResponse};
use bytes::Bytes;
use futures_lite::future;
use h2::server::SendResponse;
use h2::{RecvStream, SendStream};
use http::HeaderMap;
use std::time::{Duration, Instant};

/// How a call ended: the status for its trailers, or `None` when the client
/// went away (nothing left to send).
type Ending = Result<Option<Status>, h2::Error>;

/// Serves `call` on this stream until it ends; `deadline` is the client's.
/// Answers the code the call ended with (CANCELLED when the client went
/// away), for the request metrics.
pub(crate) async fn serve(
    call: LongCall,
    body: &mut RecvStream,
    respond: &mut SendResponse<Bytes>,
    core: &CoreContext,
    deadline: Option<Instant>,
) -> Code {
    let mut send = match respond.send_response(grpc_headers(None), false) {
        Ok(send) => send,
        Err(e) => {
            tracing::debug!(error = %e, ?call, "stream not answered");
            return Code::Cancelled;
        }
    };
    let mut reader = FrameReader::new(core.config.limits.message_bytes_max);
    let run = async {
        match call {
            LongCall::HealthWatch => watch(&mut reader, body, &mut send, core).await,
            LongCall::Reflection => reflect(&mut reader, body, &mut send, core).await,
        }
    };
    let ending = match deadline {
        Some(at) => {
            future::or(run, async {
                glommio::timer::sleep(at.saturating_duration_since(Instant::now())).await;
                Ok(Some(Status::new(
                    Code::DeadlineExceeded,
                    "the call reached the client's deadline",
                )))
            })
            .await
        }
        None => run.await,
    };
    let (code, result) = match ending {
        Ok(Some(status)) => {
            let mut trailers = HeaderMap::new();
            insert_status(&mut trailers, status.code, &status.message);
            (status.code, send.send_trailers(trailers))
        }
        Ok(None) => (Code::Cancelled, Ok(())),
        Err(e) => (Code::Cancelled, Err(e)),
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, ?call, "stream not delivered");
        return Code::Cancelled;
    }
    code
}

fn ok() -> Status {
    Status::new(Code::Ok, "")
}

fn shutdown_status() -> Status {
    Status::new(Code::Unavailable, "the node is shutting down")
}

/// Watch: the current status at once, then each change, until the client
/// goes away or the node shuts down (NOT_SERVING, then UNAVAILABLE).
async fn watch(
    reader: &mut FrameReader,
    body: &mut RecvStream,
    send: &mut SendStream<Bytes>,
    core: &CoreContext,
) -> Ending {
    let limits = &core.config.limits;
    let mut budget = None;
    let body_limit = Duration::from_millis(limits.request_body_timeout_ms);
    let first = match next_request(reader, body, core, &mut budget, body_limit).await {
        Ok(Some(message)) => message,
        Ok(None) => {
            return Ok(Some(Status::new(
                Code::InvalidArgument,
                "Watch takes one HealthCheckRequest; the request stream ended without one",
            )))
        }
        Err(status) => return Ok(Some(status)),
    };
    let req: HealthCheckRequest = match handlers::decode(first) {
        Ok(req) => req,
        Err(status) => return Ok(Some(status)),
    };
    drop(budget);
    let stall_max = Duration::from_millis(limits.request_timeout_ms);
    let mut watcher = grpc_health::Watcher::new(&req);
    let mut last = None;
    loop {
        let down = grpc_health::shutting_down(core).await;
        let status = if down {
            ServingStatus::NotServing
        } else {
            watcher.status(core).await
        };
        if last != Some(status) {
            let frame = encode_frame(&HealthCheckResponse {
                status: status as i32,
            });
            if !send_frame(send, frame, stall_max).await? {
                return Ok(Some(stalled(stall_max)));
            }
            last = Some(status);
        }
        if down {
            return Ok(Some(shutdown_status()));
        }
        let gone = future::or(
            async {
                future::or(
                    glommio::timer::sleep(grpc_health::WATCH_TICK),
                    core.wait_shutdown(),
                )
                .await;
                false
            },
            async {
                let _ = future::poll_fn(|cx| send.poll_reset(cx)).await;
                true
            },
        )
        .await;
        if gone {
            return Ok(None);
        }
    }
}

/// Reflection: answers each request in turn until the client half-closes.
async fn reflect(
    reader: &mut FrameReader,
    body: &mut RecvStream,
    send: &mut SendStream<Bytes>,
    core: &CoreContext,
) -> Ending {
    let idle_max = Duration::from_millis(core.config.limits.request_timeout_ms);
    let mut answered = 0usize;
    loop {
        let mut budget = None;
        let next = future::or(
            next_request(reader, body, core, &mut budget, idle_max),
            async {
                core.wait_shutdown().await;
                Err(shutdown_status())
            },
        )
        .await;
        let message = match next {
            Ok(Some(message)) => message,
            Ok(None) => return Ok(Some(ok())),
            Err(status) => return Ok(Some(status)),
        };
        if answered >= reflection::REQUESTS_MAX_PER_STREAM {
            return Ok(Some(Status::new(
                Code::ResourceExhausted,
                format!(
                    "a reflection stream answers at most {} requests; open another stream",
                    reflection::REQUESTS_MAX_PER_STREAM
                ),
            )));
        }
        let response = match reflection::answer(message) {
            Ok(response) => response,
            Err(status) => return Ok(Some(status)),
        };
        let frame = encode_frame(&response);
        if !core.admit_answer(&mut budget, frame.len()) {
            return Ok(Some(Status::new(
                Code::Unavailable,
                "this core holds too many answer bytes its clients have not taken yet; \
                 retry with backoff",
            )));
        }
        if !send_frame(send, frame, idle_max).await? {
            return Ok(Some(stalled(idle_max)));
        }
        answered += 1;
    }
}

/// The next request message, `None` once the client half-closed; waits at
/// most `wait_max` for it. Each chunk's bytes are counted in `budget`.
async fn next_request<'a>(
    reader: &mut FrameReader,
    body: &mut RecvStream,
    core: &'a CoreContext,
    budget: &mut Option<Admission<'a>>,
    wait_max: Duration,
) -> Result<Option<Bytes>, Status> {
    let read = async {
        loop {
            if let Some(message) = reader.next_message()? {
                return Ok(Some(message));
            }
            let Some(chunk) = body.data().await else {
                reader.finish()?;
                return Ok(None);
            };
            let chunk = chunk.map_err(|e| {
                Status::new(Code::Cancelled, format!("request stream not received: {e}"))
            })?;
            let _ = body.flow_control().release_capacity(chunk.len());
            if !core.admit_bytes(budget, chunk.len()) {
                return Err(Status::new(
                    Code::Unavailable,
                    "this core is buffering too many request bytes; retry with backoff",
                ));
            }
            reader.push(&chunk);
        }
    };
    future::or(read, async {
        glommio::timer::sleep(wait_max).await;
        Err(Status::new(
            Code::DeadlineExceeded,
            format!(
                "no complete request message arrived within {} ms",
                wait_max.as_millis()
            ),
        ))
    })
    .await
}

/// Sends one framed message; `false` if the client did not take it within
/// `stall_max`.
async fn send_frame(
    send: &mut SendStream<Bytes>,
    frame: Bytes,
    stall_max: Duration,
) -> Result<bool, h2::Error> {
    let mut left = frame.len();
    future::or(
        async { send_chunk(send, frame, &mut left).await.map(|()| true) },
        async {
            glommio::timer::sleep(stall_max).await;
            Ok(false)
        },
    )
    .await
}

fn stalled(stall_max: Duration) -> Status {
    Status::new(
        Code::DeadlineExceeded,
        format!(
            "the client took no stream data for {} ms (limits.request_timeout_ms)",
            stall_max.as_millis()
        ),
    )
}
