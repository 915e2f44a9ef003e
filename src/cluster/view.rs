//! Each core's membership view, and how core 0 keeps them current.
//!
//! Owns [`MemberView`], the per-core holder of the latest [`Members`]
//! snapshot, and the transport of snapshots from core 0 to the other cores:
//! one glommio shared channel per other core, created before the executors
//! start ([`channels`]); core 0 publishes each new snapshot to every core
//! ([`Publisher`]) and each other core replaces its view with what arrives
//! ([`follow`]). No locks: a snapshot is an immutable `Arc<Members>`, the
//! view is a `RefCell` touched only by its own core, never across an await.
//!
//! Invariants: a view only moves to newer snapshots (each channel delivers
//! in order, and a publisher that falls behind skips to the latest); a core
//! whose channel is not connected yet keeps its start-up snapshot (this node
//! alone, alive).

use super::members::Members;
use futures_channel::mpsc;
use futures_lite::StreamExt;
use glommio::channels::shared_channel::{self, SharedReceiver, SharedSender};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

/// Snapshots in flight per channel; a slow core makes the publisher skip
/// intermediate snapshots rather than queue them.
const CHANNEL_CAPACITY: usize = 4;

/// A core's latest membership snapshot.
#[derive(Debug)]
pub(crate) struct MemberView {
    current: RefCell<Arc<Members>>,
}

impl MemberView {
    pub(crate) fn new(initial: Arc<Members>) -> Self {
        Self {
            current: RefCell::new(initial),
        }
    }

    /// The latest snapshot (cheap: one reference count).
    pub(crate) fn snapshot(&self) -> Arc<Members> {
        Arc::clone(&self.current.borrow())
    }

    /// The gRPC address of `node_id` if it is a live gossip member (alive or
    /// suspect) in the latest snapshot.
    #[allow(
        dead_code,
        reason = "the check data movement makes before sending to a node"
    )]
    pub(crate) fn is_alive(&self, node_id: &str) -> Option<String> {
        self.current.borrow().live_grpc(node_id).map(str::to_owned)
    }

    /// Installs a newer snapshot.
    pub(crate) fn replace(&self, members: Arc<Members>) {
        *self.current.borrow_mut() = members;
    }
}

/// One channel per core other than core 0: the senders (index `k - 1`
/// feeds core `k`) and the receivers, in the same order.
pub(crate) type Channels = (
    Vec<SharedSender<Arc<Members>>>,
    Vec<SharedReceiver<Arc<Members>>>,
);

/// The channels from core 0 to each of the other `shards - 1` cores.
pub(crate) fn channels(shards: usize) -> Channels {
    (1..shards)
        .map(|_| shared_channel::new_bounded(CHANNEL_CAPACITY))
        .unzip()
}

/// Core 0's end: hands each snapshot to one task per other core, which
/// sends the newest one it has whenever its channel has room.
pub(crate) struct Publisher {
    peers: Vec<mpsc::UnboundedSender<Arc<Members>>>,
}

impl Publisher {
    /// Starts one sending task per channel on this core (core 0).
    pub(crate) fn start(senders: Vec<SharedSender<Arc<Members>>>) -> Self {
        let peers = senders
            .into_iter()
            .map(|sender| {
                let (tx, mut rx) = mpsc::unbounded::<Arc<Members>>();
                glommio::spawn_local(async move {
                    let sender = sender.connect().await;
                    while let Some(mut latest) = rx.next().await {
                        while let Ok(newer) = rx.try_recv() {
                            latest = newer;
                        }
                        if sender.send(latest).await.is_err() {
                            // The core stopped: nothing more to deliver.
                            return;
                        }
                    }
                })
                .detach();
                tx
            })
            .collect();
        Self { peers }
    }

    /// Sends `members` to every other core.
    pub(crate) fn publish(&self, members: &Arc<Members>) {
        for p in &self.peers {
            // A closed queue means that core's task ended (it stopped).
            let _ = p.unbounded_send(Arc::clone(members));
        }
    }
}

/// Another core's end: keeps `view` at the latest snapshot core 0 sent.
pub(crate) fn follow(receiver: SharedReceiver<Arc<Members>>, view: Rc<MemberView>) {
    glommio::spawn_local(async move {
        let receiver = receiver.connect().await;
        while let Some(members) = receiver.recv().await {
            view.replace(members);
        }
    })
    .detach();
}
