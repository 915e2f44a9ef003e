//! The data directory: exclusive ownership and the node metadata file.
//!
//! Owns, at start-up and before any executor runs:
//! - `LOCK`: an exclusive `flock` held for the life of the process, so two
//!   processes never open the same data directory;
//! - `META`: format version, shard count, partitioning scheme and node id,
//!   written atomically (temp file, fsync, rename, fsync of the directory);
//! - one folder per shard, `shard-NNN`.
//!
//! Invariant: data written under one shard count and partitioning scheme is
//! never opened under another, nor under another node id unless the caller
//! allows the change explicitly (blind writes are stamped with the node id,
//! so a silent change could break causality); the node refuses with a message
//! saying what to do. A path that cannot serve as the directory (a file, a
//! parent that is a file, no permission) is refused naming the path and the
//! reason. Blocking std I/O is fine here: it runs once, before serving.
//!
//! META layout (integers big-endian):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `PDBMETA\x01` |
//! | 8 | 4 | format version (1) |
//! | 12 | 4 | shard count |
//! | 16 | 1 | partitioning scheme (1 = token range: `(token * shards) >> 64`) |
//! | 17 | 2 | node id length n |
//! | 19 | n | node id (UTF-8) |
//! | 19 + n | 4 | crc32 of bytes 0 .. 19 + n |

use super::disk::{self, EntryKind};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

const META_MAGIC: &[u8; 8] = b"PDBMETA\x01";
/// The data format this binary reads and writes.
pub(crate) const FORMAT_VERSION: u32 = 1;
/// Partitioning scheme 1: shard = (token * shards) >> 64.
pub(crate) const PARTITIONING_TOKEN_RANGE: u8 = 1;

#[derive(Debug)]
pub enum DataDirError {
    Io {
        path: PathBuf,
        /// What was being done to `path`, e.g. "create the data directory".
        op: &'static str,
        reason: String,
    },
    /// Something other than a directory is where a directory must be.
    NotADirectory {
        path: PathBuf,
        role: DirRole,
        /// What is there instead, e.g. "a regular file".
        found: &'static str,
    },
    Locked {
        path: PathBuf,
        /// The live process holding it, when known.
        pid: Option<u32>,
    },
    Corrupted {
        path: PathBuf,
        reason: String,
    },
    UnknownFormat {
        path: PathBuf,
        found: u32,
    },
    UnknownPartitioning {
        path: PathBuf,
        found: u8,
    },
    ShardCountMismatch {
        path: PathBuf,
        stored: usize,
        asked: usize,
    },
    NoMetadata {
        path: PathBuf,
    },
    NodeIdMismatch {
        path: PathBuf,
        stored: String,
        configured: String,
    },
}

impl std::fmt::Display for DataDirError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DataDirError::Io { path, op, reason } => {
                write!(f, "cannot {op} {}: {reason}", path.display())
            }
            DataDirError::NotADirectory { path, role, found } => match role {
                DirRole::Data => write!(
                    f,
                    "data directory {} is {found}, not a directory; point --data-dir (or \
                     node.data_dir) at a directory, or move it out of the way",
                    path.display()
                ),
                DirRole::Shard => write!(
                    f,
                    "shard directory {} is {found}, not a directory; move it out of the way",
                    path.display()
                ),
            },
            DataDirError::Locked { path, pid } => {
                let who = pid.map_or_else(String::new, |p| format!(" (pid {p})"));
                write!(
                    f,
                    "data directory {} is in use by another pairdb-storage process{who}; stop it or use another --data-dir",
                    path.display()
                )
            }
            DataDirError::Corrupted { path, reason } => {
                write!(f, "{} is corrupted: {reason}; restore it from a backup", path.display())
            }
            DataDirError::UnknownFormat { path, found } => write!(
                f,
                "{} was written with data format {found}, this binary reads format {FORMAT_VERSION}; \
                 run a pairdb-storage release that reads format {found}",
                path.display()
            ),
            DataDirError::UnknownPartitioning { path, found } => write!(
                f,
                "{} uses partitioning scheme {found}, this binary knows only scheme {PARTITIONING_TOKEN_RANGE}",
                path.display()
            ),
            DataDirError::ShardCountMismatch { path, stored, asked } => write!(
                f,
                "data directory {} holds {stored} shards but {asked} were asked for; start with \
                 --shards {stored} (or leave --shards and node.shards unset), since resharding an \
                 existing data directory is not supported",
                path.display()
            ),
            DataDirError::NoMetadata { path } => write!(
                f,
                "data directory {} holds shard folders but no META file; it was not written by this \
                 node or META was removed: restore META or use an empty directory",
                path.display()
            ),
            DataDirError::NodeIdMismatch {
                path,
                stored,
                configured,
            } => write!(
                f,
                "data directory {} belongs to node id {stored:?} but this node is configured as \
                 {configured:?}; start with --node-id {stored} to keep the recorded id, or pass \
                 --allow-node-id-change to record {configured:?} as this directory's node id \
                 (blind writes are then stamped with the new id)",
                path.display()
            ),
        }
    }
}

impl std::error::Error for DataDirError {}

/// Which directory a [`DataDirError::NotADirectory`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirRole {
    Data,
    Shard,
}

/// Contents of META.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Meta {
    pub format_version: u32,
    pub shards: usize,
    pub partitioning: u8,
    pub node_id: String,
}

/// An opened, locked data directory. The lock lasts as long as this value.
#[derive(Debug)]
pub(crate) struct DataDir {
    root: PathBuf,
    meta: Meta,
    _lock: File,
}

fn io_err(path: &Path, op: &'static str, e: impl std::fmt::Display) -> DataDirError {
    DataDirError::Io {
        path: path.to_path_buf(),
        op,
        reason: e.to_string(),
    }
}

/// Makes sure `path` is a directory, creating it (and its parents) if
/// nothing is there.
fn ensure_dir(path: &Path, role: DirRole) -> Result<(), DataDirError> {
    let found = match disk::entry_kind(path).map_err(|e| io_err(path, "access", e))? {
        Some(EntryKind::Dir) => return Ok(()),
        Some(EntryKind::File) => "a regular file",
        Some(EntryKind::Other(what)) => what,
        None => {
            let op = match role {
                DirRole::Data => "create the data directory",
                DirRole::Shard => "create the shard directory",
            };
            return disk::create_dir_all(path).map_err(|e| io_err(path, op, e));
        }
    };
    Err(DataDirError::NotADirectory {
        path: path.to_path_buf(),
        role,
        found,
    })
}

/// Encodes META.
pub(crate) fn encode_meta(meta: &Meta) -> Vec<u8> {
    let mut out = Vec::with_capacity(23 + meta.node_id.len());
    out.extend_from_slice(META_MAGIC);
    out.extend_from_slice(&meta.format_version.to_be_bytes());
    out.extend_from_slice(&(meta.shards as u32).to_be_bytes());
    out.push(meta.partitioning);
    out.extend_from_slice(&(meta.node_id.len() as u16).to_be_bytes());
    out.extend_from_slice(meta.node_id.as_bytes());
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// Decodes META, checking magic, length and checksum (not the version).
pub(crate) fn decode_meta(raw: &[u8]) -> Result<Meta, String> {
    let too_short = || format!("{} bytes, shorter than the smallest META", raw.len());
    if raw.len() < 23 {
        return Err(too_short());
    }
    // magic(8) version(4) shards(4) partitioning(1) id length(2) id(n), then
    // the CRC-32 of all that. Each split below is in range once the length
    // is at least 23; a short input fails the same way whichever one sees it.
    let (body, stored) = raw.split_last_chunk::<4>().ok_or_else(too_short)?;
    let (magic, rest) = body.split_first_chunk::<8>().ok_or_else(too_short)?;
    if magic != META_MAGIC {
        return Err("bad magic".into());
    }
    let (format_version, rest) = rest.split_first_chunk::<4>().ok_or_else(too_short)?;
    let (shards, rest) = rest.split_first_chunk::<4>().ok_or_else(too_short)?;
    let (&partitioning, rest) = rest.split_first().ok_or_else(too_short)?;
    let (n, node_id) = rest.split_first_chunk::<2>().ok_or_else(too_short)?;
    let n = u16::from_be_bytes(*n) as usize;
    if raw.len() != 23 + n {
        return Err(format!("{} bytes, expected {}", raw.len(), 23 + n));
    }
    if crc32fast::hash(body) != u32::from_be_bytes(*stored) {
        return Err("checksum mismatch".into());
    }
    // With the length checked, `node_id` is exactly the `n` id bytes.
    let node_id = std::str::from_utf8(node_id).map_err(|_| "node id is not UTF-8")?;
    Ok(Meta {
        format_version: u32::from_be_bytes(*format_version),
        shards: u32::from_be_bytes(*shards) as usize,
        partitioning,
        node_id: node_id.to_string(),
    })
}

/// Writes `bytes` to `path` atomically and durably.
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), DataDirError> {
    disk::replace_file_blocking(dir, name, bytes).map_err(|e| io_err(&dir.join(name), "replace", e))
}

impl DataDir {
    /// Opens (creating if needed) and locks `root`. `shards` is the count
    /// asked for: `None` adopts the stored count, or `default_shards` for a
    /// new directory. A directory recorded under another node id than
    /// `node_id` is refused unless `allow_node_id_change`, which records
    /// `node_id` instead.
    pub(crate) fn open(
        root: &Path,
        shards: Option<usize>,
        default_shards: usize,
        node_id: &str,
        allow_node_id_change: bool,
    ) -> Result<Self, DataDirError> {
        ensure_dir(root, DirRole::Data)?;
        let lock_path = root.join("LOCK");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| io_err(&lock_path, "open the lock file", e))?;
        match super::lock::acquire(&lock) {
            Ok(()) => {}
            Err(super::lock::LockError::Held { pid }) => {
                return Err(DataDirError::Locked {
                    path: root.to_path_buf(),
                    pid,
                })
            }
            Err(super::lock::LockError::Io(e)) => return Err(io_err(&lock_path, "lock", e)),
        }
        let meta_path = root.join("META");
        let meta = match disk::read_file(&meta_path).map_err(|e| io_err(&meta_path, "read", e))? {
            Some(raw) => {
                let meta = decode_meta(&raw).map_err(|reason| DataDirError::Corrupted {
                    path: meta_path.clone(),
                    reason,
                })?;
                if meta.format_version != FORMAT_VERSION {
                    return Err(DataDirError::UnknownFormat {
                        path: meta_path,
                        found: meta.format_version,
                    });
                }
                if meta.partitioning != PARTITIONING_TOKEN_RANGE {
                    return Err(DataDirError::UnknownPartitioning {
                        path: meta_path,
                        found: meta.partitioning,
                    });
                }
                if let Some(asked) = shards {
                    if asked != meta.shards {
                        return Err(DataDirError::ShardCountMismatch {
                            path: root.to_path_buf(),
                            stored: meta.shards,
                            asked,
                        });
                    }
                }
                if meta.node_id != node_id {
                    if !allow_node_id_change {
                        return Err(DataDirError::NodeIdMismatch {
                            path: root.to_path_buf(),
                            stored: meta.node_id,
                            configured: node_id.to_string(),
                        });
                    }
                    tracing::warn!(stored = %meta.node_id, configured = %node_id,
                        "node id differs from the one recorded in META; recording the new id \
                         (--allow-node-id-change)");
                    let updated = Meta {
                        node_id: node_id.to_string(),
                        ..meta
                    };
                    write_atomic(root, "META", &encode_meta(&updated))?;
                    updated
                } else {
                    meta
                }
            }
            None => {
                let has_shards = disk::list_dir(root)
                    .map_err(|e| io_err(root, "list", e))?
                    .iter()
                    .any(|name| name.starts_with("shard-"));
                if has_shards {
                    return Err(DataDirError::NoMetadata {
                        path: root.to_path_buf(),
                    });
                }
                let meta = Meta {
                    format_version: FORMAT_VERSION,
                    shards: shards.unwrap_or(default_shards),
                    partitioning: PARTITIONING_TOKEN_RANGE,
                    node_id: node_id.to_string(),
                };
                write_atomic(root, "META", &encode_meta(&meta))?;
                meta
            }
        };
        for shard in 0..meta.shards {
            let dir = shard_dir(root, shard);
            ensure_dir(&dir, DirRole::Shard)?;
        }
        Ok(Self {
            root: root.to_path_buf(),
            meta,
            _lock: lock,
        })
    }

    pub(crate) fn meta(&self) -> &Meta {
        &self.meta
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }
}

/// The folder of one shard.
pub(crate) fn shard_dir(root: &Path, shard: usize) -> PathBuf {
    root.join(format!("shard-{shard:03}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_round_trips_and_every_flip_is_detected() {
        let meta = Meta {
            format_version: 1,
            shards: 4,
            partitioning: 1,
            node_id: "node-a".into(),
        };
        let raw = encode_meta(&meta);
        assert_eq!(decode_meta(&raw).unwrap(), meta);
        for i in 0..raw.len() {
            let mut bad = raw.clone();
            bad[i] ^= 0x01;
            assert!(decode_meta(&bad).is_err(), "flip at byte {i} not detected");
        }
    }

    #[test]
    fn shard_count_is_recorded_and_enforced() {
        let dir = tempfile::tempdir().unwrap();
        let d = DataDir::open(dir.path(), None, 3, "n", false).unwrap();
        assert_eq!(d.meta().shards, 3);
        drop(d);
        // Unset count adopts the stored one.
        let d = DataDir::open(dir.path(), None, 8, "n", false).unwrap();
        assert_eq!(d.meta().shards, 3);
        drop(d);
        let err = DataDir::open(dir.path(), Some(2), 8, "n", false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--shards 3"), "{err}");
    }

    #[test]
    fn second_open_is_refused_while_locked() {
        let dir = tempfile::tempdir().unwrap();
        let _held = DataDir::open(dir.path(), Some(1), 1, "n", false).unwrap();
        let err = DataDir::open(dir.path(), Some(1), 1, "n", false).unwrap_err();
        assert!(matches!(err, DataDirError::Locked { .. }), "{err}");
    }

    #[test]
    fn unknown_format_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let meta = Meta {
            format_version: 99,
            shards: 1,
            partitioning: 1,
            node_id: "n".into(),
        };
        std::fs::write(dir.path().join("META"), encode_meta(&meta)).unwrap();
        let err = DataDir::open(dir.path(), None, 1, "n", false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("format 99"), "{err}");
    }

    #[test]
    fn shard_folders_without_meta_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("shard-000")).unwrap();
        let err = DataDir::open(dir.path(), None, 1, "n", false).unwrap_err();
        assert!(matches!(err, DataDirError::NoMetadata { .. }), "{err}");
    }

    #[test]
    fn another_node_id_is_refused_unless_allowed() {
        let dir = tempfile::tempdir().unwrap();
        drop(DataDir::open(dir.path(), Some(2), 2, "node-a", false).unwrap());
        let meta_before = std::fs::read(dir.path().join("META")).unwrap();

        let err = DataDir::open(dir.path(), None, 2, "node-b", false).unwrap_err();
        match &err {
            DataDirError::NodeIdMismatch {
                path,
                stored,
                configured,
            } => {
                assert_eq!(path, dir.path());
                assert_eq!((stored.as_str(), configured.as_str()), ("node-a", "node-b"));
            }
            other => panic!("expected NodeIdMismatch, got {other:?}"),
        }
        let message = err.to_string();
        for part in [
            dir.path().display().to_string().as_str(),
            "\"node-a\"",
            "\"node-b\"",
            "--node-id node-a",
            "--allow-node-id-change",
        ] {
            assert!(message.contains(part), "{part:?} missing from: {message}");
        }
        // The refusal leaves META as it was and the directory unlocked.
        assert_eq!(std::fs::read(dir.path().join("META")).unwrap(), meta_before);
        let d = DataDir::open(dir.path(), None, 2, "node-a", false).unwrap();
        assert_eq!(d.meta().node_id, "node-a");
        drop(d);

        // Allowed: the new id is recorded, and then opens without the flag.
        let d = DataDir::open(dir.path(), None, 2, "node-b", true).unwrap();
        assert_eq!(d.meta().node_id, "node-b");
        assert_eq!(d.meta().shards, 2);
        drop(d);
        let raw = std::fs::read(dir.path().join("META")).unwrap();
        assert_eq!(decode_meta(&raw).unwrap().node_id, "node-b");
        let d = DataDir::open(dir.path(), None, 2, "node-b", false).unwrap();
        assert_eq!(d.meta().node_id, "node-b");
        drop(d);
        assert!(matches!(
            DataDir::open(dir.path(), None, 2, "node-a", false),
            Err(DataDirError::NodeIdMismatch { .. })
        ));
    }

    #[test]
    fn the_same_node_id_opens_with_or_without_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        drop(DataDir::open(dir.path(), Some(1), 1, "n", true).unwrap());
        let meta_before = std::fs::read(dir.path().join("META")).unwrap();
        drop(DataDir::open(dir.path(), None, 1, "n", true).unwrap());
        drop(DataDir::open(dir.path(), None, 1, "n", false).unwrap());
        assert_eq!(std::fs::read(dir.path().join("META")).unwrap(), meta_before);
    }

    #[test]
    fn a_file_where_a_directory_belongs_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let err = DataDir::open(&file, None, 1, "n", false).unwrap_err();
        assert!(
            matches!(
                err,
                DataDirError::NotADirectory {
                    role: DirRole::Data,
                    found: "a regular file",
                    ..
                }
            ),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains(&file.display().to_string()) && message.contains("regular file"),
            "{message}"
        );

        // A data directory below a file cannot be created.
        let below = file.join("data");
        let message = DataDir::open(&below, None, 1, "n", false)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains(&below.display().to_string()) && message.contains("Not a directory"),
            "{message}"
        );

        // A file where a shard folder belongs.
        let root = dir.path().join("data");
        drop(DataDir::open(&root, Some(2), 2, "n", false).unwrap());
        let shard = shard_dir(&root, 1);
        std::fs::remove_dir(&shard).unwrap();
        std::fs::write(&shard, b"x").unwrap();
        let err = DataDir::open(&root, None, 2, "n", false).unwrap_err();
        assert!(
            matches!(
                err,
                DataDirError::NotADirectory {
                    role: DirRole::Shard,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            err.to_string().contains(&shard.display().to_string()),
            "{err}"
        );
    }
}
