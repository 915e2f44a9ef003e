//! A raw HTTP/2 client for requests tonic cannot express (garbage bodies,
//! hand-written headers, request bodies left open): gRPC framing, one-shot
//! calls, a connection for several hand-driven streams, and the complete
//! answer (headers, data, trailers) as seen on the wire.

use bytes::{BufMut, Bytes, BytesMut};
use std::net::SocketAddr;

/// A whole gRPC exchange as seen on the wire.
#[derive(Debug)]
pub struct RawResponse {
    pub http_status: u16,
    pub headers: http::HeaderMap,
    pub trailers: Option<http::HeaderMap>,
    pub body: Bytes,
}

impl RawResponse {
    /// `grpc-status`, from the trailers or (trailers-only) the headers.
    pub fn grpc_status(&self) -> Option<i32> {
        self.grpc_header("grpc-status")
            .map(|v| v.parse().expect("numeric grpc-status"))
    }

    /// `grpc-message`, from the trailers or (trailers-only) the headers.
    pub fn grpc_message(&self) -> Option<String> {
        self.grpc_header("grpc-message")
    }

    fn grpc_header(&self, name: &str) -> Option<String> {
        self.trailers
            .as_ref()
            .and_then(|t| t.get(name))
            .or_else(|| self.headers.get(name))
            .map(|v| v.to_str().expect("ascii header").to_string())
    }
}

/// Frames `message` with the 5-byte gRPC prefix (uncompressed).
pub fn grpc_frame(message: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(5 + message.len());
    b.put_u8(0);
    b.put_u32(message.len() as u32);
    b.put_slice(message);
    b.freeze()
}

/// Sends one POST to `path` with `body` over a fresh raw h2 connection and
/// collects the complete answer.
pub async fn raw_call(
    addr: SocketAddr,
    path: &str,
    extra_headers: &[(&str, &str)],
    body: Bytes,
) -> RawResponse {
    raw_exchange(addr, path, extra_headers, body, true).await
}

/// Like [`raw_call`], but the request body is left open (no END_STREAM), as
/// from a client that stalls mid-upload; the answer is still collected.
pub async fn raw_call_unfinished(
    addr: SocketAddr,
    path: &str,
    extra_headers: &[(&str, &str)],
    body: Bytes,
) -> RawResponse {
    raw_exchange(addr, path, extra_headers, body, false).await
}

async fn raw_exchange(
    addr: SocketAddr,
    path: &str,
    extra_headers: &[(&str, &str)],
    body: Bytes,
    end_stream: bool,
) -> RawResponse {
    let conn = RawConn::open(addr).await;
    let (response, mut stream) = conn.start(path, extra_headers).await;
    stream.send_data(body, end_stream).expect("send_data");
    let answer = collect(response).await;
    drop(stream);
    answer
}

/// One raw HTTP/2 connection for several hand-driven streams; the connection
/// is driven by a background task until this is dropped.
pub struct RawConn {
    addr: SocketAddr,
    send: h2::client::SendRequest<Bytes>,
    driver: tokio::task::JoinHandle<()>,
}

impl RawConn {
    pub async fn open(addr: SocketAddr) -> RawConn {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .expect("tcp connect");
        let (send, conn) = h2::client::handshake(tcp).await.expect("h2 handshake");
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        RawConn { addr, send, driver }
    }

    /// Sends the headers of a gRPC POST to `path`; the body is up to the caller.
    pub async fn start(
        &self,
        path: &str,
        extra_headers: &[(&str, &str)],
    ) -> (h2::client::ResponseFuture, h2::SendStream<Bytes>) {
        let mut send = self.send.clone().ready().await.expect("h2 ready");
        let mut req = http::Request::builder()
            .method("POST")
            .uri(format!("http://{}{path}", self.addr))
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        for (k, v) in extra_headers {
            req = req.header(*k, *v);
        }
        let req = req.body(()).expect("request");
        send.send_request(req, false).expect("send_request")
    }

    /// A complete unary call on this connection.
    pub async fn call(&self, path: &str, body: Bytes) -> RawResponse {
        let (response, mut stream) = self.start(path, &[]).await;
        stream.send_data(body, true).expect("send_data");
        collect(response).await
    }
}

impl Drop for RawConn {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Waits for a raw stream's complete answer: headers, data and trailers.
pub async fn collect(response: h2::client::ResponseFuture) -> RawResponse {
    let response = response.await.expect("response headers");
    let (parts, mut recv) = response.into_parts();
    let mut data = BytesMut::new();
    while let Some(chunk) = recv.data().await {
        let chunk = chunk.expect("response data");
        let _ = recv.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
    }
    let trailers = recv.trailers().await.expect("response trailers");
    RawResponse {
        http_status: parts.status.as_u16(),
        headers: parts.headers,
        trailers,
        body: data.freeze(),
    }
}

/// The service's method path.
pub fn method_path(method: &str) -> String {
    format!("/storage.StorageNodeService/{method}")
}
