//! Shared code of the PairDB benchmark harness: the generated `storage`
//! protocol (client and server), vector clock helpers, key distributions,
//! write values, result reporting, and the in-memory reference server. The two binaries
//! (`pairdb-bench`, `reference-server`) are thin front ends over these modules.

pub mod clock;
pub mod keys;
pub mod reference;
pub mod report;
pub mod values;

/// Code generated from `proto/storage.proto` (package `storage`) by build.rs.
pub mod proto {
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    tonic::include_proto!("storage");
}
