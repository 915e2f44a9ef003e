//! Starting one gRPC call on a connection: request head, framed request
//! message under flow control, response head.
//!
//! Owns the request's shape (POST to `http://<authority><path>`, HTTP/2,
//! `content-type: application/grpc`, `te: trailers`, `grpc-timeout`) and the
//! check of the response head (HTTP 200, a gRPC content type, or a
//! trailers-only status). Invariants: the request body is handed to h2 only
//! as flow-control capacity is granted, so h2 never buffers more than a
//! window of it; a call whose body could not be sent still reads the
//! response head, because a server may refuse a request (a status in a
//! trailers-only answer, then a reset) before reading all of it.

use super::connection::Connection;
use super::error::ClientError;
use super::status::{self, WireStatus};
use super::timeout::format_timeout;
use bytes::Bytes;
use futures_lite::future;
use h2::{RecvStream, SendStream};
use http::header::{HeaderValue, CONTENT_TYPE, TE, USER_AGENT};
use http::uri::{Authority, Uri};
use http::{Method, Request, StatusCode, Version};
use std::time::Duration;

/// What the server's response head says.
#[derive(Debug)]
pub(crate) enum Head {
    /// A gRPC answer whose messages and trailers follow in the body.
    Body(RecvStream),
    /// A trailers-only answer: the call's status, no messages.
    TrailersOnly(WireStatus),
}

/// Sends one request (`frame` is the framed request message) and waits for
/// the response head. `timeout` is what is left of the caller's deadline,
/// sent as `grpc-timeout`.
pub(crate) async fn start(
    conn: &Connection,
    authority: &Authority,
    path: &str,
    frame: Bytes,
    timeout: Duration,
) -> Result<Head, ClientError> {
    let request =
        build_request(authority, path, timeout).map_err(|reason| ClientError::Protocol {
            addr: conn.addr().to_string(),
            reason,
        })?;
    let mut sender = conn.sender().ready().await.map_err(|e| conn.fail(&e))?;
    let (response, mut body) = sender
        .send_request(request, false)
        .map_err(|e| conn.fail(&e))?;
    let sent = send_body(&mut body, frame).await;
    let response = match (response.await, sent) {
        (Ok(response), _) => response,
        // The send error says why (the response only that the stream ended).
        (Err(_), Err(e)) | (Err(e), Ok(())) => return Err(conn.fail(&e)),
    };
    let (parts, body) = response.into_parts();
    if parts.status != StatusCode::OK {
        let detail = status::from_headers(&parts.headers)
            .map(|s| format!(": {}", s.message))
            .unwrap_or_default();
        return Err(ClientError::Status {
            addr: conn.addr().to_string(),
            code: status::code_for_http(parts.status),
            message: format!("HTTP status {}{detail}", parts.status),
        });
    }
    if let Some(status) = status::from_headers(&parts.headers) {
        return Ok(Head::TrailersOnly(status));
    }
    let content_type = parts.headers.get(CONTENT_TYPE).map(HeaderValue::as_bytes);
    if !content_type.is_some_and(|ct| ct.starts_with(b"application/grpc")) {
        return Err(ClientError::Protocol {
            addr: conn.addr().to_string(),
            reason: format!(
                "response content-type {:?} is not application/grpc",
                content_type.map(String::from_utf8_lossy)
            ),
        });
    }
    Ok(Head::Body(body))
}

/// The request head of a unary or server-streaming gRPC call.
fn build_request(
    authority: &Authority,
    path: &str,
    timeout: Duration,
) -> Result<Request<()>, String> {
    let uri = Uri::builder()
        .scheme("http")
        .authority(authority.clone())
        .path_and_query(path)
        .build()
        .map_err(|e| format!("invalid method path {path:?}: {e}"))?;
    Request::builder()
        .method(Method::POST)
        .uri(uri)
        .version(Version::HTTP_2)
        .header(CONTENT_TYPE, "application/grpc")
        .header(TE, "trailers")
        .header("grpc-timeout", format_timeout(timeout))
        .header(
            USER_AGENT,
            concat!("pairdb-peer-client/", env!("CARGO_PKG_VERSION")),
        )
        .body(())
        .map_err(|e| format!("invalid request for {path:?}: {e}"))
}

/// Sends `body` and ends the stream, handing h2 each part only once the
/// peer's flow-control window has room for it.
async fn send_body(send: &mut SendStream<Bytes>, mut body: Bytes) -> Result<(), h2::Error> {
    while !body.is_empty() {
        send.reserve_capacity(body.len());
        // Capacity left from an earlier grant comes first: poll_capacity
        // wakes only when capacity grows.
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
        let part = body.split_to(granted.min(body.len()));
        send.send_data(part, body.is_empty())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_head_is_a_grpc_call() {
        let authority = Authority::from_static("10.0.0.1:50051");
        let req = build_request(
            &authority,
            "/storage.StorageNodeService/Write",
            Duration::from_millis(250),
        )
        .unwrap();
        assert_eq!(req.method(), Method::POST);
        assert_eq!(req.version(), Version::HTTP_2);
        assert_eq!(
            req.uri().to_string(),
            "http://10.0.0.1:50051/storage.StorageNodeService/Write"
        );
        let h = req.headers();
        assert_eq!(h[CONTENT_TYPE], "application/grpc");
        assert_eq!(h[TE], "trailers");
        assert_eq!(h["grpc-timeout"], "250000u");
        assert!(build_request(&authority, "no spaces allowed", Duration::ZERO).is_err());
    }
}
