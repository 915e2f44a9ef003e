//! The thread-per-core runtime: executors, listeners, mesh and shutdown.
//!
//! Owns start-up and shutdown of the node. One glommio `LocalExecutor` per
//! shard, pinned one per CPU; each joins the channel mesh (its mesh peer id is
//! its shard id), builds its shard and router, binds the listen port with
//! SO_REUSEPORT (and its shard port, if set) and accepts connections
//! ([`listen`]). Shutdown (SIGINT/SIGTERM) is a flag
//! the signal handler sets; each core notices it within `SHUTDOWN_POLL`,
//! stops accepting, lets connections drain within `drain_timeout_ms`, then
//! waits at a barrier so no core leaves while another may still forward to it.
//! The cluster layer's parts (gossip socket, snapshot channels) are prepared
//! before the executors start; core 0 runs gossip and leaves the cluster as
//! soon as shutdown begins, and every core's context holds its member view.

mod listen;
pub(crate) mod port;

use crate::cluster::streams::peer_target::PeerTarget;
use crate::cluster::streams::target::Target;
use crate::cluster::streams::{Connect, CoreStreams, StreamSettings};
use crate::cluster::ClusterStart;
use crate::config::Config;
use crate::engine::Shard;
use crate::server::context::CoreContext;
use crate::server::router::{MeshMsg, Router};
use crate::storage::datadir::{shard_dir, DataDir};
use crate::storage::streams_file::StreamRecord;
use glommio::channels::channel_mesh::MeshBuilder;
use glommio::{LocalExecutorPoolBuilder, PoolPlacement};
use listen::{accept_loop, metrics_addr, shard_addrs, Listen};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a core looks at the shutdown flag.
const SHUTDOWN_POLL: Duration = Duration::from_millis(20);

/// Process exit code after a runtime failure (the node had started).
pub const EXIT_FAILURE: u8 = 1;
/// Process exit code when start-up is refused because of the configuration
/// or the environment (data directory, listen address, node id); restarting
/// unchanged would fail the same way.
pub const EXIT_REFUSED: u8 = 2;

#[derive(Debug)]
pub enum RuntimeError {
    /// The configuration handed to [`run`] cannot be used as it is.
    Config(String),
    DataDir(crate::storage::datadir::DataDirError),
    /// The data volume is smaller than the shards need.
    Volume(crate::storage::space::VolumeTooSmall),
    Port(port::PortError),
    Executors(String),
    Core {
        shard: usize,
        reason: String,
    },
}

impl RuntimeError {
    /// The process exit code for this error: [`EXIT_REFUSED`] when start-up
    /// was refused because of the configuration or the environment (checked
    /// before any executor runs), [`EXIT_FAILURE`] otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            RuntimeError::Config(_)
            | RuntimeError::DataDir(_)
            | RuntimeError::Volume(_)
            | RuntimeError::Port(_) => EXIT_REFUSED,
            RuntimeError::Executors(_) | RuntimeError::Core { .. } => EXIT_FAILURE,
        }
    }
}

impl std::fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RuntimeError::Config(e) => write!(f, "{e}"),
            RuntimeError::DataDir(e) => write!(f, "{e}"),
            RuntimeError::Volume(e) => write!(f, "{e}"),
            RuntimeError::Port(e) => write!(f, "{e}"),
            RuntimeError::Executors(e) => write!(f, "cannot start executors: {e}"),
            RuntimeError::Core { shard, reason } => write!(f, "shard {shard}: {reason}"),
        }
    }
}

impl std::error::Error for RuntimeError {}

/// Shared between the signal handler and every core.
#[derive(Clone, Default)]
pub struct ShutdownFlags {
    pub requested: Arc<AtomicBool>,
    drained: Arc<AtomicUsize>,
    /// Cores that finished opening their shard (successfully or not).
    opened: Arc<AtomicUsize>,
    /// A core failed to open its shard: every core stops.
    open_failed: Arc<AtomicBool>,
}

/// CPUs this process may run on (its affinity mask), at least 1.
pub fn available_cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Start-up choices made on the command line rather than in the config file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// Accept a node id other than the one the data directory's META
    /// records, and record the new one (`--allow-node-id-change`).
    pub allow_node_id_change: bool,
}

/// Runs the node until shutdown completes on every core. The shard count
/// comes from `node.shards`, or (when 0) from the data directory's META, or
/// for a new directory one per available core. Paths in `config` must be
/// absolute ([`Config::resolve_paths`]): glommio opens directories without
/// the working directory, so a relative one cannot be opened.
pub fn run(config: Config, options: RunOptions, flags: ShutdownFlags) -> Result<(), RuntimeError> {
    if !config.node.data_dir.is_absolute() {
        return Err(RuntimeError::Config(format!(
            "node.data_dir {} is relative; resolve it against the working directory first",
            config.node.data_dir.display()
        )));
    }
    let listen = config
        .listen_addr()
        .map_err(|e| RuntimeError::Config(e.to_string()))?;
    let asked = (config.node.shards > 0).then_some(config.node.shards);
    let data_dir = DataDir::open(
        &config.node.data_dir,
        asked,
        available_cores(),
        &config.node.node_id,
        options.allow_node_id_change,
    )
    .map_err(RuntimeError::DataDir)?;
    let shards = data_dir.meta().shards;
    let data_root = data_dir.root().to_path_buf();
    check_volume(&data_root, &config, shards)?;
    let addr = port::probe(listen).map_err(RuntimeError::Port)?;
    let shard_ports = shard_addrs(&config, addr, shards)?;
    let metrics = metrics_addr(&config, listen)?;
    let cluster =
        Arc::new(ClusterStart::prepare(&config, addr, shards).map_err(RuntimeError::Config)?);
    let placement = if shards <= available_cores() {
        PoolPlacement::MaxSpread(shards, None)
    } else {
        tracing::warn!(
            shards,
            cores = available_cores(),
            "more shards than cores: executors are not pinned"
        );
        PoolPlacement::Unbound(shards)
    };
    let mesh = MeshBuilder::<MeshMsg, _>::full(shards, config.runtime.mesh_channel_capacity);
    let started = Instant::now();
    let spin = Duration::from_micros(config.runtime.spin_before_park_us);
    let mut builder = LocalExecutorPoolBuilder::new(placement)
        .name("pairdb-core")
        .io_memory(config.runtime.io_memory_bytes);
    if !spin.is_zero() {
        builder = builder.spin_before_park(spin);
    }
    tracing::info!(%addr, shards, node_id = %config.node.node_id, data_dir = %config.node.data_dir.display(), "starting");
    let handles = builder
        .on_all_shards(move || {
            core_main(
                config,
                data_root,
                shards,
                Listen {
                    addr,
                    shard_ports: shard_ports.clone(),
                    metrics,
                },
                mesh,
                flags,
                started,
                cluster,
            )
        })
        .map_err(|e| RuntimeError::Executors(e.to_string()))?;
    // The data directory stays locked until every core has stopped.
    let _data_dir = data_dir;
    let mut first_err = None;
    for result in handles.join_all() {
        let outcome = match result {
            Ok(inner) => inner,
            Err(e) => Err(RuntimeError::Executors(e.to_string())),
        };
        if let Err(e) = outcome {
            tracing::error!(error = %e, "core failed");
            first_err.get_or_insert(e);
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// Refuses a data volume too small for `shards` shards (a full volume of
/// the right size is fine: the node starts, serves reads and waits for
/// space to write).
fn check_volume(
    root: &std::path::Path,
    config: &Config,
    shards: usize,
) -> Result<(), RuntimeError> {
    let space = crate::storage::disk::space(root)
        .map_err(|e| RuntimeError::Config(format!("cannot measure the data volume: {e}")))?;
    crate::storage::space::check_volume(root, space, &config.storage, shards)
        .map_err(RuntimeError::Volume)?;
    if space.free_bytes < crate::storage::space::volume_bytes_min(&config.storage, shards) {
        tracing::warn!(free_bytes = space.free_bytes, total_bytes = space.total_bytes,
            "little free space on the data volume: writes may be refused (DISK_FULL) until there is more");
    }
    Ok(())
}

/// This core's part of the node's streams, resumed from the shard's
/// `STREAMS` file; batches go to each target over the node's gRPC client.
fn open_streams(
    config: &Config,
    shard: Rc<Shard>,
    shards: usize,
    dir: std::path::PathBuf,
) -> Result<Rc<CoreStreams>, String> {
    let c = &config.cluster;
    let settings = StreamSettings {
        node_id: config.node.node_id.clone(),
        batch_bytes: c.stream_batch_bytes,
        backlog_bytes_max: c.stream_backlog_bytes_max,
        rate_mb_s: c.stream_rate_mb_s,
    };
    let timeout = Duration::from_millis(c.stream_batch_timeout_ms);
    let connect: Connect = Rc::new(move |r: &StreamRecord| {
        Rc::new(PeerTarget::new(&r.target_addr, timeout)) as Rc<dyn Target>
    });
    CoreStreams::open(shard, shards, dir, settings, connect)
        .map_err(|e| format!("cannot resume the shard's streams: {e}"))
}

#[allow(
    clippy::too_many_arguments,
    reason = "each is one start-up part the core takes over"
)]
async fn core_main(
    config: Config,
    data_root: std::path::PathBuf,
    shards: usize,
    listen: Listen,
    mesh: MeshBuilder<MeshMsg, glommio::channels::channel_mesh::Full>,
    flags: ShutdownFlags,
    started: Instant,
    cluster: Arc<ClusterStart>,
) -> Result<(), RuntimeError> {
    let (senders, receivers) = if shards > 1 {
        let (s, r) = mesh
            .join()
            .await
            .map_err(|_| RuntimeError::Executors("joining the channel mesh failed".into()))?;
        (Some(s), Some(r))
    } else {
        (None, None)
    };
    let shard_id = senders.as_ref().map_or(0, |s| s.peer_id());
    let opened = Shard::open_sharded(
        &shard_dir(&data_root, shard_id),
        shard_id,
        config.node.node_id.clone(),
        &config.storage,
        shards,
        config.limits.key_bounds(),
    )
    .await;
    if opened.is_err() {
        flags.open_failed.store(true, Ordering::Release);
        flags.requested.store(true, Ordering::Release);
    }
    // Start-up barrier: nobody serves (or forwards) until every shard opened.
    flags.opened.fetch_add(1, Ordering::AcqRel);
    while flags.opened.load(Ordering::Acquire) < shards {
        glommio::timer::sleep(Duration::from_millis(2)).await;
    }
    let shard = match opened {
        Ok(s) => s,
        Err(e) => {
            return Err(RuntimeError::Core {
                shard: shard_id,
                reason: format!("cannot open shard: {e}"),
            })
        }
    };
    if flags.open_failed.load(Ordering::Acquire) {
        return Ok(());
    }
    let router = Rc::new(Router::new(Rc::clone(&shard), shards, senders));
    let streams = open_streams(&config, shard, shards, shard_dir(&data_root, shard_id)).map_err(
        |reason| RuntimeError::Core {
            shard: shard_id,
            reason,
        },
    )?;
    router.set_streams(Rc::clone(&streams));
    if let Some(r) = receivers {
        router.spawn_receivers(r);
    }
    let addr = listen.addr;
    let bind = |addr: SocketAddr| {
        port::bind_listener(addr).map_err(|e| RuntimeError::Core {
            shard: shard_id,
            reason: format!("cannot bind {addr}: {e}"),
        })
    };
    let listener = bind(addr)?;
    let shard_listener = match listen.shard_ports.get(shard_id) {
        Some(own) => Some((*own, bind(*own)?)),
        None => None,
    };
    let metrics_listener = match listen.metrics {
        Some(at) if shard_id == 0 => {
            let l = bind(at)?;
            let bound = l.local_addr().unwrap_or(at);
            tracing::info!(addr = %bound, "metrics endpoint: GET /metrics");
            Some(l)
        }
        _ => None,
    };
    let cluster = cluster
        .take(shard_id)
        .map_err(|reason| RuntimeError::Core {
            shard: shard_id,
            reason,
        })?;
    let core = Rc::new(CoreContext::new(
        config,
        Rc::clone(&router),
        started,
        Rc::clone(&cluster.view),
    ));
    // Gossip (core 0) leaves the cluster as soon as shutdown begins.
    let gossip = {
        let core = Rc::clone(&core);
        cluster.start(async move { core.wait_shutdown().await })
    };
    tracing::info!(shard = shard_id, %addr, shard_port = ?shard_listener.as_ref().map(|(a, _)| *a), "core serving");

    // Watch the process-wide flag and trip this core's latch.
    let watcher = {
        let core = Rc::clone(&core);
        let requested = Arc::clone(&flags.requested);
        glommio::spawn_local(async move {
            while !requested.load(Ordering::Relaxed) {
                glommio::timer::sleep(SHUTDOWN_POLL).await;
            }
            core.begin_shutdown();
        })
    };

    let metrics_task = metrics_listener
        .map(|l| glommio::spawn_local(crate::server::metrics::http::serve(l, Rc::clone(&core))));
    // The shard's own port is served by the same loop, in its own task.
    let shard_accepts = shard_listener
        .map(|(_, l)| glommio::spawn_local(accept_loop(l, Rc::clone(&core), shard_id)));
    accept_loop(listener, Rc::clone(&core), shard_id).await;
    if let Some(task) = shard_accepts {
        task.await;
    }
    if let Some(task) = metrics_task {
        task.await;
    }
    watcher.await;
    tracing::info!(
        shard = shard_id,
        connections = core.connections(),
        "draining"
    );
    let drain = Duration::from_millis(core.config.limits.drain_timeout_ms);
    let deadline = Instant::now() + drain;
    while core.connections() > 0 && Instant::now() < deadline {
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    // Barrier: other cores may still forward requests of their draining
    // connections here; leave only when every core has drained.
    flags.drained.fetch_add(1, Ordering::AcqRel);
    let barrier_deadline = Instant::now() + drain + Duration::from_secs(1);
    while flags.drained.load(Ordering::Acquire) < shards && Instant::now() < barrier_deadline {
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    streams.halt();
    if let Some(gossip) = gossip {
        gossip.await;
    }
    if let Err(e) = router.local_shard().close().await {
        tracing::error!(shard = shard_id, error = %e, "closing the WAL failed");
    }
    router.close();
    tracing::info!(shard = shard_id, "core stopped");
    Ok(())
}
