//! Shared harness for the integration tests, split by job:
//!
//! - [`node`]: starts the real `pairdb-storage` binary on a free port with a
//!   temporary data directory, waits until it answers HealthCheck, signals it
//!   and waits for its exit;
//! - [`client`]: tonic clients and the request helpers (write, read, delete,
//!   repair, metrics);
//! - [`clock`]: wire clocks from literals and as maps;
//! - [`raw`]: a raw h2 client for requests tonic cannot express;
//! - [`members`]: nodes seeded to each other into one gossip cluster;
//! - [`ring`]: the coordinator's hash ring and the ranges a move streams;
//! - [`streams`]: StartStreaming, GetStreamStatus and StopStreaming as a
//!   coordinator calls them;
//! - [`abuse`]: RSS sampling, half-open connections and clients that stop
//!   reading, for the overload tests;
//! - [`pb`]: the generated stubs and messages.
//!
//! Everything is re-exported here, so a test says `use common::*;`. Each test
//! binary compiles this harness on its own and uses only part of it, hence
//! the allowances; `pub` is the harness's interface between its own files
//! (a test binary exports nothing), so `unreachable_pub` does not apply.
#![allow(dead_code, unused_imports, unreachable_pub)]

pub mod abuse;
pub mod client;
pub mod clock;
pub mod members;
pub mod node;
pub mod pb;
pub mod raw;
pub mod ring;
pub mod streams;

pub use abuse::*;
pub use client::*;
pub use clock::*;
pub use members::*;
pub use node::*;
pub use raw::*;
pub use ring::*;
pub use streams::*;
