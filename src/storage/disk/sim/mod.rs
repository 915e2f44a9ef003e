//! A simulated disk for tests: files in memory, with faults and power loss.
//!
//! Owns the simulated file system a test installs for its thread
//! ([`install`]); while installed, every operation of the I/O seam on that
//! thread lands here. Each file (an inode) keeps its current bytes and the
//! bytes made durable (by fdatasync, or by a write through a handle opened
//! [`Mode::AppendDurable`]); each name is current, and durable
//! once a sync of its folder covered it. [`SimDisk::power_cycle`] keeps only
//! what is durable (see [`power`]). Faults come from the plan in [`faults`];
//! a capacity makes writes that need more space fail with ENOSPC.
//!
//! Invariants:
//! - a failed operation changes nothing (a short write writes a prefix and
//!   says so), except a durable write whose sync half fails: its bytes are
//!   written but not durable, as with a real O_DSYNC write;
//! - after a power cycle, files opened before it fail every operation, as a
//!   process that died with the machine would;
//! - folders are durable from their creation (the storage layer creates
//!   them once, before any file in them);
//! - every operation completes at once (no await inside), so a run is a
//!   function of its inputs and its seed.

use super::{EntryKind, Mode};
use crate::storage::error::StorageError;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

pub(crate) mod faults;
mod power;
#[cfg(test)]
mod tests;

pub(crate) use faults::{Fault, Op};

/// Runs `f` on a fresh glommio executor whose storage I/O goes to a
/// simulated disk seeded with `seed`, with a shard folder on it.
pub(crate) fn with_sim_executor<F, Fut>(seed: u64, f: F)
where
    F: FnOnce(Rc<SimDisk>, PathBuf) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(256 * 1024)
        .spawn(move || async move {
            let sim = SimDisk::new(seed);
            let _installed = install(Rc::clone(&sim));
            let dir = PathBuf::from("/sim/shard-000");
            super::create_dir_all(&dir).unwrap();
            f(sim, dir).await;
        })
        .unwrap()
        .join()
        .unwrap();
}

/// The block of space accounting and of torn writes.
pub(crate) const BLOCK_BYTES: u64 = 4096;

thread_local! {
    static CURRENT: RefCell<Option<Rc<SimDisk>>> = const { RefCell::new(None) };
}

/// The simulated disk installed on this thread, if any.
pub(crate) fn current() -> Option<Rc<SimDisk>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Routes this thread's storage I/O to `disk` until the guard drops.
pub(crate) fn install(disk: Rc<SimDisk>) -> Installed {
    CURRENT.with(|c| *c.borrow_mut() = Some(disk));
    Installed(())
}

/// Uninstalls the simulated disk when dropped.
pub(crate) struct Installed(());

impl Drop for Installed {
    fn drop(&mut self) {
        CURRENT.with(|c| *c.borrow_mut() = None);
    }
}

#[derive(Debug, Default, Clone)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
    /// Offset and length of the last write no fdatasync covered yet.
    last_unsynced: Option<(u64, usize)>,
}

#[derive(Debug, Default)]
struct State {
    names: BTreeMap<PathBuf, u64>,
    durable_names: BTreeMap<PathBuf, u64>,
    inodes: HashMap<u64, Inode>,
    dirs: BTreeSet<PathBuf>,
    next_ino: u64,
    capacity_bytes: Option<u64>,
    faults: faults::Faults,
    /// Folders with a rename no sync has covered yet.
    renamed_in: BTreeSet<PathBuf>,
    /// Power cycles so far; a file handle from an older one is dead.
    epoch: u64,
    rng: u64,
}

/// A simulated disk (see the module documentation).
#[derive(Debug, Default)]
pub(crate) struct SimDisk {
    state: RefCell<State>,
}

/// Copies `src` into `buf` at `pos`, growing `buf` with zeros to fit.
fn write_into(buf: &mut Vec<u8>, pos: usize, src: &[u8]) {
    let end = pos + src.len();
    if buf.len() < end {
        buf.resize(end, 0);
    }
    if let Some(dst) = buf.get_mut(pos..end) {
        dst.copy_from_slice(src);
    }
}

fn os(op: &'static str, path: &Path, errno: i32) -> StorageError {
    StorageError::io(op, path, io::Error::from_raw_os_error(errno))
}

fn blocks(len: usize) -> u64 {
    (len as u64).div_ceil(BLOCK_BYTES)
}

impl State {
    fn used_blocks(&self) -> u64 {
        self.names
            .values()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter_map(|ino| self.inodes.get(ino))
            .map(|i| blocks(i.data.len()))
            .sum()
    }

    fn free_bytes(&self) -> u64 {
        match self.capacity_bytes {
            None => u64::MAX / 2,
            Some(cap) => cap.saturating_sub(self.used_blocks() * BLOCK_BYTES),
        }
    }

    /// Fails with ENOSPC when growing a file from `old` to `new` bytes
    /// needs more blocks than are free.
    fn room_for(
        &self,
        old: usize,
        new: usize,
        op: &'static str,
        path: &Path,
    ) -> Result<(), StorageError> {
        let need = blocks(new).saturating_sub(blocks(old)) * BLOCK_BYTES;
        if need > self.free_bytes() {
            return Err(os(op, path, libc::ENOSPC));
        }
        Ok(())
    }

    fn check(
        &mut self,
        op: Op,
        what: &'static str,
        path: &Path,
    ) -> Result<Option<Fault>, StorageError> {
        match self.faults.check(op, &path.display()) {
            Some(Fault::Errno(e)) => Err(os(what, path, e)),
            other => Ok(other),
        }
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*: reproducible from the seed, good enough for choices.
        let mut x = self.rng.max(1);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

impl SimDisk {
    /// An empty disk of unlimited size; `seed` drives torn writes.
    pub(crate) fn new(seed: u64) -> Rc<Self> {
        let disk = Self::default();
        disk.state.borrow_mut().rng = seed ^ 0x9e37_79b9_7f4a_7c15;
        Rc::new(disk)
    }

    /// The disk's size (its capacity, or a huge figure when unlimited) and
    /// what is free.
    pub(super) fn space(&self) -> super::Space {
        let s = self.state.borrow();
        super::Space {
            total_bytes: s.capacity_bytes.unwrap_or(u64::MAX / 2),
            free_bytes: s.free_bytes(),
        }
    }

    /// Limits the space files may take (`None`: unlimited).
    pub(crate) fn set_capacity(&self, bytes: Option<u64>) {
        self.state.borrow_mut().capacity_bytes = bytes;
    }

    /// See [`faults::Faults::add`].
    pub(crate) fn fail(&self, op: Option<Op>, skip: u64, count: u64, fault: Fault) {
        self.state.borrow_mut().faults.add(op, skip, count, fault);
    }

    /// The power fails after `ops` more operations.
    pub(crate) fn crash_after(&self, ops: u64) {
        self.state.borrow_mut().faults.crash_after(ops);
    }

    pub(crate) fn crashed(&self) -> bool {
        self.state.borrow().faults.crashed()
    }

    /// Operations seen so far.
    pub(crate) fn ops(&self) -> u64 {
        self.state.borrow().faults.ops()
    }

    /// What was injected so far, for a failing test's message.
    pub(crate) fn fault_log(&self) -> Vec<String> {
        self.state.borrow().faults.log().to_vec()
    }

    /// Forgets every fault rule (the power stays on).
    pub(crate) fn clear_faults(&self) {
        self.state.borrow_mut().faults.clear();
    }

    /// Current bytes of the file at `path`, for tests that look inside.
    pub(crate) fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        let s = self.state.borrow();
        let ino = s.names.get(path)?;
        s.inodes.get(ino).map(|i| i.data.clone())
    }

    /// Replaces the current bytes of the file at `path` (a test damaging
    /// data at rest); durable at once.
    pub(crate) fn set_contents(&self, path: &Path, bytes: Vec<u8>) {
        let mut s = self.state.borrow_mut();
        if let Some(ino) = s.names.get(path).copied() {
            if let Some(i) = s.inodes.get_mut(&ino) {
                i.data = bytes.clone();
                i.durable = bytes;
                i.last_unsynced = None;
            }
        }
    }

    pub(super) fn open(self: Rc<Self>, path: &Path, mode: Mode) -> Result<SimFile, StorageError> {
        let mut s = self.state.borrow_mut();
        let what = if mode == Mode::Create {
            "create"
        } else {
            "open"
        };
        s.check(Op::Open, what, path)?;
        let parent_ok = path.parent().is_some_and(|p| s.dirs.contains(p));
        let ino = match (s.names.get(path).copied(), mode) {
            (Some(ino), Mode::Create) => {
                if let Some(i) = s.inodes.get_mut(&ino) {
                    i.data.clear();
                    i.last_unsynced = None;
                }
                ino
            }
            (Some(ino), _) => ino,
            (None, Mode::Create) if parent_ok => {
                let ino = s.next_ino;
                s.next_ino += 1;
                s.inodes.insert(ino, Inode::default());
                s.names.insert(path.to_path_buf(), ino);
                ino
            }
            (None, _) => return Err(os(what, path, libc::ENOENT)),
        };
        let epoch = s.epoch;
        drop(s);
        Ok(SimFile {
            disk: self,
            ino,
            epoch,
            path: path.to_path_buf(),
            durable_writes: mode == Mode::AppendDurable,
        })
    }

    pub(super) fn sync_dir(&self, dir: &Path) -> Result<(), StorageError> {
        let mut s = self.state.borrow_mut();
        let op = if s.renamed_in.contains(dir) {
            Op::SyncRename
        } else {
            Op::SyncDir
        };
        s.check(op, "sync directory", dir)?;
        s.renamed_in.remove(dir);
        let in_dir = |p: &PathBuf| p.parent() == Some(dir);
        s.durable_names.retain(|p, _| !in_dir(p));
        let now: Vec<(PathBuf, u64)> = s
            .names
            .iter()
            .filter(|(p, _)| in_dir(p))
            .map(|(p, i)| (p.clone(), *i))
            .collect();
        s.durable_names.extend(now);
        Ok(())
    }

    pub(super) fn rename(&self, from: &Path, to: &Path) -> Result<(), StorageError> {
        let mut s = self.state.borrow_mut();
        s.check(Op::Rename, "rename", to)?;
        let Some(ino) = s.names.remove(from) else {
            return Err(os("rename", from, libc::ENOENT));
        };
        s.names.insert(to.to_path_buf(), ino);
        if let Some(dir) = to.parent() {
            s.renamed_in.insert(dir.to_path_buf());
        }
        Ok(())
    }

    pub(super) fn remove(&self, path: &Path) -> Result<(), StorageError> {
        let mut s = self.state.borrow_mut();
        s.check(Op::Remove, "remove", path)?;
        s.names.remove(path);
        Ok(())
    }

    pub(super) async fn write_file(
        self: Rc<Self>,
        path: &Path,
        bytes: &[u8],
    ) -> Result<(), StorageError> {
        let file = self.open(path, Mode::Create)?;
        let written = file.write_at(bytes, 0).await?;
        if written != bytes.len() {
            return Err(StorageError::ShortWrite {
                path: path.to_path_buf(),
                written,
                wanted: bytes.len() as u64,
            });
        }
        file.fdatasync().await
    }

    pub(super) fn replace_file_blocking(
        &self,
        tmp: &Path,
        dst: &Path,
        bytes: &[u8],
    ) -> Result<(), StorageError> {
        {
            let mut s = self.state.borrow_mut();
            s.check(Op::Write, "write", tmp)?;
            let old = s
                .names
                .get(dst)
                .and_then(|i| s.inodes.get(i))
                .map_or(0, |i| i.data.len());
            s.room_for(old, old + bytes.len(), "write", tmp)?;
            let ino = s.next_ino;
            s.next_ino += 1;
            let data = bytes.to_vec();
            s.inodes.insert(
                ino,
                Inode {
                    durable: data.clone(),
                    data,
                    last_unsynced: None,
                },
            );
            s.names.insert(tmp.to_path_buf(), ino);
        }
        self.rename(tmp, dst)?;
        match dst.parent() {
            Some(dir) => self.sync_dir(dir),
            None => Ok(()),
        }
    }

    pub(super) fn read_file(&self, path: &Path) -> Result<Option<Vec<u8>>, StorageError> {
        let mut s = self.state.borrow_mut();
        s.check(Op::Read, "read", path)?;
        let Some(ino) = s.names.get(path) else {
            return Ok(None);
        };
        Ok(s.inodes.get(ino).map(|i| i.data.clone()))
    }

    pub(super) fn list_dir(&self, dir: &Path) -> Result<Vec<String>, StorageError> {
        let mut s = self.state.borrow_mut();
        s.check(Op::List, "list", dir)?;
        if !s.dirs.contains(dir) {
            return Err(os("list", dir, libc::ENOENT));
        }
        let names = s.names.keys().chain(s.dirs.iter());
        Ok(names
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
            .collect())
    }

    pub(super) fn entry_kind(&self, path: &Path) -> Option<EntryKind> {
        let s = self.state.borrow();
        if s.dirs.contains(path) {
            Some(EntryKind::Dir)
        } else if s.names.contains_key(path) {
            Some(EntryKind::File)
        } else {
            None
        }
    }

    pub(super) fn create_dir_all(&self, dir: &Path) {
        let mut s = self.state.borrow_mut();
        for d in dir.ancestors() {
            if !d.as_os_str().is_empty() {
                s.dirs.insert(d.to_path_buf());
            }
        }
    }
}

/// An open simulated file.
pub(crate) struct SimFile {
    disk: Rc<SimDisk>,
    ino: u64,
    epoch: u64,
    path: PathBuf,
    /// Opened [`Mode::AppendDurable`]: each write is also a sync of the
    /// bytes it wrote (checked as a write, then as a sync).
    durable_writes: bool,
}

impl SimFile {
    /// The state, or EIO for a handle that outlived a power cycle.
    fn state(&self, what: &'static str) -> Result<std::cell::RefMut<'_, State>, StorageError> {
        let s = self.disk.state.borrow_mut();
        if s.epoch != self.epoch {
            return Err(os(what, &self.path, libc::EIO));
        }
        Ok(s)
    }

    fn inode<'a>(
        s: &'a mut State,
        ino: u64,
        path: &Path,
        what: &'static str,
    ) -> Result<&'a mut Inode, StorageError> {
        s.inodes
            .get_mut(&ino)
            .ok_or_else(|| os(what, path, libc::EIO))
    }

    pub(super) async fn read_at(&self, pos: u64, len: usize) -> Result<Vec<u8>, StorageError> {
        let mut s = self.state("read")?;
        s.check(Op::Read, "read", &self.path)?;
        let i = Self::inode(&mut s, self.ino, &self.path, "read")?;
        let start = (pos as usize).min(i.data.len());
        let end = start.saturating_add(len).min(i.data.len());
        Ok(i.data
            .get(start..end)
            .map(<[u8]>::to_vec)
            .unwrap_or_default())
    }

    pub(super) async fn write_at(&self, bytes: &[u8], pos: u64) -> Result<usize, StorageError> {
        let mut s = self.state("write")?;
        let fault = s.check(Op::Write, "write", &self.path)?;
        let len = match fault {
            Some(Fault::ShortWrite) => bytes.len() / 2 / 512 * 512,
            _ => bytes.len(),
        };
        let old = s.inodes.get(&self.ino).map_or(0, |i| i.data.len());
        let unsynced_before = s.inodes.get(&self.ino).and_then(|i| i.last_unsynced);
        let end = pos as usize + len;
        s.room_for(old, end.max(old), "write", &self.path)?;
        let i = Self::inode(&mut s, self.ino, &self.path, "write")?;
        let written = bytes.get(..len).unwrap_or_default();
        write_into(&mut i.data, pos as usize, written);
        if len > 0 {
            i.last_unsynced = Some((pos, len));
        }
        if self.durable_writes {
            // The sync half of an O_DSYNC write: its failure leaves the
            // bytes written but not durable (see the invariants).
            s.check(Op::Sync, "write", &self.path)?;
            let i = Self::inode(&mut s, self.ino, &self.path, "write")?;
            write_into(&mut i.durable, pos as usize, written);
            // This write is durable; an earlier one through another handle
            // may still be unsynced (and torn by a power cut).
            i.last_unsynced = unsynced_before;
        }
        Ok(len)
    }

    pub(super) async fn fdatasync(&self) -> Result<(), StorageError> {
        let mut s = self.state("fdatasync")?;
        s.check(Op::Sync, "fdatasync", &self.path)?;
        let i = Self::inode(&mut s, self.ino, &self.path, "fdatasync")?;
        i.durable.clone_from(&i.data);
        i.last_unsynced = None;
        Ok(())
    }

    pub(super) fn pre_allocate(&self, len: u64) -> Result<(), StorageError> {
        let mut s = self.state("preallocate")?;
        s.check(Op::Allocate, "preallocate", &self.path)?;
        let old = s.inodes.get(&self.ino).map_or(0, |i| i.data.len());
        let new = (len as usize).max(old);
        s.room_for(old, new, "preallocate", &self.path)?;
        let i = Self::inode(&mut s, self.ino, &self.path, "preallocate")?;
        i.data.resize(new, 0);
        Ok(())
    }

    pub(super) fn truncate(&self, len: u64) -> Result<(), StorageError> {
        let mut s = self.state("truncate")?;
        s.check(Op::Truncate, "truncate", &self.path)?;
        let i = Self::inode(&mut s, self.ino, &self.path, "truncate")?;
        i.data.resize(len as usize, 0);
        Ok(())
    }

    /// Closes the handle. Closing changes nothing on the disk; an injected
    /// fault fails it as close(2) can, and so does a handle that outlived a
    /// power cycle.
    pub(super) fn close(self) -> Result<(), StorageError> {
        let mut s = self.state("close")?;
        s.check(Op::Close, "close", &self.path)?;
        Ok(())
    }

    pub(super) fn size(&self) -> Result<u64, StorageError> {
        let mut s = self.state("stat")?;
        Ok(Self::inode(&mut s, self.ino, &self.path, "stat")?
            .data
            .len() as u64)
    }
}
