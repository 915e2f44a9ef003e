//! Deleting a shard's table files: the ones a compaction replaced (once no
//! reader holds them) and the ones no manifest lists (found at start-up).
//!
//! Owns the graveyard. Invariants: a replaced table's file is deleted only
//! when the graveyard holds the last reference to it (no version a reader
//! holds lists it); a file is deleted at start-up only if the manifest just
//! loaded does not list it.

use crate::engine::table::Table;
use crate::engine::EngineError;
use crate::storage::disk;
use crate::storage::manifest::Manifest;
use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;

/// Tables replaced by compaction, waiting for their last readers.
#[derive(Default)]
pub(super) struct Graveyard {
    tables: RefCell<Vec<Rc<Table>>>,
}

impl Graveyard {
    pub(super) fn bury(&self, tables: impl IntoIterator<Item = Rc<Table>>) {
        self.tables.borrow_mut().extend(tables);
    }

    pub(super) fn is_empty(&self) -> bool {
        self.tables.borrow().is_empty()
    }

    /// Deletes the files of buried tables no reader holds any more.
    pub(super) async fn reap(&self) {
        let ready: Vec<Rc<Table>> = {
            let mut g = self.tables.borrow_mut();
            let (ready, wait): (Vec<_>, Vec<_>) =
                g.drain(..).partition(|t| Rc::strong_count(t) == 1);
            *g = wait;
            ready
        };
        for t in ready {
            let path = t.path().to_path_buf();
            drop(t);
            if let Err(e) = disk::remove(&path).await {
                tracing::warn!(file = %path.display(), error = %e, "cannot remove a compacted table");
            }
        }
    }
}

/// Deletes `sst-*.sst` files the manifest does not list (a flush that
/// crashed before its manifest edit). Start-up only, before the shard
/// serves.
pub(super) async fn remove_unlisted_tables(
    dir: &Path,
    manifest: &Manifest,
) -> Result<(), EngineError> {
    for name in disk::list_dir(dir)? {
        let file_no = name
            .strip_prefix("sst-")
            .and_then(|n| n.strip_suffix(".sst"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(no) = file_no {
            if !manifest.tables.iter().any(|t| t.file_no == no) {
                tracing::info!(
                    file = name,
                    "removing an SSTable no manifest lists (an unfinished flush or compaction, or a table a compaction replaced)"
                );
                disk::remove(&dir.join(&name)).await?;
            }
        }
    }
    Ok(())
}
