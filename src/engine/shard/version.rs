//! The tree version of one shard: one immutable value naming every live
//! table by level, the memtables waiting for flush, the WAL floor and the
//! next table file number (a "Version" in LevelDB's sense; called
//! [`TreeVersion`] apart from [`crate::model::Version`], one key's version).
//!
//! Owns the pure transitions ([`TreeVersion::rotated`],
//! [`TreeVersion::flushed`], [`TreeVersion::merged`],
//! [`TreeVersion::moved`]), each returning the next version and leaving
//! this one untouched, and [`TreeVersion::manifest`], the manifest derived
//! from a version (the manifest is never edited by hand).
//!
//! Invariants ([`TreeVersion::check`], asserted after every transition in
//! debug builds and by the model test):
//! - there are [`LEVELS`] levels; every table is listed once, under a file
//!   number below `next_file_no`;
//! - level 0 is newest first (tables may overlap); every deeper level is
//!   sorted by smallest key and its tables' key ranges are disjoint;
//! - memtables waiting for flush are oldest first;
//! - a version, once built, never changes; the only thing set later is its
//!   successor link ([`TreeVersion::successor`]), set once, by the shard,
//!   when the next version replaces it. A reader that started on a version
//!   follows the links to find every memtable rotated since it started, so
//!   it never misses versions a flush moved into a table it did not read.

use super::immutable::Immutable;
use crate::config::LEVELS;
use crate::engine::compaction::picker::TableInfo;
use crate::engine::table::Table;
use crate::storage::manifest::Manifest;
use std::cell::OnceCell;
use std::collections::HashSet;
use std::fmt;
use std::rc::Rc;

/// A transition asked for something the version does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum VersionError {
    /// A table named by a compaction or move is not live.
    TableNotLive { file_no: u64 },
    /// A flush names a memtable that is not waiting for flush.
    MemtableNotWaiting,
    /// A level number past the deepest level.
    NoSuchLevel { level: u8 },
}

impl fmt::Display for VersionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VersionError::TableNotLive { file_no } => write!(f, "table {file_no} is not live"),
            VersionError::MemtableNotWaiting => {
                write!(f, "the memtable to flush is not waiting for flush")
            }
            VersionError::NoSuchLevel { level } => write!(f, "level {level} does not exist"),
        }
    }
}

/// See the module documentation.
pub(crate) struct TreeVersion {
    shard_id: u32,
    /// `levels[0]` newest first; deeper levels by smallest key.
    levels: Vec<Vec<Rc<Table>>>,
    /// Oldest first.
    immutables: Vec<Rc<Immutable>>,
    /// WAL segments numbered below this hold nothing the tables lack.
    wal_min_segment: u64,
    /// Table file numbers at or above this were never listed.
    next_file_no: u64,
    successor: OnceCell<Rc<TreeVersion>>,
}

impl TreeVersion {
    /// The version a shard opens with: `tables` at the levels `manifest`
    /// lists them (paired by file number), and the memtable replay rebuilt.
    pub(crate) fn open(
        manifest: &Manifest,
        tables: Vec<Rc<Table>>,
        immutables: Vec<Rc<Immutable>>,
    ) -> Result<Self, VersionError> {
        let mut levels = vec![Vec::new(); LEVELS];
        for table in tables {
            let listed = manifest
                .tables
                .iter()
                .find(|m| m.file_no == table.file_no())
                .ok_or(VersionError::TableNotLive {
                    file_no: table.file_no(),
                })?;
            levels
                .get_mut(listed.level as usize)
                .ok_or(VersionError::NoSuchLevel {
                    level: listed.level,
                })?
                .push(table);
        }
        let mut v = Self {
            shard_id: manifest.shard_id,
            levels,
            immutables,
            wal_min_segment: manifest.wal_min_segment,
            next_file_no: manifest.next_file_no,
            successor: OnceCell::new(),
        };
        v.order_levels();
        Ok(v)
    }

    /// A copy with no successor, the base of every transition.
    fn next(&self) -> Self {
        Self {
            shard_id: self.shard_id,
            levels: self.levels.clone(),
            immutables: self.immutables.clone(),
            wal_min_segment: self.wal_min_segment,
            next_file_no: self.next_file_no,
            successor: OnceCell::new(),
        }
    }

    /// Level 0 newest first, deeper levels by smallest key.
    fn order_levels(&mut self) {
        if let Some(l0) = self.levels.first_mut() {
            l0.sort_by_key(|t| std::cmp::Reverse(t.file_no()));
        }
        for level in self.levels.iter_mut().skip(1) {
            level.sort_by(|a, b| a.smallest().cmp(b.smallest()));
        }
    }

    /// The active memtable became immutable: `imm` waits for flush.
    pub(crate) fn rotated(&self, imm: Rc<Immutable>) -> Self {
        let mut next = self.next();
        next.immutables.push(imm);
        next
    }

    /// `imm` was flushed as `table` (none when it was empty): the table
    /// joins level 0, the memtable leaves, and WAL segments below
    /// `wal_from` become obsolete.
    pub(crate) fn flushed(
        &self,
        imm: &Rc<Immutable>,
        table: Option<Rc<Table>>,
        wal_from: u64,
    ) -> Result<Self, VersionError> {
        let mut next = self.next();
        let before = next.immutables.len();
        next.immutables.retain(|i| !Rc::ptr_eq(i, imm));
        if next.immutables.len() == before {
            return Err(VersionError::MemtableNotWaiting);
        }
        if let Some(t) = table {
            next.next_file_no = next.next_file_no.max(t.file_no() + 1);
            next.levels[0].insert(0, t);
        }
        next.wal_min_segment = next.wal_min_segment.max(wal_from);
        Ok(next)
    }

    /// A compaction replaced the tables numbered `replaced` with `outputs`
    /// at `output_level`.
    pub(crate) fn merged(
        &self,
        replaced: &HashSet<u64>,
        outputs: &[Rc<Table>],
        output_level: u8,
    ) -> Result<Self, VersionError> {
        let mut next = self.next();
        if output_level as usize >= LEVELS {
            return Err(VersionError::NoSuchLevel {
                level: output_level,
            });
        }
        let mut removed = 0;
        for level in &mut next.levels {
            let before = level.len();
            level.retain(|t| !replaced.contains(&t.file_no()));
            removed += before - level.len();
        }
        if removed != replaced.len() {
            let missing = replaced
                .iter()
                .copied()
                .find(|no| self.table(*no).is_none())
                .unwrap_or_default();
            return Err(VersionError::TableNotLive { file_no: missing });
        }
        for t in outputs {
            next.next_file_no = next.next_file_no.max(t.file_no() + 1);
        }
        next.levels[output_level as usize].extend(outputs.iter().cloned());
        next.order_levels();
        Ok(next)
    }

    /// A trivial move: table `file_no` changes level, its file unchanged.
    pub(crate) fn moved(&self, file_no: u64, to_level: u8) -> Result<Self, VersionError> {
        if to_level as usize >= LEVELS {
            return Err(VersionError::NoSuchLevel { level: to_level });
        }
        let mut next = self.next();
        let mut found = None;
        for level in &mut next.levels {
            if let Some(i) = level.iter().position(|t| t.file_no() == file_no) {
                found = Some(level.remove(i));
            }
        }
        let table = found.ok_or(VersionError::TableNotLive { file_no })?;
        next.levels[to_level as usize].push(table);
        next.order_levels();
        Ok(next)
    }

    /// The same version, recording that file numbers below `next_file_no`
    /// may have been handed out.
    pub(crate) fn reserving(mut self, next_file_no: u64) -> Self {
        self.next_file_no = self.next_file_no.max(next_file_no);
        self
    }

    /// The manifest naming this version's tables.
    pub(crate) fn manifest(&self) -> Manifest {
        Manifest {
            shard_id: self.shard_id,
            next_file_no: self.next_file_no,
            wal_min_segment: self.wal_min_segment,
            tables: self
                .levels
                .iter()
                .enumerate()
                .flat_map(|(level, tables)| tables.iter().map(move |t| t.meta_at(level as u8)))
                .collect(),
        }
    }

    /// Checks the invariants of the module documentation.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.levels.len() != LEVELS {
            return Err(format!("{} levels, not {LEVELS}", self.levels.len()));
        }
        let mut seen = HashSet::new();
        for (level, tables) in self.levels.iter().enumerate() {
            for t in tables {
                if !seen.insert(t.file_no()) {
                    return Err(format!("table {} is listed twice", t.file_no()));
                }
                if t.file_no() >= self.next_file_no {
                    return Err(format!(
                        "table {} is not below the next file number {}",
                        t.file_no(),
                        self.next_file_no
                    ));
                }
            }
            for pair in tables.windows(2) {
                let (a, b) = (&pair[0], &pair[1]);
                if level == 0 && a.file_no() < b.file_no() {
                    return Err(format!(
                        "level 0 lists table {} before the newer {}",
                        a.file_no(),
                        b.file_no()
                    ));
                }
                if level > 0 && a.largest() >= b.smallest() {
                    return Err(format!(
                        "level {level} tables {} and {} overlap or are out of order",
                        a.file_no(),
                        b.file_no()
                    ));
                }
            }
        }
        Ok(())
    }

    /// Tables of `level` (empty past the deepest level).
    pub(crate) fn level(&self, level: usize) -> &[Rc<Table>] {
        self.levels.get(level).map_or(&[], |l| l.as_slice())
    }

    /// Every live table, level 0 first.
    pub(crate) fn tables(&self) -> impl Iterator<Item = &Rc<Table>> {
        self.levels.iter().flatten()
    }

    /// Every live table with its level, level 0 first.
    pub(crate) fn tables_by_level(&self) -> impl Iterator<Item = (u8, &Rc<Table>)> {
        self.levels
            .iter()
            .enumerate()
            .flat_map(|(level, tables)| tables.iter().map(move |t| (level as u8, t)))
    }

    /// Live table `file_no`, if any.
    pub(crate) fn table(&self, file_no: u64) -> Option<&Rc<Table>> {
        self.tables().find(|t| t.file_no() == file_no)
    }

    /// The compaction picker's view of every live table.
    pub(crate) fn table_infos(&self) -> Vec<TableInfo> {
        self.tables_by_level()
            .map(|(level, t)| TableInfo {
                file_no: t.file_no(),
                level,
                file_bytes: t.file_bytes(),
                smallest: t.smallest().clone(),
                largest: t.largest().clone(),
            })
            .collect()
    }

    /// Memtables waiting for flush, oldest first.
    pub(crate) fn immutables(&self) -> &[Rc<Immutable>] {
        &self.immutables
    }

    #[cfg(test)]
    pub(crate) fn wal_min_segment(&self) -> u64 {
        self.wal_min_segment
    }

    pub(crate) fn next_file_no(&self) -> u64 {
        self.next_file_no
    }

    /// The version that replaced this one, once there is one.
    pub(crate) fn successor(&self) -> Option<&Rc<TreeVersion>> {
        self.successor.get()
    }

    /// Records `next` as this version's successor (once; the shard's
    /// install step is the only caller).
    pub(crate) fn link(&self, next: &Rc<TreeVersion>) {
        let _ = self.successor.set(Rc::clone(next));
    }
}

impl Drop for TreeVersion {
    /// Unlinks the successor chain iteratively: a reader that held an old
    /// version across many installs must not drop the chain recursively.
    fn drop(&mut self) {
        let mut next = self.successor.take();
        while let Some(v) = next {
            next = match Rc::try_unwrap(v) {
                Ok(mut owned) => owned.successor.take(),
                Err(_) => None,
            };
        }
    }
}

#[cfg(test)]
mod tests;
