//! A client for one peer: calls share one HTTP/2 connection, made lazily
//! and replaced when it breaks.
//!
//! Owns [`PeerClient`]: the peer's resolved addresses, the current
//! connection, and the unary and server-streaming calls. Invariants: at most
//! one connection attempt is in flight per client (concurrent calls that
//! find no live connection wait for it and then share it); a connection
//! known to be broken is never handed to a new call; a call that fails
//! is never retried here (the error says whether retrying may help, see
//! [`ClientError::is_retryable`]); every call, connecting included, ends
//! within its timeout. A client belongs to the glommio executor (thread)
//! that made it: it is `!Send`, and cheap to clone for that core's tasks.

use super::body::{BodyReader, Next};
use super::call::{self, Head};
use super::code::Code;
use super::config::ClientConfig;
use super::connection::Connection;
use super::error::ClientError;
use super::stream::ResponseStream;
use crate::proto::grpc::encode_frame;
use futures_lite::future;
use glommio::sync::Semaphore;
use http::uri::Authority;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// A gRPC client for one peer ("host:port").
#[derive(Debug, Clone)]
pub struct PeerClient {
    inner: Rc<Inner>,
}

#[derive(Debug)]
struct Inner {
    addr: Rc<str>,
    authority: Authority,
    targets: Vec<SocketAddr>,
    config: ClientConfig,
    current: RefCell<Option<Rc<Connection>>>,
    /// Connections made so far (the first one included).
    opened: Cell<u64>,
    /// One permit: one connection attempt at a time.
    connecting: Semaphore,
}

impl PeerClient {
    /// A client for `addr` ("host:port"), resolved once, here (a blocking
    /// lookup for a host name). Connects on the first call.
    pub fn new(addr: &str, config: ClientConfig) -> Result<PeerClient, ClientError> {
        let connect_error = |source: io::Error| ClientError::Connect {
            addr: addr.to_string(),
            source,
        };
        let authority = Authority::try_from(addr).map_err(|e| {
            connect_error(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("not a host:port address: {e}"),
            ))
        })?;
        let targets: Vec<SocketAddr> = addr.to_socket_addrs().map_err(connect_error)?.collect();
        if targets.is_empty() {
            return Err(connect_error(io::Error::new(
                io::ErrorKind::NotFound,
                "the address resolved to nothing",
            )));
        }
        Ok(PeerClient {
            inner: Rc::new(Inner {
                addr: Rc::from(addr),
                authority,
                targets,
                config,
                current: RefCell::new(None),
                opened: Cell::new(0),
                connecting: Semaphore::new(1),
            }),
        })
    }

    /// [`PeerClient::new`], then connects at once (within the connect
    /// timeout), so an unreachable peer is reported here.
    pub async fn connect(addr: &str, config: ClientConfig) -> Result<PeerClient, ClientError> {
        let client = PeerClient::new(addr, config)?;
        client.connection().await?;
        Ok(client)
    }

    /// The peer address, as given.
    pub fn addr(&self) -> &str {
        &self.inner.addr
    }

    /// Whether the client holds a connection not known to be broken.
    pub fn is_connected(&self) -> bool {
        self.inner
            .current
            .borrow()
            .as_ref()
            .is_some_and(|c| c.is_alive())
    }

    /// How many connections this client has made (1 while the first one
    /// lasts; each reconnect adds one).
    pub fn connections_opened(&self) -> u64 {
        self.inner.opened.get()
    }

    /// Calls the unary method `path` ("/storage.StorageNodeService/Write")
    /// with `req`; the whole call, connecting included, ends within
    /// `timeout` (sent to the server as `grpc-timeout`).
    pub async fn unary<Req, Resp>(
        &self,
        path: &str,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, ClientError>
    where
        Req: prost::Message,
        Resp: prost::Message + Default,
    {
        let deadline = Instant::now() + timeout;
        self.within(timeout, async {
            let Some(mut reader) = self.start(path, req, deadline).await? else {
                return Err(self.protocol("an OK answer without a response message"));
            };
            let message = match reader.next().await? {
                Next::Message(message) => message,
                Next::End(status) if status.code == Code::Ok => {
                    return Err(self.protocol("an OK answer without a response message"));
                }
                Next::End(status) => return Err(self.status(status.code, status.message)),
            };
            match reader.next().await? {
                Next::Message(_) => Err(self.protocol("more than one message in a unary answer")),
                Next::End(status) if status.code == Code::Ok => {
                    Resp::decode(message).map_err(|e| ClientError::Decode {
                        addr: self.addr().to_string(),
                        reason: e.to_string(),
                    })
                }
                Next::End(status) => Err(self.status(status.code, status.message)),
            }
        })
        .await
    }

    /// Calls the server-streaming method `path` with `req`; the stream's
    /// messages are read with [`ResponseStream::next`]. `timeout` bounds the
    /// whole call, the stream included. A status the server answers before
    /// any message (UNIMPLEMENTED, say) is returned here.
    pub async fn server_stream<Req, Resp>(
        &self,
        path: &str,
        req: &Req,
        timeout: Duration,
    ) -> Result<ResponseStream<Resp>, ClientError>
    where
        Req: prost::Message,
        Resp: prost::Message + Default,
    {
        let deadline = Instant::now() + timeout;
        let reader = self
            .within(timeout, self.start(path, req, deadline))
            .await?;
        Ok(ResponseStream::new(
            reader,
            self.addr().to_string(),
            deadline,
            timeout,
        ))
    }

    /// Sends the request and reads the head: the body to read, or `None`
    /// for an OK trailers-only answer (no messages).
    async fn start<Req: prost::Message>(
        &self,
        path: &str,
        req: &Req,
        deadline: Instant,
    ) -> Result<Option<BodyReader>, ClientError> {
        let conn = self.connection().await?;
        let left = deadline.saturating_duration_since(Instant::now());
        let head = call::start(&conn, &self.inner.authority, path, encode_frame(req), left).await?;
        match head {
            Head::Body(body) => Ok(Some(BodyReader::new(
                conn,
                body,
                self.inner.config.response_bytes_max,
            ))),
            Head::TrailersOnly(status) if status.code == Code::Ok => Ok(None),
            Head::TrailersOnly(status) => Err(self.status(status.code, status.message)),
        }
    }

    /// The live connection, made now if there is none (one attempt at a
    /// time; callers arriving meanwhile share its result).
    async fn connection(&self) -> Result<Rc<Connection>, ClientError> {
        if let Some(conn) = self.live() {
            return Ok(conn);
        }
        let _permit =
            self.inner
                .connecting
                .acquire_permit(1)
                .await
                .map_err(|e| ClientError::Connect {
                    addr: self.addr().to_string(),
                    source: io::Error::from(e),
                })?;
        // Someone may have connected while this call waited.
        if let Some(conn) = self.live() {
            return Ok(conn);
        }
        let conn = Rc::new(
            Connection::open(
                Rc::clone(&self.inner.addr),
                &self.inner.targets,
                &self.inner.config,
            )
            .await?,
        );
        self.inner.opened.set(self.inner.opened.get() + 1);
        // The broken connection (if any) goes: h2 closes it once its last
        // stream ends.
        *self.inner.current.borrow_mut() = Some(Rc::clone(&conn));
        Ok(conn)
    }

    fn live(&self) -> Option<Rc<Connection>> {
        self.inner
            .current
            .borrow()
            .as_ref()
            .filter(|c| c.is_alive())
            .map(Rc::clone)
    }

    /// Runs `work`, or fails with `Timeout` once `timeout` has passed.
    async fn within<T>(
        &self,
        timeout: Duration,
        work: impl Future<Output = Result<T, ClientError>>,
    ) -> Result<T, ClientError> {
        future::or(work, async {
            glommio::timer::sleep(timeout).await;
            Err(ClientError::timeout(self.addr(), timeout))
        })
        .await
    }

    fn status(&self, code: Code, message: String) -> ClientError {
        ClientError::Status {
            addr: self.addr().to_string(),
            code,
            message,
        }
    }

    fn protocol(&self, reason: &str) -> ClientError {
        ClientError::Protocol {
            addr: self.addr().to_string(),
            reason: reason.to_string(),
        }
    }
}
