//! A microbenchmark of the cross-core hop alone: two cores, each with a
//! real shard and the request path's own [`Router`], no network and no h2.
//! Core 1 calls a shard `concurrency` calls at a time for a measured window,
//! either its own shard (local) or core 0's (forwarded over the channel
//! mesh); the difference in process CPU per call between the two runs is
//! what one hop costs. With one call at a time both cores park between
//! calls (the cost with a parked peer); with many, both stay busy.
//!
//! Owns only the harness: the operation is a `Get` of a key no shard holds,
//! so the shard's own work is a memtable and an empty-table lookup and the
//! figure is dominated by routing. Invariants: the cores are the node's
//! (same executor settings as `runtime`, spinning off unless asked), each
//! shard lives in its own directory under the one given, and every call is
//! checked (a failed call fails the run rather than counting).

use super::router::{MeshMsg, Router};
use crate::config::StorageConfig;
use crate::engine::{Shard, ShardOp, ShardReply};
use crate::model::{KeyBounds, KeyRef};
use glommio::channels::channel_mesh::MeshBuilder;
use glommio::{LocalExecutorPoolBuilder, PoolPlacement};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One run of the hop benchmark.
#[derive(Debug, Clone)]
pub struct HopSpec {
    /// Call core 0's shard (one hop per call) instead of core 1's own.
    pub forwarded: bool,
    /// Calls in flight at once on core 1.
    pub concurrency: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// `runtime.spin_before_park_us` of both cores (0: park at once).
    pub spin_before_park_us: u64,
    /// `runtime.mesh_channel_capacity`.
    pub mesh_channel_capacity: usize,
}

/// What one run measured over its window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HopRun {
    /// Calls answered in the window.
    pub calls: u64,
    pub elapsed: Duration,
    /// `cpu_ticks()` at the window's end minus at its start (`None` when
    /// either reading failed).
    pub cpu_ticks: Option<u64>,
    /// Calls core 1 sent to core 0 in the window (its
    /// `requests_forwarded_out`); equals `calls` when forwarded, else 0.
    pub forwarded: u64,
}

/// Runs `spec` on two new cores with shards under `dir` (created if
/// missing; must support O_DIRECT, and should be new: shards left there
/// are opened and their data replayed). `cpu_ticks` reads the process's CPU
/// time (any unit) at the window's edges, from core 1.
pub fn run(dir: &Path, spec: &HopSpec, cpu_ticks: fn() -> Option<u64>) -> Result<HopRun, String> {
    if spec.concurrency == 0 {
        return Err("concurrency must be at least 1".into());
    }
    if spec.mesh_channel_capacity == 0 {
        return Err("mesh_channel_capacity must be at least 1".into());
    }
    let mesh = MeshBuilder::<MeshMsg, _>::full(2, spec.mesh_channel_capacity);
    let done = Arc::new(AtomicBool::new(false));
    // Pinned on two CPUs like the node's cores; unpinned where there are
    // fewer (as the node does with more shards than CPUs).
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let placement = if cpus >= 2 {
        PoolPlacement::MaxSpread(2, None)
    } else {
        PoolPlacement::Unbound(2)
    };
    let mut builder = LocalExecutorPoolBuilder::new(placement).name("pairdb-hop-bench");
    if spec.spin_before_park_us > 0 {
        builder = builder.spin_before_park(Duration::from_micros(spec.spin_before_park_us));
    }
    let (dir, spec_c) = (dir.to_path_buf(), spec.clone());
    let handles = builder
        .on_all_shards(move || core(dir, spec_c, mesh, done, cpu_ticks))
        .map_err(|e| format!("cannot start the cores: {e}"))?;
    let mut measured = None;
    for result in handles.join_all() {
        if let Some(run) = result.map_err(|e| format!("a core failed: {e}"))?? {
            measured = Some(run);
        }
    }
    measured.ok_or_else(|| "core 1 measured nothing".to_string())
}

/// One core's part: open its shard, join the mesh; core 1 measures, core
/// 0 answers until core 1 is done.
async fn core(
    dir: PathBuf,
    spec: HopSpec,
    mesh: MeshBuilder<MeshMsg, glommio::channels::channel_mesh::Full>,
    done: Arc<AtomicBool>,
    cpu_ticks: fn() -> Option<u64>,
) -> Result<Option<HopRun>, String> {
    let (senders, receivers) = mesh
        .join()
        .await
        .map_err(|_| "joining the channel mesh failed".to_string())?;
    let id = senders.peer_id();
    // However core 1 ends (a failed open included), core 0 stops waiting.
    let _done = (id == 1).then(|| SetOnDrop(Arc::clone(&done)));
    let shard_dir = dir.join(format!("shard-{id}"));
    std::fs::create_dir_all(&shard_dir)
        .map_err(|e| format!("cannot create {}: {e}", shard_dir.display()))?;
    let shard = Shard::open_sharded(
        &shard_dir,
        id,
        "hop-bench".into(),
        &StorageConfig::default(),
        2,
        KeyBounds::default(),
    )
    .await
    .map_err(|e| format!("cannot open shard {id}: {e}"))?;
    let router = Rc::new(Router::new(Rc::clone(&shard), 2, Some(senders)));
    router.spawn_receivers(receivers);
    let result = if id == 1 {
        measure(&router, &spec, cpu_ticks).await.map(Some)
    } else {
        while !done.load(Ordering::Acquire) {
            glommio::timer::sleep(Duration::from_millis(20)).await;
        }
        Ok(None)
    };
    router.close();
    let closed = shard
        .close()
        .await
        .map_err(|e| format!("cannot close shard {id}: {e}"));
    result.and_then(|run| closed.map(|()| run))
}

/// Sets its flag when dropped.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Core 1's loop: `concurrency` callers until the window ends.
async fn measure(
    router: &Rc<Router>,
    spec: &HopSpec,
    cpu_ticks: fn() -> Option<u64>,
) -> Result<HopRun, String> {
    let owner = if spec.forwarded { 0 } else { 1 };
    let key = KeyRef::new("hop-bench", "no-such-key");
    let calls = Rc::new(Cell::new(0u64));
    let stop = Rc::new(Cell::new(false));
    let failure: Rc<Cell<Option<String>>> = Rc::new(Cell::new(None));
    let callers: Vec<_> = (0..spec.concurrency)
        .map(|_| {
            let (router, key) = (Rc::clone(router), key.clone());
            let (calls, stop, failure) = (Rc::clone(&calls), Rc::clone(&stop), Rc::clone(&failure));
            glommio::spawn_local(async move {
                while !stop.get() {
                    // A local Get of an absent key may complete without
                    // ever waiting: give the timers their turn.
                    glommio::yield_if_needed().await;
                    let reply = router.call(owner, ShardOp::Get { key: key.clone() }).await;
                    match reply {
                        ShardReply::Get { versions } if versions.is_empty() => {
                            calls.set(calls.get() + 1);
                        }
                        other => {
                            failure.set(Some(format!("unexpected reply: {other:?}")));
                            stop.set(true);
                        }
                    }
                }
            })
        })
        .collect();
    glommio::timer::sleep(spec.warmup).await;
    let counters = &router.local_shard().counters;
    let (calls0, fwd0, ticks0, t0) = (
        calls.get(),
        counters.requests_forwarded_out.get(),
        cpu_ticks(),
        Instant::now(),
    );
    glommio::timer::sleep(spec.duration).await;
    let (calls1, fwd1, ticks1, elapsed) = (
        calls.get(),
        counters.requests_forwarded_out.get(),
        cpu_ticks(),
        t0.elapsed(),
    );
    stop.set(true);
    for c in callers {
        c.await;
    }
    if let Some(e) = failure.take() {
        return Err(e);
    }
    Ok(HopRun {
        calls: calls1 - calls0,
        elapsed,
        cpu_ticks: ticks0.zip(ticks1).map(|(a, b)| b.saturating_sub(a)),
        forwarded: fwd1 - fwd0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(forwarded: bool, concurrency: usize) -> HopSpec {
        HopSpec {
            forwarded,
            concurrency,
            warmup: Duration::from_millis(20),
            duration: Duration::from_millis(150),
            spin_before_park_us: 0,
            mesh_channel_capacity: 64,
        }
    }

    fn ticks() -> Option<u64> {
        Some(7)
    }

    #[test]
    fn forwarded_calls_take_the_mesh_and_local_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        for (forwarded, concurrency) in [(true, 1), (true, 8), (false, 8)] {
            let run = run(
                &dir.path().join(format!("{forwarded}-{concurrency}")),
                &spec(forwarded, concurrency),
                ticks,
            )
            .unwrap();
            assert!(run.calls > 0, "{run:?}");
            assert_eq!(run.cpu_ticks, Some(0), "the probe is read at both edges");
            let expected = if forwarded { run.calls } else { 0 };
            // A call counts as forwarded when sent and as answered when its
            // reply arrives: at the window's edges they may differ by the
            // calls in flight.
            assert!(
                run.forwarded.abs_diff(expected) <= concurrency as u64,
                "{run:?}"
            );
        }
    }

    #[test]
    fn a_run_without_callers_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = run(dir.path(), &spec(true, 0), ticks).unwrap_err();
        assert!(err.contains("concurrency"), "{err}");
    }
}
