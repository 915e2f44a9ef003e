//! A new user's first run, as README.md tells it: the binary started from a
//! fresh working directory with nothing but a free `--listen` address, so the
//! embedded default configuration and its relative data directory
//! (`pairdb-data`) are what runs; relative `--data-dir` and `--config` paths;
//! and a data directory path that cannot be used (exit 2 naming the path).

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a process may take to exit after a signal or a refused start.
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);

/// The working directory as the child sees it (getcwd resolves symbolic
/// links, so a temporary directory reached through one is canonicalized).
fn real(dir: &Path) -> PathBuf {
    std::fs::canonicalize(dir).expect("canonicalize the temporary directory")
}

/// SIGINT, then the exit code must be 0.
async fn stop(node: &mut Node) {
    node.signal(libc::SIGINT);
    let status = node
        .wait_exit_async(EXIT_TIMEOUT)
        .await
        .unwrap_or_else(|| panic!("node still running {EXIT_TIMEOUT:?} after SIGINT"));
    assert_eq!(
        status.code(),
        Some(0),
        "SIGINT exits 0: {status:?}\n{}",
        node.stderr()
    );
}

/// Runs a node that must refuse to start; returns its stderr.
async fn refused(cwd: &Path, args: &[&str]) -> String {
    let mut node = Node::spawn_in(cwd, free_port(), args);
    let status = node.wait_exit_async(EXIT_TIMEOUT).await;
    let stderr = node.stderr();
    let status = status.unwrap_or_else(|| panic!("node with {args:?} did not exit:\n{stderr}"));
    assert_eq!(status.code(), Some(2), "{args:?}: {status:?}\n{stderr}");
    stderr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_start_command_works_from_a_fresh_directory() {
    let cwd = tempfile::tempdir().expect("tempdir");
    let data_dir = real(cwd.path()).join("pairdb-data");

    let mut node = Node::start_in(cwd.path(), &[]).await;
    let mut c = node.client().await;
    let m = metrics(&mut c).await;
    assert_eq!(
        m.get("node_id").map(String::as_str),
        Some(EMBEDDED_NODE_ID),
        "the embedded default config runs: {m:?}"
    );
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(
        metric_u64(&m, "shards"),
        cpus as u64,
        "one shard per CPU: {m:?}"
    );
    let w = write(&mut c, "first-run", "greeting", b"hello", None).await;
    assert!(w.success, "{w:?}");
    // The relative data directory was resolved against the working
    // directory, and the absolute path is logged.
    assert!(
        data_dir.join("META").is_file(),
        "{} holds META",
        data_dir.display()
    );
    assert!(data_dir.join("shard-000").is_dir());
    let stderr = node.stderr();
    assert!(
        stderr.contains(&data_dir.display().to_string()),
        "the absolute data directory is logged:\n{stderr}"
    );
    stop(&mut node).await;
    drop(c);

    // The same command again finds the key.
    let mut node = Node::start_in(cwd.path(), &[]).await;
    let mut c = node.client().await;
    let r = read(&mut c, "first-run", "greeting").await;
    assert!(r.success, "{r:?}");
    assert_eq!(r.value, b"hello");
    stop(&mut node).await;

    let entries: Vec<String> = std::fs::read_dir(cwd.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        entries,
        vec!["pairdb-data".to_string()],
        "the node writes only its data directory into the working directory"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relative_data_dir_and_config_resolve_against_the_working_directory() {
    let cwd = tempfile::tempdir().expect("tempdir");
    let root = real(cwd.path());
    std::fs::create_dir(cwd.path().join("conf")).unwrap();
    std::fs::write(
        cwd.path().join("conf/node.toml"),
        "[node]\nnode_id = \"from-relative-config\"\nshards = 1\ndata_dir = \"config-data\"\n",
    )
    .unwrap();
    let args = ["--config", "conf/node.toml", "--data-dir", "./d"];

    let mut node = Node::start_in(cwd.path(), &args).await;
    let mut c = node.client().await;
    let m = metrics(&mut c).await;
    assert_eq!(
        m.get("node_id").map(String::as_str),
        Some("from-relative-config"),
        "the relative --config was read: {m:?}"
    );
    assert_eq!(metric_u64(&m, "shards"), 1, "{m:?}");
    let w = write(&mut c, "t", "k", b"kept", None).await;
    assert!(w.success, "{w:?}");
    assert!(
        root.join("d/META").is_file(),
        "--data-dir ./d is under the working directory"
    );
    assert!(
        !cwd.path().join("config-data").exists(),
        "--data-dir overrides the config file"
    );
    let stderr = node.stderr();
    for logged in [
        root.join("d").display().to_string(),
        root.join("conf/node.toml").display().to_string(),
    ] {
        assert!(stderr.contains(&logged), "{logged} not logged:\n{stderr}");
    }
    stop(&mut node).await;
    drop(c);

    let mut node = Node::start_in(cwd.path(), &args).await;
    let mut c = node.client().await;
    let r = read(&mut c, "t", "k").await;
    assert_eq!(r.value, b"kept", "{r:?}");
    stop(&mut node).await;
    drop(c);

    // A relative node.data_dir in a config file resolves against the working
    // directory too, not against the file's folder.
    let mut node = Node::start_in(cwd.path(), &["--config", "conf/node.toml"]).await;
    assert!(root.join("config-data/META").is_file());
    assert!(!cwd.path().join("conf/config-data").exists());
    stop(&mut node).await;
}

#[tokio::test]
async fn an_unusable_data_dir_exits_two_naming_the_path() {
    let cwd = tempfile::tempdir().expect("tempdir");
    let root = real(cwd.path());
    std::fs::write(cwd.path().join("a-file"), b"not a directory").unwrap();

    // A regular file where the data directory should be.
    let stderr = refused(cwd.path(), &["--data-dir", "a-file"]).await;
    let path = root.join("a-file").display().to_string();
    assert!(
        stderr.contains(&path) && stderr.contains("regular file"),
        "{stderr}"
    );
    // The same through an absolute path.
    let stderr = refused(cwd.path(), &["--data-dir", &path]).await;
    assert!(
        stderr.contains(&path) && stderr.contains("regular file"),
        "{stderr}"
    );
    // A data directory below a file cannot be created.
    let stderr = refused(cwd.path(), &["--data-dir", "a-file/data"]).await;
    assert!(
        stderr.contains(&root.join("a-file/data").display().to_string())
            && stderr.contains("Not a directory"),
        "{stderr}"
    );
    // The file is untouched.
    assert_eq!(
        std::fs::read(cwd.path().join("a-file")).unwrap(),
        b"not a directory"
    );
}
