//! The manifest of one shard: which SSTables are live, and which WAL
//! segments they make obsolete.
//!
//! Owns the manifest encoding and its crash-safe replacement: the new
//! contents go to `MANIFEST.tmp`, which is fdatasync'ed, renamed over
//! `MANIFEST`, and the directory is fsync'ed. A crash at any point leaves
//! either the old or the new manifest. Invariants: a table is listed only
//! after its file is durable; `wal_min_segment` rises only with the manifest
//! edit that lists the tables holding everything in the segments below it.
//!
//! Layout (integers big-endian):
//!
//! | field | size | notes |
//! |---|---|---|
//! | magic | 8 | `PDBMANI\x01` |
//! | format version | 4 | 1 |
//! | shard id | 4 | |
//! | next file number | 8 | numbers are never reused |
//! | wal_min_segment | 8 | WAL segments numbered below this are obsolete |
//! | table count | 4 | |
//! | tables | ... | per table: level u8, file number u64, file bytes u64, entry count u64, smallest key (u32 length + bytes), largest key (u32 length + bytes) |
//! | crc32 | 4 | over every byte before it |

use super::disk;
use super::error::StorageError;
use bytes::{Buf, BufMut, Bytes};
use std::path::Path;

const MAGIC: &[u8; 8] = b"PDBMANI\x01";
pub(crate) const FORMAT_VERSION: u32 = 1;
pub(crate) const FILE_NAME: &str = "MANIFEST";

/// One live SSTable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TableMeta {
    pub level: u8,
    pub file_no: u64,
    pub file_bytes: u64,
    pub entries: u64,
    pub smallest: Bytes,
    pub largest: Bytes,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Manifest {
    pub shard_id: u32,
    pub next_file_no: u64,
    pub wal_min_segment: u64,
    pub tables: Vec<TableMeta>,
}

/// The SSTable file name of `file_no`.
pub(crate) fn table_file_name(file_no: u64) -> String {
    format!("sst-{file_no:016}.sst")
}

impl Manifest {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.put_slice(MAGIC);
        out.put_u32(FORMAT_VERSION);
        out.put_u32(self.shard_id);
        out.put_u64(self.next_file_no);
        out.put_u64(self.wal_min_segment);
        out.put_u32(self.tables.len() as u32);
        for t in &self.tables {
            out.put_u8(t.level);
            out.put_u64(t.file_no);
            out.put_u64(t.file_bytes);
            out.put_u64(t.entries);
            out.put_u32(t.smallest.len() as u32);
            out.put_slice(&t.smallest);
            out.put_u32(t.largest.len() as u32);
            out.put_slice(&t.largest);
        }
        let crc = crc32fast::hash(&out);
        out.put_u32(crc);
        out
    }

    pub(crate) fn decode(raw: &[u8]) -> Result<Self, String> {
        let mut b = checked_body(raw, MAGIC, FORMAT_VERSION, 8 + 8 + 4 + 4, "manifest")?;
        let shard_id = b.get_u32();
        let next_file_no = b.get_u64();
        let wal_min_segment = b.get_u64();
        let count = b.get_u32() as usize;
        let mut tables = Vec::with_capacity(count.min(1 << 16));
        let short = || "truncated table list".to_string();
        for _ in 0..count {
            if b.remaining() < 1 + 8 + 8 + 8 + 4 {
                return Err(short());
            }
            let level = b.get_u8();
            let file_no = b.get_u64();
            let file_bytes = b.get_u64();
            let entries = b.get_u64();
            let n = b.get_u32() as usize;
            if b.remaining() < n + 4 {
                return Err(short());
            }
            let smallest = b.split_to(n);
            let n = b.get_u32() as usize;
            if b.remaining() < n {
                return Err(short());
            }
            let largest = b.split_to(n);
            tables.push(TableMeta {
                level,
                file_no,
                file_bytes,
                entries,
                smallest,
                largest,
            });
        }
        if b.has_remaining() {
            return Err(format!("{} trailing bytes", b.remaining()));
        }
        Ok(Self {
            shard_id,
            next_file_no,
            wal_min_segment,
            tables,
        })
    }
}

/// The bytes between the format version and the checksum of a small file
/// laid out as `magic (8) | format version u32 | body | crc32 u32` (the
/// checksum over every byte before it), once the length, checksum, magic and
/// version are checked; `body_min` is the shortest valid body. `what` names
/// the file in errors.
pub(crate) fn checked_body(
    raw: &[u8],
    magic: &[u8; 8],
    version: u32,
    body_min: usize,
    what: &str,
) -> Result<Bytes, String> {
    let too_short = || format!("{} bytes, shorter than an empty {what}", raw.len());
    if raw.len() < 8 + 4 + body_min + 4 {
        return Err(too_short());
    }
    let (body, stored) = raw.split_last_chunk::<4>().ok_or_else(too_short)?;
    if crc32fast::hash(body) != u32::from_be_bytes(*stored) {
        return Err("checksum mismatch".into());
    }
    let (found, rest) = body.split_first_chunk::<8>().ok_or_else(too_short)?;
    if found != magic {
        return Err("bad magic".into());
    }
    let (v, rest) = rest.split_first_chunk::<4>().ok_or_else(too_short)?;
    let found = u32::from_be_bytes(*v);
    if found != version {
        return Err(format!(
            "format version {found}, this binary reads {version}"
        ));
    }
    Ok(Bytes::copy_from_slice(rest))
}

/// Loads the shard's manifest; a missing file is an empty manifest.
pub(crate) fn load(dir: &Path, shard_id: u32) -> Result<Manifest, StorageError> {
    let path = dir.join(FILE_NAME);
    let Some(raw) = disk::read_file(&path)? else {
        return Ok(Manifest {
            shard_id,
            ..Manifest::default()
        });
    };
    let m = Manifest::decode(&raw)
        .map_err(|reason| StorageError::corrupted("manifest", &path, None, reason))?;
    if m.shard_id != shard_id {
        return Err(StorageError::WrongShard {
            file: "manifest",
            path,
            found: m.shard_id,
            expected: shard_id,
        });
    }
    Ok(m)
}

/// Why [`store`] failed, and whether the new manifest is already in place.
#[derive(Debug)]
pub(crate) enum StoreError {
    /// Nothing changed: the previous manifest is still the one in place.
    NotStored(StorageError),
    /// The new manifest replaced the old one (renamed into place), but the
    /// directory sync that makes the rename durable failed. The caller must
    /// treat the edit as done (the next start reads it), yet must not delete
    /// anything the previous manifest still needs: after a crash the
    /// previous manifest may come back.
    Unsynced(StorageError),
}

/// Tries of the directory sync after the rename before giving up.
const DIR_SYNC_TRIES: u32 = 3;

/// Replaces the manifest atomically and durably. See [`StoreError`] for
/// what a failure means.
pub(crate) async fn store(dir: &Path, manifest: &Manifest) -> Result<(), StoreError> {
    store_file(dir, FILE_NAME, manifest.encode()).await
}

/// Replaces file `name` of `dir` with `bytes` atomically and durably:
/// `<name>.tmp` written and fdatasync'ed, renamed over `name`, the
/// directory fsync'ed (the manifest's procedure, shared by every small
/// file a shard keeps). See [`StoreError`] for what a failure means.
pub(crate) async fn store_file(dir: &Path, name: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
    let tmp = dir.join(format!("{name}.tmp"));
    let dst = dir.join(name);
    let staged = async {
        disk::write_file(&tmp, bytes).await?;
        disk::rename(&tmp, &dst).await
    };
    staged.await.map_err(StoreError::NotStored)?;
    let mut attempt = 0;
    loop {
        let e = match disk::sync_dir(dir).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        tracing::warn!(dir = %dir.display(), file = name, attempt, error = %e, "directory sync after a rename failed");
        glommio::timer::sleep(std::time::Duration::from_millis(10 << attempt)).await;
        attempt += 1;
        if attempt == DIR_SYNC_TRIES {
            return Err(StoreError::Unsynced(e));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            shard_id: 3,
            next_file_no: 9,
            wal_min_segment: 4,
            tables: vec![
                TableMeta {
                    level: 0,
                    file_no: 7,
                    file_bytes: 8192,
                    entries: 10,
                    smallest: Bytes::from_static(b"a"),
                    largest: Bytes::from_static(b"m"),
                },
                TableMeta {
                    level: 1,
                    file_no: 8,
                    file_bytes: 4096,
                    entries: 2,
                    smallest: Bytes::from_static(b"n"),
                    largest: Bytes::from_static(b"z"),
                },
            ],
        }
    }

    #[test]
    fn round_trip_and_every_flip_detected() {
        let m = sample();
        let raw = m.encode();
        assert_eq!(Manifest::decode(&raw).unwrap(), m);
        for i in 0..raw.len() {
            let mut bad = raw.clone();
            bad[i] ^= 0x40;
            assert!(Manifest::decode(&bad).is_err(), "flip at {i} not detected");
        }
        for cut in 0..raw.len() {
            assert!(
                Manifest::decode(&raw[..cut]).is_err(),
                "truncation at {cut} not detected"
            );
        }
    }

    #[test]
    fn table_names() {
        assert_eq!(table_file_name(7), "sst-0000000000000007.sst");
    }
}
