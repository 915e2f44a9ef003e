//! PairDB storage node.
//!
//! Layout (pure parts first, glommio-facing parts thin):
//! - [`model`] holds vector clocks, versions, key identity and ring ownership (pure);
//! - `histogram` holds the fixed-bucket duration histograms every layer
//!   records into (pure, a leaf like `model`);
//! - [`config`] holds shards.toml schema, defaults and validation (pure);
//! - [`storage`] holds durable formats and files of a shard, and their errors;
//! - [`engine`] holds a shard's storage engine and the operations it executes;
//! - [`cluster`] holds what a node does with other nodes (range moves);
//! - [`server`] holds the request path: gRPC over h2 on glommio sockets, the
//!   service methods, and routing each request to its shard's core over the
//!   channel mesh;
//! - [`cluster`] holds gossip membership (SWIM with foca on core 0) and each
//!   core's lock-free view of it;
//! - [`runtime`] holds executors per core, start-up and shutdown;
//! - [`client`] holds the node's own gRPC client for calls to other nodes
//!   (and the admin tools): h2 and prost on glommio sockets;
//! - [`telemetry`] holds logging; [`proto`] the generated wire types;
//! - [`admin`] holds the `pairdb-admin` command line (a client of one node
//!   through [`client`]; nothing of the node's own path uses it);
//! - `fuzzing` (with the `fuzzing` feature, and in tests) holds one fuzz
//!   entry point per decoder of bytes from disk or the network.
//!
//! Layers only point down, with no cycles:
//! `runtime` → `server` → `cluster` → `client` → `engine` → `storage` → `config` → `model`
//! (`client` and the server share the pure gRPC framing in `proto::grpc`).
//! A layer may skip down (the runtime opens the data directory in
//! `storage`), never up: storage knows nothing of the engine, the engine
//! nothing of the server, the server nothing of the runtime.
//!
//! Public are only what the binary, the tests and the benches use
//! (`client`, `config`, `model`, `runtime`, `server::read_answer`,
//! `telemetry`, the wire types); `cluster`, `engine`, `storage` and the rest
//! of `server` are crate-private, so the compiler reports what nothing uses
//! (items only tests need are `#[cfg(test)]`).

pub mod admin;
#[cfg(test)]
#[allow(unsafe_code)] // a counting wrapper around the system allocator
mod alloc_count;
pub mod client;
pub(crate) mod cluster;
pub mod config;
pub(crate) mod engine;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub(crate) mod histogram;
pub mod model;
pub mod proto;
pub mod runtime;
pub mod server;
pub(crate) mod storage;
pub mod telemetry;
