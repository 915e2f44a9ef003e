//! StreamKeys and GetKeyRange: a tenant's keys in `[start, end)`, in key
//! order across every shard.
//!
//! Owns the range checks (their messages have no error fields, so a bad
//! request answers gRPC INVALID_ARGUMENT) and the k-way merge of the
//! shards' range pages ([`ShardOp::Scan`]): each shard holds the keys whose
//! tokens it owns, so key order across the node is a merge. Invariants:
//! memory is bounded by one page per shard plus one batch; StreamKeys sends
//! each live version (siblings as separate entries, tombstones left out) in
//! batches of `batch_size` messages, reading the next pages only as the
//! client takes them (h2 flow control is the back-pressure); an empty end
//! means to the tenant's last key.

use super::CoreContext;
use crate::config::LimitsConfig;
use crate::engine::ops::ScanFilter;
use crate::engine::shard::scan::ScanRange;
use crate::engine::{ShardOp, ShardReply};
use crate::model::key::encode_storage_key;
use crate::model::Version;
use crate::proto;
use crate::proto::grpc::{Code, Frame, Status, PREFIX_BYTES};
use crate::server::router::Router;
use bytes::{BufMut, Bytes, BytesMut};
use prost::Message;
use std::collections::VecDeque;
use std::rc::Rc;

/// StreamKeys messages per batch when the request says none.
const STREAM_BATCH_DEFAULT: usize = 100;
const STREAM_BATCH_MAX: usize = 10_000;
/// GetKeyRange keys when the request says none.
const KEY_RANGE_DEFAULT: usize = 1000;
/// Entries a shard page holds at most.
const PAGE_ENTRIES_MAX: usize = 1024;
/// Bytes a shard page or a StreamKeys batch holds, about.
const PAGE_BYTES: usize = 1 << 20;

/// A checked tenant range as storage keys.
pub(super) struct Range {
    start: Bytes,
    end: Bytes,
}

pub(super) fn check_range(
    limits: &LimitsConfig,
    tenant: &str,
    start: &str,
    end: &str,
) -> Result<Range, Status> {
    let invalid = |m: String| Status::new(Code::InvalidArgument, m);
    if tenant.is_empty() {
        return Err(invalid("tenant_id: must not be empty".into()));
    }
    if tenant.len() > limits.tenant_id_bytes_max {
        return Err(invalid(format!(
            "tenant_id: {} bytes, at most {} allowed",
            tenant.len(),
            limits.tenant_id_bytes_max
        )));
    }
    for (name, k) in [("key_range_start", start), ("key_range_end", end)] {
        if k.len() > limits.key_bytes_max {
            return Err(invalid(format!(
                "{name}: {} bytes, at most {} allowed",
                k.len(),
                limits.key_bytes_max
            )));
        }
    }
    if !end.is_empty() && end <= start {
        return Err(invalid(format!(
            "key_range_end {end:?} is not after key_range_start {start:?} (an empty end means to the last key)"
        )));
    }
    let start = encode_storage_key(tenant, start);
    let end = if end.is_empty() {
        // Keys are UTF-8, which never holds the byte 0xFF: the tenant's
        // prefix followed by it sorts after every key of the tenant.
        let mut e = BytesMut::from(&encode_storage_key(tenant, "")[..]);
        e.put_u8(0xFF);
        e.freeze()
    } else {
        encode_storage_key(tenant, end)
    };
    Ok(Range { start, end })
}

/// One shard's side of a merge: its current page and where the next starts.
struct Cursor {
    shard: usize,
    page: VecDeque<(Bytes, Vec<Version>)>,
    /// `None` once the shard's part of the range is read.
    resume: Option<Bytes>,
}

/// The node's keys of a range in key order, a page per shard at a time.
pub(super) struct Merge {
    router: Rc<Router>,
    end: Bytes,
    cursors: Vec<Cursor>,
    /// Entries per shard page.
    page_entries: usize,
}

impl Merge {
    /// A merge reading pages of at most `page_entries` entries per shard
    /// (a caller that needs few keys asks for small pages).
    pub(super) fn new(router: Rc<Router>, range: Range, page_entries: usize) -> Self {
        let cursors = (0..router.shards())
            .map(|shard| Cursor {
                shard,
                page: VecDeque::new(),
                resume: Some(range.start.clone()),
            })
            .collect();
        Self {
            router,
            end: range.end,
            cursors,
            page_entries: page_entries.clamp(1, PAGE_ENTRIES_MAX),
        }
    }

    /// The next key with its versions, or `None` at the end.
    pub(super) async fn next(&mut self) -> Result<Option<(Bytes, Vec<Version>)>, Status> {
        for c in self.cursors.iter_mut() {
            while c.page.is_empty() {
                let Some(start) = c.resume.take() else {
                    break;
                };
                let op = ShardOp::Scan {
                    range: ScanRange {
                        start,
                        end: Some(self.end.clone()),
                        entries_max: self.page_entries,
                        bytes_max: PAGE_BYTES,
                        keys_examined_max: 4096,
                    },
                    filter: ScanFilter::All,
                };
                match self.router.call(c.shard, op).await {
                    ShardReply::Scan(page) => {
                        c.page = page.entries.into();
                        c.resume = page.resume;
                    }
                    ShardReply::Failed(e) => {
                        let code = match e {
                            crate::engine::EngineError::Corrupted { .. } => Code::DataLoss,
                            _ => Code::Internal,
                        };
                        return Err(Status::new(code, format!("shard {}: {e}", c.shard)));
                    }
                    other => {
                        return Err(Status::new(
                            Code::Internal,
                            format!("unexpected shard reply {other:?}"),
                        ))
                    }
                }
            }
        }
        let best = self
            .cursors
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.page.front().map(|(k, _)| (k, i)))
            .min()
            .map(|(_, i)| i);
        Ok(best.and_then(|i| self.cursors.get_mut(i)?.page.pop_front()))
    }
}

fn live(versions: &[Version]) -> impl Iterator<Item = &Version> {
    versions.iter().filter(|v| !v.is_tombstone())
}

/// A StreamKeys answer being produced: one batch per call of
/// [`KeyStream::next_batch`].
pub(crate) struct KeyStream {
    merge: Merge,
    batch: usize,
}

impl KeyStream {
    /// The next batch of framed messages, `None` once the range is sent, or
    /// the status that ends the stream.
    pub(crate) async fn next_batch(&mut self) -> Option<Result<Frame, Status>> {
        let mut out = BytesMut::new();
        let mut messages = 0;
        while messages < self.batch && out.len() < PAGE_BYTES {
            let (key, versions) = match self.merge.next().await {
                Ok(Some(entry)) => entry,
                Ok(None) => break,
                Err(s) => return Some(Err(s)),
            };
            let Some((tenant, k)) = crate::model::key::decode_storage_key(&key) else {
                continue;
            };
            for v in live(&versions) {
                let m = proto::wire::version_to_wire(tenant, k, v);
                out.reserve(PREFIX_BYTES + m.encoded_len());
                out.put_u8(0);
                out.put_u32(m.encoded_len() as u32);
                // Reserved above: encoding cannot run out of room.
                let _ = m.encode(&mut out);
                messages += 1;
            }
        }
        (!out.is_empty()).then(|| Ok(Frame::One(out.freeze())))
    }
}

pub(super) fn stream_keys(
    core: &CoreContext,
    req: proto::StreamKeysRequest,
) -> Result<KeyStream, Status> {
    let range = check_range(
        &core.config.limits,
        &req.tenant_id,
        &req.key_range_start,
        &req.key_range_end,
    )?;
    let batch = if req.batch_size <= 0 {
        STREAM_BATCH_DEFAULT
    } else {
        (req.batch_size as usize).min(STREAM_BATCH_MAX)
    };
    Ok(KeyStream {
        merge: Merge::new(Rc::clone(&core.router), range, batch),
        batch,
    })
}

pub(super) async fn get_key_range(
    core: &CoreContext,
    req: proto::KeyRangeRequest,
) -> Result<proto::KeyRangeResponse, Status> {
    let range = check_range(
        &core.config.limits,
        &req.tenant_id,
        &req.key_range_start,
        &req.key_range_end,
    )?;
    let max = if req.max_keys <= 0 {
        KEY_RANGE_DEFAULT
    } else {
        req.max_keys as usize
    }
    .min(core.config.limits.key_range_keys_max);
    // Keys may be long: the answer also stops at half the message limit.
    let bytes_max = core.config.limits.message_bytes_max / 2;
    let mut bytes = 0;
    // One more than asked: the first key not returned is next_key.
    let mut merge = Merge::new(Rc::clone(&core.router), range, max + 1);
    let mut answer = proto::KeyRangeResponse::default();
    while let Some((key, versions)) = merge.next().await? {
        if live(&versions).next().is_none() {
            continue;
        }
        let Some((_, k)) = crate::model::key::decode_storage_key(&key) else {
            continue;
        };
        if answer.keys.len() == max || bytes + k.len() + 8 > bytes_max {
            answer.has_more = true;
            answer.next_key = k.to_string();
            break;
        }
        bytes += k.len() + 8;
        answer.keys.push(k.to_string());
    }
    Ok(answer)
}
