//! Sequential scans of SSTables, for compaction and range reads.
//!
//! Owns [`RunScan`]: the entries of a run of tables with disjoint, increasing
//! key ranges (one level of L1+, or a single L0 table), in key order, read
//! one data block per DMA read, optionally from a start key on (the first
//! block read is the one the index names for it). Invariants: every block is checksum-verified
//! and checked against its index entry before any entry is used (corruption
//! is an error, never data); keys come out strictly increasing; the scan
//! holds its tables (`Rc`), so their files stay open while it runs.

use super::{read_exact, sst_error, Table};
use crate::engine::EngineError;
use crate::model::Version;
use crate::storage::sstable::{self, BlockEntries};
use bytes::Bytes;
use std::collections::VecDeque;
use std::rc::Rc;

/// One key's entry read from a table.
pub(crate) type Entry = (Bytes, Vec<Version>);

pub(crate) struct RunScan {
    tables: VecDeque<Rc<Table>>,
    /// Next block to read in `tables[0]`.
    next_block: usize,
    entries: Option<BlockEntries>,
    /// The entry `peek` shows.
    head: Option<Entry>,
    bytes_read: u64,
    /// Keys below this are skipped (set by [`RunScan::from_key`], cleared
    /// once the first block is positioned).
    from: Option<Bytes>,
}

impl RunScan {
    /// A scan over `tables`, which must be ordered by key with disjoint
    /// ranges (callers sort a level's tables by smallest key).
    pub(crate) fn new(tables: Vec<Rc<Table>>) -> Self {
        Self {
            tables: tables.into(),
            next_block: 0,
            entries: None,
            head: None,
            bytes_read: 0,
            from: None,
        }
    }

    /// A scan over `tables` (as [`RunScan::new`]) of the keys >= `from`:
    /// tables wholly below it are skipped and the first block read is the
    /// one that may hold it.
    pub(crate) fn from_key(tables: Vec<Rc<Table>>, from: Bytes) -> Self {
        let mut tables: VecDeque<Rc<Table>> = tables.into();
        while tables.front().is_some_and(|t| t.largest()[..] < from[..]) {
            tables.pop_front();
        }
        let next_block = tables
            .front()
            .and_then(|t| t.index.seek(&from))
            .unwrap_or(0);
        Self {
            tables,
            next_block,
            entries: None,
            head: None,
            bytes_read: 0,
            from: Some(from),
        }
    }

    /// The current entry without consuming it (`None` at the end). Call
    /// [`RunScan::fill`] first.
    pub(crate) fn peek(&self) -> Option<&Entry> {
        self.head.as_ref()
    }

    /// Takes the current entry; the next `fill` loads the one after it.
    pub(crate) fn take(&mut self) -> Option<Entry> {
        self.head.take()
    }

    /// Loads the next entry into the head if it is empty (reading a block
    /// when the current one is used up). Returns the disk bytes read.
    pub(crate) async fn fill(&mut self) -> Result<u64, EngineError> {
        let mut read = 0;
        while self.head.is_none() {
            if let Some(entries) = self.entries.as_mut() {
                match entries.next() {
                    Some(Ok(entry)) => {
                        self.head = Some(entry);
                        break;
                    }
                    Some(Err(e)) => {
                        let path = self.tables.front().map(|t| t.path().to_path_buf());
                        return Err(sst_error(&path.unwrap_or_default(), e));
                    }
                    None => self.entries = None,
                }
            }
            let Some(table) = self.tables.front().cloned() else {
                return Ok(read);
            };
            let Some(entry) = table.index.blocks().get(self.next_block) else {
                self.tables.pop_front();
                self.next_block = 0;
                continue;
            };
            let len = entry.handle.len as usize;
            let raw = read_exact(&table.file, &table.path, entry.handle.offset, len).await?;
            read += len as u64;
            let block = sstable::decode_indexed_block(entry, &raw)
                .map_err(|e| sst_error(&table.path, e))?;
            self.entries = Some(match self.from.take() {
                Some(from) => block.into_entries_from(&from),
                None => block.into_entries(),
            });
            self.next_block += 1;
        }
        self.bytes_read += read;
        Ok(read)
    }
}
