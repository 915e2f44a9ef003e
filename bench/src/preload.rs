//! Passes over every key before a run: `--preload` writes every key once,
//! `--warm-read` reads every key once (e.g. to fill a read cache), in key
//! order with all connections and streams, with their own progress lines.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::context::Ctx;
use crate::keys::key_name;
use crate::rpc::{do_read, do_write, Client, Outcome};
use crate::BoxError;

/// Pause before a preload write refused with MEMORY_PRESSURE is retried.
const PRELOAD_BACKOFF: Duration = Duration::from_millis(20);

/// Retries of one preload write refused with MEMORY_PRESSURE.
const PRELOAD_MAX_RETRIES: u32 = 1000;

/// What a pass over every key does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pass {
    /// Write every key once (--preload).
    Write,
    /// Read every key once (--warm-read).
    Read,
}

impl Pass {
    fn name(self) -> &'static str {
        match self {
            Pass::Write => "preload",
            Pass::Read => "warm-read",
        }
    }
}

/// One operation of a pass on key `i`; a write refused with MEMORY_PRESSURE
/// is retried after a pause, up to `PRELOAD_MAX_RETRIES` times.
async fn pass_op(
    client: &mut Client,
    ctx: &Ctx,
    pass: Pass,
    i: u64,
    rng: &mut fastrand::Rng,
) -> Outcome {
    let mut retries = 0;
    loop {
        let outcome = match pass {
            Pass::Write => {
                let value = ctx.values.next(rng);
                do_write(client, &ctx.args.tenant, key_name(i), value).await
            }
            Pass::Read => do_read(client, &ctx.args.tenant, key_name(i)).await,
        };
        if !matches!(outcome, Outcome::MemoryPressure) {
            return outcome;
        }
        ctx.memory_pressure.fetch_add(1, Ordering::Relaxed);
        retries += 1;
        if retries > PRELOAD_MAX_RETRIES {
            return Outcome::Err(format!(
                "MEMORY_PRESSURE {PRELOAD_MAX_RETRIES} times in a row"
            ));
        }
        tokio::time::sleep(PRELOAD_BACKOFF).await;
    }
}

/// Writes (or reads) every key once, in key order, with all connections and
/// streams. Fails when any operation failed; misses of a read pass are
/// counted and reported, not failures.
pub(crate) async fn key_pass(
    clients: &[Client],
    ctx: Arc<Ctx>,
    seed: u64,
    pass: Pass,
) -> Result<u64, BoxError> {
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let missed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (c, client) in clients.iter().enumerate() {
        for s in 0..ctx.args.streams {
            let (mut client, ctx) = (client.clone(), ctx.clone());
            let (next, done) = (next.clone(), done.clone());
            let (failed, missed) = (failed.clone(), missed.clone());
            let task_seed = seed ^ (((c * ctx.args.streams + s) as u64) << 32);
            let mut rng = fastrand::Rng::with_seed(task_seed);
            tasks.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= ctx.args.keys {
                        break;
                    }
                    match pass_op(&mut client, &ctx, pass, i, &mut rng).await {
                        Outcome::Err(msg) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            ctx.note_error(&format!("{}: {msg}", pass.name()));
                        }
                        Outcome::Miss => {
                            missed.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            if let (Pass::Write, Some(t)) = (pass, &ctx.written) {
                                t.mark(i);
                            }
                        }
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
    }
    let quiet = ctx.args.quiet;
    let total = ctx.args.keys;
    let progress = {
        let (done, ctx) = (done.clone(), ctx.clone());
        tokio::spawn(async move {
            let period = Duration::from_secs_f64(ctx.args.progress_interval_s);
            let mut tick = tokio::time::interval(period);
            tick.tick().await;
            loop {
                tick.tick().await;
                if !quiet {
                    let d = done.load(Ordering::Relaxed);
                    let secs = started.elapsed().as_secs_f64();
                    let pressure = ctx.memory_pressure.load(Ordering::Relaxed);
                    eprintln!(
                        "[{} {secs:>4.0}s] {d}/{total} keys, {:.0} ops/s, {pressure} MEMORY_PRESSURE retries",
                        pass.name(),
                        d as f64 / secs
                    );
                }
            }
        })
    };
    for t in tasks {
        t.await?;
    }
    progress.abort();
    // Wait until the aborted task has dropped its handle on the context.
    let _ = progress.await;
    let failed = failed.load(Ordering::Relaxed);
    let missed = missed.load(Ordering::Relaxed);
    if !quiet {
        eprintln!(
            "{}: {total} keys in {:.2} s ({failed} failed, {missed} not found)",
            pass.name(),
            started.elapsed().as_secs_f64()
        );
    }
    if failed > 0 {
        return Err(format!("{}: {failed} of {total} operations failed", pass.name()).into());
    }
    Ok(total)
}
