//! PairDB storage node.
//!
//! Layout (pure parts first, glommio-facing parts thin):
//! - [`model`] holds vector clocks, versions, key identity and ring ownership (pure);
//! - [`config`] holds shards.toml schema, defaults and validation (pure);
//! - [`storage`] holds durable formats and files of a shard, and their errors;
//! - [`engine`] holds a shard's storage engine and the operations it executes;
//! - [`server`] holds the request path: gRPC over h2 on glommio sockets, the
//!   service methods, and routing each request to its shard's core over the
//!   channel mesh;
//! - [`cluster`] holds gossip membership (SWIM with foca on core 0) and each
//!   core's lock-free view of it;
//! - [`runtime`] holds executors per core, start-up and shutdown;
//! - [`telemetry`] holds logging; [`proto`] the generated wire types.
//!
//! Layers only point down, with no cycles:
//! `runtime` → `server` → `engine` → `storage` → `config` → `model`, and
//! `server` → `cluster` → `config`.
//! A layer may skip down (the runtime opens the data directory in
//! `storage`), never up: storage knows nothing of the engine, the engine
//! nothing of the server, the server nothing of the runtime.
//!
//! Public are only what the binary, the tests and the benches use
//! (`config`, `model`, `runtime`, `server::read_answer`, `telemetry`, the
//! wire types); `cluster`, `engine`, `storage` and the rest of `server` are
//! crate-private, so the compiler reports what nothing uses (items only
//! tests need are `#[cfg(test)]`).

pub(crate) mod cluster;
pub mod config;
pub(crate) mod engine;
pub mod model;
pub mod proto;
pub mod runtime;
pub mod server;
pub(crate) mod storage;
pub mod telemetry;
