//! PairDB storage node.
//!
//! Layout (pure parts first, glommio-facing parts thin):
//! - [`model`] holds vector clocks, versions, key identity and ring ownership (pure);
//! - [`config`] holds shards.toml schema, defaults and validation (pure);
//! - [`engine`] holds a shard's storage and the operations it executes;
//! - [`server`] holds gRPC over h2 on glommio sockets, and the service methods;
//! - [`storage`] holds durable formats and files of a shard;
//! - [`runtime`] holds executors per core, channel mesh routing, shutdown;
//! - [`telemetry`] holds logging.

pub mod config;
pub mod engine;
pub mod model;
pub mod proto;
pub mod runtime;
pub mod server;
pub mod storage;
pub mod telemetry;
