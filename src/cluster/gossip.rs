//! The gossip loop: foca (SWIM) driven by glommio on core 0.
//!
//! Owns the running membership protocol of this node: the UDP socket, the
//! foca instance, the delivery of foca's timers, the announcements to the
//! seeds, the departure on shutdown, and turning every membership change
//! into a log line and a new snapshot for every core.
//!
//! Foca is synchronous: each interaction (a packet, a due timer, an
//! announce) collects what foca asks for in [`Effects`]; the loop then
//! queues the timers ([`TimerQueue`], delivered in deadline order, each
//! exactly once), sends the datagrams, reacts to the notifications, brings
//! the roster in line with foca's membership and, if the snapshot changed,
//! installs it in core 0's view and publishes it. One task owns foca and the
//! roster, so no borrow is held across an await. A second task only receives
//! datagrams into a bounded queue (a full queue drops, as the network may).
//!
//! While it knows no live member the node announces itself to every seed
//! each `gossip_rejoin_interval_ms` (host names are looked up off the
//! executor thread). On shutdown it broadcasts a departure notice and
//! declares its own identity down (`leave_cluster`), so the others list it
//! as left, not down, before its core exits.
//!
//! Invariants: every timer foca submits is handed back to it; the published
//! snapshot always equals what the roster would build now.

use super::endpoints::Seed;
use super::identity::NodeIdentity;
use super::leave::{self, DepartureNotices};
use super::members::{MemberState, Members};
use super::roster::{Change, Roster};
use super::timers::TimerQueue;
use super::view::{MemberView, Publisher};
use crate::config::ClusterConfig;
use foca::{Foca, Notification, OwnedNotification, PostcardCodec, Timer};
use futures_lite::future;
use glommio::channels::local_channel::{self, LocalSender};
use glommio::channels::shared_channel::SharedSender;
use glommio::net::UdpSocket;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use std::cell::RefCell;
use std::future::Future;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Foca's sizing hint (how often an update is retransmitted grows with its
/// log): generous for the clusters this node expects.
const CLUSTER_SIZE_HINT: NonZeroU32 = NonZeroU32::MIN.saturating_add(31);

/// Received datagrams waiting for the loop; more are dropped.
const PACKET_QUEUE: usize = 256;

/// Receive buffer: foca's packets are at most 1400 bytes; a longer
/// datagram is truncated and then refused by foca.
const RECEIVE_BUFFER: usize = 2048;

/// After the leave, one more gossip round this much later, so a single lost
/// datagram does not turn a departure into a failure on the others.
const LEAVE_REPEAT_AFTER: Duration = Duration::from_millis(50);

type Agent = Foca<NodeIdentity, PostcardCodec, SmallRng, DepartureNotices>;

/// What foca asked for during one interaction.
#[derive(Default)]
struct Effects {
    sends: Vec<(SocketAddr, Vec<u8>)>,
    timers: Vec<(Duration, Timer<NodeIdentity>)>,
    notes: Vec<OwnedNotification<NodeIdentity>>,
}

impl foca::Runtime<NodeIdentity> for Effects {
    fn notify(&mut self, notification: Notification<'_, NodeIdentity>) {
        self.notes.push(notification.to_owned());
    }

    fn send_to(&mut self, to: NodeIdentity, data: &[u8]) {
        self.sends.push((to.gossip, data.to_vec()));
    }

    fn submit_after(&mut self, event: Timer<NodeIdentity>, after: Duration) {
        self.timers.push((after, event));
    }
}

/// Everything core 0 needs to run gossip, prepared before the executors
/// start.
pub(crate) struct GossipStart {
    /// Bound exclusively at start-up.
    pub(crate) socket: socket2::Socket,
    pub(crate) me: NodeIdentity,
    pub(crate) seeds: Vec<Seed>,
    pub(crate) config: ClusterConfig,
    /// One per other core.
    pub(crate) senders: Vec<SharedSender<Arc<Members>>>,
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// Foca's settings for `c`: a LAN profile with the configured timings.
pub(crate) fn foca_config(c: &ClusterConfig) -> foca::Config {
    let mut f = foca::Config::new_lan(CLUSTER_SIZE_HINT);
    f.probe_period = ms(c.gossip_probe_period_ms);
    f.probe_rtt = ms(c.gossip_probe_rtt_ms);
    f.suspect_to_down_after = ms(c.gossip_suspect_to_down_ms);
    f.remove_down_after = Some(Duration::from_secs(c.members_retention_s));
    if let Some(p) = f.periodic_gossip.as_mut() {
        p.frequency = ms(c.gossip_interval_ms);
    }
    f
}

/// The loop's state: foca and everything that acts on its requests.
struct Gossip {
    foca: Agent,
    effects: Effects,
    timers: TimerQueue<Timer<NodeIdentity>>,
    roster: Roster,
    departures: Rc<RefCell<Vec<NodeIdentity>>>,
    socket: Rc<UdpSocket>,
    seeds: Vec<Seed>,
    view: Rc<MemberView>,
    publisher: Publisher,
    published: Arc<Members>,
}

enum Wake {
    Packet(Vec<u8>),
    Due,
    Shutdown,
}

/// Runs gossip on this core (core 0) until `shutdown` completes, then
/// leaves the cluster. Keeps `view` at the latest snapshot and publishes
/// each new one to the other cores.
pub(crate) async fn run(
    start: GossipStart,
    view: Rc<MemberView>,
    shutdown: impl Future<Output = ()>,
) {
    let GossipStart {
        socket,
        me,
        seeds,
        config,
        senders,
    } = start;
    let socket = Rc::new(UdpSocket::from(socket));
    let (handler, departures) = DepartureNotices::new();
    let seed = me.started_us ^ u64::from(std::process::id()).rotate_left(32);
    let foca = Foca::with_custom_broadcast(
        me.clone(),
        foca_config(&config),
        SmallRng::seed_from_u64(seed),
        PostcardCodec,
        handler,
    );
    let (packets_tx, packets_rx) = local_channel::new_bounded(PACKET_QUEUE);
    let receiver = glommio::spawn_local(receive(Rc::clone(&socket), packets_tx));
    let retention = Duration::from_secs(config.members_retention_s);
    let mut g = Gossip {
        foca,
        effects: Effects::default(),
        timers: TimerQueue::new(),
        roster: Roster::new(me.clone(), retention),
        departures,
        socket,
        seeds,
        view,
        publisher: Publisher::start(senders),
        published: Arc::new(Members::default()),
    };
    tracing::info!(
        node_id = %me.node_id,
        grpc = %me.grpc,
        gossip = %me.gossip,
        seeds = ?config.seeds,
        "gossip started"
    );
    g.refresh(Instant::now());
    g.announce_to_seeds().await;
    let housekeeping_every = ms(config.gossip_rejoin_interval_ms);
    let mut next_housekeeping = Instant::now() + housekeeping_every;
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let wake_at = g
            .timers
            .next_deadline()
            .map_or(next_housekeeping, |t| t.min(next_housekeeping));
        let nap = wake_at.saturating_duration_since(Instant::now());
        let wake = future::or(
            async {
                match packets_rx.recv().await {
                    Some(p) => Wake::Packet(p),
                    None => Wake::Shutdown,
                }
            },
            future::or(
                async {
                    glommio::timer::sleep(nap).await;
                    Wake::Due
                },
                async {
                    shutdown.as_mut().await;
                    Wake::Shutdown
                },
            ),
        )
        .await;
        match wake {
            Wake::Packet(data) => {
                g.interact("packet", |f, rt| f.handle_data(&data, rt)).await;
            }
            Wake::Due => {
                let now = Instant::now();
                while let Some(timer) = g.timers.pop_due(now) {
                    g.interact("timer", |f, rt| f.handle_timer(timer, rt)).await;
                }
                if now >= next_housekeeping {
                    g.housekeeping(now).await;
                    next_housekeeping = now + housekeeping_every;
                }
            }
            Wake::Shutdown => break,
        }
    }
    g.leave().await;
    drop(receiver);
}

/// Receives datagrams into the loop's queue until the task is dropped.
async fn receive(socket: Rc<UdpSocket>, packets: LocalSender<Vec<u8>>) {
    let mut buf = vec![0u8; RECEIVE_BUFFER];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, from)) => {
                let Some(data) = buf.get(..n) else { continue };
                if packets.try_send(data.to_vec()).is_err() {
                    tracing::debug!(%from, "gossip packet dropped: the queue is full");
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "gossip receive failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

impl Gossip {
    /// One interaction with foca, then everything it asked for.
    async fn interact(
        &mut self,
        what: &'static str,
        f: impl FnOnce(&mut Agent, &mut Effects) -> Result<(), foca::Error>,
    ) {
        if let Err(e) = f(&mut self.foca, &mut self.effects) {
            // Stray, stale or malformed packets land here; foca stays sound.
            tracing::debug!(error = %e, what, "gossip: foca refused an input");
        }
        let now = Instant::now();
        for (after, timer) in self.effects.timers.drain(..) {
            self.timers.push(now + after, timer);
        }
        for note in std::mem::take(&mut self.effects.notes) {
            self.on_notification(note);
        }
        for (to, data) in std::mem::take(&mut self.effects.sends) {
            if let Err(e) = self.socket.send_to(&data, to).await {
                tracing::debug!(%to, error = %e, "gossip send failed");
            }
        }
        self.refresh(now);
    }

    fn on_notification(&mut self, note: OwnedNotification<NodeIdentity>) {
        match note {
            OwnedNotification::Active => {
                tracing::info!(members = self.foca.num_members(), "joined the cluster");
            }
            OwnedNotification::Idle => {
                tracing::info!(
                    "no other live member known: announcing to the seeds until one answers"
                );
            }
            OwnedNotification::Rejoin(id) => {
                tracing::warn!(
                    identity = ?id,
                    "the cluster had declared this node down; rejoined with a renewed identity"
                );
                self.roster.renamed(id);
            }
            OwnedNotification::Defunct => {
                tracing::debug!("this node's identity is down for the cluster");
            }
            // Member changes are logged from the roster, which sees every
            // state (suspect included), not only these.
            OwnedNotification::MemberUp(_)
            | OwnedNotification::MemberDown(_)
            | OwnedNotification::Rename(..) => {}
        }
    }

    /// Brings the roster in line with foca and publishes a changed snapshot.
    fn refresh(&mut self, now: Instant) {
        let departed: Vec<_> = self.departures.borrow_mut().drain(..).collect();
        for id in departed {
            self.roster.departed(id);
        }
        let seen = self
            .foca
            .iter_membership_state()
            .map(|m| (m.id(), m.state(), m.incarnation()));
        for change in self.roster.sync(seen, now) {
            log_change(&change);
        }
        let me = self.roster.me().gossip;
        for c in self.roster.new_conflicts() {
            if c.refused.gossip == me {
                tracing::error!(
                    node_id = %c.keeper.node_id,
                    taken_by_gossip = %c.keeper.gossip,
                    taken_by_grpc = %c.keeper.grpc,
                    this_gossip = %c.refused.gossip,
                    "this node's id is taken by a live member at {} (grpc {}) that started \
                     earlier: the cluster ignores this node while that member is alive; start \
                     it with its own node id",
                    c.keeper.gossip,
                    c.keeper.grpc
                );
            } else {
                tracing::warn!(
                    node_id = %c.keeper.node_id,
                    keeping_gossip = %c.keeper.gossip,
                    keeping_grpc = %c.keeper.grpc,
                    refused_gossip = %c.refused.gossip,
                    refused_grpc = %c.refused.grpc,
                    "duplicate node id: a second live member claims it; keeping the one that \
                     started first, ignoring the other while the first is alive"
                );
            }
        }
        let members = self.roster.members();
        if members != *self.published {
            let members = Arc::new(members);
            self.view.replace(Arc::clone(&members));
            self.publisher.publish(&members);
            self.published = members;
        }
    }

    /// Periodic work: forget expired members; announce to the seeds while
    /// no other member is alive.
    async fn housekeeping(&mut self, now: Instant) {
        self.refresh(now);
        if self.foca.num_members() == 0 {
            self.announce_to_seeds().await;
        }
    }

    async fn announce_to_seeds(&mut self) {
        let me = self.roster.me().gossip;
        let mut targets = Vec::new();
        for seed in &self.seeds {
            let addr = match seed {
                Seed::Addr(a) => Some(*a),
                Seed::Name(..) => {
                    let seed = seed.clone();
                    glommio::executor()
                        .spawn_blocking(move || seed.resolve())
                        .await
                }
            };
            match addr {
                Some(a) if a != me => targets.push(a),
                Some(_) => {}
                None => tracing::debug!(?seed, "seed does not resolve yet"),
            }
        }
        for addr in targets {
            self.interact("announce", |f, rt| f.announce(NodeIdentity::seed(addr), rt))
                .await;
        }
    }

    /// Announces the departure and declares this identity down.
    async fn leave(&mut self) {
        let known = self.foca.num_members();
        match leave::encode(self.roster.me()) {
            Ok(notice) => {
                if let Err(e) = self.foca.add_broadcast(&notice) {
                    tracing::warn!(error = %e, "cannot queue the departure notice");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot build the departure notice"),
        }
        self.roster.leaving();
        self.interact("leave", |f, rt| f.leave_cluster(rt)).await;
        if known > 0 {
            glommio::timer::sleep(LEAVE_REPEAT_AFTER).await;
            self.interact("leave", |f, rt| f.gossip(rt)).await;
        }
        tracing::info!(
            members = known,
            "left the cluster: departure announced to the live members"
        );
    }
}

fn log_change(change: &Change) {
    match change {
        Change::Joined { id, state } if state.is_live() => tracing::info!(
            node_id = %id.node_id,
            grpc = %id.grpc,
            gossip = %id.gossip,
            "member joined"
        ),
        Change::Joined { id, state } => tracing::debug!(
            node_id = %id.node_id,
            grpc = %id.grpc,
            state = state.as_str(),
            "learned of a member no longer alive"
        ),
        Change::Rejoined { old, new, state } => tracing::info!(
            node_id = %new.node_id,
            grpc = %new.grpc,
            gossip = %new.gossip,
            previous = ?old,
            state = state.as_str(),
            "member rejoined with a new identity (restarted, or renewed after being declared down)"
        ),
        Change::State {
            id,
            from,
            to,
            incarnation,
        } => match to {
            MemberState::Alive => tracing::info!(
                node_id = %id.node_id,
                grpc = %id.grpc,
                from = from.as_str(),
                incarnation,
                "member alive: refuted the suspicion"
            ),
            MemberState::Suspect => tracing::info!(
                node_id = %id.node_id,
                grpc = %id.grpc,
                incarnation,
                "member suspect: a probe went unanswered"
            ),
            MemberState::Down => tracing::warn!(
                node_id = %id.node_id,
                grpc = %id.grpc,
                from = from.as_str(),
                "member down"
            ),
            MemberState::Left => tracing::warn!(
                node_id = %id.node_id,
                grpc = %id.grpc,
                "member left the cluster"
            ),
        },
        Change::Forgotten { id } => tracing::info!(
            node_id = %id.node_id,
            grpc = %id.grpc,
            "member forgotten after the retention period"
        ),
    }
}
