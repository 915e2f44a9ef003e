//! The shard's live tree: the current [`TreeVersion`], the active
//! memtable, table file numbering, and the one way the version changes.
//!
//! Owns swapping the current version ([`Tree::install`], one synchronous
//! step that also links the old version to the new one) and manifest edits
//! ([`Tree::edit`]): under the edit lock, a pure transition is applied to
//! the current version, the manifest derived from the result is stored,
//! and the transition is applied again to the then-current version and
//! installed. Between the two applications only memtable rotations can have
//! happened (every transition that changes the manifest holds the lock),
//! and a rotation changes nothing the manifest holds, so the installed
//! version's manifest is the stored one (asserted in debug builds).
//! Invariants: edits never interleave; the version changes only after its
//! manifest replaced the previous one; a file number is never handed out
//! twice; every installed version passes [`TreeVersion::check`] (debug).

use super::version::{TreeVersion, VersionError};
use crate::engine::memtable::Memtable;
use crate::engine::EngineError;
use crate::storage::manifest::{self, StoreError};
use std::cell::{Cell, Ref, RefCell, RefMut};
use std::path::Path;
use std::rc::Rc;

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

pub(super) struct Tree {
    current: RefCell<Rc<TreeVersion>>,
    active: RefCell<Memtable>,
    next_file_no: Cell<u64>,
    /// One permit: held from computing a manifest edit until it is
    /// installed.
    edit_lock: glommio::sync::Semaphore,
}

fn version_error(e: VersionError) -> EngineError {
    EngineError::Internal {
        what: format!("table set edit: {e}"),
    }
}

impl Tree {
    pub(super) fn new(version: TreeVersion) -> Self {
        let next_file_no = version.next_file_no();
        Self {
            current: RefCell::new(Rc::new(version)),
            active: RefCell::new(Memtable::new()),
            next_file_no: Cell::new(next_file_no),
            edit_lock: glommio::sync::Semaphore::new(1),
        }
    }

    /// The current version; the caller holds it as long as it reads.
    pub(super) fn current(&self) -> Rc<TreeVersion> {
        Rc::clone(&self.current.borrow())
    }

    /// Whether `v` is still the current version.
    pub(super) fn is_current(&self, v: &Rc<TreeVersion>) -> bool {
        Rc::ptr_eq(v, &self.current.borrow())
    }

    /// The memtable writes go to now.
    pub(super) fn active(&self) -> Ref<'_, Memtable> {
        self.active.borrow()
    }

    pub(super) fn active_mut(&self) -> RefMut<'_, Memtable> {
        self.active.borrow_mut()
    }

    /// A fresh table file number (recorded by the next manifest edit).
    pub(super) fn allocate_file_no(&self) -> u64 {
        let n = self.next_file_no.get();
        self.next_file_no.set(n + 1);
        n
    }

    /// Makes `next` current in one step, linking the old version to it.
    pub(super) fn install(&self, next: TreeVersion) {
        debug_assert_eq!(next.check(), Ok(()));
        let next = Rc::new(next);
        let old = std::mem::replace(&mut *self.current.borrow_mut(), Rc::clone(&next));
        old.link(&next);
    }

    /// Applies `transition` to the current version, stores the manifest of
    /// the result, then installs it (see the module documentation). `Err`:
    /// nothing was stored and nothing changed.
    pub(super) async fn edit(
        &self,
        dir: &Path,
        transition: impl Fn(&TreeVersion) -> Result<TreeVersion, VersionError>,
    ) -> Result<Stored, EngineError> {
        let _permit =
            self.edit_lock
                .acquire_permit(1)
                .await
                .map_err(|e| EngineError::Internal {
                    what: format!("manifest lock: {e}"),
                })?;
        let reserved = self.next_file_no.get();
        let planned = transition(&self.current())
            .map_err(version_error)?
            .reserving(reserved);
        let manifest = planned.manifest();
        let stored = match manifest::store(dir, &manifest).await {
            Ok(()) => Stored::Durable,
            Err(StoreError::NotStored(e)) => return Err(e.into()),
            Err(StoreError::Unsynced(e)) => Stored::Unsynced(e.into()),
        };
        let next = transition(&self.current())
            .map_err(version_error)?
            .reserving(reserved);
        debug_assert_eq!(next.manifest(), manifest);
        self.install(next);
        Ok(stored)
    }
}
