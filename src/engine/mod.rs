//! The per-shard storage engine: what a core stores and how it answers.
//!
//! Today a shard keeps its data in a memtable; the shard's `execute` is the
//! seam under which the WAL, SSTables and compaction are added.

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
