//! Fuzz entry points: one function per decoder that reads bytes from disk
//! or the network, for cargo-fuzz (`fuzz/`, nightly) and for the stable
//! corpus test (`cargo test`), which replays `fuzz/corpus/<target>/` and a
//! bounded set of seeded pseudo-random and mutated inputs.
//!
//! Invariants: a target never panics on any input; it panics only when a
//! decoder breaks a property it promises (a decoded value re-encodes to
//! what decodes back equal, a parsed table's parts agree, ...), with a
//! message naming the property. Checksummed formats are fed twice: as
//! given, and with their checksums recomputed over the given bytes, so a
//! fuzzer's mutations reach the parsing behind the checksum.
//!
//! The decoders stay crate-private: this module reaches them from inside
//! the crate. One file per family:
//! - `codec`: the record/value entry codec;
//! - `wal`: WAL batches and whole segment scans;
//! - `sstable`: footer, index, data block and filter blocks; `sst_table`
//!   composes them over a whole table image;
//! - `small_files`: the manifest, META and STREAMS files;
//! - `grpc`: gRPC framing, the protobuf request messages and the server's
//!   validation of them;
//! - `h2`: the HTTP/2 server fed raw bytes, up to the handlers' checks.

mod checksums;
mod codec;
mod grpc;
mod h2;
mod io;
mod small_files;
mod sst_table;
mod sstable;
mod wal;

#[cfg(test)]
mod seeds;
#[cfg(test)]
mod tests;

pub use codec::codec_entry;
pub use grpc::grpc_request;
pub use h2::h2_server;
pub use small_files::{manifest, meta, streams_file};
pub use sst_table::sst_table;
pub use sstable::{sst_block, sst_filter, sst_footer, sst_index};
pub use wal::{wal_batch, wal_scan};

/// A fuzz target: takes any bytes, panics only on a broken invariant.
pub type Target = fn(&[u8]);

/// Every target by name (the name of its corpus folder and of its
/// cargo-fuzz binary).
pub const TARGETS: &[(&str, Target)] = &[
    ("codec_entry", codec_entry),
    ("wal_batch", wal_batch),
    ("wal_scan", wal_scan),
    ("sst_footer", sst_footer),
    ("sst_index", sst_index),
    ("sst_block", sst_block),
    ("sst_filter", sst_filter),
    ("sst_table", sst_table),
    ("manifest", manifest),
    ("meta", meta),
    ("streams_file", streams_file),
    ("grpc_request", grpc_request),
    ("h2_server", h2_server),
];
