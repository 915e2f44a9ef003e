//! The request path: HTTP/2 connections, gRPC framing, the service methods
//! and the routing of each request to the shard that owns its key.
//!
//! `convert` and `read_answer` are pure (the gRPC framing is `proto::grpc`); `conn` drives h2 on a glommio socket
//! (`conn_io` coalesces its sends: one per poll of the connection);
//! `handlers` maps each method onto shard operations; `streaming` serves
//! the calls that outlive one request message (health Watch, reflection);
//! `router` carries an operation to the core owning its shard over the
//! channel mesh (`hop_bench` measures that hop alone); `context`
//! holds the per-core admission state all connections of a core share.
//!
//! Layering: this module uses the engine (and below it storage, model and
//! config) and never the runtime, which builds a core's router and context
//! and hands them connections.

pub(crate) mod conn;
pub(crate) mod conn_io;
pub(crate) mod context;
pub(crate) mod convert;
pub(crate) mod drain;
pub(crate) mod handlers;
pub mod hop_bench;
pub(crate) mod metrics;
pub mod read_answer;
pub(crate) mod router;
pub(crate) mod streaming;
