//! The write-ahead log of a shard.
//!
//! Each shard appends its writes to numbered segment files before applying
//! them to the memtable; a write is acknowledged only once its batch is
//! durable, and replay on start rebuilds the memtable from the segments not
//! yet covered by SSTables. This module keeps the pure parts apart from the
//! glommio file I/O:
//! - [`format`]: byte layout of the segment header, batches and records, with
//!   encoding and bounds-checked decoding;
//! - [`scan`]: the sequential scan of a segment for replay and the decision
//!   between a clean end, a torn tail (truncated) and corruption (start-up
//!   stops, naming the file and offset).
//!
//! Dependencies point one way: `writer` and `replay` use `scan` and
//! `format`, `scan` uses `format`, and `format` uses none of them.
//!
//! Invariants: every batch names its shard and segment and carries contiguous
//! sequence numbers, so old contents of a recycled, preallocated segment file
//! are never replayed as new records.

pub(crate) mod format;
pub(crate) mod replay;
pub(crate) mod scan;
pub(crate) mod segment;
pub(crate) mod writer;
#[cfg(test)]
mod writer_tests;
