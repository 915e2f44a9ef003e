//! Manifest edits of one shard, the one way flush and compaction change the
//! set of live tables.
//!
//! Owns table file numbering and [`Shard::edit_manifest`]: under the
//! manifest lock, a copy of the manifest is edited and stored, then the same
//! change is mirrored in the live state in one synchronous step and the
//! epoch is bumped. Invariants: edits never interleave (one permit); the
//! live state changes only after its manifest replaced the previous one; a
//! file number is never handed out twice.

use super::{Shard, State};
use crate::engine::EngineError;
use crate::storage::manifest::{self, Manifest, StoreError};

/// Whether an edit's manifest is durable.
#[derive(Debug)]
pub(super) enum Stored {
    Durable,
    /// In place, but the directory sync failed (see
    /// [`StoreError::Unsynced`]): nothing the previous manifest lists may be
    /// deleted. Carries the sync error, for the caller to report.
    Unsynced(EngineError),
}

impl Stored {
    pub(super) fn is_durable(&self) -> bool {
        matches!(self, Stored::Durable)
    }

    /// `Ok` when durable, else the sync error.
    pub(super) fn into_result(self) -> Result<(), EngineError> {
        match self {
            Stored::Durable => Ok(()),
            Stored::Unsynced(e) => Err(e),
        }
    }
}

impl Shard {
    /// A fresh table file number (recorded by the next manifest edit).
    pub(super) fn allocate_file_no(&self) -> u64 {
        let mut st = self.state.borrow_mut();
        let n = st.manifest.next_file_no;
        st.manifest.next_file_no += 1;
        n
    }

    /// Edits the manifest with `edit` and stores it; once stored (durably
    /// or not), `install` mirrors the edit in the live state, told whether
    /// the manifest is durable. `Err`: nothing was stored and nothing
    /// changed.
    pub(super) async fn edit_manifest(
        &self,
        edit: impl FnOnce(&mut Manifest),
        install: impl FnOnce(&mut State, &Stored),
    ) -> Result<Stored, EngineError> {
        let _permit =
            self.manifest_lock
                .acquire_permit(1)
                .await
                .map_err(|e| EngineError::Internal {
                    what: format!("manifest lock: {e}"),
                })?;
        let mut next = self.state.borrow().manifest.clone();
        edit(&mut next);
        let stored = match manifest::store(&self.dir, &next).await {
            Ok(()) => Stored::Durable,
            Err(StoreError::NotStored(e)) => return Err(e.into()),
            Err(StoreError::Unsynced(e)) => Stored::Unsynced(e.into()),
        };
        {
            let mut st = self.state.borrow_mut();
            // File numbers handed out while the store ran stay reserved.
            next.next_file_no = next.next_file_no.max(st.manifest.next_file_no);
            st.manifest = next;
            install(&mut st, &stored);
        }
        self.epoch.set(self.epoch.get() + 1);
        Ok(stored)
    }
}
