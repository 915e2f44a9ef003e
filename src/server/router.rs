//! Request routing between cores over the channel mesh.
//!
//! Owns the core's view of the mesh: a request for a shard another core owns
//! is sent to that core as a [`MeshMsg::Call`] and its [`MeshMsg::Reply`]
//! comes back to the core that holds the client connection. Invariants:
//! - nothing is ever sent to the core itself (the local shard is called
//!   directly);
//! - a receive loop never awaits a send (replies are sent from spawned
//!   tasks), so two cores flooding each other cannot deadlock;
//! - every pending call is removed from the table when its caller gives up
//!   (deadline, disconnect), so the table holds only live calls;
//! - the mesh channels are bounded: a full channel makes the sender wait.

use super::drain::{NodeOp, NodeState};
use super::metrics::{RpcMetrics, RpcSnapshot};
use crate::cluster::streams::{CoreStreams, StreamsOp, StreamsReply};
use crate::engine::join::join_all;
use crate::engine::shard::ShardCounters;
use crate::engine::{EngineError, Shard, ShardOp, ShardReply, ShardStats};
use futures_channel::oneshot;
use glommio::channels::channel_mesh::{Receivers, Senders};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

/// What travels between cores.
#[derive(Debug)]
pub(crate) enum MeshMsg {
    Call { id: u64, op: CoreOp },
    Reply { id: u64, reply: CoreReply },
}

/// An operation for another core: on its shard, or on its part of the
/// node's streams.
#[derive(Debug)]
pub(crate) enum CoreOp {
    Shard(ShardOp),
    Streams(StreamsOp),
    Node(NodeOp),
    /// The core's request metrics.
    Metrics,
}

#[derive(Debug)]
pub(crate) enum CoreReply {
    Shard(ShardReply),
    Streams(StreamsReply),
    /// Puts in flight on the core after a [`NodeOp`].
    Node(u64),
    Metrics(Box<RpcSnapshot>),
}

pub(crate) struct Router {
    shard: Rc<Shard>,
    shards: usize,
    senders: Option<Senders<MeshMsg>>,
    pending: RefCell<HashMap<u64, oneshot::Sender<CoreReply>, ahash::RandomState>>,
    next_id: Cell<u64>,
    /// This core's streams, set once at start-up.
    streams: std::cell::OnceCell<Rc<CoreStreams>>,
    /// This core's copy of the node's serving state.
    pub node: NodeState,
    /// This core's request metrics (recorded by its connections).
    pub rpc: RpcMetrics,
}

/// Removes a pending call when the caller stops waiting for any reason.
struct PendingGuard<'a> {
    router: &'a Router,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.router.pending.borrow_mut().remove(&self.id);
    }
}

impl Router {
    /// `senders` is `None` only when there is a single shard.
    pub(crate) fn new(shard: Rc<Shard>, shards: usize, senders: Option<Senders<MeshMsg>>) -> Self {
        Self {
            shard,
            shards,
            senders,
            pending: RefCell::default(),
            next_id: Cell::new(0),
            streams: std::cell::OnceCell::new(),
            node: NodeState::new(),
            rpc: RpcMetrics::new(),
        }
    }

    /// Sets this core's streams (once, at start-up, before serving).
    pub(crate) fn set_streams(&self, streams: Rc<CoreStreams>) {
        let _ = self.streams.set(streams);
    }

    pub(crate) fn shards(&self) -> usize {
        self.shards
    }

    pub(crate) fn local_shard(&self) -> &Rc<Shard> {
        &self.shard
    }

    /// Runs `op` on shard `owner`, here or on its core, and returns the answer.
    pub(crate) async fn call(&self, owner: usize, op: ShardOp) -> ShardReply {
        let counts = !matches!(op, ShardOp::Stats);
        if owner == self.shard.id() {
            if counts {
                ShardCounters::bump(&self.shard.counters.requests_local);
            }
            return self.shard.execute(op).await;
        }
        if counts {
            ShardCounters::bump(&self.shard.counters.requests_forwarded_out);
        }
        match self.call_remote(owner, CoreOp::Shard(op)).await {
            Ok(CoreReply::Shard(r)) => r,
            Ok(other) => ShardReply::Failed(EngineError::Internal {
                what: format!("unexpected reply from shard {owner}: {other:?}"),
            }),
            Err(what) => ShardReply::Failed(EngineError::Internal { what }),
        }
    }

    /// Runs `op` on the streams of core `owner` and returns the answer.
    pub(crate) async fn call_streams(&self, owner: usize, op: StreamsOp) -> StreamsReply {
        if owner == self.shard.id() {
            return match self.streams.get() {
                Some(s) => s.execute(op).await,
                None => StreamsReply::Unavailable("streams are not set up on this core yet".into()),
            };
        }
        match self.call_remote(owner, CoreOp::Streams(op)).await {
            Ok(CoreReply::Streams(r)) => r,
            Ok(other) => {
                StreamsReply::Unavailable(format!("unexpected reply from core {owner}: {other:?}"))
            }
            Err(what) => StreamsReply::Unavailable(what),
        }
    }

    /// Applies `op` to the serving state of every core; answers the puts
    /// in flight over all of them.
    pub(crate) async fn broadcast_node(&self, op: NodeOp) -> Result<u64, String> {
        let calls = (0..self.shards).map(|c| async move {
            if c == self.shard.id() {
                return Ok(self.node.apply(op));
            }
            match self.call_remote(c, CoreOp::Node(op)).await {
                Ok(CoreReply::Node(n)) => Ok(n),
                Ok(other) => Err(format!("unexpected reply from core {c}: {other:?}")),
                Err(e) => Err(e),
            }
        });
        let mut total = 0;
        for r in join_all(calls).await {
            total += r?;
        }
        Ok(total)
    }

    /// The request metrics of every core, merged.
    pub(crate) async fn all_rpc_metrics(&self) -> Result<RpcSnapshot, String> {
        let calls = (0..self.shards).map(|c| async move {
            if c == self.shard.id() {
                return Ok(self.rpc.snapshot());
            }
            match self.call_remote(c, CoreOp::Metrics).await {
                Ok(CoreReply::Metrics(s)) => Ok(*s),
                Ok(other) => Err(format!("unexpected reply from core {c}: {other:?}")),
                Err(e) => Err(e),
            }
        });
        let mut merged = RpcSnapshot::default();
        for r in join_all(calls).await {
            merged.merge(&r?);
        }
        Ok(merged)
    }

    /// Runs `op` on the streams of every core; answers in core order.
    pub(crate) async fn broadcast_streams(&self, op: StreamsOp) -> Vec<StreamsReply> {
        let calls = (0..self.shards).map(|c| self.call_streams(c, op.clone()));
        join_all(calls).await
    }

    async fn call_remote(&self, owner: usize, op: CoreOp) -> Result<CoreReply, String> {
        let Some(senders) = &self.senders else {
            return Err(format!("no mesh to reach shard {owner}"));
        };
        let id = self.next_id.get();
        self.next_id.set(id.wrapping_add(1));
        let (tx, rx) = oneshot::channel();
        self.pending.borrow_mut().insert(id, tx);
        let _guard = PendingGuard { router: self, id };
        if senders
            .send_to(owner, MeshMsg::Call { id, op })
            .await
            .is_err()
        {
            return Err(format!("shard {owner} is not reachable"));
        }
        rx.await
            .map_err(|_| format!("shard {owner} dropped the request"))
    }

    /// Runs `op(shard)` on every shard at once; answers in shard order.
    pub(crate) async fn call_all(&self, op: impl Fn(usize) -> ShardOp) -> Vec<ShardReply> {
        join_all((0..self.shards).map(|s| self.call(s, op(s)))).await
    }

    /// Figures from every shard, in shard order.
    pub(crate) async fn all_stats(&self) -> Result<Vec<ShardStats>, EngineError> {
        let mut out = Vec::with_capacity(self.shards);
        for reply in self.call_all(|_| ShardOp::Stats).await {
            match reply {
                ShardReply::Stats(s) => out.push(*s),
                ShardReply::Failed(e) => return Err(e),
                other => {
                    return Err(EngineError::Internal {
                        what: format!("unexpected stats reply {other:?}"),
                    })
                }
            }
        }
        Ok(out)
    }

    /// Starts one receive loop per peer core. Each loop ends when its peer
    /// closes the channel (at shutdown).
    pub(crate) fn spawn_receivers(self: &Rc<Self>, mut receivers: Receivers<MeshMsg>) {
        for (peer, stream) in receivers.streams() {
            let router = Rc::clone(self);
            glommio::spawn_local(async move {
                while let Some(msg) = stream.recv().await {
                    router.on_message(peer, msg);
                }
            })
            .detach();
        }
    }

    fn on_message(self: &Rc<Self>, peer: usize, msg: MeshMsg) {
        match msg {
            MeshMsg::Call { id, op } => {
                if matches!(&op, CoreOp::Shard(op) if !matches!(op, ShardOp::Stats)) {
                    ShardCounters::bump(&self.shard.counters.requests_forwarded_in);
                }
                let router = Rc::clone(self);
                glommio::spawn_local(async move {
                    let reply = match op {
                        CoreOp::Shard(op) => CoreReply::Shard(router.shard.execute(op).await),
                        CoreOp::Node(op) => CoreReply::Node(router.node.apply(op)),
                        CoreOp::Metrics => CoreReply::Metrics(Box::new(router.rpc.snapshot())),
                        CoreOp::Streams(op) => CoreReply::Streams(match router.streams.get() {
                            Some(s) => s.execute(op).await,
                            None => StreamsReply::Unavailable(
                                "streams are not set up on this core yet".into(),
                            ),
                        }),
                    };
                    if let Some(senders) = &router.senders {
                        if senders
                            .send_to(peer, MeshMsg::Reply { id, reply })
                            .await
                            .is_err()
                        {
                            tracing::debug!(peer, "reply dropped: peer core closed its channel");
                        }
                    }
                })
                .detach();
            }
            MeshMsg::Reply { id, reply } => {
                if let Some(tx) = self.pending.borrow_mut().remove(&id) {
                    // The caller may have gone (deadline); then the reply is dropped.
                    let _ = tx.send(reply);
                }
            }
        }
    }

    /// Closes this core's outgoing channels (at shutdown, after draining).
    pub(crate) fn close(&self) {
        if let Some(s) = &self.senders {
            s.close();
        }
    }
}
