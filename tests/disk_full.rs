//! A full disk, end to end: the real binary on a small ext4 volume
//! (a loop-mounted image file; mounting needs root, which CI has).
//!
//! Walk-through, as an operator would meet it:
//! 1. a volume smaller than the shards need is refused at start-up, saying
//!    how much is missing;
//! 2. a node runs; a ballast file takes every free block; writes go on
//!    until the WAL's open segments are used up, then answer DISK_FULL in
//!    the body; reads of every acknowledged write go on; HealthCheck says
//!    `disk_full` = true; the grpc.health.v1 readiness probe answers
//!    NOT_SERVING while liveness answers SERVING;
//! 3. the ballast is removed and, with nobody touching the node, writes
//!    resume, HealthCheck says `disk_full` = false and readiness SERVING;
//! 4. the disk is filled again; SIGTERM stops the node within the drain
//!    timeout; the node restarts on the full disk, serves reads and
//!    refuses writes with DISK_FULL;
//! 5. space returns, writes resume, and after a last restart every
//!    acknowledged write is there.
//!
//! Without root (or without `mount`/`mkfs.ext4`) the test says so and
//! passes, unless `PAIRDB_REQUIRE_LOOP_MOUNT=1` (set by CI) makes that a
//! failure.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

const MIB: u64 = 1024 * 1024;
/// The volume's size: room for the node (see [`CONFIG`]) and some data.
const VOLUME_BYTES: u64 = 96 * MIB;
const SHARDS: usize = 2;
const VALUE_BYTES: usize = 8 * 1024;
/// Small segments and memtables, so a full disk is reached in seconds;
/// 2 shards need 2 x (2 x 4 MiB + 1 MiB) = 18 MiB.
const CONFIG: &str = r#"
[limits]
message_bytes_max = 1048576
value_bytes_max = 262144
drain_timeout_ms = 5000

[storage]
wal_segment_bytes_max = 4194304
wal_pending_bytes_max = 4194304
memtable_bytes_max = 1048576
wal_bytes_per_memtable_max = 2097152
"#;
/// How long writes may take to resume after space returns (the WAL looks
/// every 2 s at most, flushes retry every second).
const RESUME_TIMEOUT: Duration = Duration::from_secs(30);

/// An ext4 file system in an image file, mounted on a folder; unmounted
/// when dropped.
struct Volume {
    mount: PathBuf,
    _dir: tempfile::TempDir,
}

impl Volume {
    fn create() -> Option<Volume> {
        let required = std::env::var("PAIRDB_REQUIRE_LOOP_MOUNT").is_ok_and(|v| v == "1");
        let skip = |why: String| -> Option<Volume> {
            assert!(!required, "PAIRDB_REQUIRE_LOOP_MOUNT=1 but {why}");
            eprintln!("SKIPPED: the disk-full walk-through needs a loop-mounted volume: {why}");
            None
        };
        // SAFETY: geteuid takes nothing and cannot fail.
        #[allow(unsafe_code)]
        let euid = unsafe { libc::geteuid() };
        if euid != 0 {
            return skip("not running as root".into());
        }
        // The image lives on the build's disk (a tmpfs /tmp would hold it in
        // memory).
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
        let image = dir.path().join("volume.img");
        let mount = dir.path().join("mnt");
        std::fs::create_dir(&mount).expect("mkdir mnt");
        std::fs::File::create(&image)
            .and_then(|f| f.set_len(VOLUME_BYTES))
            .expect("create image");
        let run = |cmd: &mut Command| -> Result<(), String> {
            match cmd.output() {
                Ok(out) if out.status.success() => Ok(()),
                Ok(out) => Err(format!(
                    "{cmd:?}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )),
                Err(e) => Err(format!("{cmd:?}: {e}")),
            }
        };
        // -m 0: no blocks reserved for root, so the node (root here) and
        // the statvfs figures it reads agree on what is free.
        if let Err(e) = run(Command::new("mkfs.ext4")
            .args(["-q", "-F", "-m", "0"])
            .arg(&image))
        {
            return skip(e);
        }
        if let Err(e) = run(Command::new("mount")
            .args(["-o", "loop"])
            .arg(&image)
            .arg(&mount))
        {
            return skip(e);
        }
        Some(Volume { mount, _dir: dir })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.mount.join(name)
    }

    /// Fills every free block with `name`; returns its size.
    fn fill(&self, name: &str) -> u64 {
        let path = self.path(name);
        let mut f = std::fs::File::create(&path).expect("create ballast");
        let chunk = vec![0xa5u8; 64 * 1024];
        let mut written = 0u64;
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("fill {}: {e}", path.display()),
            }
            // Page-cache writes may be over-committed; sync now and then so
            // the file system counts them.
            if written.is_multiple_of(16 * MIB) && f.sync_data().is_err() {
                break;
            }
        }
        let _ = f.sync_all();
        written
    }

    fn free(&self, name: &str) {
        std::fs::remove_file(self.path(name)).expect("remove ballast");
        Command::new("sync").status().expect("sync");
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        // A mount left behind would keep the image busy; if the file system
        // is still in use, detach it lazily rather than leave it mounted.
        let unmounted = Command::new("umount")
            .arg(&self.mount)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
        }
    }
}

fn options() -> NodeOptions {
    NodeOptions {
        shards: SHARDS,
        config: Some(CONFIG.to_string()),
        ..NodeOptions::default()
    }
}

/// [`CONFIG`] with 64 MiB WAL segments: 2 shards need 2 x (2 x 64 MiB +
/// 1 MiB) = 258 MiB, more than the volume has.
fn options_too_big() -> NodeOptions {
    NodeOptions {
        config: Some(CONFIG.replace(
            "wal_segment_bytes_max = 4194304",
            "wal_segment_bytes_max = 67108864",
        )),
        ..options()
    }
}

fn value(i: usize) -> Vec<u8> {
    let mut v = format!("value-{i:06}-").into_bytes();
    v.resize(VALUE_BYTES, b'a' + (i % 26) as u8);
    v
}

const DISK_FULL: i32 = pb::ErrorCode::DiskFull as i32;

/// One write: `Some(true)` acknowledged, `Some(false)` DISK_FULL; anything
/// else fails the test.
async fn put(c: &mut Client, i: usize) -> bool {
    let w = write(c, "t", &format!("k{i:06}"), &value(i), None).await;
    if w.success {
        return true;
    }
    assert_eq!(w.error_code, DISK_FULL, "write {i}: {w:?}");
    assert!(
        w.error_message.contains("disk full"),
        "write {i}: {}",
        w.error_message
    );
    false
}

/// Writes new keys from `*next` until 40 writes in a row answered
/// DISK_FULL (both shards are full then); records what was acknowledged.
async fn write_until_full(c: &mut Client, next: &mut usize, acked: &mut Vec<usize>) {
    let mut refused_in_a_row = 0;
    let mut refused = 0;
    for _ in 0..20_000 {
        let i = *next;
        *next += 1;
        if put(c, i).await {
            acked.push(i);
            refused_in_a_row = 0;
        } else {
            refused += 1;
            refused_in_a_row += 1;
            if refused_in_a_row == 40 {
                eprintln!(
                    "full after {} acknowledged writes ({refused} refused)",
                    acked.len()
                );
                return;
            }
        }
    }
    panic!("the volume never filled up ({} acknowledged)", acked.len());
}

/// Writes new keys until one is acknowledged; fails after [`RESUME_TIMEOUT`].
async fn write_once_resumed(c: &mut Client, next: &mut usize, acked: &mut Vec<usize>) -> Duration {
    let started = Instant::now();
    loop {
        let i = *next;
        *next += 1;
        if put(c, i).await {
            acked.push(i);
            return started.elapsed();
        }
        assert!(
            started.elapsed() < RESUME_TIMEOUT,
            "writes did not resume within {RESUME_TIMEOUT:?} after space returned"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn assert_all_there(c: &mut Client, acked: &[usize]) {
    for &i in acked {
        let r = read(c, "t", &format!("k{i:06}")).await;
        assert!(r.success, "read {i}: {r:?}");
        assert_eq!(r.value, value(i), "read {i}");
    }
}

async fn health(c: &mut Client) -> BTreeMap<String, String> {
    metrics(c).await
}

async fn wait_disk_full(c: &mut Client, want: bool) {
    let deadline = Instant::now() + RESUME_TIMEOUT;
    loop {
        let m = health(c).await;
        if m.get("disk_full").map(String::as_str) == Some(&want.to_string()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "disk_full never became {want}: {m:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The grpc.health.v1 readiness service name.
const READINESS: &str = "storage.StorageNodeService";

/// The standard health service's answer for `service`.
async fn probe(node: &Node, service: &str) -> ServingStatus {
    let channel = node.endpoint().connect().await.expect("connect");
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .expect("grpc.health.v1 Check")
        .into_inner()
        .status()
}

async fn start(data: &Path) -> Node {
    let mut node = Node::spawn_on_data_dir(&options(), free_port(), data);
    if let Err(e) = node.wait_ready().await {
        panic!("start on {}: {e}\n{}", data.display(), node.stderr());
    }
    node
}

/// SIGTERM; the node must exit cleanly within the drain timeout plus the
/// time a refused flush takes to give up.
async fn stop(mut node: Node) {
    let started = Instant::now();
    node.signal(libc::SIGTERM);
    let status = node.wait_exit_async(Duration::from_secs(30)).await;
    let Some(status) = status else {
        panic!(
            "SIGTERM on a full disk: still running after 30 s\n{}",
            node.stderr()
        );
    };
    eprintln!("stopped in {:?} ({status})", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_serves_reads_and_heals_by_itself() {
    let Some(volume) = Volume::create() else {
        return;
    };

    // 1. Too small a volume for these settings: refused, naming what is
    // missing (64 MiB segments on a 96 MiB volume).
    let mut refused =
        Node::spawn_on_data_dir(&options_too_big(), free_port(), &volume.path("too-small"));
    let status = refused.wait_exit_async(Duration::from_secs(20)).await;
    let stderr = refused.stderr();
    assert_eq!(status.and_then(|s| s.code()), Some(2), "{stderr}");
    assert!(stderr.contains("missing"), "{stderr}");
    std::fs::remove_dir_all(volume.path("too-small")).expect("remove too-small");

    // 2. Fill the volume under a running node.
    let data = volume.path("data");
    let node = start(&data).await;
    let mut c = node.client().await;
    let (mut next, mut acked) = (0usize, Vec::new());
    for _ in 0..200 {
        assert!(put(&mut c, next).await);
        acked.push(next);
        next += 1;
    }
    let ballast = volume.fill("ballast");
    eprintln!("ballast: {} MiB", ballast / MIB);
    write_until_full(&mut c, &mut next, &mut acked).await;
    wait_disk_full(&mut c, true).await;
    assert_all_there(&mut c, &acked).await;
    // Refusing writes: not ready, still alive.
    assert_eq!(probe(&node, READINESS).await, ServingStatus::NotServing);
    assert_eq!(probe(&node, "").await, ServingStatus::Serving);

    // 3. Space returns; nobody does anything to the node.
    volume.free("ballast");
    let took = write_once_resumed(&mut c, &mut next, &mut acked).await;
    eprintln!("writes resumed {took:?} after space returned");
    // Each shard finds the space by itself (within its back-off); then
    // every write is taken.
    wait_disk_full(&mut c, false).await;
    assert_eq!(probe(&node, READINESS).await, ServingStatus::Serving);
    for _ in 0..100 {
        assert!(put(&mut c, next).await, "write {next} after resuming");
        acked.push(next);
        next += 1;
    }

    // 4. Full again; SIGTERM; restart on the full disk.
    volume.fill("ballast");
    write_until_full(&mut c, &mut next, &mut acked).await;
    drop(c);
    stop(node).await;
    let node = start(&data).await;
    let mut c = node.client().await;
    assert_all_there(&mut c, &acked).await;
    assert!(!put(&mut c, next).await, "a write on the full disk");
    next += 1;
    wait_disk_full(&mut c, true).await;

    // 5. Space returns; writes resume; a last restart keeps everything.
    volume.free("ballast");
    write_once_resumed(&mut c, &mut next, &mut acked).await;
    wait_disk_full(&mut c, false).await;
    for _ in 0..50 {
        assert!(put(&mut c, next).await);
        acked.push(next);
        next += 1;
    }
    drop(c);
    stop(node).await;
    let node = start(&data).await;
    let mut c = node.client().await;
    assert_all_there(&mut c, &acked).await;
    eprintln!(
        "{} acknowledged writes read back after the last restart",
        acked.len()
    );
    drop(c);
    stop(node).await;
}
