//! `pairdb-admin` against a real node: every command's text and `--json`
//! output, the writes, flush and compaction it drives, drain and undrain,
//! streams, digest and cleanup over ranges, and its exit codes (0 success,
//! 1 the node answered an error, 2 usage, 3 unreachable).

mod common;

use common::*;
use serde_json::Value;
use std::time::Duration;

/// The binary under test.
const CLI: &str = env!("CARGO_BIN_EXE_pairdb-admin");

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }
}

/// Runs the CLI with `args` against `addr`, feeding `stdin`.
async fn run_at(addr: &str, args: &[&str], stdin: &[u8]) -> Out {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(CLI)
        .arg("--node")
        .arg(addr)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn pairdb-admin");
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin).await.expect("stdin");
    }
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("pairdb-admin ran over 60 s")
        .expect("pairdb-admin output");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn run(node: &Node, args: &[&str]) -> Out {
    run_at(&node.addr.to_string(), args, b"").await
}

/// Runs and expects exit 0.
async fn ok(node: &Node, args: &[&str]) -> Out {
    let out = run(node, args).await;
    assert_eq!(
        out.code, 0,
        "pairdb-admin {args:?}: stdout {}\nstderr {}",
        out.stdout, out.stderr
    );
    out
}

fn sum(shards: &Value, field: &str) -> u64 {
    shards
        .as_array()
        .expect("shards array")
        .iter()
        .map(|s| s[field].as_u64().unwrap_or(0))
        .sum()
}

async fn put_keys(node: &Node, n: usize) {
    let mut c = node.client().await;
    for i in 0..n {
        let w = write(&mut c, "t", &format!("key-{i:03}"), b"value", None).await;
        assert!(w.success, "{w:?}");
    }
}

#[tokio::test]
async fn status_prints_a_shard_table_and_parses_as_json() {
    let node = Node::start(2).await;
    put_keys(&node, 10).await;
    let out = ok(&node, &["status"]).await;
    assert!(
        out.stdout.contains("(id node-test): SERVING, healthy"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("state serving"), "{}", out.stdout);
    let header = out
        .stdout
        .lines()
        .find(|l| l.starts_with("shard"))
        .expect("a shard table");
    for column in [
        "keys",
        "memtable",
        "sstables",
        "levels",
        "cache",
        "write_state",
    ] {
        assert!(header.contains(column), "{header}");
    }
    let j = ok(&node, &["status", "--json"]).await.json();
    assert_eq!(j["ok"], true);
    assert_eq!(j["node_id"], "node-test");
    assert_eq!(j["state"], "serving");
    assert_eq!(j["shards"].as_array().map(Vec::len), Some(2));
    assert_eq!(sum(&j["shards"], "keys"), 10);
    assert!(j["members"].get("node-test").is_some(), "{j}");
    assert_eq!(j["metrics"]["shards"], "2");
}

#[tokio::test]
async fn put_get_and_delete_one_key_with_clocks_and_binary_values() {
    let node = Node::start(2).await;
    let out = ok(&node, &["put", "--tenant", "t", "k1", "hello"]).await;
    assert!(
        out.stdout.contains("written, clock node-test:"),
        "{}",
        out.stdout
    );
    let out = ok(&node, &["get", "--tenant", "t", "k1"]).await;
    assert!(out.stdout.contains("value: hello\n"), "{}", out.stdout);
    let j = ok(&node, &["get", "--tenant", "t", "k1", "--json"])
        .await
        .json();
    assert_eq!(j["value"], "hello");
    assert_eq!(j["value_hex"], "68656c6c6f");
    let context = j["clock_arg"].as_str().expect("clock_arg").to_string();
    assert!(context.starts_with("node-test:"), "{context}");

    // A clock is written as given: the same clock changes nothing, one
    // that descends it replaces the version, a concurrent one makes a
    // sibling, and get shows both with their clocks.
    ok(
        &node,
        &["put", "--tenant", "t", "k1", "same", "--clock", &context],
    )
    .await;
    let j = ok(&node, &["get", "--tenant", "t", "k1", "--json"])
        .await
        .json();
    assert_eq!(j["value"], "hello", "an equal clock changes nothing: {j}");
    let (id, counter) = context.rsplit_once(':').expect("node:counter");
    let next: i64 = counter.parse::<i64>().expect("counter") + 1;
    let bumped = format!("{id}:{next}");
    ok(
        &node,
        &["put", "--tenant", "t", "k1", "second", "--clock", &bumped],
    )
    .await;
    let j = ok(&node, &["get", "--tenant", "t", "k1", "--json"])
        .await
        .json();
    assert_eq!(j["value"], "second", "{j}");
    assert_eq!(j["clock_arg"], bumped.as_str());
    ok(
        &node,
        &[
            "put",
            "--tenant",
            "t",
            "k1",
            "other",
            "--clock",
            "coord-b:1",
        ],
    )
    .await;
    let out = ok(&node, &["get", "--tenant", "t", "k1"]).await;
    assert!(out.stdout.contains("versions: 2"), "{}", out.stdout);
    assert!(
        out.stdout.contains(&format!("clock {bumped}")),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("clock coord-b:1"), "{}", out.stdout);
    let j = ok(&node, &["get", "--tenant", "t", "k1", "--json"])
        .await
        .json();
    assert_eq!(j["versions"].as_array().map(Vec::len), Some(2), "{j}");

    // Binary values from stdin come back as hex.
    let bin = run_at(
        &node.addr.to_string(),
        &["put", "--tenant", "t", "bin", "--value-file", "-"],
        &[0xff, 0x00, 0x01],
    )
    .await;
    assert_eq!(bin.code, 0, "{}", bin.stderr);
    let out = ok(&node, &["get", "--tenant", "t", "bin"]).await;
    assert!(out.stdout.contains("value: 0xff0001"), "{}", out.stdout);
    let j = ok(&node, &["get", "--tenant", "t", "bin", "--json"])
        .await
        .json();
    assert_eq!(j["value_hex"], "ff0001");
    assert!(j.get("value").is_none(), "{j}");

    ok(&node, &["delete", "--tenant", "t", "bin"]).await;
    let gone = run(&node, &["get", "--tenant", "t", "bin"]).await;
    assert_eq!(gone.code, 1, "{}", gone.stdout);
    let addr = node.addr.to_string();
    assert!(
        gone.stderr.contains(&addr) && gone.stderr.contains("KEY_NOT_FOUND"),
        "{}",
        gone.stderr
    );
    let missing = run(&node, &["get", "--tenant", "t", "never", "--json"]).await;
    assert_eq!(missing.code, 1);
    assert_eq!(missing.json()["ok"], false);

    // Bad clocks and a missing value are usage errors, before any call.
    let bad = run(
        &node,
        &["put", "--tenant", "t", "k", "v", "--clock", "a:-1"],
    )
    .await;
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    let bad = run(&node, &["put", "--tenant", "t", "k"]).await;
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    // An empty tenant is refused by the node: exit 1 with the code.
    let refused = run(&node, &["put", "--tenant", "", "k", "v"]).await;
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("INVALID_REQUEST"),
        "{}",
        refused.stderr
    );
}

#[tokio::test]
async fn flush_empties_the_memtables_into_tables_and_compact_merges_them() {
    let node = Node::start(2).await;
    put_keys(&node, 50).await;
    let before = ok(&node, &["status", "--json"]).await.json();
    assert!(sum(&before["shards"], "memtable_bytes") > 0, "{before}");
    assert_eq!(sum(&before["shards"], "sstables"), 0, "{before}");

    let out = ok(&node, &["flush"]).await;
    assert!(
        out.stdout.contains("every memtable is flushed"),
        "{}",
        out.stdout
    );
    let j = ok(&node, &["flush", "--json"]).await.json();
    assert_eq!(j["ok"], true);
    assert_eq!(sum(&j["shards"], "memtable_bytes"), 0, "{j}");
    let after = ok(&node, &["status", "--json"]).await.json();
    assert_eq!(sum(&after["shards"], "memtable_bytes"), 0, "{after}");
    assert!(
        sum(&after["shards"], "sstables") >= 2,
        "one table per shard: {after}"
    );
    assert_eq!(sum(&after["shards"], "keys"), 50);

    // L0 holds one table per shard, far under any trigger: compact moves
    // or merges it anyway, every level down to the last.
    let j = ok(&node, &["compact", "--json"]).await.json();
    assert_eq!(j["ok"], true, "{j}");
    assert_eq!(j["nothing_to_do"], false, "{j}");
    assert!(
        sum(&j["shards"], "merges") + sum(&j["shards"], "trivial_moves") >= 2,
        "{j}"
    );
    for s in j["shards"].as_array().expect("shards") {
        let levels = s["tables"]["level_tables"].as_array().expect("levels");
        let last = levels.len() - 1;
        for (l, tables) in levels.iter().enumerate() {
            let want = u64::from(l == last);
            assert_eq!(
                tables.as_u64(),
                Some(want),
                "everything in the last level: {s}"
            );
        }
    }
    let out = ok(&node, &["compact", "--level", "0"]).await;
    assert!(
        out.stdout.contains("nothing needed compacting"),
        "{}",
        out.stdout
    );
    let r = read(&mut node.client().await, "t", "key-007").await;
    assert!(r.success && r.value == b"value"[..], "{r:?}");

    for level in ["4", "9"] {
        let bad = run(&node, &["compact", "--level", level]).await;
        assert_eq!(bad.code, 1, "level {level}: {}", bad.stdout);
        assert!(bad.stderr.contains("INVALID_REQUEST"), "{}", bad.stderr);
    }
}

#[tokio::test]
async fn drain_refuses_writes_and_undrain_accepts_them_again() {
    let node = Node::start(2).await;
    put_keys(&node, 5).await;
    let j = ok(&node, &["drain", "--json"]).await.json();
    assert_eq!(j["state"], "drained", "{j}");
    let refused = run(&node, &["put", "--tenant", "t", "k", "v"]).await;
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains("NODE_DRAINING"),
        "{}",
        refused.stderr
    );
    let status = ok(&node, &["status", "--json"]).await.json();
    assert_eq!(status["state"], "drained");
    ok(&node, &["get", "--tenant", "t", "key-001"]).await;
    let out = ok(&node, &["undrain"]).await;
    assert!(out.stdout.contains("serving"), "{}", out.stdout);
    ok(&node, &["put", "--tenant", "t", "k", "v"]).await;
}

#[tokio::test]
async fn digest_and_cleanup_over_ranges() {
    let node = Node::start(2).await;
    put_keys(&node, 40).await;
    let whole = ok(&node, &["digest", "0:0", "--json"]).await.json();
    assert_eq!(whole["keys"], 40, "{whole}");
    let halves = ok(
        &node,
        &[
            "digest",
            "0:0x8000000000000000",
            "9223372036854775808:0",
            "--json",
        ],
    )
    .await
    .json();
    assert_eq!(
        halves["keys"], 40,
        "two halves are the whole ring: {halves}"
    );
    assert_eq!(halves["digest"], whole["digest"]);
    let first = ok(&node, &["digest", "0:0x8000000000000000", "--json"])
        .await
        .json();
    let n_first = first["keys"].as_i64().expect("keys");

    let out = ok(&node, &["cleanup", "0:0x8000000000000000"]).await;
    assert!(
        out.stdout.contains(&format!("removed {n_first} keys")),
        "{}",
        out.stdout
    );
    let left = ok(&node, &["digest", "0:0", "--json"]).await.json();
    assert_eq!(left["keys"].as_i64(), Some(40 - n_first), "{left}");
    let text = ok(&node, &["digest", "0x8000000000000000:0"]).await;
    assert!(text.stdout.contains("digest "), "{}", text.stdout);

    let bad = run(&node, &["digest", "1:2:3"]).await;
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    let bad = run(&node, &["cleanup", "0x:5"]).await;
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    let bad = run(&node, &["cleanup"]).await;
    assert_eq!(bad.code, 2, "a range is required: {}", bad.stderr);
}

#[tokio::test]
async fn streams_lists_nothing_on_a_node_without_streams() {
    let node = Node::start(2).await;
    let j = ok(&node, &["streams", "--json"]).await.json();
    assert_eq!(j["streams"], Value::Array(Vec::new()), "{j}");
    let out = ok(&node, &["streams"]).await;
    assert!(out.stdout.contains(": 0 streams"), "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_lists_a_running_stream_with_its_ranges_and_progress() {
    let opts = |id: &str, shards: usize| NodeOptions {
        shards,
        node_id: id.into(),
        config: None,
    };
    let members = start_cluster(vec![opts("src", 2), opts("dst", 1)]).await;
    let (src, dst) = (&members[0], &members[1]);
    put_keys(&src.node, 20).await;
    start_stream_to(&src.node, &dst.node, &[(0x10, 0x20)]).await;
    let j = ok(&src.node, &["streams", "--json"]).await.json();
    let streams = j["streams"].as_array().expect("streams");
    assert_eq!(streams.len(), 1, "{j}");
    let s = &streams[0];
    assert_eq!(s["source_node_id"], "src");
    assert_eq!(s["target_node_id"], "dst");
    assert_eq!(s["role"], "source");
    assert_eq!(s["shards"], 2);
    assert_eq!(
        s["ranges"],
        serde_json::json!(["0x0000000000000010:0x0000000000000020"])
    );
    assert!(
        ["copying", "completed"].contains(&s["state"].as_str().unwrap_or("")),
        "{s}"
    );
    let out = ok(&src.node, &["streams"]).await;
    assert!(out.stdout.contains("src->dst"), "{}", out.stdout);
    let dst_list = ok(&dst.node, &["streams", "--json"]).await.json();
    assert_eq!(dst_list["streams"], Value::Array(Vec::new()));
}

#[tokio::test]
async fn exit_codes_for_an_unreachable_node_and_bad_input() {
    let addr = format!("127.0.0.1:{}", free_port());
    for args in [&["status"][..], &["probe"], &["flush", "--json"]] {
        let out = run_at(&addr, args, b"").await;
        assert_eq!(out.code, 3, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(&addr) && out.stderr.contains("refused"),
            "{args:?}: {}",
            out.stderr
        );
        assert!(out.stdout.is_empty(), "{}", out.stdout);
    }
    let out = run_at("no-such-host.invalid:1", &["status"], b"").await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr.contains("no-such-host.invalid:1"),
        "{}",
        out.stderr
    );
    for args in [
        &["digest", "5"][..],
        &["digest", "-1:5"],
        &["cleanup", "0:18446744073709551616"],
        &["no-such-command"],
        &["--timeout-ms", "0", "status"],
    ] {
        let out = run_at(&addr, args, b"").await;
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
    }
    let help = run_at(&addr, &["--help"], b"").await;
    assert_eq!(help.code, 0);
    assert!(help.stdout.contains("Exit codes:"), "{}", help.stdout);
}

#[tokio::test]
async fn probe_fails_with_exit_1_when_the_service_is_not_serving() {
    // An unknown service is never SERVING: without the health service the
    // node answers UNIMPLEMENTED, with it NOT_FOUND or SERVICE_UNKNOWN;
    // either way exit 1 with the node and the cause.
    let node = Node::start(1).await;
    let out = run(&node, &["probe", "--service", "no.such.Service"]).await;
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let addr = node.addr.to_string();
    assert!(out.stderr.contains(&addr), "{}", out.stderr);
    assert!(
        ["UNIMPLEMENTED", "NOT_FOUND", "SERVICE_UNKNOWN"]
            .iter()
            .any(|c| out.stderr.contains(c)),
        "{}",
        out.stderr
    );
}
