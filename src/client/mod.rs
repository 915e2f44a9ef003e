//! The node's own gRPC client: calls to other storage nodes (streaming a
//! range to a target node, forwarding) and the admin tools, over HTTP/2
//! (h2) with prost messages on glommio sockets. No tonic, no tokio runtime.
//!
//! One idea per file:
//! - `code`, `status`, `timeout`, `splitter`, `error`: pure wire details
//!   ([`Code`]; `grpc-status`/`grpc-message`, HTTP and reset mappings;
//!   `grpc-timeout` formatting; reassembling length-prefixed messages from
//!   DATA chunks; [`ClientError`]);
//! - `config`: [`ClientConfig`];
//! - `connection`: one HTTP/2 connection and the task driving it;
//! - `call`: sending one request and reading the response head;
//! - `body`: reading messages and the final status, releasing flow control;
//! - `peer`: [`PeerClient`], the shared, lazily re-made connection and the
//!   unary and server-streaming calls;
//! - `stream`: [`ResponseStream`].
//!
//! Framing (the 5-byte prefix) is `server::grpc`'s, shared with the server,
//! which is pure; the client uses nothing else of `server`, so the server's
//! own code may call peers through this module without a cycle of logic.
//!
//! Invariants across the module: a call never outlives its timeout; no
//! response message beyond `response_bytes_max` is buffered; a broken
//! connection is replaced on the next call, and the call that found it
//! broken fails with a retryable error instead of being retried here.
//! Everything here runs inside a glommio executor.

mod body;
mod call;
mod code;
mod config;
mod connection;
mod error;
mod peer;
mod splitter;
mod status;
mod stream;
mod timeout;

pub use code::Code;
pub use config::ClientConfig;
pub use error::ClientError;
pub use peer::PeerClient;
pub use stream::ResponseStream;
