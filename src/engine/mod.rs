//! The per-shard storage engine: what a core stores and how it answers.
//!
//! A [`Shard`] is an LSM tree owned by one core: WAL and memtables
//! (`shard`, `memtable`), SSTables (`table`, over the pure formats in
//! `storage::sstable`), leveled compaction (`compaction`), an adaptive read
//! cache (`cache`) and write flow control (`shard::flow`). Errors of this
//! layer are [`EngineError`]; requests and answers are [`ShardOp`] and
//! [`ShardReply`].

pub(crate) mod cache;
pub(crate) mod compaction;
pub(crate) mod error;
#[cfg(test)]
mod fault_check;
pub(crate) mod join;
pub(crate) mod memtable;
#[cfg(test)]
mod model_check;
pub(crate) mod ops;
pub(crate) mod shard;
pub(crate) mod table;

pub(crate) use error::EngineError;
pub(crate) use ops::{PutClock, ShardOp, ShardReply, ShardStats};
pub(crate) use shard::Shard;
