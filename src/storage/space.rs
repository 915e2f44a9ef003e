//! Disk space rules: the smallest data volume a node can run on, and the
//! room the WAL leaves free for flushes.
//!
//! Owns two figures derived from the storage settings and the shard count:
//! - [`flush_reserve_bytes`]: free space a new WAL segment never takes, so
//!   that when the disk fills up every shard can still flush one memtable
//!   (which frees the WAL segments it covered) — the way a full disk heals
//!   itself once space returns, and often before;
//! - [`volume_bytes_min`]: the smallest volume a node runs on without
//!   stalling: per shard an open WAL segment and its prepared successor,
//!   plus the flush reserve. Start-up refuses a smaller volume
//!   ([`check_volume`]) with how much is missing.
//!
//! Invariants: both are pure functions of the configuration; a WAL segment
//! is created only when [`segment_fits`] says so.

use super::disk::Space;
use crate::config::StorageConfig;
use std::fmt;
use std::path::{Path, PathBuf};

/// Free bytes a new WAL segment must leave: one memtable's flush per shard.
pub(crate) fn flush_reserve_bytes(config: &StorageConfig, shards: usize) -> u64 {
    (shards.max(1) as u64).saturating_mul(config.memtable_bytes_max as u64)
}

/// The smallest data volume for `shards` shards under `config`.
pub(crate) fn volume_bytes_min(config: &StorageConfig, shards: usize) -> u64 {
    let wal = (shards.max(1) as u64)
        .saturating_mul(2)
        .saturating_mul(config.wal_segment_bytes_max);
    wal.saturating_add(flush_reserve_bytes(config, shards))
}

/// True when a segment of `segment_bytes` fits in `space` and leaves
/// `reserve_bytes` free.
pub(crate) fn segment_fits(space: Space, segment_bytes: u64, reserve_bytes: u64) -> bool {
    space.free_bytes >= segment_bytes.saturating_add(reserve_bytes)
}

/// The data volume is smaller than the node needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeTooSmall {
    pub path: PathBuf,
    pub total_bytes: u64,
    pub need_bytes: u64,
    pub shards: usize,
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

impl fmt::Display for VolumeTooSmall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let missing = self.need_bytes.saturating_sub(self.total_bytes);
        write!(
            f,
            "the volume holding {} has {} ({} bytes); {} shards with these storage settings \
             need at least {} ({} bytes: per shard 2 x storage.wal_segment_bytes_max plus \
             storage.memtable_bytes_max), so {} ({missing} bytes) are missing; use a larger \
             volume, fewer shards, or smaller storage.wal_segment_bytes_max / \
             storage.memtable_bytes_max",
            self.path.display(),
            mib(self.total_bytes),
            self.total_bytes,
            self.shards,
            mib(self.need_bytes),
            self.need_bytes,
            mib(missing),
        )
    }
}

impl std::error::Error for VolumeTooSmall {}

/// Refuses a volume (of `space.total_bytes`) too small for `shards` shards.
pub(crate) fn check_volume(
    path: &Path,
    space: Space,
    config: &StorageConfig,
    shards: usize,
) -> Result<(), VolumeTooSmall> {
    let need_bytes = volume_bytes_min(config, shards);
    if space.total_bytes >= need_bytes {
        return Ok(());
    }
    Err(VolumeTooSmall {
        path: path.to_path_buf(),
        total_bytes: space.total_bytes,
        need_bytes,
        shards,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn defaults_need_192_mib_per_shard() {
        let c = StorageConfig::default();
        assert_eq!(flush_reserve_bytes(&c, 2), 128 * MIB);
        assert_eq!(volume_bytes_min(&c, 1), 192 * MIB);
        assert_eq!(volume_bytes_min(&c, 2), 384 * MIB);
        assert_eq!(volume_bytes_min(&c, 16), 3072 * MIB);
    }

    #[test]
    fn a_segment_must_leave_the_reserve_free() {
        let space = |free_bytes| Space {
            total_bytes: 1 << 40,
            free_bytes,
        };
        assert!(segment_fits(space(100), 60, 40));
        assert!(!segment_fits(space(99), 60, 40));
        assert!(!segment_fits(space(0), u64::MAX, 1));
    }

    #[test]
    fn a_small_volume_is_refused_with_what_is_missing() {
        let c = StorageConfig::default();
        let small = Space {
            total_bytes: 55 * MIB,
            free_bytes: 50 * MIB,
        };
        let e = check_volume(Path::new("/data"), small, &c, 2).unwrap_err();
        assert_eq!(e.need_bytes, 384 * MIB);
        let text = e.to_string();
        assert!(text.contains("/data"), "{text}");
        assert!(text.contains("384.0 MiB"), "{text}");
        assert!(text.contains("329.0 MiB"), "{text}");
        let big = Space {
            total_bytes: 384 * MIB,
            free_bytes: 0,
        };
        // A full volume of the right size is fine: reads are served.
        assert!(check_volume(Path::new("/data"), big, &c, 2).is_ok());
    }
}
