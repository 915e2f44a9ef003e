//! Power loss on the simulated disk.
//!
//! Owns [`SimDisk::power_cycle`]: every name no directory sync covered and
//! every write no sync covered (fdatasync, or the write's own when its
//! handle is `Mode::AppendDurable`) disappear. With `tear`, the block in
//! which each file's last unsynced write began is torn the way a power cut
//! during a multi-sector write can leave it: its first sectors hold the new
//! bytes, one sector holds garbage, the rest keep the durable bytes.
//! Invariant: what an fdatasync or a durable write (data) plus a directory
//! sync (name) covered always survives, byte for byte.

use super::{SimDisk, State, BLOCK_BYTES};

/// The unit a disk writes atomically, at best.
const SECTOR_BYTES: usize = 512;

impl SimDisk {
    /// The machine loses power and boots again: see the module
    /// documentation. Fault rules and the crash point are forgotten, and
    /// files opened before fail from now on.
    pub(crate) fn power_cycle(&self, tear: bool) {
        let mut s = self.state.borrow_mut();
        let s = &mut *s;
        s.names = s.durable_names.clone();
        let live: std::collections::BTreeSet<u64> = s.names.values().copied().collect();
        s.inodes.retain(|ino, _| live.contains(ino));
        let mut torn = Vec::new();
        for (ino, i) in &s.inodes {
            if let (true, Some((pos, len))) = (tear, i.last_unsynced) {
                torn.push((*ino, pos, len));
            }
        }
        for (ino, pos, len) in torn {
            tear_block(s, ino, pos, len);
        }
        for i in s.inodes.values_mut() {
            i.data.clone_from(&i.durable);
            i.last_unsynced = None;
        }
        s.faults.clear();
        s.renamed_in.clear();
        s.epoch += 1;
    }
}

/// Writes into the durable bytes of `ino` a torn copy of the block where
/// the write of `len` bytes at `pos` began.
fn tear_block(s: &mut State, ino: u64, pos: u64, len: usize) {
    let start = pos as usize / SECTOR_BYTES * SECTOR_BYTES;
    let block_end = ((pos / BLOCK_BYTES + 1) * BLOCK_BYTES) as usize;
    let end = block_end.min(pos as usize + len);
    let sectors = end.saturating_sub(start).div_ceil(SECTOR_BYTES);
    if sectors == 0 {
        return;
    }
    let new_sectors = (s.next_random() % sectors as u64) as usize;
    let garbage_seed = s.next_random();
    let Some(i) = s.inodes.get_mut(&ino) else {
        return;
    };
    if i.durable.len() < end {
        i.durable.resize(end, 0);
    }
    for k in 0..=new_sectors.min(sectors - 1) {
        let from = start + k * SECTOR_BYTES;
        let to = (from + SECTOR_BYTES).min(end);
        let (Some(dst), Some(src)) = (i.durable.get_mut(from..to), i.data.get(from..to)) else {
            continue;
        };
        if k < new_sectors {
            dst.copy_from_slice(src);
        } else {
            // The sector being written when the power went: neither old nor
            // new.
            let mut x = garbage_seed | 1;
            for b in dst.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
        }
    }
}
