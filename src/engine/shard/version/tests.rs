//! Unit tests of the tree version's transitions, on real tables in a
//! glommio executor.

use super::*;
use crate::engine::memtable::Memtable;
use crate::engine::shard::tests::with_executor;
use crate::model::{VectorClock, Version};
use bytes::Bytes;
use std::path::Path;

async fn table(dir: &Path, file_no: u64, keys: &[&str]) -> Rc<Table> {
    let mut mem = Memtable::new();
    for k in keys {
        let version = Version {
            clock: VectorClock::from_entries([("n".to_string(), 1)], 4).unwrap(),
            timestamp_ms: 1,
            value: Some(Bytes::from_static(b"v")),
        };
        mem.apply(&Bytes::copy_from_slice(k.as_bytes()), version);
    }
    let meta = Table::write(dir, file_no, mem.iter(), 4096).await.unwrap();
    Rc::new(Table::open(dir, meta).await.unwrap())
}

fn empty() -> TreeVersion {
    let manifest = Manifest {
        shard_id: 3,
        next_file_no: 1,
        wal_min_segment: 0,
        tables: Vec::new(),
    };
    TreeVersion::open(&manifest, Vec::new(), Vec::new()).unwrap()
}

fn waiting() -> Rc<Immutable> {
    Rc::new(Immutable::replayed(Memtable::new(), 7))
}

fn files(v: &TreeVersion, level: usize) -> Vec<u64> {
    v.level(level).iter().map(|t| t.file_no()).collect()
}

#[test]
fn a_flush_puts_its_table_first_in_level_0_and_leaves_the_old_version_alone() {
    with_executor(|dir| async move {
        let imm = waiting();
        let v0 = empty().rotated(Rc::clone(&imm));
        let v1 = v0
            .flushed(&imm, Some(table(&dir, 1, &["a", "c"]).await), 7)
            .unwrap();
        let imm2 = waiting();
        let v2 = v1
            .rotated(Rc::clone(&imm2))
            .flushed(&imm2, Some(table(&dir, 2, &["b"]).await), 9)
            .unwrap();
        assert_eq!(files(&v2, 0), vec![2, 1]);
        assert!(v2.immutables().is_empty());
        assert_eq!(v2.wal_min_segment(), 9);
        assert_eq!(v2.next_file_no(), 3);
        assert_eq!(v2.check(), Ok(()));
        // Transitions are pure: the versions they started from are unchanged.
        assert_eq!(v0.immutables().len(), 1);
        assert!(v0.level(0).is_empty());
        assert_eq!(files(&v1, 0), vec![1]);
        assert_eq!(
            v2.flushed(&imm2, None, 10).err(),
            Some(VersionError::MemtableNotWaiting)
        );
    });
}

#[test]
fn a_merge_replaces_its_inputs_and_keeps_deeper_levels_sorted() {
    with_executor(|dir| async move {
        let imm = waiting();
        let v = empty()
            .rotated(Rc::clone(&imm))
            .flushed(&imm, Some(table(&dir, 1, &["a", "z"]).await), 1)
            .unwrap();
        let outputs = [
            table(&dir, 5, &["m", "n"]).await,
            table(&dir, 4, &["a", "b"]).await,
        ];
        let replaced: HashSet<u64> = [1].into_iter().collect();
        let merged = v.merged(&replaced, &outputs, 1).unwrap();
        assert!(merged.level(0).is_empty());
        assert_eq!(files(&merged, 1), vec![4, 5], "sorted by smallest key");
        assert_eq!(merged.next_file_no(), 6);
        assert_eq!(merged.check(), Ok(()));
        let manifest = merged.manifest();
        assert_eq!(manifest.shard_id, 3);
        assert!(manifest.tables.iter().all(|t| t.level == 1));
        assert_eq!(
            merged.merged(&replaced, &[], 1).err(),
            Some(VersionError::TableNotLive { file_no: 1 })
        );
        assert_eq!(
            merged.merged(&HashSet::new(), &[], LEVELS as u8).err(),
            Some(VersionError::NoSuchLevel {
                level: LEVELS as u8
            })
        );
    });
}

#[test]
fn a_move_changes_the_level_the_manifest_records() {
    with_executor(|dir| async move {
        let imm = waiting();
        let v = empty()
            .rotated(Rc::clone(&imm))
            .flushed(&imm, Some(table(&dir, 1, &["k"]).await), 1)
            .unwrap();
        let moved = v.moved(1, 2).unwrap();
        assert_eq!(files(&moved, 2), vec![1]);
        assert_eq!(moved.manifest().tables[0].level, 2);
        assert_eq!(
            v.manifest().tables[0].level,
            0,
            "the old version is unchanged"
        );
        assert_eq!(
            moved.moved(9, 1).err(),
            Some(VersionError::TableNotLive { file_no: 9 })
        );
    });
}

#[test]
fn check_finds_overlapping_tables_below_level_0() {
    with_executor(|dir| async move {
        let outputs = [
            table(&dir, 1, &["a", "m"]).await,
            table(&dir, 2, &["k", "z"]).await,
        ];
        let v = empty().merged(&HashSet::new(), &outputs, 1).unwrap();
        let err = v.check().unwrap_err();
        assert!(err.contains("overlap"), "{err}");
        // Level 0 may overlap.
        let v = empty().merged(&HashSet::new(), &outputs, 0).unwrap();
        assert_eq!(v.check(), Ok(()));
    });
}

#[test]
fn open_places_tables_at_their_manifest_levels() {
    with_executor(|dir| async move {
        let a = table(&dir, 1, &["a"]).await;
        let b = table(&dir, 2, &["b"]).await;
        let manifest = Manifest {
            shard_id: 0,
            next_file_no: 3,
            wal_min_segment: 4,
            tables: vec![a.meta_at(0), b.meta_at(3)],
        };
        let v = TreeVersion::open(&manifest, vec![b, a], Vec::new()).unwrap();
        assert_eq!(files(&v, 0), vec![1]);
        assert_eq!(files(&v, 3), vec![2]);
        let mut derived = v.manifest();
        derived.tables.sort_by_key(|t| t.file_no);
        assert_eq!(derived, manifest);
    });
}

#[test]
fn a_long_successor_chain_drops_without_recursion() {
    let first = Rc::new(empty());
    let mut last = Rc::clone(&first);
    for _ in 0..200_000 {
        let next = Rc::new(last.rotated(waiting()).flushed_all());
        last.link(&next);
        last = next;
    }
    drop(last);
    drop(first);
}

impl TreeVersion {
    /// The same tables with no memtable waiting (test helper).
    fn flushed_all(&self) -> Self {
        let mut next = self.next();
        next.immutables.clear();
        next
    }
}
