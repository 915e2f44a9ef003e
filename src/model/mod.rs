//! The data model, free of I/O and of glommio: vector clocks, versions and
//! their reconciliation, key identity and ring ownership. Everything here is
//! pure and unit/property tested in place.

// Stricter rules than the crate's for a layer that must never panic on
// bytes from disk or the wire: no unwrap or expect, no unchecked indexing
// or slicing (tests are exempt, see clippy.toml).
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

pub mod bounds;
pub mod clock;
pub mod digest;
pub mod key;
pub mod ranges;
pub mod version;

pub use bounds::{read_answer_bytes, BoundExceeded, KeyBounds, PutKind, PutOrigin};
pub use clock::{Causality, ClockError, NodeId, VectorClock};
pub use digest::RangeDigest;
pub use key::{owner_shard, ring_token, KeyRef};
pub use ranges::{shard_token_span, TokenRange, TokenRanges};
pub use version::{ApplyOutcome, Version, VersionSet};
