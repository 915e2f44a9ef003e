//! Range moves, source side: the streams this core's shard sends to other
//! nodes.
//!
//! Owns [`CoreStreams`], one per core: the parts of every stream on this
//! core's shard (see [`part`]), their sender tasks ([`runner`]) in a
//! low-share task queue so foreground requests come first, the forwarding
//! of versions stored in streamed ranges ([`Forwarder`], the shard's put
//! observer) and the shard's `STREAMS` file. A StartStreaming reaches every
//! core (the router broadcasts it); each core keeps and persists its own
//! part, so no core waits on another. Invariants:
//! - a part is persisted before its start is acknowledged and unlisted
//!   before its stop is; a restarted node resumes every listed stream with
//!   a fresh copy pass (forwards in flight at a crash are gone);
//! - starting a stream that exists and has not failed changes nothing
//!   (idempotent); starting one that failed starts it over;
//! - file writes are serialized per core, and the file always lists
//!   exactly the parts present when its write began.

pub(crate) mod backlog;
pub(crate) mod part;
pub(crate) mod peer_target;
pub(crate) mod runner;
pub(crate) mod spec;
pub(crate) mod status;
pub(crate) mod target;
#[cfg(test)]
mod tests;

use crate::engine::shard::PutObserver;
use crate::engine::Shard;
use crate::model::{ring_token, Version};
use crate::storage::streams_file::{self, StreamRecord};
use bytes::Bytes;
use glommio::sync::Semaphore;
use glommio::TaskQueueHandle;
use part::StreamPart;
use runner::RunSettings;
use spec::StreamId;
use status::ShardStatus;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use target::Target;

/// Task queue shares of stream senders (foreground: 1000).
const STREAM_SHARES: usize = 50;

/// The stream settings a core needs.
#[derive(Debug, Clone)]
pub(crate) struct StreamSettings {
    pub node_id: String,
    pub batch_bytes: usize,
    pub backlog_bytes_max: usize,
    /// The node's copy rate, MB/s (10^6 bytes), shared by its shards (0:
    /// unlimited).
    pub rate_mb_s: u64,
}

type Parts = Rc<RefCell<BTreeMap<StreamId, Rc<StreamPart>>>>;

/// Makes the target a stream part sends to.
pub(crate) type Connect = Rc<dyn Fn(&StreamRecord) -> Rc<dyn Target>>;

/// An operation on a core's streams (the router carries it across cores).
#[derive(Debug, Clone)]
pub(crate) enum StreamsOp {
    Start(StreamRecord),
    Stop(StreamId),
    Status(StreamId),
    /// Which active stream, if any, sends a token of these ranges.
    Overlapping(std::sync::Arc<crate::model::TokenRanges>),
    /// Every part on the core with its status.
    List,
    /// Every part on the core with its record (ranges, target, start) and
    /// status (the admin service's ListStreams).
    Details,
}

#[derive(Debug)]
pub(crate) enum StreamsReply {
    Started(Result<Started, String>),
    Stopped(Result<bool, String>),
    Status(Option<ShardStatus>),
    Overlapping(Option<StreamId>),
    List(Vec<(StreamId, ShardStatus)>),
    Details(Vec<(StreamRecord, ShardStatus)>),
    /// The core could not run the operation.
    Unavailable(String),
}

/// What a start did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Started {
    New,
    /// The stream existed and runs on: nothing changed.
    Existing,
}

pub(crate) struct CoreStreams {
    shard: Rc<Shard>,
    shards: usize,
    dir: PathBuf,
    settings: StreamSettings,
    parts: Parts,
    connect: Connect,
    /// Serializes writes of the `STREAMS` file.
    file_lock: Semaphore,
    queue: Option<TaskQueueHandle>,
}

/// The shard's put observer: queues each version stored in a streamed
/// range on the parts whose ranges hold it.
struct Forwarder {
    parts: Parts,
}

impl PutObserver for Forwarder {
    fn wants(&self) -> bool {
        !self.parts.borrow().is_empty()
    }

    fn stored(&self, key: &Bytes, version: &Version) {
        let parts = self.parts.borrow();
        let Some((tenant, k)) = crate::model::key::decode_storage_key(key) else {
            return;
        };
        let token = ring_token(tenant, k);
        for part in parts.values() {
            if part.ranges.contains(token) {
                part.forward(key, version);
            }
        }
    }
}

impl CoreStreams {
    /// The streams of `shard` (stored in `dir`): every stream its `STREAMS`
    /// file lists is resumed with a fresh copy pass.
    pub(crate) fn open(
        shard: Rc<Shard>,
        shards: usize,
        dir: PathBuf,
        settings: StreamSettings,
        connect: Connect,
    ) -> Result<Rc<Self>, String> {
        let records = streams_file::load(&dir).map_err(|e| e.to_string())?;
        let queue = glommio::executor().create_task_queue(
            glommio::Shares::Static(STREAM_SHARES),
            glommio::Latency::NotImportant,
            "streams",
        );
        let parts: Parts = Rc::default();
        shard.set_observer(Rc::new(Forwarder {
            parts: Rc::clone(&parts),
        }));
        let this = Rc::new(Self {
            shard,
            shards,
            dir,
            settings,
            parts,
            connect,
            file_lock: Semaphore::new(1),
            queue: Some(queue),
        });
        for r in records {
            tracing::info!(stream = %StreamId::of(&r), "resuming a stream after restart");
            this.spawn(r);
        }
        Ok(this)
    }

    fn spawn(&self, record: StreamRecord) -> Rc<StreamPart> {
        let part = Rc::new(StreamPart::new(record, self.settings.backlog_bytes_max));
        let old = self
            .parts
            .borrow_mut()
            .insert(part.id.clone(), Rc::clone(&part));
        if let Some(old) = old {
            old.stop();
        }
        let target = (self.connect)(&part.record);
        let settings = RunSettings {
            node_id: self.settings.node_id.clone(),
            shard: self.shard.id(),
            shards: self.shards,
            batch_bytes: self.settings.batch_bytes,
            copy_bytes_per_s: self
                .settings
                .rate_mb_s
                .saturating_mul(1_000_000)
                .div_ceil(self.shards.max(1) as u64),
        };
        let task = runner::run(Rc::clone(&part), Rc::clone(&self.shard), target, settings);
        let spawned = match self.queue {
            Some(q) => glommio::spawn_local_into(task, q),
            None => Ok(glommio::spawn_local(task)),
        };
        match spawned {
            Ok(t) => {
                t.detach();
            }
            Err(e) => tracing::error!(error = %e, "cannot spawn a stream sender"),
        }
        part
    }

    /// Runs one operation on this core's streams.
    pub(crate) async fn execute(&self, op: StreamsOp) -> StreamsReply {
        match op {
            StreamsOp::Start(r) => StreamsReply::Started(self.start(r).await),
            StreamsOp::Stop(id) => StreamsReply::Stopped(self.stop(&id).await),
            StreamsOp::Status(id) => StreamsReply::Status(self.status(&id)),
            StreamsOp::Overlapping(r) => StreamsReply::Overlapping(self.overlaps(&r)),
            StreamsOp::List => StreamsReply::List(self.all()),
            StreamsOp::Details => StreamsReply::Details(
                self.all_parts()
                    .into_iter()
                    .map(|(p, s)| (p.record.clone(), s))
                    .collect(),
            ),
        }
    }

    /// Starts `record` on this core (see the module invariants).
    pub(crate) async fn start(&self, record: StreamRecord) -> Result<Started, String> {
        let id = StreamId::of(&record);
        let _guard = self
            .file_lock
            .acquire_permit(1)
            .await
            .map_err(|e| format!("stream registry closed: {e}"))?;
        if let Some(p) = self.parts.borrow().get(&id) {
            if !p.is_failed() && !p.stopped.get() {
                return Ok(Started::Existing);
            }
        }
        let mut listed = self.records();
        listed.retain(|r| StreamId::of(r) != id);
        listed.push(record.clone());
        streams_file::store(&self.dir, &listed)
            .await
            .map_err(|e| format!("cannot persist the stream: {}", store_error(&e)))?;
        self.spawn(record);
        Ok(Started::New)
    }

    /// Stops and forgets `id`; `false` when there was no such stream.
    pub(crate) async fn stop(&self, id: &StreamId) -> Result<bool, String> {
        let _guard = self
            .file_lock
            .acquire_permit(1)
            .await
            .map_err(|e| format!("stream registry closed: {e}"))?;
        let Some(part) = self.parts.borrow().get(id).cloned() else {
            return Ok(false);
        };
        let mut listed = self.records();
        listed.retain(|r| StreamId::of(r) != *id);
        streams_file::store(&self.dir, &listed)
            .await
            .map_err(|e| format!("cannot persist the stream list: {}", store_error(&e)))?;
        part.stop();
        self.parts.borrow_mut().remove(id);
        tracing::info!(stream = %id, shard = self.shard.id(), "stream stopped");
        Ok(true)
    }

    pub(crate) fn status(&self, id: &StreamId) -> Option<ShardStatus> {
        self.parts
            .borrow()
            .get(id)
            .map(|p| p.status.borrow().clone())
    }

    /// Every part on this core with its status (metrics, admin).
    pub(crate) fn all(&self) -> Vec<(StreamId, ShardStatus)> {
        self.all_parts()
            .into_iter()
            .map(|(p, s)| (p.id.clone(), s))
            .collect()
    }

    /// Every part on this core with its status, backlog filled in.
    fn all_parts(&self) -> Vec<(Rc<StreamPart>, ShardStatus)> {
        self.parts
            .borrow()
            .values()
            .map(|p| {
                let mut s = p.status.borrow().clone();
                s.backlog_bytes = p.backlog.borrow().bytes() as u64;
                (Rc::clone(p), s)
            })
            .collect()
    }

    /// True when an active stream's ranges hold any token of `ranges`.
    pub(crate) fn overlaps(&self, ranges: &crate::model::TokenRanges) -> Option<StreamId> {
        self.parts.borrow().values().find_map(|p| {
            let hit = ranges.ranges().iter().any(|r| {
                // Two ranges overlap when either holds a bound of the other
                // or one is the whole ring.
                p.ranges.ranges().iter().any(|q| {
                    r.start == r.end || q.start == q.end || q.contains(r.end) || r.contains(q.end)
                })
            });
            (hit && !p.is_failed()).then(|| p.id.clone())
        })
    }

    /// Stops every sender (shutdown); the file keeps the streams for the
    /// next start.
    pub(crate) fn halt(&self) {
        for p in self.parts.borrow().values() {
            p.stop();
        }
    }

    fn records(&self) -> Vec<StreamRecord> {
        self.parts
            .borrow()
            .values()
            .filter(|p| !p.stopped.get())
            .map(|p| p.record.clone())
            .collect()
    }
}

fn store_error(e: &crate::storage::manifest::StoreError) -> String {
    match e {
        crate::storage::manifest::StoreError::NotStored(e) => e.to_string(),
        crate::storage::manifest::StoreError::Unsynced(e) => format!("{e} (written, not synced)"),
    }
}
