//! ReplicateData between two real nodes seeded to each other: listed keys
//! and a tenant's key range reach the target with every version (siblings,
//! tombstones, clocks, timestamps), `keys_replicated` counts what the target
//! acknowledged, and a target that is not a live member is refused.

mod common;

use common::client::{delete, metrics, read, write, Client};
use common::clock::clock;
use common::node::{free_port, Node, NodeOptions};
use common::pb;
use std::time::{Duration, Instant};

/// A node seeded with `seeds`; its data folder lives as long as the
/// returned directory.
async fn start(node_id: &str, shards: usize, port: u16, seeds: &str) -> (Node, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = NodeOptions {
        shards,
        node_id: node_id.into(),
        config: None,
    };
    let mut node =
        Node::spawn_on_data_dir_with(&opts, port, &dir.path().join("data"), &["--seeds", seeds]);
    if let Err(e) = node.wait_ready().await {
        panic!("{node_id}: {e}\n{}", node.stderr());
    }
    (node, dir)
}

async fn wait_members(c: &mut Client, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let m = metrics(c).await;
        if m.get("cluster.members_alive").map(String::as_str) == Some(&n.to_string()) {
            return;
        }
        assert!(Instant::now() < deadline, "members: {m:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What a Read answers, as compared between nodes.
fn answer(r: &pb::ReadResponse) -> String {
    let mut versions: Vec<String> = r.versions.iter().map(|v| format!("{v:?}")).collect();
    versions.sort();
    format!(
        "{} {:?} {:?} {} {:?}",
        r.success, r.value, r.vector_clock, r.timestamp, versions
    )
}

#[tokio::test]
async fn replicate_data_copies_listed_keys_and_ranges_with_every_version() {
    let (pa, pb_) = (free_port(), free_port());
    let seeds = format!("127.0.0.1:{pa},127.0.0.1:{pb_}");
    let (a, _a_dir) = start("rep-a", 2, pa, &seeds).await;
    let (b, _b_dir) = start("rep-b", 1, pb_, &seeds).await;
    let mut ca = a.client().await;
    let mut cb = b.client().await;
    wait_members(&mut ca, 2).await;

    let keys: Vec<String> = (0..60).map(|i| format!("k{i:03}")).collect();
    for (i, k) in keys.iter().enumerate() {
        assert!(
            write(&mut ca, "t", k, format!("v{i}").as_bytes(), None)
                .await
                .success
        );
        if i % 5 == 0 {
            // A concurrent sibling.
            let w = write(&mut ca, "t", k, b"sib", clock(&[("other", 1)])).await;
            assert!(w.success, "{w:?}");
        }
        if i % 7 == 0 {
            assert!(delete(&mut ca, "t", k, None).await.success);
        }
    }
    assert!(
        write(&mut ca, "u", "k000", b"other tenant", None)
            .await
            .success
    );

    // Listed keys (one of them never written).
    let listed = vec!["k001".to_string(), "k005".to_string(), "nope".to_string()];
    let r = ca
        .replicate_data(pb::ReplicateRequest {
            tenant_id: "t".into(),
            keys: listed.clone(),
            target_node_id: "rep-b".into(),
            include_vector_clock: true,
            ..Default::default()
        })
        .await
        .expect("ReplicateData")
        .into_inner();
    assert!(r.success, "{r:?}");
    assert_eq!(r.keys_replicated, 2, "{r:?}");
    for k in ["k001", "k005"] {
        assert_eq!(
            answer(&read(&mut cb, "t", k).await),
            answer(&read(&mut ca, "t", k).await),
            "{k}"
        );
    }
    assert!(!read(&mut cb, "t", "k002").await.success);

    // A range [k010, k040): every key in it, deleted ones as tombstones.
    let r = ca
        .replicate_data(pb::ReplicateRequest {
            tenant_id: "t".into(),
            key_range_start: "k010".into(),
            key_range_end: "k040".into(),
            target_node_id: "rep-b".into(),
            ..Default::default()
        })
        .await
        .expect("ReplicateData")
        .into_inner();
    assert!(r.success, "{r:?}");
    assert_eq!(r.keys_replicated, 30, "{r:?}");
    for k in &keys[10..40] {
        assert_eq!(
            answer(&read(&mut cb, "t", k).await),
            answer(&read(&mut ca, "t", k).await),
            "{k}"
        );
    }
    assert!(!read(&mut cb, "t", "k040").await.success);
    assert!(
        !read(&mut cb, "u", "k000").await.success,
        "another tenant leaked"
    );

    // An empty end runs to the tenant's last key.
    let r = ca
        .replicate_data(pb::ReplicateRequest {
            tenant_id: "t".into(),
            key_range_start: "k050".into(),
            target_node_id: "rep-b".into(),
            ..Default::default()
        })
        .await
        .expect("ReplicateData")
        .into_inner();
    assert!(r.success, "{r:?}");
    assert_eq!(r.keys_replicated, 10, "{r:?}");

    // Not a live member: refused, nothing sent.
    let r = ca
        .replicate_data(pb::ReplicateRequest {
            tenant_id: "t".into(),
            keys: listed,
            target_node_id: "rep-stranger".into(),
            ..Default::default()
        })
        .await
        .expect("ReplicateData")
        .into_inner();
    assert!(!r.success, "{r:?}");
    assert_eq!(r.error_code, pb::ErrorCode::InvalidRequest as i32, "{r:?}");
    assert_eq!(r.keys_replicated, 0);
}
