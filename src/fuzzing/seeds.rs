//! Seed inputs for every fuzz target, made by the real encoders: the
//! corpus test runs them (so they follow the formats as they change), and
//! `write_seed_corpus` (an ignored test) writes them to `fuzz/corpus/`.
//!
//! Invariant: every seed is a valid encoding its decoder accepts (checked
//! by the tests), so mutations start from inputs that reach deep.

use super::grpc::config;
use super::sstable::as_block;
use crate::model::{VectorClock, Version};
use crate::proto;
use crate::proto::grpc::encode_frame;
use crate::server::handlers::checks::METHODS;
use crate::storage::codec::encode_entry;
use crate::storage::datadir::{encode_meta, Meta};
use crate::storage::manifest::{Manifest, TableMeta};
use crate::storage::sstable::format::{Footer, FOOTER_LEN};
use crate::storage::sstable::{Index, SstBuilder};
use crate::storage::streams_file::{self, StreamRecord};
use crate::storage::wal::format::{encode_batch, encode_segment_header, Record, SegmentId};
use bytes::Bytes;

/// A named seed of one target.
pub(super) struct Seed {
    pub target: &'static str,
    pub name: String,
    pub bytes: Vec<u8>,
}

fn version(node: &str, counter: i64, ts: i64, value: Option<&[u8]>) -> Version {
    Version {
        clock: VectorClock::from_entries([(node.to_string(), counter), ("n2".into(), 7)], 64)
            .expect("a valid clock"),
        timestamp_ms: ts,
        value: value.map(Bytes::copy_from_slice),
    }
}

fn put(key: &str, counter: i64, value: Option<&[u8]>) -> Record {
    Record::Put {
        key: Bytes::copy_from_slice(key.as_bytes()),
        version: version("n1", counter, 1_700_000_000_000 + counter, value),
    }
}

const SEG: SegmentId = SegmentId {
    shard_id: 3,
    segment_no: 17,
};

/// Every seed of every target.
pub(super) fn all() -> Vec<Seed> {
    let mut seeds = Vec::new();
    let mut add = |target: &'static str, name: &str, bytes: Vec<u8>| {
        seeds.push(Seed {
            target,
            name: name.to_string(),
            bytes,
        });
    };
    codec(&mut add);
    wal(&mut add);
    sstable(&mut add);
    small_files(&mut add);
    grpc(&mut add);
    h2(&mut add);
    seeds
}

type Add<'a> = dyn FnMut(&'static str, &str, Vec<u8>) + 'a;

fn codec(add: &mut Add<'_>) {
    let cases: [(&str, Vec<Version>); 3] = [
        ("value", vec![version("n1", 1, 5, Some(b"hello"))]),
        ("tombstone", vec![version("n1", 2, 6, None)]),
        (
            "siblings",
            vec![
                version("a", 3, 7, Some(b"x")),
                version("b", 4, 8, None),
                version("c", 5, 9, Some(&[0xB7, 0xA1, 0x5E, 0xC3])),
            ],
        ),
    ];
    for (name, versions) in cases {
        let mut out = Vec::new();
        encode_entry(&mut out, b"\x00\x00\x00\x01tkey", &versions);
        add("codec_entry", name, out);
    }
}

fn wal_batches() -> Vec<Vec<Record>> {
    vec![
        vec![put("k1", 1, Some(b"v1"))],
        vec![put("k2", 2, None), put("k3", 3, Some(b""))],
        vec![put("", 4, Some(&[0u8; 40]))],
    ]
}

fn wal(add: &mut Add<'_>) {
    let mut seq = 100;
    let mut segment = encode_segment_header(SEG).to_vec();
    for (i, records) in wal_batches().iter().enumerate() {
        let mut batch = Vec::new();
        encode_batch(&mut batch, SEG, seq, records).expect("a valid batch");
        segment.extend_from_slice(&batch);
        seq += records.len() as u64;
        add("wal_batch", &format!("batch-{i}"), batch);
    }
    add("wal_scan", "clean-end", segment.clone());
    let mut zeroed = segment.clone();
    zeroed.resize(segment.len().div_ceil(4096) * 4096 + 4096, 0);
    add("wal_scan", "zero-tail", zeroed);
    let mut torn = segment.clone();
    torn.truncate(segment.len() - 3);
    add("wal_scan", "torn-tail", torn);
    add("wal_scan", "empty", encode_segment_header(SEG).to_vec());
}

/// A table image with several blocks (raw and zstd) and its parts.
fn table(compress: bool) -> Vec<u8> {
    let mut b = SstBuilder::new(256).with_compression(compress.then_some(1));
    for i in 0..24u32 {
        let key = format!("key-{i:04}");
        let value = if compress {
            vec![b'a'; 120]
        } else {
            format!("value-{i}").into_bytes()
        };
        let versions = if i % 5 == 0 {
            vec![version("n1", i64::from(i) + 1, 10, None)]
        } else {
            vec![version("n1", i64::from(i) + 1, 10, Some(&value))]
        };
        b.add(key.as_bytes(), &versions).expect("keys increase");
    }
    b.finish().expect("a table").0
}

fn sstable(add: &mut Add<'_>) {
    let (empty, _) = SstBuilder::new(4096).finish().expect("an empty table");
    for (name, image) in [
        ("raw", table(false)),
        ("zstd", table(true)),
        ("empty", empty),
    ] {
        let footer_at = image.len() - FOOTER_LEN;
        let footer_raw = &image[footer_at..];
        let footer = Footer::parse(footer_raw).expect("a footer");
        let range = |r: std::ops::Range<u64>| r.start as usize..r.end as usize;
        let index_raw = &image[range(footer.index_range())];
        let filter_raw = &image[range(footer.filter_range())];
        let index = Index::parse(index_raw).expect("an index");
        for (i, e) in index.blocks().iter().enumerate().take(3) {
            let start = e.handle.offset as usize;
            let block = image[start..start + e.handle.len as usize].to_vec();
            add("sst_block", &format!("{name}-{i}"), block);
        }
        add("sst_footer", name, footer_raw.to_vec());
        add("sst_index", name, index_raw.to_vec());
        add("sst_filter", name, filter_raw.to_vec());
        add("sst_table", name, image.clone());
    }
    add("sst_block", "framed-entry", {
        let mut payload = Vec::new();
        encode_entry(&mut payload, b"k", &[version("n1", 1, 1, Some(b"v"))]);
        let mut block = vec![0u8; 4];
        block.push(0);
        block.extend_from_slice(&[0, 0, 0]);
        block.extend_from_slice(&1u32.to_be_bytes());
        block.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        block.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        block.extend_from_slice(&payload);
        as_block(&block)
    });
}

fn small_files(add: &mut Add<'_>) {
    let table = |file_no: u64, small: &str, large: &str| TableMeta {
        level: (file_no % 3) as u8,
        file_no,
        file_bytes: 4096 * (file_no + 2),
        entries: file_no * 10,
        smallest: Bytes::copy_from_slice(small.as_bytes()),
        largest: Bytes::copy_from_slice(large.as_bytes()),
    };
    let manifest = Manifest {
        shard_id: 2,
        next_file_no: 9,
        wal_min_segment: 4,
        tables: vec![table(3, "a", "m"), table(5, "", "zz")],
    };
    add("manifest", "two-tables", manifest.encode());
    add("manifest", "empty", Manifest::default().encode());
    let meta = Meta {
        format_version: 1,
        shards: 4,
        partitioning: crate::storage::datadir::PARTITIONING_TOKEN_RANGE,
        node_id: "node-a".into(),
    };
    add("meta", "node-a", encode_meta(&meta));
    let stream = StreamRecord {
        source_node_id: "node-a".into(),
        target_node_id: "node-b".into(),
        target_addr: "10.0.0.2:7000".into(),
        started_unix_ms: 1_700_000_000_000,
        ranges: vec![(1, 100), (u64::MAX - 5, 3)],
    };
    add("streams_file", "one", streams_file::encode(&[stream]));
    add("streams_file", "none", streams_file::encode(&[]));
}

fn clock() -> Option<proto::VectorClock> {
    Some(proto::VectorClock {
        entries: vec![proto::VectorClockEntry {
            coordinator_node_id: "n1".into(),
            logical_timestamp: 3,
        }],
    })
}

fn ranges() -> Vec<proto::StreamKeyRange> {
    vec![proto::StreamKeyRange {
        start_hash: 10,
        end_hash: 20,
    }]
}

/// A valid request body (framed) for `method`.
pub(super) fn request(method: &str) -> Bytes {
    let own = config().node.node_id.clone();
    match method {
        "Write" => encode_frame(&proto::WriteRequest {
            tenant_id: "t".into(),
            key: "k".into(),
            value: Bytes::from_static(b"v"),
            vector_clock: clock(),
            idempotency_key: String::new(),
        }),
        "Read" => encode_frame(&proto::ReadRequest {
            tenant_id: "t".into(),
            key: "k".into(),
        }),
        "Delete" => encode_frame(&proto::DeleteRequest {
            tenant_id: "t".into(),
            key: "k".into(),
            vector_clock: clock(),
            idempotency_key: String::new(),
        }),
        "Repair" => encode_frame(&proto::RepairRequest {
            tenant_id: "t".into(),
            key: "k".into(),
            value: Bytes::from_static(b"v"),
            vector_clock: clock(),
        }),
        "StreamKeys" => encode_frame(&proto::StreamKeysRequest {
            tenant_id: "t".into(),
            key_range_start: "a".into(),
            key_range_end: "z".into(),
            batch_size: 10,
        }),
        "GetKeyRange" => encode_frame(&proto::KeyRangeRequest {
            tenant_id: "t".into(),
            key_range_start: "a".into(),
            key_range_end: String::new(),
            max_keys: 5,
        }),
        "StartStreaming" => encode_frame(&proto::StartStreamingRequest {
            source_node_id: own,
            target_node_id: "node-b".into(),
            target_host: "127.0.0.1".into(),
            target_port: 7001,
            key_ranges: ranges(),
        }),
        "GetStreamStatus" | "StopStreaming" | "NotifyStreamingComplete" => {
            encode_frame(&proto::StopStreamingRequest {
                source_node_id: own,
                target_node_id: "node-b".into(),
            })
        }
        "ApplyVersions" => encode_frame(&proto::ApplyVersionsRequest {
            source_node_id: "node-b".into(),
            target_node_id: own,
            versions: vec![proto::KeyValueEntry {
                tenant_id: "t".into(),
                key: "k".into(),
                value: Bytes::from_static(b"v"),
                vector_clock: clock(),
                timestamp: 5,
                is_tombstone: false,
            }],
        }),
        "DrainNode" => encode_frame(&proto::DrainRequest {
            graceful: true,
            timeout_seconds: 1,
        }),
        "RangeDigest" | "Cleanup" => encode_frame(&proto::CleanupRequest {
            key_ranges: ranges(),
        }),
        "ReplicateData" => encode_frame(&proto::ReplicateRequest {
            tenant_id: "t".into(),
            keys: vec!["k1".into(), "k2".into()],
            target_node_id: "node-b".into(),
            ..Default::default()
        }),
        // HealthCheck, Undrain: empty messages.
        _ => encode_frame(&proto::HealthCheckRequest {}),
    }
}

fn grpc(add: &mut Add<'_>) {
    for (i, (_, method)) in METHODS.iter().enumerate() {
        let mut bytes = vec![i as u8];
        bytes.extend_from_slice(&request(method));
        add("grpc_request", method, bytes);
    }
}

/// An HTTP/2 frame: 24-bit length, type, flags, stream id, payload.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// HPACK literal header fields without indexing, new names, no Huffman.
fn hpack(headers: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in headers {
        out.push(0);
        out.push(name.len() as u8);
        out.extend_from_slice(name.as_bytes());
        out.push(value.len() as u8);
        out.extend_from_slice(value.as_bytes());
    }
    out
}

const HEADERS: u8 = 1;
const END_STREAM: u8 = 1;
const END_HEADERS: u8 = 4;

/// A client's bytes: preface, SETTINGS, then each request's HEADERS (and
/// DATA when it has a body).
/// One request of [`h2_client`]: method, path, extra headers, body.
type H2Request<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, Option<Bytes>);

fn h2_client(requests: &[H2Request<'_>]) -> Vec<u8> {
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(4, 0, 0, &[]));
    for (i, (method, path, extra, body)) in requests.iter().enumerate() {
        let stream = 1 + 2 * i as u32;
        let mut headers = vec![
            (":method", *method),
            (":scheme", "http"),
            (":path", *path),
            (":authority", "node"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ];
        headers.extend(extra.iter().copied());
        let flags = END_HEADERS | if body.is_none() { END_STREAM } else { 0 };
        out.extend(frame(HEADERS, flags, stream, &hpack(&headers)));
        if let Some(body) = body {
            out.extend(frame(0, END_STREAM, stream, body));
        }
    }
    out
}

fn h2(add: &mut Add<'_>) {
    let path = |m: &str| format!("/storage.StorageNodeService/{m}");
    let (write, read, start) = (path("Write"), path("Read"), path("StartStreaming"));
    let client = h2_client(&[
        ("POST", &write, vec![], Some(request("Write"))),
        (
            "POST",
            &read,
            vec![("grpc-timeout", "5S")],
            Some(request("Read")),
        ),
        ("POST", &start, vec![], Some(request("StartStreaming"))),
        ("GET", "/", vec![], None),
        (
            "POST",
            &read,
            vec![("grpc-timeout", "x")],
            Some(request("Read")),
        ),
    ]);
    for (name, chunk) in [("whole", 0u8), ("bytewise", 1), ("by-7", 7)] {
        let mut bytes = vec![chunk];
        bytes.extend_from_slice(&client);
        add("h2_server", name, bytes);
    }
}
