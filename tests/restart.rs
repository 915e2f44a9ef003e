//! Restarts on an existing data directory: right after kill -9 on the same
//! port (the dead node's listening socket may still be being released by the
//! kernel; start-up must wait for it, not mistake it for a live process),
//! also before the killed process is reaped (its data directory lock is
//! released a moment later; start-up waits for a dying holder), and
//! with another node id (refused with exit 2 unless
//! `--allow-node-id-change`).

mod common;

use common::*;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

/// How long a process may take to exit after a signal or a refused start.
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);

/// kill -9 and restart cycles.
const KILL_RESTARTS: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_with_sigkill_restarts_at_once_on_its_port() {
    let data = tempfile::tempdir().expect("tempdir");
    let opts = NodeOptions::default();
    let port = free_port();
    let mut node = Node::spawn_on_data_dir(&opts, port, data.path());
    if let Err(e) = node.wait_ready().await {
        panic!("first start: {e}\n{}", node.stderr());
    }
    let mut waited_rounds = 0;
    for round in 1..=KILL_RESTARTS {
        // A few open connections at the kill: clients that wrote a key each
        // (acknowledged, so durable) and one idle raw connection.
        let mut clients = Vec::new();
        for i in 0..3 {
            let mut c = node.client().await;
            let w = write(&mut c, "t", &format!("r{round}-c{i}"), b"acked", None).await;
            assert!(w.success, "{w:?}");
            clients.push(c);
        }
        let idle = tokio::net::TcpStream::connect(node.addr)
            .await
            .expect("connect");

        let status = node.kill_and_reap();
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");

        let started = Instant::now();
        node = Node::spawn_on_data_dir(&opts, port, data.path());
        if let Err(e) = node.wait_ready().await {
            panic!(
                "round {round}: restart on port {port} right after kill -9 failed: {e}\n\
                 --- stderr ---\n{}",
                node.stderr()
            );
        }
        // Whether this start met the dying node's socket (timing-dependent,
        // reported, not asserted).
        let waited = node.stderr().contains("waiting for its release");
        waited_rounds += usize::from(waited);
        println!(
            "round {round}: ready {:?} after the kill{}",
            started.elapsed(),
            if waited {
                " (waited for the port's release)"
            } else {
                ""
            }
        );
        let mut c = node.client().await;
        for i in 0..3 {
            let r = read(&mut c, "t", &format!("r{round}-c{i}")).await;
            assert_eq!(r.value, b"acked", "round {round}: {r:?}");
        }
        drop((clients, idle));
    }
    println!("{waited_rounds} of {KILL_RESTARTS} restarts waited for the port's release");
    node.signal(libc::SIGTERM);
    let status = node.wait_exit_async(EXIT_TIMEOUT).await.expect("exit");
    assert_eq!(status.code(), Some(0), "{}", node.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_before_the_killed_one_is_reaped_waits_for_its_lock() {
    // A supervisor may start the new process while the killed one is still
    // a zombie whose threads and rings are being torn down, holding the data
    // directory's lock for a moment: start-up waits for a dying holder.
    let data = tempfile::tempdir().expect("tempdir");
    let opts = NodeOptions::default();
    let port = free_port();
    let mut node = Node::spawn_on_data_dir(&opts, port, data.path());
    node.wait_ready().await.expect("first start");
    for round in 1..=KILL_RESTARTS {
        // Writers in flight at the kill.
        let mut writers = Vec::new();
        for w in 0..4 {
            let mut c = node.client().await;
            writers.push(tokio::spawn(async move {
                for i in 0.. {
                    let req = write_req("t", &format!("z{round}-{w}-{i}"), b"v", None);
                    if c.write(req).await.is_err() {
                        break;
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        node.signal(libc::SIGKILL);
        // Not reaped: the old process stays a zombie until `old` is dropped.
        let old = std::mem::replace(&mut node, Node::spawn_on_data_dir(&opts, port, data.path()));
        if let Err(e) = node.wait_ready().await {
            panic!(
                "round {round}: a start beside the unreaped killed node failed: {e}\n\
                 --- stderr ---\n{}",
                node.stderr()
            );
        }
        drop(old);
        for w in writers {
            let _ = w.await;
        }
    }
    node.signal(libc::SIGTERM);
    let status = node.wait_exit_async(EXIT_TIMEOUT).await.expect("exit");
    assert_eq!(status.code(), Some(0), "{}", node.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_node_id_on_a_data_dir_is_refused_unless_allowed() {
    let data = tempfile::tempdir().expect("tempdir");
    let as_a = NodeOptions {
        shards: 1,
        node_id: "node-a".into(),
        config: None,
    };
    let as_b = NodeOptions {
        node_id: "node-b".into(),
        ..as_a.clone()
    };

    let mut node = Node::spawn_on_data_dir(&as_a, free_port(), data.path());
    node.wait_ready().await.expect("node-a ready");
    let mut c = node.client().await;
    let w = write(&mut c, "t", "k", b"from-a", None).await;
    assert_eq!(clock_map(&w.updated_vector_clock), cmap(&[("node-a", 1)]));
    node.signal(libc::SIGINT);
    let status = node.wait_exit_async(EXIT_TIMEOUT).await.expect("exit");
    assert_eq!(status.code(), Some(0), "{}", node.stderr());
    drop(c);
    let meta = std::fs::read(data.path().join("META")).expect("META");

    // Another id without the flag: refused, naming both ids and the ways out.
    let mut refused = Node::spawn_on_data_dir(&as_b, free_port(), data.path());
    let status = refused
        .wait_exit_async(EXIT_TIMEOUT)
        .await
        .unwrap_or_else(|| panic!("node-b on node-a's data did not exit"));
    let stderr = refused.stderr();
    assert_eq!(status.code(), Some(2), "{status:?}\n{stderr}");
    for part in [
        data.path().display().to_string().as_str(),
        "\"node-a\"",
        "\"node-b\"",
        "--node-id node-a",
        "--allow-node-id-change",
    ] {
        assert!(stderr.contains(part), "{part:?} missing from:\n{stderr}");
    }
    assert_eq!(
        std::fs::read(data.path().join("META")).unwrap(),
        meta,
        "a refused start leaves META alone"
    );

    // With the flag: the new id is recorded and stamped; the data is kept.
    let mut node =
        Node::spawn_on_data_dir_with(&as_b, free_port(), data.path(), &["--allow-node-id-change"]);
    if let Err(e) = node.wait_ready().await {
        panic!("node-b with --allow-node-id-change: {e}\n{}", node.stderr());
    }
    let mut c = node.client().await;
    let m = metrics(&mut c).await;
    assert_eq!(m.get("node_id").map(String::as_str), Some("node-b"));
    let r = read(&mut c, "t", "k").await;
    assert_eq!(r.value, b"from-a");
    assert_eq!(clock_map(&r.vector_clock), cmap(&[("node-a", 1)]));
    let w = write(&mut c, "t", "k2", b"from-b", None).await;
    assert_eq!(clock_map(&w.updated_vector_clock), cmap(&[("node-b", 1)]));
    node.signal(libc::SIGINT);
    let status = node.wait_exit_async(EXIT_TIMEOUT).await.expect("exit");
    assert_eq!(status.code(), Some(0), "{}", node.stderr());
    drop(c);

    // node-b is now the recorded id: it starts without the flag, node-a not.
    let mut node = Node::spawn_on_data_dir(&as_b, free_port(), data.path());
    if let Err(e) = node.wait_ready().await {
        panic!("node-b after the recorded change: {e}\n{}", node.stderr());
    }
    node.signal(libc::SIGINT);
    let status = node.wait_exit_async(EXIT_TIMEOUT).await.expect("exit");
    assert_eq!(status.code(), Some(0), "{}", node.stderr());
    let mut refused = Node::spawn_on_data_dir(&as_a, free_port(), data.path());
    let status = refused.wait_exit_async(EXIT_TIMEOUT).await.expect("exit");
    assert_eq!(status.code(), Some(2), "{}", refused.stderr());
    assert!(
        refused.stderr().contains("--node-id node-b"),
        "{}",
        refused.stderr()
    );
}
