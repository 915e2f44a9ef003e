//! Prometheus metrics: what each core records about the requests it
//! answers, and the `/metrics` endpoint that merges every core's figures
//! on scrape.
//!
//! One idea per file:
//! - `rpc`: per-core request counters (method × gRPC status × body
//!   error_code) and latency histograms, recorded without locks;
//! - `families`: the metric family builder and the text encoder (the
//!   prometheus crate's);
//! - `shard_figures`: each shard's HealthCheck figures as samples;
//! - `node_figures`: node-wide samples (state, members, streams, volume,
//!   requests);
//! - `scrape`: gathering every core's figures for one scrape;
//! - `http`: `GET /metrics` over HTTP/1.1.
//!
//! Invariants: recording on the request path allocates nothing and takes
//! no lock; a scrape only reads; every metric name follows the Prometheus
//! conventions (`pairdb_` prefix, `_total` counters, base units `_seconds`
//! and `_bytes`, states as `_info` gauges) and is listed in
//! docs/operations.md (a test checks the list).

mod families;
pub(crate) mod http;
mod node_figures;
mod rpc;
mod scrape;
mod shard_figures;
#[cfg(test)]
mod tests;

pub(crate) use rpc::{Outcome, RpcMetrics, RpcSnapshot};
