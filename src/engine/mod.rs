//! The per-shard storage engine: what a core stores and how it answers.
//!
//! A [`Shard`] is an LSM tree owned by one core: WAL and memtables
//! (`shard`, `memtable`), SSTables (`table`, over the pure formats in
//! `storage::sstable`), leveled compaction (`compaction`), an adaptive read
//! cache (`cache`) and write flow control (`shard::flow`). Errors of this
//! layer are [`EngineError`]; requests and answers are [`ShardOp`] and
//! [`ShardReply`].

pub mod cache;
pub mod compaction;
pub mod error;
pub mod memtable;
#[cfg(test)]
mod model_check;
pub mod ops;
pub mod shard;
pub mod table;

pub use error::EngineError;
pub use ops::{PutClock, ShardOp, ShardReply, ShardStats};
pub use shard::Shard;
