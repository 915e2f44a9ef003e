//! The WAL writer of one shard: group commit on direct I/O.
//!
//! Owns the committer task and its open segment ([`super::segment`]).
//! Writers call [`WalWriter::submit`] synchronously right after their write
//! decision, so the log order is the decision order; they then await the
//! returned ticket, which resolves once the record's batch is durable (sync
//! mode `always`/`batch`) or at once (`periodic`). The committer takes every
//! record queued so far, frames them as one batch encoded straight into the
//! DMA buffer, writes it from the next 4096-byte boundary in one aligned DMA
//! write (zeros up to the following boundary) that is durable when it
//! completes (O_DSYNC, see `segment`): records that arrive meanwhile form the
//! next batch.
//!
//! Invariants:
//! - segments are written in format version 2: each batch starts on a block
//!   boundary and no written block is ever written again, so a power cut
//!   during a commit can damage only that commit's unacknowledged batch;
//! - the queue is bounded by `wal_pending_bytes_max`; past it `submit` refuses
//!   and the caller answers MEMORY_PRESSURE before changing anything;
//! - a full disk (ENOSPC, EDQUOT, or a new segment that would take the
//!   flush reserve) is waited out: the failed batch's records fail, the
//!   segment it was written to is never written again, their sequence
//!   numbers are skipped, and until a fresh segment exists every submit
//!   fails with the disk-full error. The committer looks for space with
//!   back-off ([`SPACE_RETRY_FIRST`] doubling to [`SPACE_RETRY_MAX`]) and
//!   writes resume by themselves;
//! - after any other failed write or sync the writer is poisoned: every
//!   later submit fails, because what reached the disk is unknown until
//!   restart replays it;
//! - every rotation is answered with a segment number such that every
//!   record queued after it goes to that segment or a later one, also when
//!   the switch failed (the number is then the one the next segment gets),
//!   so a flush never waits on a rotation that cannot happen.

use super::format::{self, Record};
use super::segment::{BatchToWrite, Segment, SegmentSpec};
use crate::config::{StorageConfig, WalSync};
use crate::histogram::DurationHistogram;
use crate::storage::error::StorageError;
use futures_channel::oneshot;
use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

pub(crate) use super::segment::{parse_segment_file_name, segment_file_name};

/// First wait before the WAL looks for space again after a full disk.
const SPACE_RETRY_FIRST: Duration = Duration::from_millis(100);
/// Longest wait between two looks for space.
const SPACE_RETRY_MAX: Duration = Duration::from_secs(2);

/// Counters for health metrics.
#[derive(Debug, Default)]
pub(crate) struct WalStats {
    pub bytes_written: Cell<u64>,
    /// Durable batch writes (each is its own sync) and their latency.
    pub fsyncs: Cell<u64>,
    pub fsync_micros_total: Cell<u64>,
    pub fsync_micros_max: Cell<u64>,
    pub fsync_latency: DurationHistogram,
    pub records: Cell<u64>,
    pub batches: Cell<u64>,
    /// Times the WAL found the disk full and started waiting for space.
    pub disk_full_events: Cell<u64>,
}

fn add(c: &Cell<u64>, v: u64) {
    c.set(c.get().wrapping_add(v));
}

/// What a waiter waits for, by position in the batch it is taken with.
#[derive(Debug, Clone, Copy)]
enum Wait {
    /// Its own record, `records[pos - 1]`: answered by that record's outcome
    /// alone (records before it may fail without failing it).
    Record(usize),
    /// Every record before it (`records[..pos]`), and the batch that was in
    /// flight when it was queued (barriers, close).
    All(usize),
}

struct Waiter {
    wait: Wait,
    tx: oneshot::Sender<Result<(), StorageError>>,
}

struct Queue {
    records: Vec<Record>,
    bytes: usize,
    waiters: Vec<Waiter>,
    poisoned: Option<StorageError>,
    /// The disk was full when the WAL last needed space: submits fail with
    /// this error until the committer has a fresh segment.
    full: Option<StorageError>,
    closed: bool,
    /// A batch is being written or synced.
    in_flight: bool,
    /// Segment switches requested: after `records[..pos]`, start a new
    /// segment and report its number.
    rotations: Vec<(usize, oneshot::Sender<u64>)>,
}

struct Shared {
    queue: RefCell<Queue>,
    wake: glommio::channels::local_channel::LocalSender<()>,
    pending_bytes_max: usize,
    /// Record bytes ever submitted (for flush-by-WAL-size decisions).
    submitted_bytes: Cell<u64>,
    sync: WalSync,
    pub stats: WalStats,
}

/// Handle to a shard's WAL; cheap to clone within its core.
#[derive(Clone)]
pub(crate) struct WalWriter {
    shared: Rc<Shared>,
}

/// Resolves when a submitted record is durable (or at once in periodic mode).
pub(crate) struct Ticket(Option<oneshot::Receiver<Result<(), StorageError>>>);

impl Ticket {
    fn failed(e: StorageError) -> Self {
        let (tx, rx) = oneshot::channel();
        let _ = tx.send(Err(e));
        Ticket(Some(rx))
    }

    pub(crate) async fn wait(self) -> Result<(), StorageError> {
        match self.0 {
            None => Ok(()),
            Some(rx) => rx.await.unwrap_or(Err(StorageError::WalStopped)),
        }
    }
}

/// What a shard's WAL does with writes (HealthCheck's `write_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WalState {
    /// Accepting and committing records.
    Writing,
    /// Waiting for disk space: records are refused (DISK_FULL) until a
    /// fresh segment exists, which happens by itself.
    DiskFull,
    /// A write or sync failed (not for space): records are refused until
    /// restart.
    Failed,
    /// Shut down.
    Closed,
}

impl WalState {
    pub(crate) fn name(self) -> &'static str {
        match self {
            WalState::Writing => "writing",
            WalState::DiskFull => "disk_full",
            WalState::Failed => "failed",
            WalState::Closed => "closed",
        }
    }
}

/// Where the writer starts after recovery.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WalStart {
    pub next_segment_no: u64,
    pub next_seq: u64,
}

impl WalWriter {
    /// Creates the next segment and starts the committer task. On a full
    /// disk the writer still starts, refusing writes until space returns
    /// (reads do not need the WAL). New segments leave `reserve_bytes` of
    /// the volume free.
    pub(crate) async fn start(
        dir: PathBuf,
        shard_id: u32,
        config: &StorageConfig,
        start: WalStart,
        reserve_bytes: u64,
    ) -> Result<Self, StorageError> {
        let spec = SegmentSpec {
            dir,
            shard_id,
            bytes_max: config.wal_segment_bytes_max,
            reserve_bytes,
        };
        // The first segment is not zero-filled (start-up stays fast); every
        // later one is prepared in the background while this one fills.
        let (segment, full) = match Segment::create(&spec, start.next_segment_no, false).await {
            Ok(segment) => (Some(segment), None),
            Err(e) if e.is_disk_full() => {
                tracing::warn!(shard = shard_id, error = %e,
                    "disk full at start: reads are served, writes are refused until space returns");
                (None, Some(e))
            }
            Err(e) => return Err(e),
        };
        let (wake, woken) = glommio::channels::local_channel::new_bounded(1);
        let stats = WalStats::default();
        if full.is_some() {
            add(&stats.disk_full_events, 1);
        }
        let shared = Rc::new(Shared {
            queue: RefCell::new(Queue {
                records: Vec::new(),
                bytes: 0,
                waiters: Vec::new(),
                poisoned: None,
                full,
                closed: false,
                in_flight: false,
                rotations: Vec::new(),
            }),
            wake,
            pending_bytes_max: config.wal_pending_bytes_max,
            submitted_bytes: Cell::new(0),
            sync: config.wal_sync,
            stats,
        });
        let committer = Committer {
            shared: Rc::clone(&shared),
            spec,
            next_no: start.next_segment_no + u64::from(segment.is_some()),
            segment,
            next_seq: start.next_seq,
            batch_window: Duration::from_micros(config.wal_batch_window_us),
            periodic: Duration::from_millis(config.wal_periodic_interval_ms),
            spare: None,
            space_retry: SPACE_RETRY_FIRST,
            last_failure: None,
            spare_records: Vec::new(),
            spare_waiters: Vec::new(),
        };
        glommio::spawn_local(committer.run(woken)).detach();
        Ok(Self { shared })
    }

    /// Record bytes submitted since start.
    pub(crate) fn submitted_bytes(&self) -> u64 {
        self.shared.submitted_bytes.get()
    }

    pub(crate) fn stats(&self) -> &WalStats {
        &self.shared.stats
    }

    /// What the WAL does with writes now.
    pub(crate) fn state(&self) -> WalState {
        let q = self.shared.queue.borrow();
        if q.poisoned.is_some() {
            WalState::Failed
        } else if q.full.is_some() {
            WalState::DiskFull
        } else if q.closed {
            WalState::Closed
        } else {
            WalState::Writing
        }
    }

    /// The first refusal that applies to any record now.
    fn refusal(q: &Queue) -> Option<StorageError> {
        if let Some(e) = &q.poisoned {
            return Some(e.clone());
        }
        if q.closed {
            return Some(StorageError::WalClosed);
        }
        q.full.clone()
    }

    /// Fails when a record of `bytes` would not be accepted now.
    pub(crate) fn check_room(&self, bytes: usize) -> Result<(), StorageError> {
        let q = self.shared.queue.borrow();
        if let Some(e) = Self::refusal(&q) {
            return Err(e);
        }
        if q.bytes > 0 && q.bytes + bytes > self.shared.pending_bytes_max {
            return Err(StorageError::WalBacklog {
                pending: q.bytes,
                limit: self.shared.pending_bytes_max,
            });
        }
        Ok(())
    }

    /// Queues `record` (synchronously: log order is call order) and returns
    /// the ticket to await. Call [`WalWriter::check_room`] first. A record
    /// the format cannot encode is refused here (INVALID_REQUEST) with
    /// nothing queued, so it never poisons the writer.
    pub(crate) fn submit(&self, record: Record) -> Result<Ticket, StorageError> {
        format::check_record(&record).map_err(StorageError::InvalidRecord)?;
        let mut q = self.shared.queue.borrow_mut();
        if let Some(e) = Self::refusal(&q) {
            return Err(e);
        }
        let len = record.encoded_len();
        q.bytes += len;
        add(&self.shared.submitted_bytes, len as u64);
        q.records.push(record);
        let ticket = if self.shared.sync == WalSync::Periodic {
            Ticket(None)
        } else {
            let (tx, rx) = oneshot::channel();
            let wait = Wait::Record(q.records.len());
            q.waiters.push(Waiter { wait, tx });
            Ticket(Some(rx))
        };
        drop(q);
        // A full wake channel means a wake-up is already pending.
        let _ = self.shared.wake.try_send(());
        Ok(ticket)
    }

    /// Ends the current segment after every record submitted so far: later
    /// records go to a new segment, whose number the receiver yields. Every
    /// record submitted before this call is in a segment numbered below it.
    pub(crate) fn rotate(&self) -> oneshot::Receiver<u64> {
        let (tx, rx) = oneshot::channel();
        let mut q = self.shared.queue.borrow_mut();
        let pos = q.records.len();
        q.rotations.push((pos, tx));
        drop(q);
        let _ = self.shared.wake.try_send(());
        rx
    }

    /// A ticket that resolves once everything submitted so far is durable
    /// (used to answer a repeated write only when its original is durable).
    pub(crate) fn barrier(&self) -> Ticket {
        let mut q = self.shared.queue.borrow_mut();
        if let Some(e) = &q.poisoned {
            return Ticket::failed(e.clone());
        }
        if q.closed {
            return Ticket::failed(StorageError::WalClosed);
        }
        if self.shared.sync == WalSync::Periodic || (q.records.is_empty() && !q.in_flight) {
            return Ticket(None);
        }
        let (tx, rx) = oneshot::channel();
        let wait = Wait::All(q.records.len());
        q.waiters.push(Waiter { wait, tx });
        drop(q);
        let _ = self.shared.wake.try_send(());
        Ticket(Some(rx))
    }

    /// Commits what is queued and stops the committer (clean shutdown).
    pub(crate) async fn close(&self) -> Result<(), StorageError> {
        let rx = {
            let mut q = self.shared.queue.borrow_mut();
            q.closed = true;
            let (tx, rx) = oneshot::channel();
            let wait = Wait::All(q.records.len());
            q.waiters.push(Waiter { wait, tx });
            rx
        };
        let _ = self.shared.wake.try_send(());
        rx.await.unwrap_or(Ok(()))
    }
}

struct Committer {
    shared: Rc<Shared>,
    spec: SegmentSpec,
    /// The segment batches go to; `None` while waiting for disk space (or
    /// after a poisoning failure).
    segment: Option<Segment>,
    /// The number the next segment gets.
    next_no: u64,
    next_seq: u64,
    batch_window: Duration,
    periodic: Duration,
    /// The next segment, being created and zero-filled in the background.
    spare: Option<glommio::Task<Result<Segment, StorageError>>>,
    /// The wait before the next look for space.
    space_retry: Duration,
    /// The failure of the previous batch, if it had one (barriers queued
    /// while it was in flight depend on it).
    last_failure: Option<StorageError>,
    /// The previous batch's record and waiter lists, emptied, swapped into
    /// the queue when the next batch is taken: submits then push into
    /// vectors that already have room instead of growing new ones.
    spare_records: Vec<Record>,
    spare_waiters: Vec<Waiter>,
}

/// Longest spare list kept between batches: a burst's capacity is given
/// back rather than held for good.
const SPARE_LIST_LEN_MAX: usize = 4096;

impl Committer {
    fn prepare_spare(&mut self) {
        let (spec, no) = (self.spec.clone(), self.next_no);
        self.spare = Some(glommio::spawn_local(async move {
            Segment::create(&spec, no, true).await
        }));
    }

    /// Switches to the next segment: the spare when ready, else a new one.
    /// The current segment is done with either way; on failure there is
    /// none until a later call succeeds.
    async fn next_segment(&mut self) -> Result<(), StorageError> {
        self.segment = None;
        let no = self.next_no;
        let spare = match self.spare.take() {
            Some(task) => match task.await {
                Ok(s) => (s.no == no).then_some(s),
                Err(e) => {
                    // Made again on the spot; a second failure stops the WAL.
                    tracing::warn!(shard = self.spec.shard_id, segment = no, error = %e,
                        "preparing the next WAL segment failed; making it now");
                    None
                }
            },
            None => None,
        };
        let segment = match spare {
            Some(s) => s,
            None => Segment::create(&self.spec, no, false).await?,
        };
        self.segment = Some(segment);
        self.next_no = no + 1;
        self.prepare_spare();
        Ok(())
    }

    /// While the disk is full: looks for space once (a fresh segment), and
    /// if there is none waits for the back-off or a wake-up (a rotation, a
    /// barrier or close, which the loop then answers).
    async fn wait_for_space(
        &mut self,
        woken: &glommio::channels::local_channel::LocalReceiver<()>,
    ) {
        match self.next_segment().await {
            Ok(()) => {
                self.shared.queue.borrow_mut().full = None;
                self.space_retry = SPACE_RETRY_FIRST;
                tracing::info!(
                    shard = self.spec.shard_id,
                    "disk space is back: the WAL accepts writes again"
                );
            }
            Err(e) if e.is_disk_full() => {
                self.shared.queue.borrow_mut().full = Some(e);
                let wait = self.space_retry;
                self.space_retry = (wait * 2).min(SPACE_RETRY_MAX);
                futures_lite::future::or(
                    async {
                        let _ = woken.recv().await;
                    },
                    glommio::timer::sleep(wait),
                )
                .await;
            }
            Err(e) => self.fail(e),
        }
    }

    /// Records a failure: a full disk is waited out, anything else poisons.
    fn fail(&mut self, e: StorageError) {
        // Never write again where a failed write may have left part of a
        // batch: the next batch goes to a fresh segment.
        self.segment = None;
        let mut q = self.shared.queue.borrow_mut();
        if e.is_disk_full() {
            if q.full.is_none() {
                add(&self.shared.stats.disk_full_events, 1);
                tracing::warn!(shard = self.spec.shard_id, error = %e,
                    "disk full: writes are refused until space returns (reads go on)");
            }
            q.full = Some(e);
        } else {
            tracing::error!(shard = self.spec.shard_id, error = %e,
                "WAL write failed; writes are refused until restart");
            q.poisoned = Some(e);
        }
    }

    async fn run(mut self, woken: glommio::channels::local_channel::LocalReceiver<()>) {
        if self.segment.is_some() {
            self.prepare_spare();
        }
        loop {
            let (closed, empty, waiting_for_space) = {
                let q = self.shared.queue.borrow();
                (
                    q.closed,
                    q.records.is_empty() && q.rotations.is_empty() && q.waiters.is_empty(),
                    self.segment.is_none() && q.poisoned.is_none(),
                )
            };
            if waiting_for_space && !closed {
                if empty {
                    self.wait_for_space(&woken).await;
                }
            } else {
                match self.shared.sync {
                    WalSync::Periodic if !closed => glommio::timer::sleep(self.periodic).await,
                    WalSync::Periodic => {}
                    WalSync::Always | WalSync::Batch if empty && !closed => {
                        if woken.recv().await.is_none() {
                            return;
                        }
                        if self.shared.sync == WalSync::Batch {
                            glommio::timer::sleep(self.batch_window).await;
                        }
                    }
                    WalSync::Always | WalSync::Batch => {}
                }
            }
            let (mut records, mut waiters, rotations, closing) = {
                let mut q = self.shared.queue.borrow_mut();
                q.bytes = 0;
                q.in_flight = !q.records.is_empty() || !q.rotations.is_empty();
                (
                    std::mem::replace(&mut q.records, std::mem::take(&mut self.spare_records)),
                    std::mem::replace(&mut q.waiters, std::mem::take(&mut self.spare_waiters)),
                    std::mem::take(&mut q.rotations),
                    q.closed,
                )
            };
            let (done, failure) = self.commit_with_rotations(&records, rotations).await;
            self.shared.queue.borrow_mut().in_flight = false;
            if let Some(e) = &failure {
                if self.refusal().is_none() {
                    self.fail(e.clone());
                }
            }
            let previous = std::mem::replace(&mut self.last_failure, failure.clone());
            for w in waiters.drain(..) {
                let answer = match w.wait {
                    Wait::Record(pos) if pos <= done => Ok(()),
                    Wait::All(pos) if pos <= done && previous.is_none() => Ok(()),
                    _ => Err(failure
                        .clone()
                        .or_else(|| previous.clone())
                        .unwrap_or(StorageError::WalStopped)),
                };
                let _ = w.tx.send(answer);
            }
            records.clear();
            if records.capacity() <= SPARE_LIST_LEN_MAX {
                self.spare_records = records;
            }
            if waiters.capacity() <= SPARE_LIST_LEN_MAX {
                self.spare_waiters = waiters;
            }
            if closing && self.shared.queue.borrow().records.is_empty() {
                return;
            }
        }
    }

    fn segment_id(&self, segment: &Segment) -> format::SegmentId {
        format::SegmentId {
            shard_id: self.spec.shard_id,
            segment_no: segment.no,
        }
    }

    /// Why nothing can be written now, if so.
    fn refusal(&self) -> Option<StorageError> {
        let q = self.shared.queue.borrow();
        q.poisoned.clone().or_else(|| q.full.clone())
    }

    /// Commits `records`, switching segments where rotations were asked.
    /// Returns how many of them (a prefix) are durable, and the failure
    /// that stopped the rest. Every rotation is answered, also after a
    /// failure (see the module invariants). A failed segment switch fails
    /// only the records after it. Once poisoned or out of space nothing
    /// more is written: the records fail with that error.
    async fn commit_with_rotations(
        &mut self,
        records: &[Record],
        rotations: Vec<(usize, oneshot::Sender<u64>)>,
    ) -> (usize, Option<StorageError>) {
        let mut failure = None;
        let mut done = 0;
        // `rest` is `records` from index `done` on.
        let mut rest = records;
        for (pos, tx) in rotations {
            // `pos` is the queue's length when the rotation was asked (so
            // never below an earlier one): the records before it go first.
            let (before, after) = rest
                .split_at_checked(pos.saturating_sub(done))
                .unwrap_or((rest, &[]));
            if failure.is_none() && !before.is_empty() {
                match self.commit(before).await {
                    Ok(()) => {
                        done += before.len();
                        rest = after;
                    }
                    Err(e) => failure = Some(e),
                }
            } else if failure.is_none() {
                rest = after;
            }
            if failure.is_none() && self.segment.is_some() {
                if let Err(e) = self.next_segment().await {
                    // Later records must not go anywhere until there is a
                    // segment: refused from here on.
                    self.fail(e.clone());
                    failure = Some(e);
                }
            }
            // The records after the rotation go to the fresh segment; after
            // a failure (or while waiting for space) to `next_no` or later:
            // a segment that saw a failure is never written again.
            let first = match (&failure, &self.segment) {
                (None, Some(segment)) => segment.no,
                _ => self.next_no,
            };
            let _ = tx.send(first);
        }
        if failure.is_none() && !rest.is_empty() {
            match self.commit(rest).await {
                Ok(()) => done += rest.len(),
                Err(e) => failure = Some(e),
            }
        }
        (done, failure)
    }

    async fn commit(&mut self, records: &[Record]) -> Result<(), StorageError> {
        if let Some(e) = self.refusal() {
            return Err(e);
        }
        let len =
            format::checked_batch_len(self.next_seq, records).map_err(StorageError::Framing)?;
        let room = self
            .segment
            .as_ref()
            .is_some_and(|s| s.pos + len as u64 <= self.spec.bytes_max);
        if !room {
            self.next_segment().await?;
        }
        let Some(segment) = self.segment.as_ref() else {
            return Err(StorageError::WalStopped);
        };
        let batch = BatchToWrite {
            segment: self.segment_id(segment),
            first_seq: self.next_seq,
            records,
            len,
        };
        // Taken before the write: a failed batch's numbers are never
        // reused, so a retry in a fresh segment never looks stale to replay.
        self.next_seq += records.len() as u64;
        let stats = &self.shared.stats;
        let segment = self.segment.as_mut().ok_or(StorageError::WalStopped)?;
        // The segment's writes are durable when they complete (O_DSYNC):
        // the write is the batch's sync, and its time the sync's time.
        let (written, took) = segment.append(batch).await?;
        add(&stats.bytes_written, written);
        let micros = took.as_micros() as u64;
        add(&stats.fsyncs, 1);
        add(&stats.fsync_micros_total, micros);
        if micros > stats.fsync_micros_max.get() {
            stats.fsync_micros_max.set(micros);
        }
        stats.fsync_latency.record_us(micros);
        add(&stats.records, records.len() as u64);
        add(&stats.batches, 1);
        Ok(())
    }
}
