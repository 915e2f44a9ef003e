//! The simulated disk keeps exactly what was made durable, and fails as told.

use super::*;
use crate::storage::disk::{self, DiskFile, Mode};
use futures_lite::future::block_on;

fn dir() -> PathBuf {
    PathBuf::from("/sim/shard-000")
}

/// File `a` holding `blocks` blocks of 1s, its data and its name synced;
/// the handle that wrote it stays open.
async fn synced_file(blocks: usize) -> (PathBuf, DiskFile) {
    disk::create_dir_all(&dir()).unwrap();
    let a = dir().join("a");
    let f = DiskFile::open(&a, Mode::Create).await.unwrap();
    write(&f, &vec![1; 4096 * blocks], 0).await;
    f.fdatasync().await.unwrap();
    disk::sync_dir(&dir()).await.unwrap();
    (a, f)
}

async fn write(f: &DiskFile, bytes: &[u8], pos: u64) -> usize {
    let mut b = f.alloc(bytes.len());
    b.as_bytes_mut().copy_from_slice(bytes);
    f.write_at(b, pos).await.unwrap()
}

#[test]
fn power_loss_keeps_what_fdatasync_and_a_directory_sync_covered() {
    let sim = SimDisk::new(1);
    let _g = install(Rc::clone(&sim));
    block_on(async {
        let (a, f) = synced_file(1).await;
        write(&f, &[2; 4096], 4096).await;
        let b = dir().join("b");
        disk::write_file(&b, vec![3; 10]).await.unwrap();
        sim.power_cycle(false);
        assert_eq!(
            sim.contents(&a).unwrap(),
            vec![1; 4096],
            "unsynced write dropped"
        );
        assert!(
            sim.contents(&b).is_none(),
            "a name no directory sync covered is gone"
        );
        let err = f.size().await.unwrap_err();
        assert_eq!(
            err.os_error(),
            Some(libc::EIO),
            "handles die with the machine"
        );
    });
}

#[test]
fn a_renamed_file_is_there_after_power_loss_only_once_its_folder_is_synced() {
    let sim = SimDisk::new(2);
    let _g = install(Rc::clone(&sim));
    block_on(async {
        disk::create_dir_all(&dir()).unwrap();
        let (tmp, dst) = (dir().join("M.tmp"), dir().join("M"));
        disk::write_file(&dst, vec![1]).await.unwrap();
        disk::sync_dir(&dir()).await.unwrap();
        disk::write_file(&tmp, vec![2]).await.unwrap();
        disk::rename(&tmp, &dst).await.unwrap();
        assert_eq!(disk::read_file(&dst).unwrap(), Some(vec![2]));
        sim.power_cycle(false);
        assert_eq!(disk::read_file(&dst).unwrap(), Some(vec![1]));
        disk::write_file(&tmp, vec![2]).await.unwrap();
        disk::rename(&tmp, &dst).await.unwrap();
        disk::sync_dir(&dir()).await.unwrap();
        sim.power_cycle(false);
        assert_eq!(disk::read_file(&dst).unwrap(), Some(vec![2]));
        assert_eq!(disk::read_file(&tmp).unwrap(), None);
    });
}

#[test]
fn a_torn_write_garbles_only_the_block_it_began_in() {
    for seed in 0..20 {
        let sim = SimDisk::new(seed);
        let _g = install(Rc::clone(&sim));
        block_on(async {
            let (a, f) = synced_file(2).await;
            write(&f, &[2; 8192], 4096).await;
            sim.power_cycle(true);
            let got = sim.contents(&a).unwrap();
            assert_eq!(got.len(), 8192);
            assert_eq!(
                &got[..4096],
                &[1; 4096][..],
                "seed {seed}: the block before is intact"
            );
            let block = &got[4096..];
            assert!(
                block.chunks(512).any(|s| s != [1; 512] && s != [2; 512]),
                "seed {seed}: one sector is garbage"
            );
        });
    }
}

#[test]
fn a_full_disk_refuses_growth_and_accepts_it_again_once_space_is_freed() {
    let sim = SimDisk::new(3);
    sim.set_capacity(Some(3 * BLOCK_BYTES));
    let _g = install(Rc::clone(&sim));
    block_on(async {
        disk::create_dir_all(&dir()).unwrap();
        let a = DiskFile::open(&dir().join("a"), Mode::Create)
            .await
            .unwrap();
        write(&a, &[1; 8192], 0).await;
        let b = DiskFile::open(&dir().join("b"), Mode::Create)
            .await
            .unwrap();
        let mut buf = b.alloc(8192);
        buf.as_bytes_mut().fill(2);
        let err = b.write_at(buf, 0).await.unwrap_err();
        assert!(err.is_disk_full(), "{err}");
        assert_eq!(b.size().await.unwrap(), 0, "a failed write changes nothing");
        write(&a, &[3; 4096], 0).await; // overwriting needs no new space
        disk::remove(&dir().join("a")).await.unwrap();
        assert_eq!(write(&b, &[2; 8192], 0).await, 8192);
    });
}

#[test]
fn injected_errors_and_short_writes_reach_the_caller() {
    let sim = SimDisk::new(4);
    let _g = install(Rc::clone(&sim));
    block_on(async {
        disk::create_dir_all(&dir()).unwrap();
        let a = DiskFile::open(&dir().join("a"), Mode::Create)
            .await
            .unwrap();
        sim.fail(Some(Op::Write), 1, 1, Fault::ShortWrite);
        sim.fail(Some(Op::Sync), 0, 1, Fault::Errno(libc::EIO));
        assert_eq!(write(&a, &[1; 4096], 0).await, 4096);
        assert_eq!(write(&a, &[1; 4096], 4096).await, 2048);
        let err = a.fdatasync().await.unwrap_err();
        assert_eq!(err.os_error(), Some(libc::EIO));
        assert!(!err.is_disk_full());
        a.fdatasync().await.unwrap();
        assert_eq!(sim.fault_log().len(), 2, "{:?}", sim.fault_log());
    });
}

/// [`synced_file`], and a second handle on it opened for durable appends.
async fn synced_with_durable_handle() -> (PathBuf, DiskFile, DiskFile) {
    let (a, f) = synced_file(1).await;
    let appends = DiskFile::open(&a, Mode::AppendDurable).await.unwrap();
    (a, f, appends)
}

#[test]
fn a_durable_append_survives_power_loss_without_fdatasync() {
    let sim = SimDisk::new(5);
    let _g = install(Rc::clone(&sim));
    block_on(async {
        let (a, f, appends) = synced_with_durable_handle().await;
        write(&appends, &[2; 4096], 4096).await;
        // A plain write through the other handle stays volatile.
        write(&f, &[3; 4096], 8192).await;
        sim.power_cycle(false);
        let mut want = vec![1; 4096];
        want.extend_from_slice(&[2; 4096]);
        assert_eq!(sim.contents(&a).unwrap(), want);
    });
}

#[test]
fn a_durable_append_whose_sync_fails_is_not_durable() {
    let sim = SimDisk::new(6);
    let _g = install(Rc::clone(&sim));
    block_on(async {
        let (a, _f, appends) = synced_with_durable_handle().await;
        sim.fail(Some(Op::Sync), 0, 1, Fault::Errno(libc::EIO));
        let mut b = appends.alloc(4096);
        b.as_bytes_mut().copy_from_slice(&[2; 4096]);
        let err = appends.write_at(b, 4096).await.unwrap_err();
        assert_eq!(err.os_error(), Some(libc::EIO));
        sim.power_cycle(false);
        assert_eq!(sim.contents(&a).unwrap(), vec![1; 4096]);
    });
}
