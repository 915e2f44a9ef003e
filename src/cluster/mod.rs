//! The cluster layer: gossip membership (SWIM, with foca) on core 0, and
//! range moves ([`streams`]: copy passes and live forwarding to a target
//! node, per core).
//!
//! Owns which nodes this node knows, their gRPC addresses and whether they
//! are alive, and how every core learns it. Core 0 runs foca over UDP
//! (`gossip`); each change becomes an immutable [`Members`] snapshot that
//! core 0 installs in its own [`MemberView`] and sends to every other core
//! over a glommio shared channel (`view`), where it replaces that core's
//! view. Readers on any core call [`MemberView::snapshot`] or
//! [`MemberView::is_alive`]: no locks, no cross-core calls.
//!
//! One idea per file: `identity` (a run of a node as foca carries it),
//! `endpoints` (addresses to bind, advertise and announce to), `gossip` (the
//! loop on core 0), `timers` (foca's timers in order), `roster` (core 0's
//! bookkeeping and the snapshots built from it), `claims` (which claimant
//! of a duplicate node id keeps it), `leave` (departure notices, so "left"
//! differs from "down"), `members` (the snapshot), `view` (per-core views
//! and their channels), `health` (HealthCheck metrics).
//!
//! Start-up ([`ClusterStart::prepare`], before the executors start) resolves
//! the addresses, binds the gossip socket and creates the channels; each
//! core then takes its part once ([`ClusterStart::take`]) and starts it
//! ([`CoreCluster::start`]). Layering: membership uses `config` only;
//! streams use the engine, storage, the client and the wire types. The
//! server holds a core's view and calls the streams; the runtime starts the
//! layer.

mod claims;
mod endpoints;
mod gossip;
mod health;
mod identity;
mod leave;
mod members;
mod roster;
pub(crate) mod streams;
mod timers;
mod view;

pub(crate) use health::insert_health_metrics;
pub(crate) use members::Members;
#[allow(
    unused_imports,
    reason = "the snapshot's types, for callers of MemberView::snapshot"
)]
pub(crate) use members::{Member, MemberState};
pub(crate) use view::MemberView;

use crate::config::Config;
use foca::Codec;
use glommio::channels::shared_channel::SharedReceiver;
use gossip::GossipStart;
use identity::{NodeIdentity, IDENTITY_BYTES_MAX};
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

/// One core's part of the cluster layer, before it starts.
enum CorePart {
    /// Core 0: the gossip loop.
    Gossip(Box<GossipStart>),
    /// Every other core: the channel core 0's snapshots arrive on.
    Follow(SharedReceiver<Arc<Members>>),
}

/// The cluster layer's parts for every core, prepared before the executors
/// start. The mutex is taken once per core at start-up (to hand each core
/// its part), never afterwards.
pub(crate) struct ClusterStart {
    /// The snapshot every view starts with: this node alone, alive.
    initial: Arc<Members>,
    parts: Mutex<Vec<Option<CorePart>>>,
}

impl ClusterStart {
    /// Resolves the addresses for a node whose gRPC listener is `listen`
    /// (port 0 resolved), binds the gossip socket and creates one channel
    /// per core besides core 0. Errors are start-up refusals naming the key.
    pub(crate) fn prepare(
        config: &Config,
        listen: SocketAddr,
        shards: usize,
    ) -> Result<Self, String> {
        let endpoints = endpoints::resolve(&config.cluster, listen)?;
        let me = NodeIdentity::starting_now(
            config.node.node_id.clone(),
            endpoints.grpc.clone(),
            endpoints.gossip,
        );
        let mut encoded = Vec::new();
        foca::PostcardCodec
            .encode_member(&foca::Member::alive(me.clone()), &mut encoded)
            .map_err(|e| format!("cannot encode this node's gossip identity: {e}"))?;
        if encoded.len() > IDENTITY_BYTES_MAX {
            return Err(format!(
                "node.node_id and cluster.advertise are too long for gossip: together they \
                 take {} bytes of an identity limited to {IDENTITY_BYTES_MAX}",
                encoded.len()
            ));
        }
        let socket = endpoints::bind(endpoints.gossip_bind)?;
        let initial =
            Arc::new(roster::Roster::new(me.clone(), std::time::Duration::ZERO).members());
        let (senders, receivers) = view::channels(shards);
        let mut parts = vec![Some(CorePart::Gossip(Box::new(GossipStart {
            socket,
            me,
            seeds: endpoints.seeds,
            config: config.cluster.clone(),
            senders,
        })))];
        parts.extend(receivers.into_iter().map(|r| Some(CorePart::Follow(r))));
        Ok(Self {
            initial,
            parts: Mutex::new(parts),
        })
    }

    /// Shard `shard`'s part, once: shard 0 runs gossip.
    pub(crate) fn take(&self, shard: usize) -> Result<CoreCluster, String> {
        let part = self
            .parts
            .lock()
            .map_err(|_| "the cluster start-up parts were poisoned by a failed core".to_string())?
            .get_mut(shard)
            .and_then(Option::take)
            .ok_or_else(|| format!("no cluster part for shard {shard} (taken twice?)"))?;
        Ok(CoreCluster {
            view: Rc::new(MemberView::new(Arc::clone(&self.initial))),
            part,
        })
    }
}

/// One core's part of the cluster layer and its membership view.
pub(crate) struct CoreCluster {
    /// This core's view: what [`crate::server::context::CoreContext`]
    /// hands to readers.
    pub(crate) view: Rc<MemberView>,
    part: CorePart,
}

impl CoreCluster {
    /// Starts this core's part. On core 0: the gossip loop, whose task ends
    /// once `shutdown` completed and the departure was announced (await it
    /// before the core exits). On the others: following core 0's snapshots
    /// (a detached task; `None`).
    pub(crate) fn start(
        self,
        shutdown: impl Future<Output = ()> + 'static,
    ) -> Option<glommio::Task<()>> {
        match self.part {
            CorePart::Gossip(start) => Some(glommio::spawn_local(gossip::run(
                *start,
                Rc::clone(&self.view),
                shutdown,
            ))),
            CorePart::Follow(receiver) => {
                view::follow(receiver, self.view);
                None
            }
        }
    }
}
