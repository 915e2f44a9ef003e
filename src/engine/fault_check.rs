//! The shard against its model under disk faults and power loss.
//!
//! A real shard runs on the simulated disk (`storage::disk::sim`) inside a
//! glommio executor, driven by a seeded random sequence of writes (blind,
//! with clocks, deletes), reads, flushes, compactions and clean restarts,
//! with small memtables and tables so flushes, compactions and manifest
//! edits happen all the time. Each seed also plans faults: the power fails
//! after a random number of I/O operations (optionally tearing the block of
//! each file's last unsynced write), and single operations fail with EIO or
//! ENOSPC or write short. A write answered with an error ends the run of
//! that power-on: the machine loses power at once and the shard reopens.
//!
//! What must hold, against a `BTreeMap` of version sets holding every
//! acknowledged write:
//! - while running, a read answers the model's versions or an error, never
//!   other data;
//! - after every recovery each key holds exactly the model's versions, or,
//!   for the one write that was in flight or answered with an error, the
//!   model's versions with that write applied (then the model adopts it):
//!   nothing acknowledged is lost, nothing never written appears, nothing
//!   superseded comes back;
//! - the shard always reopens after a power cycle.
//!
//! Seeds: `PAIRDB_FAULT_SEEDS` (count, default 24) from
//! `PAIRDB_FAULT_SEED_BASE` (default 0); a failure names its seed and the
//! faults injected, and `PAIRDB_FAULT_SEED_BASE=<seed> PAIRDB_FAULT_SEEDS=1`
//! repeats it exactly (the simulated disk answers at once, so a run is a
//! function of its seed).

use super::shard::tests::with_sim_executor;
use super::shard::Shard;
use super::{PutClock, ShardOp, ShardReply};
use crate::model::{KeyRef, PutOrigin, VectorClock, Version, VersionSet};
use crate::storage::disk::sim::{Fault, Op, SimDisk};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

const NODE: &str = "n1";
const KEYS: usize = 8;
const STEPS: usize = 160;

/// A small reproducible generator (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

use super::model_check::{canon, config};

fn key(i: usize) -> KeyRef {
    KeyRef::new("t", &format!("k{i}"))
}

/// A write whose outcome the client does not know.
struct Uncertain {
    key: usize,
    version: Version,
}

struct Run {
    seed: u64,
    rng: Rng,
    sim: Rc<SimDisk>,
    dir: std::path::PathBuf,
    model: BTreeMap<usize, VersionSet>,
    recoveries: usize,
}

impl Run {
    fn context(&self) -> String {
        format!(
            "seed {} (PAIRDB_FAULT_SEED_BASE={} PAIRDB_FAULT_SEEDS=1 repeats it); faults: {:?}",
            self.seed,
            self.seed,
            self.sim.fault_log()
        )
    }

    /// Plans this power-on's faults.
    fn plan_faults(&mut self) {
        if self.rng.chance(60) {
            self.sim.crash_after(1 + self.rng.below(400));
        }
        if self.rng.chance(40) {
            let ops = [
                Op::Write,
                Op::Sync,
                Op::SyncDir,
                Op::SyncRename,
                Op::Rename,
                Op::Open,
                Op::Allocate,
                Op::Read,
                Op::Remove,
                Op::Close,
            ];
            let op = ops[self.rng.below(ops.len() as u64) as usize];
            let fault = match self.rng.below(3) {
                0 => Fault::Errno(libc::ENOSPC),
                1 if op == Op::Write => Fault::ShortWrite,
                _ => Fault::Errno(libc::EIO),
            };
            let skip = self.rng.below(60);
            self.sim.fail(Some(op), skip, 1 + self.rng.below(2), fault);
        }
    }

    /// Opens the shard. A start-up that met an injected fault (the power
    /// failing during it, or a failed operation) fails like a real one; the
    /// machine is then power cycled and the start tried again. Without a
    /// fault, an open must succeed.
    async fn open(&mut self) -> Rc<Shard> {
        loop {
            let faults_before = self.sim.fault_log().len();
            match Shard::open(&self.dir, 0, NODE.into(), &config()).await {
                Ok(s) => return s,
                Err(e) if self.sim.fault_log().len() > faults_before => {
                    let tear = self.rng.chance(50);
                    self.sim.power_cycle(tear);
                    self.recoveries += 1;
                    let _ = e;
                }
                Err(e) => panic!("reopen failed: {e}; {}", self.context()),
            }
        }
    }

    /// Power loss, reboot, reopen; checks every key against the model
    /// (and the uncertain write).
    async fn recover(&mut self, shard: Rc<Shard>, uncertain: Option<Uncertain>) -> Rc<Shard> {
        shard.halt().await;
        drop(shard);
        let tear = self.rng.chance(50);
        self.sim.power_cycle(tear);
        self.recoveries += 1;
        let shard = self.open().await;
        for k in 0..KEYS {
            let got = match read(&shard, k).await {
                Ok(v) => v,
                Err(e) => panic!("read k{k} after recovery: {e}; {}", self.context()),
            };
            let want = self.model.get(&k).cloned().unwrap_or_default();
            if canon(&got) == canon(&want) {
                continue;
            }
            let with = match &uncertain {
                Some(u) if u.key == k => {
                    let mut w = want.clone();
                    w.apply(u.version.clone());
                    Some(w)
                }
                _ => None,
            };
            match with {
                Some(w) if canon(&got) == canon(&w) => {
                    self.model.insert(k, w);
                }
                _ => panic!(
                    "k{k} after recovery {}: got {:?}, model {:?} (uncertain write: {:?}); {}",
                    self.recoveries,
                    canon(&got),
                    canon(&want),
                    uncertain.as_ref().map(|u| (u.key, &u.version)),
                    self.context()
                ),
            }
        }
        shard
            .check_levels()
            .unwrap_or_else(|e| panic!("{e}; {}", self.context()));
        self.plan_faults();
        shard
    }
}

async fn read(shard: &Shard, k: usize) -> Result<VersionSet, String> {
    match shard.execute(ShardOp::Get { key: key(k) }).await {
        ShardReply::Get { versions } => Ok(versions),
        ShardReply::Failed(e) => Err(e.to_string()),
        other => panic!("{other:?}"),
    }
}

async fn run_seed(seed: u64, sim: Rc<SimDisk>, dir: std::path::PathBuf) {
    let mut run = Run {
        seed,
        rng: Rng(seed),
        sim,
        dir,
        model: BTreeMap::new(),
        recoveries: 0,
    };
    let mut shard = run.open().await;
    run.plan_faults();
    let trace = std::env::var_os("PAIRDB_FAULT_TRACE").is_some();
    for step in 0..STEPS {
        let choice = run.rng.below(20);
        if trace {
            eprintln!(
                "seed {seed} step {step}: choice {choice}, ops {}, crashed {}",
                run.sim.ops(),
                run.sim.crashed()
            );
        }
        match choice {
            0..=11 => {
                let k = run.rng.below(KEYS as u64) as usize;
                let value = (!run.rng.chance(15)).then(|| {
                    let len = 1 + run.rng.below(6000) as usize;
                    Bytes::from(vec![run.rng.below(256) as u8; len])
                });
                let set = run.model.entry(k).or_default().clone();
                let (clock, put_clock) = if run.rng.chance(50) {
                    let c = set.blind_clock(NODE).expect("counter below max");
                    (c, PutClock::Blind)
                } else {
                    let entries: BTreeMap<String, i64> = (0..1 + run.rng.below(2))
                        .map(|_| {
                            (
                                format!("c{}", run.rng.below(3)),
                                1 + run.rng.below(4) as i64,
                            )
                        })
                        .collect();
                    let c = VectorClock::from_entries(entries, 64).expect("valid clock");
                    (c.clone(), PutClock::Given(c))
                };
                let version = Version {
                    clock,
                    timestamp_ms: 0,
                    value: value.clone(),
                };
                let reply = shard
                    .execute(ShardOp::Put {
                        key: key(k),
                        value,
                        clock: put_clock,
                        origin: PutOrigin::Client,
                    })
                    .await;
                match reply {
                    ShardReply::Put { .. } => {
                        run.model.entry(k).or_default().apply(version);
                    }
                    ShardReply::Failed(e) => {
                        if trace {
                            eprintln!("seed {seed} write failed: {e}; {}", run.context());
                        }
                        let u = Uncertain { key: k, version };
                        shard = run.recover(shard, Some(u)).await;
                    }
                    other => panic!("{other:?}; {}", run.context()),
                }
            }
            12..=15 => {
                let k = run.rng.below(KEYS as u64) as usize;
                if let Ok(got) = read(&shard, k).await {
                    let want = run.model.get(&k).cloned().unwrap_or_default();
                    assert_eq!(canon(&got), canon(&want), "k{k}; {}", run.context());
                }
            }
            16 => {
                let r = shard.flush(Duration::from_secs(5)).await;
                if trace {
                    eprintln!("seed {seed} flush: {r:?}");
                }
            }
            17 => {
                let _ = shard.compact_until_idle(Duration::from_secs(5)).await;
            }
            18 => {
                // A clean restart (which may fail under faults: then it is
                // a crash like any other).
                let closed = shard.close().await;
                drop(shard);
                if closed.is_ok() && !run.sim.crashed() {
                    shard = run.open().await;
                } else {
                    let reopened = run.open_after_failed_close().await;
                    shard = reopened;
                }
            }
            _ => {
                if run.sim.crashed() {
                    shard = run.recover(shard, None).await;
                } else {
                    glommio::timer::sleep(Duration::from_millis(1)).await;
                }
            }
        }
    }
    shard = run.recover(shard, None).await;
    shard.halt().await;
}

impl Run {
    /// A close that failed (or met the crash): power cycle and check.
    async fn open_after_failed_close(&mut self) -> Rc<Shard> {
        let tear = self.rng.chance(50);
        self.sim.power_cycle(tear);
        self.recoveries += 1;
        let shard = self.open().await;
        for k in 0..KEYS {
            let got = read(&shard, k)
                .await
                .unwrap_or_else(|e| panic!("read k{k}: {e}; {}", self.context()));
            let want = self.model.get(&k).cloned().unwrap_or_default();
            assert_eq!(canon(&got), canon(&want), "k{k}; {}", self.context());
        }
        self.plan_faults();
        shard
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.parse().ok()
}

#[test]
fn shard_matches_model_under_faults_and_power_loss() {
    let base = env_u64("PAIRDB_FAULT_SEED_BASE").unwrap_or(0);
    let seeds = env_u64("PAIRDB_FAULT_SEEDS").unwrap_or(24);
    for seed in base..base + seeds {
        with_sim_executor(seed, move |sim, dir| run_seed(seed, sim, dir));
    }
}
