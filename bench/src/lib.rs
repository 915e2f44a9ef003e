//! Shared code of the PairDB benchmark harness: the generated `storage`
//! protocol (client and server), vector clock helpers, key distributions,
//! write values, result reporting, the load generator's command line and run
//! (`cli`, `context`, `driver`, `preload`, `poller`, `rpc`), the server's CPU and
//! forwarded share over the measured window (`server_cost`), shard-aware
//! routing (`shard_route`), latency distributions as HdrHistogram text and
//! SVG percentile plots (`hgrm`, `plot`, `hdr_out`, `plot_cmd`), and the
//! in-memory reference
//! server. The binaries (`pairdb-bench`, `reference-server`) are thin front
//! ends over these modules.

pub mod cli;
pub mod clock;
pub mod context;
pub mod driver;
pub mod hdr_out;
pub mod hgrm;
pub mod keys;
pub mod plot;
pub mod plot_cmd;
pub mod poller;
pub mod preload;
pub mod reference;
pub mod report;
pub mod rpc;
pub mod server_cost;
pub mod shard_route;
pub mod values;

/// The error of a benchmark step (connecting, a failed pass, a bad flag).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Code generated from `proto/storage.proto` (package `storage`) by build.rs.
pub mod proto {
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    tonic::include_proto!("storage");
}
