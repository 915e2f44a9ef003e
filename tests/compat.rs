//! Data directories written by earlier releases open and read back whole.
//!
//! `tests/data/format-v1/` was written by the release whose WAL segments are
//! format version 1 (batches packed back to back): a two-shard node took 300
//! keys of 1000 bytes (memtables of 64 KiB, so part of the data is in
//! SSTables), then overwrites, deletes and sibling writes, and was killed
//! with SIGKILL, so the rest is only in its WAL. Its answers to reading every
//! key just before the kill are in `expected.txt` (one line per version:
//! key, clock, value or `-` for a tombstone). The current binary must open a
//! copy of it, answer the same, take new writes (format 2 segments beside
//! the old ones), and restart on the mixture.
//!
//! The fixture is regenerated with the ignored test
//! `write_format_v1_fixture`, run against the old build:
//! `PAIRDB_TEST_NODE_BIN=<old pairdb-storage> PAIRDB_FIXTURE_OUT=<empty dir>
//! cargo test --test compat -- --ignored`.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

const NODE_ID: &str = "compat-node";
const KEYS: usize = 300;
const CONFIG: &str = "[storage]\nmemtable_bytes_max = 65536\n";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/format-v1")
}

fn name(i: usize) -> String {
    format!("k{i:03}")
}

fn opts() -> NodeOptions {
    NodeOptions {
        shards: 2,
        node_id: NODE_ID.into(),
        config: Some(CONFIG.into()),
    }
}

/// Every version of every key, as text lines.
async fn snapshot(c: &mut Client) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for i in 0..KEYS {
        let r = read(c, "t", &name(i)).await;
        let mut lines: Vec<String> = read_versions(&r)
            .iter()
            .map(|v| {
                let clock: BTreeMap<_, _> = clock_map(&v.vector_clock).into_iter().collect();
                let value = if v.is_tombstone {
                    "-".to_string()
                } else {
                    String::from_utf8_lossy(&v.value).into_owned()
                };
                format!("{clock:?}\t{value}")
            })
            .collect();
        lines.sort();
        out.insert(name(i), lines);
    }
    out
}

fn render(s: &BTreeMap<String, Vec<String>>) -> String {
    let mut text = String::new();
    for (k, lines) in s {
        for l in lines {
            text.push_str(&format!("{k}\t{l}\n"));
        }
    }
    text
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_with_format_1_wal_segments_opens_and_reads_back_whole() {
    let expected = std::fs::read_to_string(fixture().join("expected.txt")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    copy_dir(&fixture().join("data"), &data);
    let port = free_port();
    let mut node = Node::spawn_on_data_dir(&opts(), port, &data);
    node.wait_ready()
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", node.stderr()));
    let mut c = node.client().await;
    assert_eq!(render(&snapshot(&mut c).await), expected, "first open");
    let w = write(&mut c, "t", "after-upgrade", b"new", None).await;
    assert!(w.success, "{w:?}");
    node.signal(libc::SIGTERM);
    assert!(node.wait_exit(Duration::from_secs(20)).is_some());
    let mut node = Node::spawn_on_data_dir(&opts(), port, &data);
    node.wait_ready()
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", node.stderr()));
    let mut c = node.client().await;
    assert_eq!(render(&snapshot(&mut c).await), expected, "after a restart");
    let r = read(&mut c, "t", "after-upgrade").await;
    assert_eq!(r.value, b"new");
}

/// Writes the fixture with the build `PAIRDB_TEST_NODE_BIN` names into
/// `PAIRDB_FIXTURE_OUT` (see the module documentation).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn write_format_v1_fixture() {
    let out = PathBuf::from(std::env::var("PAIRDB_FIXTURE_OUT").expect("PAIRDB_FIXTURE_OUT"));
    let data = out.join("data");
    let port = free_port();
    let mut node = Node::spawn_on_data_dir(&opts(), port, &data);
    node.wait_ready()
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", node.stderr()));
    let mut c = node.client().await;
    for i in 0..KEYS {
        let value = format!("v1-{i}-").repeat(1000 / 8);
        assert!(
            write(&mut c, "t", &name(i), value.as_bytes(), None)
                .await
                .success
        );
    }
    for i in 0..50 {
        let value = format!("v2-{i}");
        assert!(
            write(&mut c, "t", &name(i), value.as_bytes(), None)
                .await
                .success
        );
    }
    for i in 50..60 {
        let r = delete(&mut c, "t", &name(i), None).await;
        assert!(r.success, "{r:?}");
    }
    for i in 60..65 {
        for (node_id, tag) in [("a", "sa"), ("b", "sb")] {
            let value = format!("{tag}-{i}");
            let vc = clock(&[(node_id, 1)]);
            assert!(
                write(&mut c, "t", &name(i), value.as_bytes(), vc)
                    .await
                    .success
            );
        }
    }
    let snap = snapshot(&mut c).await;
    node.kill_and_reap();
    std::fs::write(out.join("expected.txt"), render(&snap)).unwrap();
    // Preallocated segments end in zeros: cut them (a clean end either way).
    for shard in ["shard-000", "shard-001"] {
        for e in std::fs::read_dir(data.join(shard)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "log") {
                let raw = std::fs::read(&p).unwrap();
                let end = raw.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
                let keep = end.div_ceil(4096) * 4096;
                std::fs::write(&p, &raw[..keep.min(raw.len())]).unwrap();
            }
        }
    }
}
