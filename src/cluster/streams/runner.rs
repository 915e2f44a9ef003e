//! The sender task of one stream part: live forwards first, then the copy
//! pass, each batch retried with back-off until the target acknowledges it.
//!
//! Owns [`run`]. Order of work each round: a batch of queued forwards;
//! else the next page of the copy pass (the shard's keys in the stream's
//! token ranges, read by [`Shard::scan_page`] and sent as one batch);
//! else, when the pass has ended, another pass if forwards were dropped;
//! else wait. Invariants:
//! - "completed" only once the pass ended and every forward queued before
//!   its end was acknowledged (`fence`); a dropped forward reopens a pass;
//! - a batch is sent again until the target acknowledges it, with back-off
//!   (100 ms doubling to 5 s) while the target is down or busy; the part
//!   stays "copying" meanwhile; only a refusal that no retry can fix (or a
//!   local read error) fails the part;
//! - copy bytes are paced by the stream rate limit, forwards are not
//!   (they are what foreground writes produce);
//! - the task ends promptly once the part is stopped.

use super::part::StreamPart;
use super::status::Phase;
use super::target::{body_error, SendError, Target};
use crate::engine::compaction::rate::RateLimiter;
use crate::engine::ops::ScanFilter;
use crate::engine::shard::scan::ScanRange;
use crate::engine::Shard;
use crate::model::{shard_token_span, Version};
use crate::proto;
use bytes::Bytes;
use prost::Message;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// How a part's sender works.
#[derive(Debug, Clone)]
pub(crate) struct RunSettings {
    pub node_id: String,
    pub shard: usize,
    pub shards: usize,
    /// Wire bytes per batch (about; one version may exceed it alone).
    pub batch_bytes: usize,
    /// Copy pass pacing for this part, bytes per second (0: unlimited).
    pub copy_bytes_per_s: u64,
}

const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Keys a copy page looks at, at most (a page of a narrow range may skip
/// many keys to find a few).
const PAGE_KEYS_EXAMINED_MAX: usize = 16_384;

/// The wire entries of one key's versions.
fn entries_of(key: &[u8], versions: &[Version], out: &mut Vec<proto::KeyValueEntry>) {
    let Some((tenant, k)) = crate::model::key::decode_storage_key(key) else {
        return;
    };
    for v in versions {
        out.push(proto::wire::version_to_wire(tenant, k, v));
    }
}

/// Runs the part until it is stopped or fails.
pub(crate) async fn run(
    part: Rc<StreamPart>,
    shard: Rc<Shard>,
    target: Rc<dyn Target>,
    s: RunSettings,
) {
    let (lo, hi) = shard_token_span(s.shard, s.shards);
    let holds_tokens = part.ranges.overlaps(lo, hi);
    let mut cursor: Option<Bytes> = None;
    let mut fence: Option<u64> = None;
    let mut acked_seq = 0u64;
    let mut limiter = RateLimiter::with_bytes_per_s(s.copy_bytes_per_s);
    let filter = ScanFilter::Tokens(Arc::new(part.ranges.clone()));
    let mut new_pass = true;
    tracing::info!(stream = %part.id, shard = s.shard, target = %part.record.target_addr,
        ranges = part.ranges.len(), holds_tokens, "stream started");
    loop {
        if part.stopped.get() {
            return;
        }
        if new_pass {
            new_pass = false;
            part.recopy.set(false);
            fence = None;
            part.status.borrow_mut().passes += 1;
            part.status.borrow_mut().phase = Phase::Copying;
            cursor = holds_tokens.then(Bytes::new);
            limiter.restart();
        }
        // 1. Live forwards.
        let forwards = part.backlog.borrow_mut().take(s.batch_bytes);
        if let Some(last) = forwards.last().map(|f| f.seq) {
            let mut entries = Vec::with_capacity(forwards.len());
            for f in &forwards {
                entries_of(&f.key, std::slice::from_ref(&f.version), &mut entries);
            }
            let n = forwards.len() as u64;
            match deliver(&part, target.as_ref(), &s, entries).await {
                Ok(bytes) => {
                    acked_seq = last;
                    let mut st = part.status.borrow_mut();
                    st.keys_streamed += n;
                    st.bytes_streamed += bytes;
                }
                Err(Stop::Stopped) => return,
                Err(Stop::Failed(reason)) => return fail(&part, reason),
            }
            continue;
        }
        // 2. The copy pass.
        if let Some(start) = cursor.take() {
            let range = ScanRange {
                start,
                end: None,
                entries_max: usize::MAX,
                bytes_max: s.batch_bytes,
                keys_examined_max: PAGE_KEYS_EXAMINED_MAX,
            };
            let page = match shard.scan_page(&range, &|k| filter.keeps(k)).await {
                Ok(p) => p,
                Err(e) => return fail(&part, format!("reading the shard failed: {e}")),
            };
            let keys = page.entries.len() as u64;
            if keys > 0 {
                let mut entries = Vec::new();
                for (k, vs) in &page.entries {
                    entries_of(k, vs, &mut entries);
                }
                match deliver(&part, target.as_ref(), &s, entries).await {
                    Ok(bytes) => {
                        {
                            let mut st = part.status.borrow_mut();
                            st.keys_copied += keys;
                            st.bytes_copied += bytes;
                        }
                        limiter.consume(bytes).await;
                    }
                    Err(Stop::Stopped) => return,
                    Err(Stop::Failed(reason)) => return fail(&part, reason),
                }
            }
            cursor = page.resume;
            if cursor.is_none() {
                if part.recopy.get() {
                    new_pass = true;
                } else {
                    fence = Some(part.backlog.borrow().last_seq());
                }
            }
            glommio::yield_if_needed().await;
            continue;
        }
        if part.recopy.get() {
            new_pass = true;
            continue;
        }
        // 3. Completion, then wait for work.
        if fence.is_some_and(|f| acked_seq >= f) {
            let mut st = part.status.borrow_mut();
            if st.phase == Phase::Copying {
                st.phase = Phase::Completed;
                tracing::info!(stream = %part.id, shard = s.shard, keys_copied = st.keys_copied,
                    bytes_copied = st.bytes_copied, passes = st.passes, "stream copy completed");
            }
        }
        if part.backlog.borrow().is_empty() && !part.recopy.get() && !part.stopped.get() {
            part.woken().await;
        }
    }
}

enum Stop {
    Stopped,
    Failed(String),
}

fn fail(part: &StreamPart, reason: String) {
    tracing::error!(stream = %part.id, reason = %reason, "stream failed");
    part.backlog.borrow_mut().clear();
    part.status.borrow_mut().phase = Phase::Failed(reason);
}

/// Sends `entries` as one batch until the target acknowledges it; answers
/// the wire bytes sent.
async fn deliver(
    part: &StreamPart,
    target: &dyn Target,
    s: &RunSettings,
    entries: Vec<proto::KeyValueEntry>,
) -> Result<u64, Stop> {
    let req = proto::ApplyVersionsRequest {
        source_node_id: s.node_id.clone(),
        target_node_id: part.record.target_node_id.clone(),
        versions: entries,
    };
    let bytes = req.encoded_len() as u64;
    let mut backoff = BACKOFF_FIRST;
    let mut logged = false;
    loop {
        if part.stopped.get() {
            return Err(Stop::Stopped);
        }
        let SendError { retryable, message } = match target.apply(req.clone()).await {
            Ok(resp) if resp.success => return Ok(bytes),
            Ok(resp) => body_error(&resp),
            Err(e) => e,
        };
        if !retryable {
            return Err(Stop::Failed(message));
        }
        part.status.borrow_mut().send_retries += 1;
        if !logged {
            tracing::warn!(stream = %part.id, shard = s.shard, error = %message,
                "the target did not take a batch; retrying with back-off");
            logged = true;
        }
        // Sleep, but wake at once if the part is stopped.
        futures_lite::future::or(glommio::timer::sleep(backoff), async {
            while !part.stopped.get() {
                part.woken().await;
            }
        })
        .await;
        // A wake-up consumed above may have been for a forward: re-arm it.
        part.wake();
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}
