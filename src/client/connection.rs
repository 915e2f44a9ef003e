//! One HTTP/2 connection to a peer and the task that drives it.
//!
//! Owns connecting (TCP connect to each resolved address in turn, TCP_NODELAY,
//! HTTP/2 handshake over the glommio socket through `tokio_util::compat`,
//! all within the connect timeout), the detached task that polls the h2
//! `Connection` until it ends, and the connection's health. Invariants: a
//! [`Connection`] is alive until its driver task ends or a call reports it
//! broken, and never becomes alive again (a broken connection is replaced,
//! not repaired); the driver task ends when the peer closes the socket, on
//! any connection error, or once every handle to the connection is dropped
//! (h2 then sends GOAWAY and closes), so dropping a client leaks no task.

use super::config::ClientConfig;
use super::error::ClientError;
use super::status::code_for_reset;
use bytes::Bytes;
use futures_lite::future;
use glommio::net::TcpStream;
use h2::client::SendRequest;
use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;
use tokio_util::compat::FuturesAsyncReadCompatExt;

/// A live (or formerly live) HTTP/2 connection to one peer.
#[derive(Debug)]
pub(crate) struct Connection {
    addr: Rc<str>,
    send: SendRequest<Bytes>,
    alive: Rc<Cell<bool>>,
}

impl Connection {
    /// Connects to the first of `targets` that accepts, within
    /// `config.connect_timeout`, and starts the driver task. Must run inside
    /// a glommio executor.
    pub(crate) async fn open(
        addr: Rc<str>,
        targets: &[SocketAddr],
        config: &ClientConfig,
    ) -> Result<Connection, ClientError> {
        let deadline = Instant::now() + config.connect_timeout;
        let connect_error = |source: io::Error| ClientError::Connect {
            addr: addr.to_string(),
            source,
        };
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address to connect to");
        let mut socket = None;
        for target in targets {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                last = io::Error::new(io::ErrorKind::TimedOut, "connect timeout");
                break;
            }
            match TcpStream::connect_timeout(*target, left).await {
                Ok(s) => {
                    socket = Some(s);
                    break;
                }
                Err(e) => last = io::Error::from(e),
            }
        }
        let socket = socket.ok_or_else(|| connect_error(last))?;
        if let Err(e) = socket.set_nodelay(true) {
            tracing::debug!(peer = %addr, error = %e, "set_nodelay failed");
        }
        let mut builder = h2::client::Builder::new();
        builder
            .enable_push(false)
            .initial_window_size(config.stream_window_bytes)
            .initial_connection_window_size(config.connection_window_bytes)
            .max_header_list_size(64 << 10)
            .max_send_buffer_size(1 << 20);
        let handshake = async {
            builder
                .handshake::<_, Bytes>(socket.compat())
                .await
                .map_err(|e| connect_error(io::Error::other(format!("HTTP/2 handshake: {e}"))))
        };
        let (send, driver) = future::or(handshake, async {
            glommio::timer::sleep(deadline.saturating_duration_since(Instant::now())).await;
            Err(connect_error(io::Error::new(
                io::ErrorKind::TimedOut,
                "HTTP/2 handshake timed out",
            )))
        })
        .await?;
        let alive = Rc::new(Cell::new(true));
        let flag = Rc::clone(&alive);
        let peer = Rc::clone(&addr);
        glommio::spawn_local(async move {
            match driver.await {
                Ok(()) => tracing::debug!(peer = %peer, "connection closed"),
                Err(e) => tracing::debug!(peer = %peer, error = %e, "connection ended"),
            }
            flag.set(false);
        })
        .detach();
        Ok(Connection { addr, send, alive })
    }

    /// Whether new calls may use this connection.
    pub(crate) fn is_alive(&self) -> bool {
        self.alive.get()
    }

    /// A handle to open streams on this connection.
    pub(crate) fn sender(&self) -> SendRequest<Bytes> {
        self.send.clone()
    }

    /// The peer address, as the client was given it.
    pub(crate) fn addr(&self) -> &str {
        &self.addr
    }

    /// The error for an h2 failure of a call on this connection. A stream
    /// reset by the peer concerns that call only (a gRPC status per the
    /// spec's table); anything else (GOAWAY, I/O error, connection-level
    /// protocol error) means the connection is broken: it is marked so the
    /// next call reconnects, and the call fails UNAVAILABLE.
    pub(crate) fn fail(&self, e: &h2::Error) -> ClientError {
        if e.is_reset() {
            if let Some(reason) = e.reason() {
                return ClientError::Status {
                    addr: self.addr.to_string(),
                    code: code_for_reset(reason),
                    message: format!("stream reset by {}: {e}", self.addr),
                };
            }
        }
        self.alive.set(false);
        ClientError::Unavailable {
            addr: self.addr.to_string(),
            reason: e.to_string(),
        }
    }
}
