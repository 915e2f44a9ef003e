//! `stream-bench`: one range move timed from the outside, as a coordinator
//! drives it.
//!
//! Calls StartStreaming on the source for the given token ranges (default:
//! the whole ring) to the target, polls GetStreamStatus every `--poll-ms`
//! until "completed" (printing progress), then reports the copy's wall time,
//! the keys and bytes the source's counters say it copied and the rate in
//! MB/s (10^6 bytes). With `--verify` it compares RangeDigest of the ranges
//! on both nodes; with `--stop` it calls StopStreaming at the end. Prints
//! one JSON object with `--json`.

use clap::Parser;
use pairdb_bench::proto::storage_admin_service_client::StorageAdminServiceClient;
use pairdb_bench::proto::storage_node_service_client::StorageNodeServiceClient;
use pairdb_bench::proto::{
    RangeDigestRequest, StartStreamingRequest, StopStreamingRequest, StreamKeyRange,
    StreamStatusRequest,
};
use pairdb_bench::BoxError;
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(name = "stream-bench")]
struct Args {
    /// The source node's URL.
    #[arg(long)]
    source: String,
    #[arg(long)]
    source_id: String,
    /// The target node's URL (for --verify).
    #[arg(long, default_value = "")]
    target: String,
    #[arg(long)]
    target_id: String,
    #[arg(long, default_value = "127.0.0.1")]
    target_host: String,
    #[arg(long)]
    target_port: i32,
    /// Token ranges `start:end` (decimal), `(start, end]`; default: the
    /// whole ring.
    #[arg(long, value_delimiter = ',')]
    ranges: Vec<String>,
    #[arg(long, default_value_t = 200)]
    poll_ms: u64,
    #[arg(long, default_value_t = 3600.0)]
    timeout_s: f64,
    /// Compare RangeDigest of the ranges on source and target at the end.
    #[arg(long)]
    verify: bool,
    /// Call StopStreaming at the end.
    #[arg(long)]
    stop: bool,
    #[arg(long)]
    json: bool,
}

fn ranges(args: &Args) -> Result<Vec<StreamKeyRange>, BoxError> {
    if args.ranges.is_empty() {
        return Ok(vec![StreamKeyRange {
            start_hash: 0,
            end_hash: 0,
        }]);
    }
    args.ranges
        .iter()
        .map(|r| {
            let (a, b) = r
                .split_once(':')
                .ok_or_else(|| format!("range {r:?} is not start:end"))?;
            Ok(StreamKeyRange {
                start_hash: a.parse()?,
                end_hash: b.parse()?,
            })
        })
        .collect()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let key_ranges = ranges(&args)?;
    let mut source = StorageNodeServiceClient::connect(args.source.clone()).await?;
    let started = Instant::now();
    let r = source
        .start_streaming(StartStreamingRequest {
            source_node_id: args.source_id.clone(),
            target_node_id: args.target_id.clone(),
            target_host: args.target_host.clone(),
            target_port: args.target_port,
            key_ranges: key_ranges.clone(),
        })
        .await?
        .into_inner();
    if !r.success {
        return Err(format!("StartStreaming refused: {}", r.message).into());
    }
    let status_req = StreamStatusRequest {
        source_node_id: args.source_id.clone(),
        target_node_id: args.target_id.clone(),
    };
    let deadline = started + Duration::from_secs_f64(args.timeout_s);
    let mut last_print = Instant::now();
    let status = loop {
        let s = source
            .get_stream_status(status_req.clone())
            .await?
            .into_inner();
        if s.state == "completed" {
            break s;
        }
        if s.state == "failed" || s.state == "not_found" {
            return Err(format!("stream {}: {s:?}", s.state).into());
        }
        if Instant::now() > deadline {
            return Err(format!("not completed after {} s: {s:?}", args.timeout_s).into());
        }
        if !args.json && last_print.elapsed() >= Duration::from_secs(1) {
            eprintln!(
                "stream-bench: {:.1} s {} keys {:.1} MB copied",
                started.elapsed().as_secs_f64(),
                s.keys_copied,
                s.bytes_copied as f64 / 1e6
            );
            last_print = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(args.poll_ms)).await;
    };
    let elapsed = started.elapsed().as_secs_f64();
    let mb_s = status.bytes_copied as f64 / 1e6 / elapsed.max(1e-9);
    let mut digests_equal = None;
    if args.verify {
        let mut a = StorageAdminServiceClient::connect(args.source.clone()).await?;
        let mut b = StorageAdminServiceClient::connect(args.target.clone()).await?;
        let req = RangeDigestRequest {
            key_ranges: key_ranges.clone(),
        };
        let da = a.range_digest(req.clone()).await?.into_inner();
        let db = b.range_digest(req).await?.into_inner();
        digests_equal = Some(da.digest == db.digest && da.versions == db.versions);
        if !args.json {
            eprintln!(
                "stream-bench: source {} keys {} versions {}; target {} keys {} versions {}",
                da.keys, da.versions, da.digest, db.keys, db.versions, db.digest
            );
        }
    }
    if args.stop {
        source
            .stop_streaming(StopStreamingRequest {
                source_node_id: args.source_id.clone(),
                target_node_id: args.target_id.clone(),
            })
            .await?;
    }
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "elapsed_s": elapsed,
                "keys_copied": status.keys_copied,
                "bytes_copied": status.bytes_copied,
                "keys_streamed": status.keys_streamed,
                "copy_mb_s": mb_s,
                "digests_equal": digests_equal,
            })
        );
    } else {
        println!(
            "copied {} keys, {:.1} MB in {elapsed:.2} s: {mb_s:.1} MB/s{}",
            status.keys_copied,
            status.bytes_copied as f64 / 1e6,
            match digests_equal {
                Some(true) => "; digests equal",
                Some(false) => "; DIGESTS DIFFER",
                None => "",
            }
        );
    }
    if digests_equal == Some(false) {
        return Err("the target's digest differs from the source's".into());
    }
    Ok(())
}
