//! Leveled compaction: what to merge, and the merge itself.
//!
//! - [`picker`] decides which tables to compact next, as a pure function of
//!   the levels' state and the configuration;
//! - [`purge`] decides what a merge keeps of one key (reconciled versions,
//!   old tombstones dropped at the last level holding the key);
//! - [`merge`] performs the k-way merge of table runs into new tables under
//!   the I/O budget of [`rate`].
//!
//! Installing a merge's result (one manifest edit) and scheduling belong to
//! the shard (`engine::shard::compact`). Levels are L0 to L4
//! ([`crate::config::LEVELS`]); L0 tables may overlap, each deeper level's
//! tables have disjoint key ranges.

pub(crate) mod merge;
pub(crate) mod picker;
pub(crate) mod purge;
pub(crate) mod rate;
